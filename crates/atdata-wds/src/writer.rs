//! Writing tar shards the way WebDataset (Python's `tarfile`) writes them.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use atdata_codec::WdsSample;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::error::{Error, Result};
use crate::sidecar::{Sidecar, check_name, sidecar_url};

const BLOCK: usize = 512;
/// Python's `tarfile` pads archives to a multiple of this (20 blocks).
const RECORD: u64 = 10240;
/// The largest size the 11 octal digits of a ustar size field hold.
const MAX_MEMBER: u64 = 0o77777777777;
/// The longest member name a ustar `name` field holds; longer names get a PAX `path` record.
const NAME_LEN: usize = 100;

/// Writes one tar shard: each sample's members as `{key}.{ext}`, with WebDataset's header
/// conventions (mode 0444, uid and gid 0, owner `bigdata`, an integer mtime) and the archive
/// closed and padded as Python's `tarfile` does, so the bytes match what Python atdata writes
/// for the same samples and mtime.
///
/// A writer can record where each member's data lies as it writes (a [`Sidecar`]): one made
/// by [`create`](Self::create) does, and writes the sidecar beside the file when finished.
///
/// ```
/// use atdata_codec::WdsSample;
/// use atdata_wds::TarWriter;
///
/// let mut w = TarWriter::new(Vec::new()).mtime(1_735_787_045);
/// w.write(&WdsSample::msgpack("000000", vec![0x80])).unwrap();
/// let bytes = w.finish().unwrap();
/// assert_eq!(bytes.len(), 10240);
/// assert_eq!(&bytes[..16], b"000000.msgpack\0\0");
/// ```
#[derive(Debug)]
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
    mtime: u64,
    /// The layout written so far, when recording.
    sidecar: Option<Sidecar>,
    /// Where [`finish`](Self::finish) writes the sidecar.
    beside: Option<PathBuf>,
    /// The key of the last sample written (a sample written again under it extends it, as
    /// readers group consecutive members by key).
    last_key: String,
}

impl TarWriter<ShardFile> {
    /// Creates the file at `path` (a gzip stream when it ends in `.gz` or `.tgz`). An
    /// uncompressed shard gets its sidecar, `<stem>.idx` beside it (see
    /// [`sidecar_url`](crate::sidecar_url)), written by [`finish`](Self::finish); turn it off
    /// with [`with_sidecar(false)`](Self::with_sidecar).
    ///
    /// ```
    /// # use atdata_codec::WdsSample;
    /// let dir = tempfile::tempdir()?;
    /// let mut w = atdata_wds::TarWriter::create(dir.path().join("a.tar"))?;
    /// w.write(&WdsSample::msgpack("k", vec![0x80]))?;
    /// w.finish()?.close()?;
    /// assert_eq!(std::fs::read_to_string(dir.path().join("a.idx"))?, "v1.2 1\nmsgpack 512 1 k.msgpack\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<TarWriter<ShardFile>> {
        let path = path.as_ref();
        let beside = path.to_str().and_then(sidecar_url).map(PathBuf::from);
        let mut writer = TarWriter::new(ShardFile::create(path)?);
        if beside.is_some() {
            writer.sidecar = Some(Sidecar::default());
            writer.beside = beside;
        }
        Ok(writer)
    }
}

impl<W: Write> TarWriter<W> {
    /// A writer appending to `out`; members get the current time as their mtime.
    pub fn new(out: W) -> TarWriter<W> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        TarWriter {
            out,
            written: 0,
            mtime: now,
            sidecar: None,
            beside: None,
            last_key: String::new(),
        }
    }

    /// Records (`true`) or not the sidecar of what is written. Recording makes
    /// [`write`](Self::write) refuse names a sidecar cannot hold ([`Error::SidecarName`]:
    /// whitespace). Off, a writer made by [`create`](Self::create) writes no sidecar file.
    pub fn with_sidecar(mut self, on: bool) -> TarWriter<W> {
        self.sidecar = on.then(|| self.sidecar.take().unwrap_or_default());
        self
    }

    /// Sets the members' mtime (seconds since the epoch).
    pub fn mtime(mut self, mtime: u64) -> TarWriter<W> {
        self.mtime = mtime;
        self
    }

    /// Appends a sample: one member per `(extension, bytes)`. Keys must be non-empty and hold
    /// no `.` (a reader would split the key there), no `/` at the end, and no NUL.
    ///
    /// The whole sample is checked before any of it is written: a bad extension or an
    /// oversized member leaves the archive as it was.
    pub fn write(&mut self, sample: &WdsSample) -> Result<()> {
        validate_key(&sample.key)?;
        for (ext, data) in &sample.members {
            if ext.is_empty() || ext.contains(['/', '\0']) {
                return Err(Error::InvalidKey {
                    key: format!("{}.{ext}", sample.key),
                    reason: "the extension must be non-empty with no `/` or NUL",
                });
            }
            if data.len() as u64 > MAX_MEMBER {
                return Err(Error::MemberTooLarge {
                    member: format!("{}.{ext}", sample.key),
                    len: data.len() as u64,
                });
            }
            if self.sidecar.is_some() {
                check_name(&format!("{}.{ext}", sample.key))?;
            }
        }
        let new_sample = sample.key != self.last_key;
        for (i, (ext, data)) in sample.members.iter().enumerate() {
            let name = format!("{}.{ext}", sample.key);
            let offset = self
                .member(&name, data)
                .map_err(|e| Error::io(name.clone(), e))?;
            if let Some(sidecar) = &mut self.sidecar {
                let first = new_sample && i == 0;
                sidecar.push(&name, sample.key.len(), offset, data.len() as u64, first);
            }
        }
        if !sample.members.is_empty() {
            self.last_key.clone_from(&sample.key);
        }
        Ok(())
    }

    /// Writes one member; the offset of its data.
    fn member(&mut self, name: &str, data: &[u8]) -> io::Result<u64> {
        let len = data.len() as u64;
        if len > MAX_MEMBER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{len} bytes exceed the 8 GiB a tar header holds"),
            ));
        }
        if name.len() > NAME_LEN {
            // As Python's PAX format does: a `path` record, then the name cut to 100 bytes.
            let record = pax_record("path", name);
            let header = header("././@PaxHeader", record.len() as u64, 0o000, 0, b'x', "");
            self.block(&header)?;
            self.data(record.as_bytes())?;
        }
        let header = header(name, len, 0o444, self.mtime, b'0', "bigdata");
        self.block(&header)?;
        let offset = self.written;
        self.data(data)?;
        Ok(offset)
    }

    fn block(&mut self, block: &[u8; BLOCK]) -> io::Result<()> {
        self.out.write_all(block)?;
        self.written += BLOCK as u64;
        Ok(())
    }

    fn data(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad])?;
        self.written += (data.len() + pad) as u64;
        Ok(())
    }

    /// Writes the end-of-archive marker (two zero blocks), pads to a multiple of 10240 bytes,
    /// flushes, and gives back the output; for a writer made by [`create`](Self::create) that
    /// records, then writes the sidecar beside the file (atomically).
    pub fn finish(self) -> Result<W> {
        Ok(self.finish_with_sidecar()?.0)
    }

    /// [`finish`](Self::finish), also giving back the sidecar recorded (`None` when not
    /// recording).
    pub fn finish_with_sidecar(mut self) -> Result<(W, Option<Sidecar>)> {
        self.end()?;
        if let (Some(sidecar), Some(path)) = (&self.sidecar, &self.beside) {
            sidecar.write_file(path)?;
        }
        Ok((self.out, self.sidecar))
    }

    fn end(&mut self) -> Result<()> {
        let end = (self.written + 2 * BLOCK as u64).div_ceil(RECORD) * RECORD;
        let zeros = [0u8; BLOCK];
        let finish = |w: &mut Self| -> io::Result<()> {
            while w.written < end {
                w.out.write_all(&zeros)?;
                w.written += BLOCK as u64;
            }
            w.out.flush()
        };
        finish(self).map_err(|e| Error::io("end of archive", e))
    }

    /// Bytes written so far (headers and padding included).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }
}

/// Checks a sample key for writing.
pub(crate) fn validate_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "keys must not be empty"
    } else if key.contains('.') {
        "keys must not contain `.` (readers split member names at the first dot)"
    } else if key.contains('\0') {
        "keys must not contain NUL"
    } else if key.ends_with('/') {
        "keys must not end with `/`"
    } else {
        return Ok(());
    };
    Err(Error::InvalidKey {
        key: key.to_owned(),
        reason,
    })
}

/// Whether a shard named `name` is written (and so read) as a gzip stream: `.gz`, `.tgz`.
pub(crate) fn gzip_name(name: &str) -> bool {
    name.ends_with(".gz") || name.ends_with(".tgz")
}

/// `"%d key=value\n"` where the length counts itself.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

/// A ustar header as Python's `tarfile` writes it: numbers as zero-padded octal ending in NUL,
/// the checksum as six digits, NUL, space, and the device fields left as NUL bytes.
fn header(name: &str, size: u64, mode: u32, mtime: u64, typeflag: u8, owner: &str) -> [u8; BLOCK] {
    let mut h = tar::Header::new_ustar();
    let u = h.as_ustar_mut().expect("a ustar header");
    let name = &name.as_bytes()[..name.len().min(NAME_LEN)];
    u.name[..name.len()].copy_from_slice(name);
    octal(&mut u.mode, u64::from(mode));
    octal(&mut u.uid, 0);
    octal(&mut u.gid, 0);
    octal(&mut u.size, size);
    octal(&mut u.mtime, mtime);
    u.typeflag = [typeflag];
    u.uname[..owner.len()].copy_from_slice(owner.as_bytes());
    u.gname[..owner.len()].copy_from_slice(owner.as_bytes());
    u.dev_major = [0; 8];
    u.dev_minor = [0; 8];
    u.cksum = [b' '; 8];
    let sum: u32 = h.as_bytes().iter().map(|&b| u32::from(b)).sum();
    let mut bytes = *h.as_bytes();
    // Python writes the checksum as six octal digits, NUL, space.
    octal(&mut bytes[148..155], u64::from(sum));
    bytes[155] = b' ';
    bytes
}

/// Writes `value` as zero-padded octal filling all but the last byte of `field`, then NUL (the
/// low digits when it does not fit; callers check sizes first).
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let mut v = value;
    for d in field[..digits].iter_mut().rev() {
        *d = b'0' + (v & 7) as u8;
        v >>= 3;
    }
    field[digits] = 0;
}

/// A shard file being written: plain, or gzip-compressed for `.gz` / `.tgz` paths.
#[derive(Debug)]
pub struct ShardFile {
    path: String,
    inner: FileKind,
}

#[derive(Debug)]
enum FileKind {
    Plain(BufWriter<File>),
    /// `None` only while a finished gzip member is being replaced by the next.
    Gzip(Option<GzEncoder<BufWriter<File>>>, GzipState),
}

/// Whether the current gzip member was finished by a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GzipState {
    Open,
    Finished,
}

impl FileKind {
    /// The gzip encoder to write to, opening a new gzip member after a finished one (a file of
    /// several members is one valid gzip stream to every reader, ours included).
    fn gzip<'e>(
        enc: &'e mut Option<GzEncoder<BufWriter<File>>>,
        state: &mut GzipState,
    ) -> io::Result<&'e mut GzEncoder<BufWriter<File>>> {
        if *state == GzipState::Finished {
            let file = enc
                .take()
                .ok_or_else(|| io::Error::other("gzip stream lost"))?
                .finish()?;
            *enc = Some(GzEncoder::new(file, Compression::default()));
            *state = GzipState::Open;
        }
        enc.as_mut()
            .ok_or_else(|| io::Error::other("gzip stream lost"))
    }
}

impl ShardFile {
    /// Creates `path` and its parent folders.
    pub fn create(path: &Path) -> Result<ShardFile> {
        let shown = path.display().to_string();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(parent.display().to_string(), e))?;
        }
        let file = BufWriter::with_capacity(
            1 << 20,
            File::create(path).map_err(|e| Error::io(shown.clone(), e))?,
        );
        let gzip = gzip_name(&shown);
        Ok(ShardFile {
            path: shown,
            inner: if gzip {
                FileKind::Gzip(
                    Some(GzEncoder::new(file, Compression::default())),
                    GzipState::Open,
                )
            } else {
                FileKind::Plain(file)
            },
        })
    }

    /// Finishes the gzip stream (if any) and flushes the file to the OS.
    pub fn close(self) -> Result<()> {
        let path = self.path;
        let result = match self.inner {
            FileKind::Plain(mut w) => w.flush(),
            FileKind::Gzip(Some(gz), _) => gz.finish().and_then(|mut w| w.flush()),
            FileKind::Gzip(None, _) => Err(io::Error::other("gzip stream lost")),
        };
        result.map_err(|e| Error::io(path, e))
    }
}

impl Write for ShardFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            FileKind::Plain(w) => w.write(buf),
            FileKind::Gzip(enc, state) => FileKind::gzip(enc, state)?.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            FileKind::Plain(w) => w.write_all(buf),
            FileKind::Gzip(enc, state) => FileKind::gzip(enc, state)?.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            FileKind::Plain(w) => w.flush(),
            // The writer flushes once, at the end of the archive: finish the gzip member
            // there, so `TarWriter::finish` alone leaves a complete file. A write after a
            // flush starts a new member instead of failing.
            FileKind::Gzip(enc, state) => match enc {
                Some(gz) if *state == GzipState::Open => {
                    gz.try_finish()?;
                    *state = GzipState::Finished;
                    gz.get_mut().flush()
                }
                Some(gz) => gz.get_mut().flush(),
                None => Err(io::Error::other("gzip stream lost")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writing_after_a_gzip_flush_starts_a_new_member_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar.gz");
        let mut f = ShardFile::create(&path).unwrap();
        f.write_all(b"first ").unwrap();
        f.flush().unwrap();
        f.write_all(b"second").unwrap();
        f.flush().unwrap();
        f.flush().unwrap();
        f.close().unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(File::open(&path).unwrap()),
            &mut text,
        )
        .unwrap();
        assert_eq!(text, "first second");
    }

    #[test]
    fn a_bad_second_extension_writes_nothing_of_the_sample() {
        let mut w = TarWriter::new(Vec::new());
        let sample = WdsSample {
            key: "k".into(),
            members: vec![("msgpack".into(), vec![1]), ("bad/ext".into(), vec![2])],
        };
        assert!(w.write(&sample).is_err());
        assert_eq!(w.bytes_written(), 0);
    }

    #[test]
    fn pax_record_length_counts_itself() {
        assert_eq!(
            pax_record("mtime", "1735787045.0"),
            "22 mtime=1735787045.0\n"
        );
        let long = "k".repeat(95);
        let r = pax_record("path", &long);
        assert_eq!(r.len().to_string(), r.split(' ').next().unwrap());
    }

    #[test]
    fn keys_with_dots_are_refused() {
        let mut w = TarWriter::new(Vec::new());
        let err = w.write(&WdsSample::msgpack("a.b", vec![])).unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{err}");
        assert!(w.write(&WdsSample::msgpack("", vec![])).is_err());
        assert!(w.write(&WdsSample::msgpack("dir/", vec![])).is_err());
        assert!(w.write(&WdsSample::msgpack("dir/a", vec![])).is_ok());
    }
}
