//! atdata: typed machine-learning datasets, byte-compatible with the Python library `atdata`.
//!
//! Declare a sample type with [`packable`]; its values pack into msgpack payloads that a
//! Python user reads unchanged, batch into stacked columns ([`SampleBatch`]), and describe
//! themselves with a [`Schema`] whose records and CIDs match Python's byte for byte.
//!
//! ```
//! use atdata::prelude::*;
//! use atdata::ndarray::Array1;
//!
//! /// One training example.
//! #[packable]
//! #[derive(Debug, Clone, PartialEq)]
//! pub struct TrainingSample {
//!     pub features: Array1<f32>,
//!     pub label: i64,
//!     pub note: Option<String>,
//! }
//!
//! # fn main() -> atdata::Result<()> {
//! let s = TrainingSample { features: Array1::zeros(4), label: 3, note: None };
//! let bytes = s.packed()?;
//! assert_eq!(TrainingSample::from_bytes(&bytes)?, s);
//!
//! let batch = SampleBatch::from_samples(vec![s.clone(), s])?;
//! assert_eq!(batch.features.shape(), &[2, 4]);
//! # Ok(())
//! # }
//! ```
//!
//! Crates: `atdata-codec` (samples, arrays, schemas, CIDs), `atdata-derive` (`#[packable]`),
//! `atdata-wds` (tar shards and [`Dataset`], as [`wds`]), `atdata-store` (data stores, as
//! [`store`]) and `atdata-index` (the index, as [`index`]), re-exported here.

#![deny(missing_docs)]

pub use atdata_codec::{
    ArrayError, ArrayPayload, ByteOrder, Cid, Column, DType, DynamicBatch, DynamicSample, Element,
    Error, Field, FieldType, ListItem, Packable, Primitive, Required, Result, SampleBatch,
    SampleType, Schema, SchemaField, SchemaInference, SchemaRecord, SchemaRef, SchemaRefForm,
    Value, WdsSample, cid_of, decode_array, encode_array, entry_cid, json_to_msgpack,
    msgpack_to_json,
};
#[cfg(feature = "derive")]
pub use atdata_derive::packable;
/// The index: entries, labels and schema records on Redis or SQLite (crate `atdata-index`).
pub use atdata_index as index;
pub use atdata_index::{
    DeleteOptions, Deletion, InsertOptions, LocalDatasetEntry, LocalIndex, PublishedSchema,
};
/// Data stores: S3, local disk, memory (crate `atdata-store`).
pub use atdata_store as store;
#[cfg(feature = "s3")]
pub use atdata_store::S3DataStore;
pub use atdata_store::{
    Credentials, DataStore, DataStoreExt, LocalDiskStore, MemoryStore, StoreOpener, WriteOptions,
    WrittenShards,
};
/// WebDataset shards: `TarWriter`, `TarReader`, `ShardWriter`, `expand_urls` (crate `atdata-wds`).
pub use atdata_wds as wds;
pub use atdata_wds::{LoaderOptions, LoaderState, ShardOptions, ShuffleOptions};

mod open;
mod opener;
#[cfg(all(feature = "s3", feature = "redis"))]
mod repo;
pub use crate::open::{open_cached_dataset, open_dataset};
pub use crate::opener::DefaultOpener;
#[cfg(all(feature = "s3", feature = "redis"))]
#[allow(deprecated)]
pub use crate::repo::Repo;

/// A dataset read through [`DefaultOpener`]: local paths, `file://` and `s3://` URLs
/// (credentials from the environment). See [`atdata_wds::Dataset`] for the API.
pub type Dataset<T> = atdata_wds::Dataset<T, DefaultOpener>;
/// A [`Dataset`]'s elastic loader ([`atdata_wds::Dataset::loader`]): one rank's batches of an
/// epoch, resumable from its [`LoaderState`]. See [`atdata_wds::Loader`] for the API.
pub type Loader<T> = atdata_wds::Loader<T, DefaultOpener>;
/// The `ndarray` version atdata's array fields use.
pub use ndarray;

#[doc(hidden)]
pub use atdata_codec::__private;

/// The README's examples, compiled as doctests so they stay true (they need Redis and S3).
#[cfg(all(doctest, feature = "s3", feature = "redis"))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The getting-started guide's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/getting-started.md")]
pub struct GettingStartedDoctests;

/// The datasets guide's examples, run as doctests (those marked `ignore` are sketches).
#[cfg(doctest)]
#[doc = include_str!("../../../docs/datasets.md")]
pub struct DatasetsGuideDoctests;

/// The index guide's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/index.md")]
pub struct IndexGuideDoctests;

/// Everything a sample definition and its use need: `use atdata::prelude::*;`.
pub mod prelude {
    #[cfg(all(feature = "s3", feature = "redis"))]
    #[allow(deprecated)]
    pub use crate::Repo;
    #[cfg(feature = "s3")]
    pub use crate::S3DataStore;
    #[cfg(feature = "derive")]
    pub use crate::packable;
    pub use crate::{
        Credentials, DataStore, DataStoreExt, Dataset, DeleteOptions, DynamicSample, InsertOptions,
        Loader, LoaderOptions, LoaderState, LocalDatasetEntry, LocalDiskStore, LocalIndex,
        Packable, SampleBatch, Schema, SchemaRef, ShardOptions, ShuffleOptions,
    };
}
