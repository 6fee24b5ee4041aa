//! `Repo`: the seed's all-in-one handle (S3 shards + Redis index), kept for its users.

#![allow(deprecated)]

use atdata_codec::SampleType;
use atdata_index::{InsertOptions, LocalDatasetEntry, LocalIndex};
use atdata_store::{Credentials, S3DataStore};
use atdata_wds::ShardOpener;

use crate::{Dataset, DefaultOpener};

/// Shards in an S3 bucket and entries in a Redis index, as the seed document's `Repo`.
///
/// Deprecated in favour of [`LocalIndex::builder`] with a data store, which does the same
/// with either index provider. Unlike Python's `Repo`, the stored URLs keep their `s3://`
/// scheme, so they read back as they are.
///
/// ```no_run
/// # #![allow(deprecated)]
/// use atdata::prelude::*;
///
/// #[packable]
/// struct Row { id: i64 }
///
/// # async fn demo() -> anyhow::Result<()> {
/// let repo = Repo::new(Credentials::from_env()?, "my-bucket/datasets", "redis://127.0.0.1:6379/0").await?;
/// let ds = Dataset::<Row>::new("rows-{000000..000003}.tar")?;
/// let (entry, stored) = repo.insert(&ds, "rows", InsertOptions::default()).await?;
/// assert!(stored.url().starts_with("s3://my-bucket/datasets/"));
/// # Ok(()) }
/// ```
#[deprecated(note = "use `LocalIndex::builder().redis_url(..).data_store(S3DataStore::new(..)?)`")]
#[derive(Debug, Clone)]
pub struct Repo {
    index: LocalIndex,
    store: S3DataStore,
    prefix: String,
}

impl Repo {
    /// A repo writing shards under `hive_path` (`bucket/prefix`) with `credentials`, and
    /// indexing them in the Redis server at `redis_url`.
    pub async fn new(
        credentials: Credentials,
        hive_path: impl AsRef<str>,
        redis_url: impl AsRef<str>,
    ) -> Result<Repo, atdata_index::Error> {
        let hive = hive_path
            .as_ref()
            .trim_start_matches("s3://")
            .trim_matches('/');
        let (bucket, prefix) = hive.split_once('/').unwrap_or((hive, ""));
        let store = S3DataStore::new(credentials, bucket)?;
        let index = LocalIndex::builder()
            .redis_url(redis_url)
            .data_store(store.clone())
            .build()
            .await?;
        Ok(Repo {
            index,
            store,
            prefix: prefix.to_owned(),
        })
    }

    /// The index the repo writes entries to.
    pub fn index(&self) -> &LocalIndex {
        &self.index
    }

    /// Writes `dataset` to the bucket (under `{hive prefix}/{options.prefix or name}`) and
    /// indexes it under `name`; returns the entry and the stored copy, readable as it is.
    pub async fn insert<T: SampleType, O: ShardOpener>(
        &self,
        dataset: &atdata_wds::Dataset<T, O>,
        name: impl AsRef<str>,
        options: InsertOptions,
    ) -> Result<(LocalDatasetEntry, Dataset<T>), atdata_index::Error> {
        let name = name.as_ref();
        let sub = options.prefix.clone().unwrap_or_else(|| name.to_owned());
        let prefix = [self.prefix.as_str(), sub.trim_matches('/')]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        let options = InsertOptions {
            prefix: Some(prefix),
            ..options
        };
        let entry = self
            .index
            .insert_dataset_with(dataset, name, options)
            .await?;
        let stored = dataset
            .with_url(entry.shards_url())
            .map_err(|e| atdata_index::Error::Invalid(e.to_string()))?
            .with_opener(DefaultOpener::with_store(self.store.clone()));
        Ok((entry, stored))
    }
}
