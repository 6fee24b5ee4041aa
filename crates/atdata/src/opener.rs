//! The facade's default shard opener.

use std::io::Read;
use std::ops::Range;

#[cfg(feature = "s3")]
use atdata_store::S3DataStore;
use atdata_store::StoreOpener;
use atdata_wds::{CachedOpener, LocalOpener, ShardCache, ShardOpener};

/// Opens local paths and `file://` URLs directly; `s3://bucket/...` URLs (feature `s3`)
/// through an `S3DataStore` per bucket with credentials from the environment (`AWS_*`), and
/// `http(s)://` URLs (feature `http`) with ranged GETs, both made on first use. Remote shards
/// can be read through a local [`ShardCache`] ([`with_cache`](Self::with_cache)); local files
/// never are.
///
/// ```
/// use atdata::DefaultOpener;
/// use atdata::wds::ShardOpener;
///
/// assert!(DefaultOpener::default().open("/no/such/shard.tar").is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct DefaultOpener {
    remote: StoreOpener,
    cached: Option<CachedOpener<StoreOpener>>,
}

#[cfg(feature = "s3")]
impl DefaultOpener {
    /// Opens local paths directly and `s3://` URLs of `store`'s bucket through it (its
    /// credentials).
    pub fn with_store(store: S3DataStore) -> DefaultOpener {
        DefaultOpener {
            remote: StoreOpener::new(store),
            cached: None,
        }
    }
}

impl DefaultOpener {
    /// Opens remote URLs through `store` when they are its own (its credentials), the way an
    /// index's data store reads what it wrote; others as the default does.
    pub(crate) fn through(
        store: Option<std::sync::Arc<dyn atdata_store::DataStore>>,
    ) -> DefaultOpener {
        DefaultOpener {
            remote: store.map(StoreOpener::shared).unwrap_or_default(),
            cached: None,
        }
    }

    /// Reads the remote shards `checksums` names (URL and SHA-256 in hex, as an index entry
    /// records them: [`LocalDatasetEntry::checksums`](crate::LocalDatasetEntry::checksums))
    /// through `cache`: a checked local copy when there is one, else the remote shard while
    /// a copy is kept. [`open_dataset`](crate::open_dataset) does this when
    /// `ATDATA_CACHE_DIR` is set.
    ///
    /// ```
    /// use atdata::wds::ShardOpener;
    /// use std::io::Read;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let cache = atdata::wds::ShardCache::new(dir.path().join("cache"), 1 << 30)?;
    /// let local = dir.path().join("a.tar");
    /// std::fs::write(&local, b"x")?;
    /// let url = local.to_str().unwrap().to_owned();
    /// let opener = atdata::DefaultOpener::default()
    ///     .with_cache(cache.clone(), [(url.clone(), "0".repeat(64))]);
    /// let mut bytes = Vec::new();
    /// opener.open(&url)?.read_to_end(&mut bytes)?;
    /// assert_eq!(bytes, b"x");
    /// assert!(cache.list()?.is_empty()); // local files are read in place, never cached
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_cache(
        self,
        cache: ShardCache,
        checksums: impl IntoIterator<Item = (String, String)>,
    ) -> DefaultOpener {
        DefaultOpener {
            cached: Some(CachedOpener::new(self.remote.clone(), cache, checksums)),
            ..self
        }
    }

    /// The opener for `url`: local files directly, remote URLs through the cache if any.
    fn opener_for(&self, url: &str) -> &dyn ShardOpener {
        let remote = ["s3://", "http://", "https://"]
            .iter()
            .any(|scheme| url.starts_with(scheme));
        match (&self.cached, remote) {
            (_, false) => &LocalOpener,
            (Some(cached), true) => cached,
            (None, true) => &self.remote,
        }
    }
}

impl ShardOpener for DefaultOpener {
    fn open(&self, url: &str) -> atdata_wds::Result<Box<dyn Read + Send>> {
        self.opener_for(url).open(url)
    }

    /// One positioned read locally (or from a cached copy), one or more ranged GETs remotely.
    fn read_range(&self, url: &str, range: Range<u64>) -> atdata_wds::Result<Vec<u8>> {
        self.opener_for(url).read_range(url, range)
    }

    fn read_range_into(
        &self,
        url: &str,
        range: Range<u64>,
        buf: &mut Vec<u8>,
    ) -> atdata_wds::Result<()> {
        self.opener_for(url).read_range_into(url, range, buf)
    }

    fn open_at(&self, url: &str, offset: u64) -> atdata_wds::Result<Box<dyn Read + Send>> {
        self.opener_for(url).open_at(url, offset)
    }

    fn open_file(&self, url: &str) -> atdata_wds::Result<Option<std::fs::File>> {
        self.opener_for(url).open_file(url)
    }
}
