//! WebDataset tar shards for atdata: writing, reading, sharding, brace URLs and the typed
//! [`Dataset`] reader. Usable on its own: no async runtime, no object store, no index.
//!
//! - [`TarWriter`] / [`TarReader`]: one shard, byte-compatible with Python's webdataset.
//! - [`ShardWriter`]: rolls over to a new shard at `maxcount` samples or `maxsize` bytes.
//! - [`expand_urls`]: `data-{000000..000009}.tar` brace expansion.
//! - [`Dataset`]: typed samples and batches from many shards, ordered or shuffled (seeded),
//!   split by rank and worker, decoded on background threads with bounded memory.
//! - [`Dataset::loader`]: an elastic, deterministic [`Loader`] for distributed training, whose
//!   order does not depend on the world size and which resumes mid-epoch ([`LoaderState`]).
//!
//! ```
//! use atdata_codec::Packable;
//! # use atdata_derive::packable;
//! use atdata_wds::{Dataset, ShardOptions, ShardWriter};
//!
//! #[packable(crate = "atdata_codec")]
//! struct Row { id: i64 }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let pattern = dir.path().join("rows-%06d.tar");
//! let mut writer = ShardWriter::new(pattern.to_str().unwrap(), ShardOptions { maxcount: 3, ..Default::default() })?;
//! for id in 0..10 {
//!     writer.write(&Row { id }.as_wds(&format!("{id:06}")))?;
//! }
//! assert_eq!(writer.finish()?.len(), 4);
//!
//! let url = dir.path().join("rows-{000000..000003}.tar");
//! let ds = Dataset::<Row>::new(url.to_str().unwrap())?;
//! let ids: Vec<i64> = ds.samples()?.map(|r| r.map(|r| r.id)).collect::<Result<_, _>>()?;
//! assert_eq!(ids, (0..10).collect::<Vec<_>>());
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod access;
mod batches;
mod cache;
mod copy;
mod dataset;
mod error;
mod loader;
mod opener;
mod order;
mod pipeline;
mod read_ahead;
mod reader;
mod shards;
mod sidecar;
mod urls;
mod writer;

pub use crate::access::ShardFacts;
pub use crate::batches::{BatchedExt, Batches};
pub use crate::cache::{
    CACHE_DIR_VAR, CACHE_LIMIT_VAR, CachedCopy, CachedOpener, DEFAULT_CACHE_LIMIT, ShardCache,
};
pub use crate::copy::CopiedShard;
pub use crate::dataset::{Dataset, Samples, ShuffleOptions};
pub use crate::error::{Error, Result};
pub use crate::loader::{
    DEFAULT_PARTITIONS, DEFAULT_SHUFFLE_BLOCK, Loader, LoaderOptions, LoaderState, MAX_PARTITIONS,
};
pub use crate::opener::{LocalOpener, ShardOpener};
pub use crate::reader::{DEFAULT_MAX_MEMBER_BYTES, TarReader};
pub use crate::shards::{FileSinks, ShardOptions, ShardWriter, SinkFactory};
pub use crate::sidecar::{Sidecar, shard_stem, sidecar_url};
pub use crate::urls::expand_urls;
pub use crate::writer::{ShardFile, TarWriter};
