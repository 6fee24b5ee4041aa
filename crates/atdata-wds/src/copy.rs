//! Copying a shard byte for byte while checking every sample in it.

use std::io::{self, Read, Write};

use atdata_codec::SampleType;

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::opener::ShardOpener;
use crate::reader::Grouper;
use crate::sidecar::Sidecar;

/// What [`Dataset::copy_shard`] copied.
///
/// ```
/// let copied = atdata_wds::CopiedShard { samples: 3, bytes: 10_240, sidecar: None };
/// assert_eq!(copied.bytes % 512, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedShard {
    /// Samples in the shard.
    pub samples: u64,
    /// Bytes copied: the shard's size as stored (compressed, for a compressed shard).
    pub bytes: u64,
    /// The shard's layout, found on the way (`None` for a compressed shard).
    pub sidecar: Option<Sidecar>,
}

/// Passes every byte read from `input` on to `out`, counting them.
struct Tee<'o, R> {
    input: R,
    out: &'o mut (dyn Write + Send),
    bytes: u64,
    /// The first error `out` returned (reported as the copy's error, not the shard's).
    write_error: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            let shown = io::Error::new(e.kind(), e.to_string());
            self.write_error = Some(e);
            return Err(shown);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<T: SampleType, O: ShardOpener> Dataset<T, O> {
    /// Copies the shard `url` (one of [`shard_list`](Self::shard_list)) to `out` byte for byte,
    /// so the copy keeps its samples, their boundaries, its compression and its checksum,
    /// checking on the way that every sample decodes as `T` (for a `DynamicSample` dataset, by
    /// its schema), and recording its [`Sidecar`]. One read of the shard; bytes after the
    /// end-of-archive marker are copied too.
    ///
    /// A shard that cannot be read, a sample that does not decode (named by shard, key and
    /// field) and a failing `out` (named `copy of {url}`) are errors; `out` then holds part of
    /// the shard, for the caller to discard.
    ///
    /// ```
    /// use atdata_codec::Packable;
    /// # use atdata_derive::packable;
    /// # #[packable(crate = "atdata_codec")]
    /// # struct Row { id: i64 }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("rows.tar.gz");
    /// let mut w = atdata_wds::TarWriter::create(&path)?;
    /// w.write(&Row { id: 1 }.as_wds("000000"))?;
    /// w.finish()?.close()?;
    ///
    /// let ds = atdata_wds::Dataset::<Row>::new(path.to_str().unwrap())?;
    /// let mut copy = Vec::new();
    /// let copied = ds.copy_shard(&ds.shard_list()[0], &mut copy)?;
    /// assert_eq!(copied.samples, 1);
    /// assert_eq!(copy, std::fs::read(&path)?);
    /// # Ok(()) }
    /// ```
    pub fn copy_shard(&self, url: &str, out: &mut (dyn Write + Send)) -> Result<CopiedShard> {
        let mut tee = Tee {
            input: self.opener().open(url)?,
            out,
            bytes: 0,
            write_error: None,
        };
        let decode = self.decoder();
        let mut samples = 0u64;
        let parsed = (|| {
            let mut grouper = Grouper::new(&mut tee, url.to_owned(), self.max_member).recording();
            while let Some(read) = grouper.advance() {
                read?;
                decode(url, grouper.sample())?;
                samples += 1;
            }
            Ok::<_, Error>((!grouper.is_gzip()).then(|| grouper.into_sidecar()))
        })();
        let copy_error = |tee: &mut Tee<'_, _>| {
            tee.write_error.take().map(|source| Error::Io {
                path: format!("copy of {url}"),
                source,
            })
        };
        let sidecar = match parsed {
            Ok(sidecar) => sidecar,
            Err(e) => return Err(copy_error(&mut tee).unwrap_or(e)),
        };
        // What follows the end-of-archive marker (padding to a record, a gzip trailer).
        if let Err(e) = io::copy(&mut tee, &mut io::sink()) {
            return Err(copy_error(&mut tee).unwrap_or_else(|| Error::io(url, e)));
        }
        Ok(CopiedShard {
            samples,
            bytes: tee.bytes,
            sidecar,
        })
    }
}
