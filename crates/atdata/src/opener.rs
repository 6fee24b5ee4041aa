//! The facade's default shard opener.

use std::io::Read;

#[cfg(feature = "s3")]
use atdata_store::{S3DataStore, StoreOpener};
use atdata_wds::{LocalOpener, ShardOpener};

/// Opens local paths and `file://` URLs directly, and (feature `s3`) `s3://bucket/...` URLs
/// through an `S3DataStore` per bucket with credentials from the environment (`AWS_*`), made on
/// first use.
///
/// ```
/// use atdata::DefaultOpener;
/// use atdata::wds::ShardOpener;
///
/// assert!(DefaultOpener::default().open("/no/such/shard.tar").is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct DefaultOpener {
    #[cfg(feature = "s3")]
    s3: StoreOpener,
}

#[cfg(feature = "s3")]
impl DefaultOpener {
    /// Opens local paths directly and `s3://` URLs through `store` (its credentials).
    pub fn with_store(store: S3DataStore) -> DefaultOpener {
        DefaultOpener {
            s3: StoreOpener::new(store),
        }
    }
}

impl DefaultOpener {
    /// Opens `s3://` URLs through `store` when it is an S3 store (its credentials), the way
    /// an index's data store reads what it wrote; otherwise as the default does.
    pub(crate) fn through(
        store: Option<std::sync::Arc<dyn atdata_store::DataStore>>,
    ) -> DefaultOpener {
        #[cfg(feature = "s3")]
        if let Some(store) = store.filter(|s| s.url("").starts_with("s3://")) {
            return DefaultOpener {
                s3: StoreOpener::shared(store),
            };
        }
        #[cfg(not(feature = "s3"))]
        let _ = store;
        DefaultOpener::default()
    }
}

impl ShardOpener for DefaultOpener {
    fn open(&self, url: &str) -> atdata_wds::Result<Box<dyn Read + Send>> {
        #[cfg(feature = "s3")]
        if url.starts_with("s3://") {
            return self.s3.open(url);
        }
        LocalOpener.open(url)
    }

    /// One positioned read locally, one ranged GET from S3.
    fn read_range(&self, url: &str, range: std::ops::Range<u64>) -> atdata_wds::Result<Vec<u8>> {
        #[cfg(feature = "s3")]
        if url.starts_with("s3://") {
            return self.s3.read_range(url, range);
        }
        LocalOpener.read_range(url, range)
    }

    /// The same, reusing `buf` for local files.
    fn read_range_into(
        &self,
        url: &str,
        range: std::ops::Range<u64>,
        buf: &mut Vec<u8>,
    ) -> atdata_wds::Result<()> {
        #[cfg(feature = "s3")]
        if url.starts_with("s3://") {
            *buf = self.s3.read_range(url, range)?;
            return Ok(());
        }
        LocalOpener.read_range_into(url, range, buf)
    }
}
