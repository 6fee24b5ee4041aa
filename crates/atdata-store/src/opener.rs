//! Opening shard URLs through stores, for `Dataset`.

use std::io::Read;
use std::ops::Range;
use std::sync::Arc;

use atdata_wds::ShardOpener;

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

impl StoreOpener {
    fn store_for(&self, url: &str) -> crate::Result<Arc<dyn DataStore>> {
        match &self.store {
            Some(store) => Ok(store.clone()),
            None => {
                let store: Arc<dyn DataStore> = self.bucket_store(url)?;
                Ok(store)
            }
        }
    }
}

/// A store error as a reader sees it: an I/O error naming `url`, keeping the kind a reader
/// acts on (a missing object is `NotFound`, a range past the end `UnexpectedEof`).
fn read_error(url: &str, e: Error) -> atdata_wds::Error {
    let source = match e {
        Error::Io { source, .. } => source,
        Error::NotFound { .. } => std::io::Error::new(std::io::ErrorKind::NotFound, e),
        e => std::io::Error::other(e),
    };
    atdata_wds::Error::Io {
        path: url.to_owned(),
        source,
    }
}

/// The opener's streamed reads alone, so that a store without ranged reads is served by
/// [`ShardOpener`]'s provided read-and-skip.
struct Streamed(StoreOpener);

impl ShardOpener for Streamed {
    fn open(&self, url: &str) -> atdata_wds::Result<Box<dyn Read + Send>> {
        self.0.open(url)
    }
}

impl ShardOpener for StoreOpener {
    fn open(&self, url: &str) -> atdata_wds::Result<Box<dyn Read + Send>> {
        self.store_for(url)
            .and_then(|store| store.open_shard(url))
            .map_err(|e| read_error(url, e))
    }

    /// One ranged GET; a store without ranged reads streams up to the range instead.
    fn read_range(&self, url: &str, range: Range<u64>) -> atdata_wds::Result<Vec<u8>> {
        let store = self.store_for(url).map_err(|e| read_error(url, e))?;
        match store.read_range(url, range.clone()) {
            Err(Error::Unsupported(_)) => Streamed(self.clone()).read_range(url, range),
            read => read.map_err(|e| read_error(url, e)),
        }
    }
}
