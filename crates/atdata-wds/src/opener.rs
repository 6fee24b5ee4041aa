//! Opening shard URLs.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::ops::Range;

use atdata_codec::UninitBuf;

use crate::error::{Error, Result};

/// Opens a shard URL for streaming reads. [`LocalOpener`] reads local paths and `file://` URLs;
/// other crates supply openers for other schemes (`s3://` in `atdata-store`).
///
/// ```
/// use atdata_wds::{LocalOpener, ShardOpener};
///
/// assert!(LocalOpener.open("s3://bucket/key.tar").is_err());
/// assert!(LocalOpener.open("/no/such/shard.tar").is_err());
/// ```
pub trait ShardOpener: Send + Sync + 'static {
    /// A reader over the shard's bytes. A missing shard is an error whose I/O kind is
    /// `NotFound`, here or on the first read.
    fn open(&self, url: &str) -> Result<Box<dyn Read + Send>>;

    /// The bytes `range` of the object at `url`: exactly that many, or an error (an
    /// [`Error::Io`] of kind `UnexpectedEof` when the object ends first). What random access
    /// ([`Dataset::get`](crate::Dataset::get)) reads a sample with. The default opens the
    /// object and reads up to the range; openers that can read at an offset override it (the
    /// local and `s3://` openers do, with one positioned read or one ranged GET). The caller
    /// bounds the range: it is allocated whole.
    ///
    /// ```
    /// use atdata_wds::{LocalOpener, ShardOpener};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("a.bin");
    /// std::fs::write(&path, b"0123456789")?;
    /// let url = path.to_str().unwrap();
    /// assert_eq!(LocalOpener.read_range(url, 2..5)?, b"234");
    /// let past_the_end = LocalOpener.read_range(url, 8..12).unwrap_err();
    /// assert!(matches!(past_the_end, atdata_wds::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn read_range(&self, url: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let mut input = self.open(url)?;
        let skipped = io::copy(&mut (&mut input).take(range.start), &mut io::sink())
            .map_err(|e| Error::io(url, e))?;
        let mut bytes = vec![0; range_len(url, &range)?];
        if skipped < range.start {
            return Err(Error::io(url, io::ErrorKind::UnexpectedEof.into()));
        }
        input
            .read_exact(&mut bytes)
            .map_err(|e| Error::io(url, e))?;
        Ok(bytes)
    }

    /// [`read_range`](Self::read_range) into `buf` (resized to the range), so that a reader
    /// making many reads reuses one buffer: the loader's partition threads do. The default
    /// calls `read_range`; the local opener reads into `buf` itself.
    ///
    /// ```
    /// use atdata_wds::{LocalOpener, ShardOpener};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("a.bin");
    /// std::fs::write(&path, b"0123456789")?;
    /// let url = path.to_str().unwrap();
    /// let mut buf = b"a longer buffer".to_vec();
    /// LocalOpener.read_range_into(url, 2..5, &mut buf)?;
    /// assert_eq!(buf, b"234");
    /// LocalOpener.read_range_into(url, 0..10, &mut buf)?;
    /// assert_eq!(buf, b"0123456789");
    /// assert!(LocalOpener.read_range_into(url, 8..12, &mut buf).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn read_range_into(&self, url: &str, range: Range<u64>, buf: &mut Vec<u8>) -> Result<()> {
        *buf = self.read_range(url, range)?;
        Ok(())
    }

    /// The shard as a local file, when it is one (`None`, the default, otherwise): how a
    /// dataset reads it, into memory not yet initialised (array elements straight into their
    /// batch), and how the loader and `shuffled` read a large sample, by positioned reads.
    /// The local opener opens its files; a cache gives its copies (and `None` for a shard not
    /// cached yet, so that [`open`](Self::open) checks and keeps it).
    ///
    /// ```
    /// use atdata_wds::{LocalOpener, ShardOpener};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("a.bin");
    /// std::fs::write(&path, b"0123456789")?;
    /// assert!(LocalOpener.open_file(path.to_str().unwrap())?.is_some());
    /// assert!(LocalOpener.open_file("/no/such/shard.tar").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn open_file(&self, _url: &str) -> Result<Option<File>> {
        Ok(None)
    }

    /// A reader over the shard's bytes from byte `offset` on: how a dataset reads a large
    /// local shard's pieces on several threads (by its sidecar's offsets). The default opens
    /// the shard and skips `offset` bytes; the local opener seeks.
    ///
    /// ```
    /// use std::io::Read;
    /// use atdata_wds::{LocalOpener, ShardOpener};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("a.bin");
    /// std::fs::write(&path, b"0123456789")?;
    /// let mut rest = String::new();
    /// LocalOpener.open_at(path.to_str().unwrap(), 7)?.read_to_string(&mut rest)?;
    /// assert_eq!(rest, "789");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn open_at(&self, url: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        let mut input = self.open(url)?;
        io::copy(&mut (&mut input).take(offset), &mut io::sink()).map_err(|e| Error::io(url, e))?;
        Ok(input)
    }
}

/// The length of `range` as a buffer size.
pub(crate) fn range_len(url: &str, range: &Range<u64>) -> Result<usize> {
    usize::try_from(range.end.saturating_sub(range.start)).map_err(|_| {
        Error::io(
            url,
            io::Error::new(io::ErrorKind::InvalidInput, "a range larger than memory"),
        )
    })
}

/// Opens local files, given as paths or `file://` URLs.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOpener;

impl LocalOpener {
    fn file(url: &str) -> Result<File> {
        let path = match url.strip_prefix("file://") {
            Some(path) => path,
            None if url.contains("://") => {
                return Err(Error::UnsupportedUrl {
                    url: url.to_owned(),
                });
            }
            None => url,
        };
        File::open(path).map_err(|e| Error::io(url, e))
    }
}

impl ShardOpener for LocalOpener {
    fn open(&self, url: &str) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(LocalOpener::file(url)?))
    }

    fn open_at(&self, url: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        let mut file = LocalOpener::file(url)?;
        file.seek(io::SeekFrom::Start(offset))
            .map_err(|e| Error::io(url, e))?;
        Ok(Box::new(file))
    }

    /// One positioned read (`pread`).
    fn read_range(&self, url: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.read_range_into(url, range, &mut bytes)?;
        Ok(bytes)
    }

    /// One positioned read (`pread`) into `buf`, whose memory is reused (and not cleared:
    /// the read fills it or fails; only memory it never held is zeroed first).
    fn read_range_into(&self, url: &str, range: Range<u64>, buf: &mut Vec<u8>) -> Result<()> {
        let file = LocalOpener::file(url)?;
        let len = range_len(url, &range)?;
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf.truncate(len);
        read_exact_at(&file, buf, range.start).map_err(|e| Error::io(url, e))
    }

    fn open_file(&self, url: &str) -> Result<Option<File>> {
        LocalOpener::file(url).map(Some)
    }
}

/// Fills the rest of `buf` from `file`, from where it stands or (positioned reads) from byte
/// `offset`, reading straight into the memory (no zeroing pass); the file's end first is
/// `UnexpectedEof`.
#[cfg(unix)]
pub(crate) fn fill_from_file(
    file: &File,
    buf: &mut UninitBuf<'_>,
    mut offset: Option<u64>,
) -> io::Result<()> {
    while buf.remaining() > 0 {
        let read = buf.read_with(|rest| {
            let read = match offset {
                Some(at) => rustix::io::pread(file, rest, at),
                None => rustix::io::read(file, rest),
            };
            read.map(|(init, _)| init).map_err(io::Error::from)
        });
        match read {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => offset = offset.map(|at| at + n as u64),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn fill_from_file(
    mut file: &File,
    buf: &mut UninitBuf<'_>,
    offset: Option<u64>,
) -> io::Result<()> {
    if let Some(at) = offset {
        io::Seek::seek(&mut file, io::SeekFrom::Start(at))?;
    }
    buf.read_exact_from(&mut file)
}

#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
pub(crate) fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(offset))?;
    file.read_exact(buf)
}
