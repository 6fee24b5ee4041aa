//! Opening shard URLs.

use std::fs::File;
use std::io::Read;

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
    /// A reader over the shard's bytes.
    fn open(&self, url: &str) -> Result<Box<dyn Read + Send>>;
}

/// Opens local files, given as paths or `file://` URLs.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOpener;

impl ShardOpener for LocalOpener {
    fn open(&self, url: &str) -> Result<Box<dyn Read + Send>> {
        let path = match url.strip_prefix("file://") {
            Some(path) => path,
            None if url.contains("://") => {
                return Err(Error::UnsupportedUrl {
                    url: url.to_owned(),
                });
            }
            None => url,
        };
        let file = File::open(path).map_err(|e| Error::io(url, e))?;
        Ok(Box::new(file))
    }
}
