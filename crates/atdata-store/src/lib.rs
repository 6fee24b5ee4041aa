//! Data stores for atdata shards, on [`object_store`]: `S3DataStore` (AWS and any
//! S3-compatible server; feature `s3`, on by default), [`LocalDiskStore`] (the embedded
//! default) and [`MemoryStore`].
//!
//! [`DataStore`] is the object-safe core (stream a shard in, open one for streaming reads,
//! delete); [`DataStoreExt::write_shards`] writes a whole `Dataset` as shards through multipart
//! uploads, with a SHA-256 per shard and nothing visible until every shard is complete.
//! [`StoreOpener`] lets a `Dataset` read `s3://` URLs.
//!
//! ```
//! use atdata_codec::Packable;
//! # use atdata_derive::packable;
//! use atdata_store::{DataStoreExt, MemoryStore, StoreOpener};
//! use atdata_wds::{Dataset, ShardOptions, TarWriter};
//!
//! #[packable(crate = "atdata_codec")]
//! struct Row { id: i64 }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("rows.tar");
//! let mut w = TarWriter::create(&path)?;
//! for id in 0..5 {
//!     w.write(&Row { id }.as_wds(&id.to_string()))?;
//! }
//! w.finish()?.close()?;
//!
//! let store = MemoryStore::new()?;
//! let ds = Dataset::<Row>::new(path.to_str().unwrap())?;
//! let written = store.write_shards(&ds, "rows", ShardOptions { maxcount: 2, ..Default::default() }).await?;
//! assert_eq!(written.urls().len(), 3);
//!
//! // Read the stored copy back through the store.
//! let url = format!("{{{}}}", written.urls().join(","));
//! let stored = Dataset::<Row>::new(&url)?.with_opener(StoreOpener::new(store));
//! let ids: Vec<i64> = stored.samples()?.map(|r| r.map(|r| r.id)).collect::<Result<_, _>>()?;
//! assert_eq!(ids, [0, 1, 2, 3, 4]);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod cleanup;
mod credentials;
mod error;
mod fetch;
mod items;
mod object;
mod opener;
mod store;

pub use crate::cleanup::WorkGuard;
pub use crate::credentials::{Credentials, redact_url};
pub use crate::error::{Error, Result};
pub use crate::items::StoredItem;
#[cfg(feature = "s3")]
pub use crate::object::S3DataStore;
pub use crate::object::{LocalDiskStore, MemoryStore};
pub use crate::opener::StoreOpener;
pub use crate::store::{
    DataStore, DataStoreExt, ShardUpload, WriteOptions, WrittenShards, sha256_hex,
};
