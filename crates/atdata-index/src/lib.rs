//! The index of [atdata](https://docs.rs/atdata): datasets recorded under a content
//! identifier (CID) and a name, with versioned schema records, on Redis (feature `redis`, on
//! by default) or an embedded SQLite file, in the Python library's exact layout so both languages share one index.
//!
//! - [`LocalIndex`]: the index (built with [`LocalIndex::builder`], or
//!   [`LocalIndex::connect_redis`] / [`LocalIndex::open_sqlite`]).
//! - [`LocalDatasetEntry`]: an entry (name, schema reference, shard URLs, metadata, CID).
//! - [`InsertOptions`]: how `insert_dataset_with` writes and describes a dataset.
//! - [`PublishedSchema`]: a stored schema record and its reference.
//!
//! ```
//! use atdata_codec::Packable;
//! # use atdata_derive::packable;
//! use atdata_index::LocalIndex;
//! use atdata_wds::{Dataset, TarWriter};
//!
//! #[packable(crate = "atdata_codec")]
//! struct Row { id: i64 }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let shard = dir.path().join("rows.tar");
//! let mut w = TarWriter::create(&shard)?;
//! w.write(&Row { id: 1 }.as_wds("000000"))?;
//! w.finish()?.close()?;
//!
//! let index = LocalIndex::open_sqlite(dir.path().join("index.db")).await?;
//! let ds = Dataset::<Row>::new(shard.to_str().unwrap())?;
//! let entry = index.add_entry(&ds, "rows", None, None).await?;
//! assert_eq!(index.get_entry_by_name("rows").await?.cid(), entry.cid());
//! assert_eq!(entry.schema_ref, "atdata://local/schema/Row@1.0.0");
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod delete;
mod entry;
mod error;
mod index;
mod provider;
#[cfg(feature = "redis")]
mod redis;
mod sqlite;

pub use crate::delete::{DeleteOptions, Deletion, References};
pub use crate::entry::LocalDatasetEntry;
pub use crate::error::{Error, Result};
pub use crate::index::{InsertOptions, LocalIndex, LocalIndexBuilder, PublishedSchema};
