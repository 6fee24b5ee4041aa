//! [`ReadAhead`]: the tar reader's buffer, which steps aside for large member data; and what
//! it reads from ([`Plain`], [`FileInput`]), filling memory not yet initialised where it can.

use std::fs::File;
use std::io::{self, BufRead, Read};

use atdata_codec::{FillUninit, UninitBuf};

use crate::opener::fill_from_file;

/// Bytes the buffer holds (and reads at once while members are small).
const CAPACITY: usize = 256 << 10;
/// A read of at least this much, with the buffer empty, goes straight to the input.
pub(crate) const BYPASS: usize = 64 << 10;
/// What the buffer reads after a read that went straight to the input: enough for the next
/// member's headers (a PAX record and its header take 1.5 KiB), little of its data.
const SMALL_FILL: usize = 4 << 10;

/// A buffered reader for tar shards that lets large reads through: member data of at least
/// [`BYPASS`] bytes is read from the input straight into its destination (the kernel's copy
/// is the only one), and the read after such a read fills the buffer with [`SMALL_FILL`]
/// bytes only, so that the next large member's data is not read into the buffer and copied
/// out of it again. While members are small it reads [`CAPACITY`] bytes at a time, as a
/// `BufReader` would.
pub(crate) struct ReadAhead<R> {
    input: R,
    buf: Box<[u8]>,
    /// `buf[start..end]` is read and not yet consumed.
    start: usize,
    end: usize,
    /// Whether the last read went straight to the input.
    bypassed: bool,
}

impl<R: Read> ReadAhead<R> {
    pub(crate) fn new(input: R) -> ReadAhead<R> {
        ReadAhead {
            input,
            buf: vec![0; CAPACITY].into_boxed_slice(),
            start: 0,
            end: 0,
            bypassed: false,
        }
    }
}

impl<R: Read> Read for ReadAhead<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end && out.len() >= BYPASS {
            self.bypassed = true;
            return self.input.read(out);
        }
        let n = {
            let buffered = self.fill_buf()?;
            let n = buffered.len().min(out.len());
            out[..n].copy_from_slice(&buffered[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: FillUninit> FillUninit for ReadAhead<R> {
    /// What the buffer holds first; then, while the rest is large, straight from the input.
    fn fill_uninit(&mut self, buf: &mut UninitBuf<'_>) -> io::Result<()> {
        while buf.remaining() > 0 {
            if self.start == self.end && buf.remaining() >= BYPASS {
                self.bypassed = true;
                return self.input.fill_uninit(buf);
            }
            let n = match self.fill_buf()? {
                [] => return Err(io::ErrorKind::UnexpectedEof.into()),
                buffered => buf.put(buffered),
            };
            self.consume(n);
        }
        Ok(())
    }
}

/// A reader filling memory not yet initialised as any reader does: zeroed first.
pub(crate) struct Plain<R>(pub(crate) R);

impl<R: Read> Read for Plain<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.0.read(out)
    }
}

impl<R: Read> FillUninit for Plain<R> {}

/// A shard that is a local file, read from where it stands: into memory not yet initialised
/// without zeroing it first.
pub(crate) struct FileInput(pub(crate) File);

impl Read for FileInput {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.0.read(out)
    }
}

impl FillUninit for FileInput {
    fn fill_uninit(&mut self, buf: &mut UninitBuf<'_>) -> io::Result<()> {
        fill_from_file(&self.0, buf, None)
    }
}

impl<R: Read> BufRead for ReadAhead<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            let want = if self.bypassed { SMALL_FILL } else { CAPACITY };
            let n = self.input.read(&mut self.buf[..want])?;
            (self.start, self.end, self.bypassed) = (0, n, false);
        }
        Ok(&self.buf[self.start..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that records the size of every read asked of it.
    struct Recorded<'a> {
        bytes: &'a [u8],
        asked: Vec<usize>,
    }

    impl Read for Recorded<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.asked.push(out.len());
            self.bytes.read(out)
        }
    }

    #[test]
    fn memory_not_yet_initialised_fills_as_reads_do() {
        use std::mem::MaybeUninit;
        let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard.tar");
        std::fs::write(&path, &bytes).unwrap();
        let mut reader = ReadAhead::new(FileInput(File::open(&path).unwrap()));
        let mut got = Vec::new();
        // Reads and fills interleaved: from the buffer, then (large) straight from the file.
        for (len, fill) in [(512, false), (300_000, true), (100, true), (200_000, false)] {
            let mut memory = vec![MaybeUninit::uninit(); len];
            let mut buf = UninitBuf::new(&mut memory);
            match fill {
                true => reader.fill_uninit(&mut buf).unwrap(),
                false => buf.read_exact_from(&mut reader).unwrap(),
            }
            got.extend_from_slice(buf.filled());
        }
        assert_eq!(got, bytes[..got.len()]);
        let mut memory = vec![MaybeUninit::uninit(); bytes.len()];
        let mut past_end = UninitBuf::new(&mut memory);
        let error = reader.fill_uninit(&mut past_end).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);

        // Positioned fills, from any offset, and past the end.
        let file = File::open(&path).unwrap();
        for (at, len) in [(0, 10), (777_777, 222_223), (999_999, 2)] {
            let mut memory = vec![MaybeUninit::uninit(); len];
            let mut buf = UninitBuf::new(&mut memory);
            match fill_from_file(&file, &mut buf, Some(at as u64)) {
                Ok(()) => assert_eq!(buf.filled(), &bytes[at..at + len]),
                Err(e) => {
                    assert!(at + len > bytes.len() && e.kind() == io::ErrorKind::UnexpectedEof)
                }
            }
        }
    }

    #[test]
    fn large_reads_go_to_the_input_and_small_ones_are_buffered() {
        let bytes: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut reader = ReadAhead::new(Recorded {
            bytes: &bytes,
            asked: Vec::new(),
        });
        let mut got = Vec::new();
        // A header, then large data, twice; then small reads, past the small fill.
        for len in [512, 600_000, 512, 600_000, 100, 100, 100, 5_000] {
            let mut part = vec![0; len];
            reader.read_exact(&mut part).unwrap();
            got.extend(part);
        }
        assert_eq!(got, bytes[..got.len()]);
        let asked = &reader.input.asked;
        // The first fill is whole; the large reads go straight through, the reads after them
        // fill the buffer with a little only, and small reads fill it whole again.
        assert_eq!(asked[0], CAPACITY);
        assert!(asked.contains(&(600_000 - (CAPACITY - 512))), "{asked:?}");
        assert!(asked.contains(&(600_000 - (SMALL_FILL - 512))), "{asked:?}");
        assert_eq!(
            asked.iter().filter(|&&n| n == SMALL_FILL).count(),
            2,
            "{asked:?}"
        );
        assert_eq!(*asked.last().unwrap(), CAPACITY, "{asked:?}");
    }
}
