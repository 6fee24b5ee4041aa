//! Opening an indexed dataset by name in one call.

use atdata_codec::SampleType;
use atdata_index::{LocalIndex, Result};
use atdata_wds::ShardCache;

use crate::{Dataset, DefaultOpener};

/// The dataset `name_or_cid` names in `index` (a CID, or the newest entry under a name), ready
/// to read: its shards through the index's data store (an S3 store's credentials), decoded as
/// `T`, or, for `DynamicSample`, by the schema record the entry names.
///
/// Two lookups: the entry (one round trip through its label), then its schema record. The
/// shards' sample counts and sizes the entry records come with it
/// ([`LocalDatasetEntry::shard_facts`](atdata_index::LocalDatasetEntry::shard_facts)), so
/// `len()` reads nothing and random access checks each sidecar against them.
///
/// ```
/// use atdata::prelude::*;
///
/// #[packable]
/// struct Row { id: i64 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let mut w = atdata::wds::TarWriter::create(dir.path().join("rows.tar"))?;
/// w.write(&Row { id: 1 }.as_wds("000000"))?;
/// w.finish()?.close()?;
/// let index = LocalIndex::builder()
///     .sqlite_path(dir.path().join("index.db"))
///     .data_store(LocalDiskStore::new(dir.path().join("store"))?)
///     .build()
///     .await?;
/// index.insert_dataset(&Dataset::<Row>::new(dir.path().join("rows.tar"))?, "rows", "rows").await?;
///
/// let rows = atdata::open_dataset::<Row>(&index, "rows").await?;
/// assert_eq!(rows.samples()?.count(), 1);
/// assert_eq!((rows.len()?, rows.get(0)?.id), (1, 1));
/// let dynamic = atdata::open_dataset::<DynamicSample>(&index, "rows").await?;
/// assert_eq!(dynamic.samples()?.next().unwrap()?.get("id"), Some(&atdata::Value::Int(1)));
/// # Ok(()) }
/// ```
///
/// With [`CACHE_DIR_VAR`](atdata_wds::CACHE_DIR_VAR) (`ATDATA_CACHE_DIR`) set, remote shards
/// are read through that [`ShardCache`] as [`open_cached_dataset`] reads them.
pub async fn open_dataset<T: SampleType>(
    index: &LocalIndex,
    name_or_cid: impl AsRef<str>,
) -> Result<Dataset<T>> {
    let cache = ShardCache::from_env().map_err(wds_error)?;
    open_cached_dataset(index, name_or_cid, cache).await
}

/// [`open_dataset`] with remote shards (`s3://`, `http(s)://`) read through `cache`, if
/// given, whatever the environment says: a shard the entry has a checksum for is read from
/// a checked local copy when the cache holds one, and otherwise from the store while a copy
/// is written, checked against the checksum and kept (see [`ShardCache`]).
///
/// ```
/// use atdata::prelude::*;
/// use atdata::wds::ShardCache;
///
/// #[packable]
/// struct Row { id: i64 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let index = LocalIndex::builder().sqlite_path(dir.path().join("index.db")).build().await?;
/// let mut w = atdata::wds::TarWriter::create(dir.path().join("rows.tar"))?;
/// w.write(&Row { id: 1 }.as_wds("000000"))?;
/// w.finish()?.close()?;
/// index.insert_dataset(&Dataset::<Row>::new(dir.path().join("rows.tar"))?, "rows", "rows").await?;
///
/// let cache = ShardCache::new(dir.path().join("cache"), 10 << 30)?;
/// let rows = atdata::open_cached_dataset::<Row>(&index, "rows", Some(cache)).await?;
/// assert_eq!(rows.samples()?.count(), 1); // a local shard: read in place, never cached
/// # Ok(()) }
/// ```
pub async fn open_cached_dataset<T: SampleType>(
    index: &LocalIndex,
    name_or_cid: impl AsRef<str>,
    cache: Option<ShardCache>,
) -> Result<Dataset<T>> {
    let entry = index.find_entry(name_or_cid).await?;
    let schema = index.decode_schema(&entry.schema_ref).await?;
    let mut opener = DefaultOpener::through(index.data_store());
    if let Some(cache) = cache {
        opener = opener.with_cache(cache, entry.checksums());
    }
    let dataset =
        atdata_wds::Dataset::with_context(entry.shards_url(), T::context_for(schema), opener)
            .map_err(wds_error)?;
    Ok(dataset.with_shard_facts(entry.shard_facts()))
}

fn wds_error(e: atdata_wds::Error) -> atdata_index::Error {
    atdata_index::Error::from(atdata_store::Error::from(e))
}
