//! Opening shard URLs through stores, for `Dataset`.

use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use atdata_wds::ShardOpener;

use crate::error::Error;
use crate::store::DataStore;

/// A [`ShardOpener`] reading through a store: the one given (for its URLs), or, with
/// [`from_env`] (the default), remote URLs through a store per bucket or origin, made on first
/// use: `s3://bucket/...` (feature `s3`) with credentials from the environment, and
/// `http(s)://host/...` (feature `http`) with ranged GETs and the bearer token of
/// `ATDATA_HTTP_TOKEN` where it may be sent.
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
    /// Stores made for remote URLs, by `scheme://bucket-or-host`.
    remotes: Arc<Mutex<HashMap<String, Arc<dyn DataStore>>>>,
}

impl StoreOpener {
    /// Reads URLs of `store`.
    pub fn new(store: impl DataStore) -> StoreOpener {
        StoreOpener::shared(Arc::new(store))
    }

    /// Reads URLs of a store already shared (an index's, say), and other remote URLs as
    /// [`from_env`](Self::from_env) does.
    pub fn shared(store: Arc<dyn DataStore>) -> StoreOpener {
        StoreOpener {
            store: Some(store),
            ..StoreOpener::default()
        }
    }

    /// Reads remote URLs through stores made from the environment: `s3://` with `AWS_*`
    /// credentials (feature `s3`), `http(s)://` (feature `http`).
    pub fn from_env() -> StoreOpener {
        StoreOpener::default()
    }

    fn store_for(&self, url: &str) -> crate::Result<Arc<dyn DataStore>> {
        if let Some(store) = self.store.as_ref().filter(|s| url.starts_with(&s.url(""))) {
            return Ok(store.clone());
        }
        let foreign = |expected: &str| Error::ForeignUrl {
            url: crate::redact_url(url),
            expected: expected.into(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| foreign("a remote URL"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(foreign(
                "a URL without credentials (set ATDATA_HTTP_TOKEN or AWS_*)",
            ));
        }
        let key = format!("{scheme}://{authority}");
        let mut remotes = self
            .remotes
            .lock()
            .map_err(|_| Error::Runtime("store cache poisoned".into()))?;
        if let Some(store) = remotes.get(&key) {
            return Ok(store.clone());
        }
        // (A `Result`, not early returns, so that a build without remote schemes has no
        // unreachable code.)
        let made: crate::Result<Arc<dyn DataStore>> = match scheme {
            #[cfg(feature = "s3")]
            "s3" => crate::S3DataStore::from_env(authority).map(|s| Arc::new(s) as _),
            #[cfg(feature = "http")]
            "http" | "https" => crate::object::http_store(&key),
            _ => Err(foreign(SCHEMES)),
        };
        let store = made?;
        remotes.insert(key, store.clone());
        Ok(store)
    }
}

/// The remote schemes this build reads.
const SCHEMES: &str = match (cfg!(feature = "s3"), cfg!(feature = "http")) {
    (true, true) => "s3:// or http(s)://",
    (true, false) => "s3:// (http(s):// needs the `http` feature)",
    (false, true) => "http(s):// (s3:// needs the `s3` feature)",
    (false, false) => "a store given to StoreOpener::new (s3:// and http(s):// need features)",
};

/// A store error as a reader sees it: an I/O error naming `url`, keeping the kind a reader
/// acts on (a missing object is `NotFound`, a range past the end `UnexpectedEof`).
fn read_error(url: &str, e: Error) -> atdata_wds::Error {
    let source = match e {
        Error::Io { source, .. } => source,
        Error::NotFound { .. } => std::io::Error::new(std::io::ErrorKind::NotFound, e),
        e => std::io::Error::other(e),
    };
    atdata_wds::Error::Io {
        path: crate::redact_url(url),
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
