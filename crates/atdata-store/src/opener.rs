//! Opening shard URLs through stores, for `Dataset`.

use std::io::Read;
use std::sync::Arc;

use atdata_wds::ShardOpener;

#[cfg(feature = "s3")]
use crate::error::Error;
#[cfg(feature = "s3")]
use crate::object::S3DataStore;
use crate::store::DataStore;

/// A [`ShardOpener`] reading through a store: the one given, or, with [`from_env`]
/// (the default; feature `s3`), `s3://bucket/...` URLs through an `S3DataStore` per bucket
/// with credentials from the environment, made on first use.
///
/// [`from_env`]: StoreOpener::from_env
///
/// ```
/// use atdata_store::{MemoryStore, StoreOpener};
/// use atdata_wds::ShardOpener;
///
/// let opener = StoreOpener::new(MemoryStore::new().unwrap());
/// let mut missing = opener.open("memory:///nope.tar").unwrap();
/// let err = std::io::Read::read(&mut missing, &mut [0; 8]).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// ```
#[derive(Debug, Clone, Default)]
pub struct StoreOpener {
    store: Option<Arc<dyn DataStore>>,
    #[cfg(feature = "s3")]
    buckets: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<S3DataStore>>>>,
}

impl StoreOpener {
    /// Reads URLs of `store`.
    pub fn new(store: impl DataStore) -> StoreOpener {
        StoreOpener {
            store: Some(Arc::new(store)),
            ..StoreOpener::default()
        }
    }

    /// Reads URLs of a store already shared (an index's, say).
    pub fn shared(store: Arc<dyn DataStore>) -> StoreOpener {
        StoreOpener {
            store: Some(store),
            ..StoreOpener::default()
        }
    }

    /// Reads `s3://` URLs with credentials from the environment (`AWS_*`).
    #[cfg(feature = "s3")]
    pub fn from_env() -> StoreOpener {
        StoreOpener::default()
    }

    #[cfg(feature = "s3")]
    fn bucket_store(&self, url: &str) -> crate::Result<Arc<S3DataStore>> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| Error::ForeignUrl {
            url: url.to_owned(),
            expected: "s3://".into(),
        })?;
        let bucket = rest.split('/').next().unwrap_or_default();
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| Error::Runtime("store cache poisoned".into()))?;
        if let Some(store) = buckets.get(bucket) {
            return Ok(store.clone());
        }
        let store = Arc::new(S3DataStore::from_env(bucket)?);
        buckets.insert(bucket.to_owned(), store.clone());
        Ok(store)
    }

    #[cfg(not(feature = "s3"))]
    fn bucket_store(&self, url: &str) -> crate::Result<Arc<dyn DataStore>> {
        Err(crate::Error::ForeignUrl {
            url: url.to_owned(),
            expected: "a store given to StoreOpener::new (s3:// needs the `s3` feature)".into(),
        })
    }
}

impl ShardOpener for StoreOpener {
    fn open(&self, url: &str) -> atdata_wds::Result<Box<dyn Read + Send>> {
        let opened = match &self.store {
            Some(store) => store.open_shard(url),
            None => self
                .bucket_store(url)
                .and_then(|store| store.open_shard(url)),
        };
        opened.map_err(|e| atdata_wds::Error::Io {
            path: url.to_owned(),
            source: std::io::Error::other(e),
        })
    }
}
