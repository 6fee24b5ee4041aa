//! `LocalIndex`: entries, labels and schema records on one provider.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use atdata_codec::{Packable, SampleType, Schema, SchemaRecord, SchemaRef, SchemaRefForm};
use atdata_store::{DataStore, DataStoreExt, WriteOptions};
use atdata_wds::{Dataset, ShardOpener, ShardOptions};
use futures::stream::{self, Stream, StreamExt, TryStreamExt};
use serde_json::{Map, Value};
use tokio_util::task::TaskTracker;

use crate::entry::{LabelRow, LocalDatasetEntry};
use crate::error::{Error, Result};
use crate::provider::{Provider, SchemaRow, SchemaWrite};
#[cfg(feature = "redis")]
use crate::redis::RedisProvider;
use crate::sqlite::SqliteProvider;

type Clock = Arc<dyn Fn() -> String + Send + Sync>;

/// The index of datasets: entries found by CID or name, versioned labels, and schema
/// records, on Redis (shared, multi-user) or an embedded SQLite file (the default), in the
/// Python library's layout so a Python user and a Rust user can share it.
///
/// Cheap to clone (one connection shared); every call is `async` (tokio).
///
/// ```
/// use atdata_index::LocalIndex;
/// use atdata_codec::Packable;
/// # use atdata_derive::packable;
///
/// /// A point.
/// #[packable(crate = "atdata_codec")]
/// struct Point { x: f64 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let index = LocalIndex::open_sqlite(dir.path().join("index.db")).await?;
/// let schema_ref = index.publish_schema::<Point>("1.0.0", None).await?;
/// assert_eq!(schema_ref, "atdata://local/schema/Point@1.0.0");
/// assert_eq!(index.get_schema(&schema_ref).await?.record.schema.description.as_deref(), Some("A point."));
/// assert!(index.get_entry_by_name("nothing").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LocalIndex {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Box<dyn Provider>,
    store: Option<Arc<dyn DataStore>>,
    form: SchemaRefForm,
    clock: Clock,
    /// Insert commits running for callers that may have gone.
    commits: TaskTracker,
}

impl fmt::Debug for LocalIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalIndex")
            .field("provider", &self.inner.provider.describe())
            .field("store", &self.inner.store)
            .field("schema_refs", &self.inner.form)
            .finish()
    }
}

/// Builds a [`LocalIndex`]: which provider, an optional data store, the schema-ref form.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let index = atdata_index::LocalIndex::builder()
///     .sqlite_path(dir.path().join("index.db"))
///     .data_store(atdata_store::LocalDiskStore::new(dir.path().join("shards"))?)
///     .build()
///     .await?;
/// assert_eq!(index.schema_ref_form(), atdata_codec::SchemaRefForm::Python);
/// # Ok(()) }
/// ```
#[derive(Default)]
#[must_use]
pub struct LocalIndexBuilder {
    #[cfg(feature = "redis")]
    redis_url: Option<String>,
    sqlite_path: Option<PathBuf>,
    store: Option<Arc<dyn DataStore>>,
    seed_refs: bool,
    read_only: bool,
    clock: Option<Clock>,
}

impl LocalIndexBuilder {
    /// Use the Redis server at `url` (`redis://[:password@]host:port/db`).
    #[cfg(feature = "redis")]
    pub fn redis_url(mut self, url: impl AsRef<str>) -> Self {
        self.redis_url = Some(url.as_ref().to_owned());
        self
    }

    /// Use the SQLite file at `path` (created if missing). Without this or a Redis URL, the
    /// index is `~/.atdata/index.db`, the file Python atdata uses by default.
    pub fn sqlite_path(mut self, path: impl AsRef<Path>) -> Self {
        self.sqlite_path = Some(path.as_ref().to_owned());
        self
    }

    /// Write the shards of [`LocalIndex::insert_dataset`] through `store`.
    pub fn data_store(mut self, store: impl DataStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Whether new schema references (and `$ref`s) are written in Python atdata's form,
    /// `atdata://local/schema/{Name}@{version}` (`true`, the default), or in the seed's
    /// `atdata://local/sampleSchema/...` form (`false`), which Python atdata 0.3 and later
    /// rejects. Both forms are read either way.
    pub fn python_schema_refs(mut self, on: bool) -> Self {
        self.seed_refs = !on;
        self
    }

    /// Open an existing SQLite index without writing to it: a missing file is
    /// [`Error::NotFound`] (instead of a new, empty index), and every write fails. For readers
    /// (`atdata ls`, `get`, `schema`): a mistyped path is then an error, not a new file. A
    /// Redis index is opened as usual.
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// Stamp schema records with `clock()` instead of the current time (for reproducible
    /// records); the text should be Python's `isoformat()`, `2025-01-02T03:04:05.678901+00:00`.
    pub fn clock(mut self, clock: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Connects (Redis) or opens (SQLite).
    pub async fn build(self) -> Result<LocalIndex> {
        #[cfg(feature = "redis")]
        if let Some(url) = &self.redis_url {
            if self.sqlite_path.is_some() {
                return Err(Error::Invalid(
                    "an index is either Redis or SQLite: give a Redis URL or a SQLite path, not both".into(),
                ));
            }
            let provider = Box::new(RedisProvider::connect(url).await?);
            return Ok(self.finish(provider));
        }
        let path = match &self.sqlite_path {
            Some(path) => path.clone(),
            None => default_sqlite_path()?,
        };
        let provider = Box::new(SqliteProvider::open(&path, self.read_only).await?);
        Ok(self.finish(provider))
    }

    fn finish(self, provider: Box<dyn Provider>) -> LocalIndex {
        LocalIndex {
            inner: Arc::new(Inner {
                provider,
                store: self.store,
                form: if self.seed_refs {
                    SchemaRefForm::Seed
                } else {
                    SchemaRefForm::Python
                },
                clock: self.clock.unwrap_or_else(|| Arc::new(now_isoformat)),
                commits: TaskTracker::new(),
            }),
        }
    }
}

/// `~/.atdata/index.db`.
fn default_sqlite_path() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .map(|home| Path::new(&home).join(".atdata").join("index.db"))
        .ok_or_else(|| Error::Invalid("HOME is not set: give the index a SQLite path".into()))
}

/// The current UTC time as Python's `datetime.now(timezone.utc).isoformat()` writes it.
fn now_isoformat() -> String {
    let now = chrono::Utc::now();
    if now.timestamp_subsec_micros() == 0 {
        now.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        now.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

/// The entry metadata key of the shards' SHA-256s (URL to hex), as Python writes it.
const CHECKSUMS: &str = "checksums";
/// The entry metadata key of the shards' sample counts (URL to count).
const SAMPLE_COUNTS: &str = "sample_counts";
/// The entry metadata key of the shards' sizes in bytes (URL to size).
const SHARD_SIZES: &str = "shard_sizes";

/// How [`LocalIndex::insert_dataset_with`] stores and describes a dataset.
///
/// By default the dataset's shards are copied shard for shard (the same samples in each, the
/// same compression, the same bytes); setting `maxcount` or `maxsize` re-cuts them instead.
///
/// ```
/// let keep = atdata_index::InsertOptions::default();
/// assert_eq!((keep.maxcount, keep.maxsize), (0, 0)); // 0: keep the source's shards
/// let recut = atdata_index::InsertOptions { maxcount: 10_000, ..Default::default() };
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InsertOptions {
    /// The object prefix the shards go under (default: the dataset's name).
    pub prefix: Option<String>,
    /// The schema reference, in any form [`LocalIndex::resolve_schema_ref`] takes (default:
    /// the sample type's name at version `1.0.0`, as Python).
    pub schema_ref: Option<String>,
    /// Metadata to store, a JSON object; the shards' `checksums`, `sample_counts` and
    /// `shard_sizes` (each an object keyed by shard URL) are merged in.
    pub metadata: Option<Value>,
    /// Stage each shard in a local temporary file before uploading it.
    pub cache_local: bool,
    /// Samples per shard at most when re-cutting; 0 (the default) with `maxsize` 0 keeps the
    /// source's shards. Set alone, shards are cut by count only.
    pub maxcount: usize,
    /// Payload bytes per shard before rolling over when re-cutting (a shard may exceed it by
    /// one sample, as in WebDataset); 0 (the default) with `maxcount` 0 keeps the source's
    /// shards. Set alone, shards are cut by size only.
    pub maxsize: u64,
    /// Publish the dataset's sample schema as a new version (one patch above the highest
    /// `major.minor.patch` under its name, or `1.0.0`) in the same commit as the entry, so a
    /// failed insert leaves no schema behind; a version taken meanwhile by another writer
    /// moves this one to the next. `schema_ref` must then be unset. Default `false`.
    pub publish_schema: bool,
}

impl InsertOptions {
    /// The limits to re-cut by, or `None` to keep the source's shards.
    fn recut(&self) -> Option<ShardOptions> {
        if self.maxcount == 0 && self.maxsize == 0 {
            return None;
        }
        Some(ShardOptions {
            maxcount: if self.maxcount == 0 {
                usize::MAX
            } else {
                self.maxcount
            },
            maxsize: if self.maxsize == 0 {
                u64::MAX
            } else {
                self.maxsize
            },
            mtime: None,
        })
    }
}

/// A stored schema record and the reference it is found under.
///
/// ```
/// use atdata_codec::{Schema, SchemaRecord};
/// use atdata_index::PublishedSchema;
///
/// let record = SchemaRecord::new(Schema { name: "E".into(), fields: vec![], description: None }, "1.0.0", "t");
/// let published = PublishedSchema { record, schema_ref: "atdata://local/schema/E@1.0.0".into() };
/// assert!(published.to_json().contains(r#""$ref": "atdata://local/schema/E@1.0.0""#));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedSchema {
    /// The record: schema, version, `createdAt`.
    pub record: SchemaRecord,
    /// Its reference, in the index's form.
    pub schema_ref: String,
}

impl PublishedSchema {
    /// The record with `"$ref"`, as Python's `Index.get_schema` returns it (`json.dumps` text).
    pub fn to_json(&self) -> String {
        self.record.to_json_with_ref(&self.schema_ref)
    }
}

fn schema_row(record: &SchemaRecord) -> SchemaRow {
    SchemaRow {
        name: record.schema.name.clone(),
        version: record.version.clone(),
        json: record.to_json(),
    }
}

/// Parses three dot-separated integers (the versions auto-increment considers).
fn semver(v: &str) -> Option<(u64, u64, u64)> {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
    let triple = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(triple)
}

/// One patch above the highest `major.minor.patch` in `versions`, or `1.0.0`.
fn next_version(versions: &[String]) -> String {
    match versions.iter().filter_map(|v| semver(v)).max() {
        Some((major, minor, patch)) => format!("{major}.{minor}.{}", patch + 1),
        None => "1.0.0".to_owned(),
    }
}

/// Versions an auto-versioned publish tries before giving up (each taken by another writer).
const VERSION_ATTEMPTS: usize = 1000;

/// Set when dropped: how an insert future tells its commit task that nobody waits any more.
struct Cancel(Arc<AtomicBool>);

impl Drop for Cancel {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl LocalIndex {
    /// A builder: provider, data store, schema-ref form.
    pub fn builder() -> LocalIndexBuilder {
        LocalIndexBuilder::default()
    }

    /// An index on the Redis server at `url` (`redis://host:port/db`).
    #[cfg(feature = "redis")]
    pub async fn connect_redis(url: impl AsRef<str>) -> Result<LocalIndex> {
        LocalIndex::builder().redis_url(url).build().await
    }

    /// An index in the SQLite file at `path` (created if missing).
    pub async fn open_sqlite(path: impl AsRef<Path>) -> Result<LocalIndex> {
        LocalIndex::builder().sqlite_path(path).build().await
    }

    /// Where the index lives: `redis://host:port/db` (no password) or `sqlite:PATH`.
    pub fn location(&self) -> String {
        self.inner.provider.describe()
    }

    /// The form new schema references are written in.
    pub fn schema_ref_form(&self) -> SchemaRefForm {
        self.inner.form
    }

    pub(crate) fn provider(&self) -> &dyn Provider {
        &*self.inner.provider
    }

    // ------------------------------------------------------------------ entries

    /// Indexes `dataset` under `name` with its URL as given (a brace pattern stays one URL),
    /// writing no shards even when the index has a data store. `schema_ref` defaults to the
    /// sample type's name at `1.0.0`; its record is stored from the sample type if missing.
    /// The label `name` then points at this entry.
    pub async fn add_entry<T: SampleType, O: ShardOpener>(
        &self,
        dataset: &Dataset<T, O>,
        name: impl AsRef<str>,
        schema_ref: Option<&str>,
        metadata: Option<Value>,
    ) -> Result<LocalDatasetEntry> {
        let options = InsertOptions {
            schema_ref: schema_ref.map(str::to_owned),
            metadata,
            ..Default::default()
        };
        self.insert(dataset, name.as_ref(), options, false).await
    }

    /// Writes `dataset` as shards under `prefix` through the index's data store, then indexes
    /// the shard URLs with their checksums. Without a data store, indexes the dataset's URL as
    /// given, like [`add_entry`](Self::add_entry).
    pub async fn insert_dataset<T: SampleType, O: ShardOpener>(
        &self,
        dataset: &Dataset<T, O>,
        name: impl AsRef<str>,
        prefix: impl AsRef<str>,
    ) -> Result<LocalDatasetEntry> {
        let options = InsertOptions {
            prefix: Some(prefix.as_ref().to_owned()),
            ..Default::default()
        };
        self.insert(dataset, name.as_ref(), options, true).await
    }

    /// [`insert_dataset`](Self::insert_dataset) with every option: schema reference, metadata,
    /// shard limits, local staging.
    ///
    /// The entry and its label are written only after every shard is stored; if anything
    /// fails, the shards this call wrote are deleted (best effort) and the error returned.
    pub async fn insert_dataset_with<T: SampleType, O: ShardOpener>(
        &self,
        dataset: &Dataset<T, O>,
        name: impl AsRef<str>,
        options: InsertOptions,
    ) -> Result<LocalDatasetEntry> {
        self.insert(dataset, name.as_ref(), options, true).await
    }

    async fn insert<T: SampleType, O: ShardOpener>(
        &self,
        dataset: &Dataset<T, O>,
        name: &str,
        options: InsertOptions,
        use_store: bool,
    ) -> Result<LocalDatasetEntry> {
        let schema = T::sample_schema(dataset.context());
        schema.validate()?;
        let recut = options.recut();
        let (schema_ref, mode) = match (options.schema_ref, options.publish_schema) {
            (Some(_), true) => {
                return Err(Error::Invalid(
                    "publish_schema publishes a new version: leave schema_ref unset".into(),
                ));
            }
            (Some(r), false) => (
                self.resolve_schema_ref(&r).await?,
                SchemaWrite::KeepExisting,
            ),
            (None, false) => (
                SchemaRef::new(&schema.name, "1.0.0").format(self.inner.form),
                SchemaWrite::KeepExisting,
            ),
            (None, true) => {
                let versions = self.provider().schema_versions(&schema.name).await?;
                let version = next_version(&versions);
                (
                    SchemaRef::new(&schema.name, &version).format(self.inner.form),
                    SchemaWrite::MustBeNew,
                )
            }
        };
        SchemaRef::parse(&schema_ref)?;
        let store = self.inner.store.clone().filter(|_| use_store);
        if store.is_some() && !matches!(options.metadata, None | Some(Value::Object(_))) {
            return Err(Error::Invalid(
                "metadata must be a JSON object to take the shard checksums".into(),
            ));
        }

        let mut commit = Commit {
            index: self.clone(),
            name: name.to_owned(),
            schema,
            schema_ref,
            mode,
            data_urls: vec![dataset.url().to_owned()],
            metadata: options.metadata,
            samples: None,
            store: None,
            cancelled: Arc::default(),
        };
        let Some(store) = store else {
            return commit.run().await;
        };
        let write = WriteOptions {
            shards: recut,
            cache_local: options.cache_local,
            ..WriteOptions::default() // with sidecars
        };
        if write.shards.is_none()
            && let Some(entry) = self.identical_newest(dataset, &commit).await?
        {
            return Ok(entry);
        }
        // Dropping this future while the shards are written cancels the write (the store
        // stops and removes what it stored).
        let prefix = options.prefix.unwrap_or_else(|| name.to_owned());
        let written = store.write_shards(dataset, &prefix, write).await?;
        if written.urls().is_empty() {
            return Err(Error::Invalid(format!(
                "{} holds no samples: no shards were written, nothing indexed",
                dataset.url()
            )));
        }
        let per_shard = |values: Vec<Value>| -> Value {
            let urls = written.urls().iter().cloned();
            Value::Object(urls.zip(values).collect())
        };
        let mut object = match commit.metadata.take() {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let checksums = written.checksums().iter().map(|s| Value::from(s.as_str()));
        object.insert(CHECKSUMS.into(), per_shard(checksums.collect()));
        let counts = written.sample_counts().iter().map(|&n| Value::from(n));
        object.insert(SAMPLE_COUNTS.into(), per_shard(counts.collect()));
        let sizes = written.sizes().iter().map(|&n| Value::from(n));
        object.insert(SHARD_SIZES.into(), per_shard(sizes.collect()));
        // From here the shards are stored: the commit runs as a task of the index's own, so
        // that dropping this future cannot leave them behind. It writes the entry, or deletes
        // the shards (when it fails, when the dataset held no sample, or when this future was
        // dropped before it began).
        commit.samples = Some(written.sample_counts().iter().sum());
        commit.data_urls = written.urls().to_vec();
        commit.metadata = Some(Value::Object(object));
        commit.store = Some(store);
        let cancel = Cancel(commit.cancelled.clone());
        let task = self.inner.commits.spawn(commit.run());
        let committed = task.await.map_err(|e| Error::Task(e.to_string()))?;
        drop(cancel);
        committed
    }

    /// The newest entry under the commit's name when inserting `dataset` shard for shard would
    /// store it again: the same schema, the same user metadata, and the same shards, by
    /// SHA-256 in order (each source shard hashed before anything is uploaded, stopping at the
    /// first that differs) with their sample counts recorded.
    async fn identical_newest<T: SampleType, O: ShardOpener>(
        &self,
        dataset: &Dataset<T, O>,
        commit: &Commit,
    ) -> Result<Option<LocalDatasetEntry>> {
        let newest = match self.get_entry_by_name(&commit.name).await {
            Ok(entry) => entry,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(Value::Object(stored)) = &newest.metadata else {
            return Ok(None);
        };
        let per_shard = |key: &str| -> Option<Vec<&Value>> {
            let map = stored.get(key)?.as_object()?;
            newest.data_urls.iter().map(|u| map.get(u)).collect()
        };
        let checksums = per_shard(CHECKSUMS).and_then(|sums| {
            sums.into_iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
        });
        let (Some(checksums), Some(_)) = (checksums, per_shard(SAMPLE_COUNTS)) else {
            return Ok(None);
        };
        let user_metadata: Map<String, Value> = stored
            .iter()
            .filter(|(k, _)| ![CHECKSUMS, SAMPLE_COUNTS, SHARD_SIZES].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let given = match &commit.metadata {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let sources = dataset.shard_list();
        if user_metadata != given || sources.len() != checksums.len() {
            return Ok(None);
        }
        let same_schema = match commit.mode {
            SchemaWrite::KeepExisting => {
                SchemaRef::parse(&newest.schema_ref).ok()
                    == SchemaRef::parse(&commit.schema_ref).ok()
            }
            SchemaWrite::MustBeNew => match self.get_schema(&newest.schema_ref).await {
                Ok(stored) => {
                    stored.record.schema.name == commit.schema.name
                        && stored.record.schema.fields == commit.schema.fields
                }
                Err(Error::NotFound { .. }) => false,
                Err(e) => return Err(e),
            },
        };
        if !same_schema {
            return Ok(None);
        }
        let dataset = dataset.clone();
        let same_bytes = tokio::task::spawn_blocking(move || -> Result<bool> {
            for (url, expected) in sources.iter().zip(&checksums) {
                let shard_error = |e| Error::from(atdata_store::Error::from(e));
                let reader = dataset.opener().open(url).map_err(shard_error)?;
                let sum = atdata_store::sha256_hex(reader).map_err(|source| {
                    shard_error(atdata_wds::Error::Io {
                        path: url.clone(),
                        source,
                    })
                })?;
                if sum != *expected {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        Ok(same_bytes.then_some(newest))
    }

    /// Waits until the work this index finishes in the background has ended: the commits of
    /// inserts whose futures were dropped (each writes its entry or deletes its shards), then
    /// the store's own cleanup ([`DataStore::shutdown`]: aborted uploads, the shards of
    /// cancelled writes; bounded, 75 s). Call it before a program exits (the `atdata` command
    /// does, on success, on error and on Ctrl-C); what is still pending at exit is lost with
    /// the process and left for `atdata gc`. The index stays usable afterwards.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let index = atdata_index::LocalIndex::open_sqlite(dir.path().join("index.db")).await?;
    /// index.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) -> Result<()> {
        let commits = &self.inner.commits;
        commits.close();
        commits.wait().await;
        commits.reopen();
        match &self.inner.store {
            Some(store) => Ok(store.shutdown().await?),
            None => Ok(()),
        }
    }

    /// Every entry, as an async stream read a page of 1,000 entries at a time (on Redis, one
    /// `SCAN` and one pipelined batch of `HGETALL`s a page), each entry once. The order is the
    /// provider's (SCAN order on Redis, CID order on SQLite). An entry that cannot be read (a
    /// key of the wrong type, a damaged row) is an `Error::Corrupt` naming its key, in its
    /// place, and the stream goes on; a failing server ends it with its error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use futures::TryStreamExt;
    /// let dir = tempfile::tempdir()?;
    /// let index = atdata_index::LocalIndex::open_sqlite(dir.path().join("i.db")).await?;
    /// let names: Vec<String> = index.entries().map_ok(|e| e.name).try_collect().await?;
    /// assert!(names.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn entries(&self) -> impl Stream<Item = Result<LocalDatasetEntry>> + Send + 'static {
        struct State {
            index: LocalIndex,
            cursor: Option<Option<String>>,
            seen: HashSet<String>,
        }
        let state = State {
            index: self.clone(),
            cursor: Some(None),
            seen: HashSet::new(),
        };
        stream::try_unfold(state, |mut state| async move {
            let Some(cursor) = state.cursor.take() else {
                return Ok::<_, Error>(None);
            };
            let (rows, next) = state.index.provider().entry_page(cursor).await?;
            state.cursor = next.map(Some);
            let fresh: Vec<_> = rows
                .into_iter()
                .filter(|r| {
                    r.as_ref()
                        .map_or(true, |r| state.seen.insert(r.cid.clone()))
                })
                .map(|r| r.and_then(LocalDatasetEntry::from_row))
                .collect();
            Ok(Some((stream::iter(fresh), state)))
        })
        .try_flatten()
        .boxed()
    }

    /// Every entry (see [`entries`](Self::entries)); the first that cannot be read is the
    /// error (use `entries` to list the rest past it).
    pub async fn all_entries(&self) -> Result<Vec<LocalDatasetEntry>> {
        self.entries().try_collect().await
    }

    /// The entry with this CID, or [`Error::NotFound`].
    pub async fn get_entry(&self, cid: impl AsRef<str>) -> Result<LocalDatasetEntry> {
        let cid = cid.as_ref();
        match self.provider().get_entry(cid).await? {
            Some(row) => LocalDatasetEntry::from_row(row),
            None => Err(Error::NotFound {
                what: "entry",
                key: cid.to_owned(),
            }),
        }
    }

    /// The newest entry inserted under `name`, through its label (one lookup, whatever the
    /// size of the index); an entry written without a label is found by a scan.
    pub async fn get_entry_by_name(&self, name: impl AsRef<str>) -> Result<LocalDatasetEntry> {
        let name = name.as_ref();
        if let Some(row) = self.provider().get_labelled_entry(name, "").await? {
            return LocalDatasetEntry::from_row(row);
        }
        match self.provider().find_entry_by_name(name).await? {
            Some(row) => LocalDatasetEntry::from_row(row),
            None => Err(Error::NotFound {
                what: "entry named",
                key: name.to_owned(),
            }),
        }
    }

    /// The entry `name_or_cid` names: the entry with that CID when it parses as one and is
    /// there, else the newest entry under that name ([`Error::NotFound`] when neither).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let index = atdata_index::LocalIndex::open_sqlite(dir.path().join("index.db")).await?;
    /// assert!(index.find_entry("rows").await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn find_entry(&self, name_or_cid: impl AsRef<str>) -> Result<LocalDatasetEntry> {
        let key = name_or_cid.as_ref();
        if key.parse::<atdata_codec::Cid>().is_ok() {
            match self.get_entry(key).await {
                Err(Error::NotFound { .. }) => {}
                found => return found,
            }
        }
        self.get_entry_by_name(key).await
    }

    /// The data store this index writes shards through, if it has one.
    pub fn data_store(&self) -> Option<Arc<dyn DataStore>> {
        self.inner.store.clone()
    }

    /// Points the label `name@version` at the entry `cid` (which must exist), with an
    /// optional description: a release name that later inserts under `name` do not move.
    pub async fn label(
        &self,
        name: impl AsRef<str>,
        cid: impl AsRef<str>,
        version: impl AsRef<str>,
        description: Option<&str>,
    ) -> Result<()> {
        let entry = self.get_entry(cid).await?;
        self.provider()
            .put_label(LabelRow {
                name: name.as_ref().to_owned(),
                cid: entry.cid().to_string(),
                version: version.as_ref().to_owned(),
                description: description.map(str::to_owned),
            })
            .await
    }

    /// The entry the label `name@version` points at (`version` empty: the unversioned label,
    /// that is the newest insert under `name`).
    pub async fn get_entry_by_label(
        &self,
        name: impl AsRef<str>,
        version: impl AsRef<str>,
    ) -> Result<LocalDatasetEntry> {
        let (name, version) = (name.as_ref(), version.as_ref());
        match self.provider().get_labelled_entry(name, version).await? {
            Some(row) => LocalDatasetEntry::from_row(row),
            None => Err(Error::NotFound {
                what: "label",
                key: format!("{name}@{version}"),
            }),
        }
    }

    // ------------------------------------------------------------------ schemas

    /// Publishes `T`'s schema at `version` (`None`: one patch above the highest
    /// `major.minor.patch` version published under its name, or `1.0.0`), with `description`
    /// (default: the struct's doc comment). Returns the reference, in the index's form.
    ///
    /// Nothing is ever overwritten: an automatic version taken by a concurrent publisher moves
    /// this one to the next patch; an explicit version already published with the same schema
    /// is a no-op, and with a different one is [`Error::SchemaConflict`] (use
    /// [`replace_schema`](Self::replace_schema) to overwrite on purpose). Python's
    /// `publish_schema` overwrites silently instead.
    pub async fn publish_schema<'v, T: Packable>(
        &self,
        version: impl Into<Option<&'v str>>,
        description: Option<&str>,
    ) -> Result<String> {
        self.publish_schema_of(&T::schema(), version, description)
            .await
    }

    /// [`publish_schema`](Self::publish_schema) for a schema known at run time.
    pub async fn publish_schema_of<'v>(
        &self,
        schema: &Schema,
        version: impl Into<Option<&'v str>>,
        description: Option<&str>,
    ) -> Result<String> {
        schema.validate()?;
        let mut schema = schema.clone();
        if let Some(d) = description {
            schema.description = Some(d.to_owned());
        }
        let reference =
            |version: &str| SchemaRef::new(&schema.name, version).format(self.inner.form);
        if let Some(version) = version.into() {
            let record = SchemaRecord::new(schema.clone(), version, (self.inner.clock)());
            if self.provider().insert_schema(schema_row(&record)).await? {
                return Ok(reference(version));
            }
            let stored = self.get_schema(reference(version)).await?;
            return if stored.record.schema == schema {
                Ok(reference(version))
            } else {
                Err(Error::SchemaConflict {
                    schema_ref: reference(version),
                })
            };
        }
        let mut versions = self.provider().schema_versions(&schema.name).await?;
        for _ in 0..VERSION_ATTEMPTS {
            let version = next_version(&versions);
            let record = SchemaRecord::new(schema.clone(), version.clone(), (self.inner.clock)());
            if self.provider().insert_schema(schema_row(&record)).await? {
                return Ok(reference(&version));
            }
            versions.push(version);
        }
        Err(Error::Invalid(format!(
            "{}: every version tried was taken by another publisher ({VERSION_ATTEMPTS} tries)",
            schema.name
        )))
    }

    /// Publishes `T`'s schema at `version`, replacing any record stored there: the one way
    /// to overwrite a published version (entries indexed under it then decode by the new one).
    pub async fn replace_schema<T: Packable>(
        &self,
        version: &str,
        description: Option<&str>,
    ) -> Result<String> {
        self.replace_schema_of(&T::schema(), version, description)
            .await
    }

    /// [`replace_schema`](Self::replace_schema) for a schema known at run time.
    pub async fn replace_schema_of(
        &self,
        schema: &Schema,
        version: &str,
        description: Option<&str>,
    ) -> Result<String> {
        schema.validate()?;
        let mut schema = schema.clone();
        if let Some(d) = description {
            schema.description = Some(d.to_owned());
        }
        let record = SchemaRecord::new(schema, version, (self.inner.clock)());
        self.provider().replace_schema(schema_row(&record)).await?;
        Ok(SchemaRef::new(&record.schema.name, version).format(self.inner.form))
    }

    /// The full reference that `reference` names: a reference in any of the three forms as
    /// it is; `Name@version` in the index's form; a bare `Name` at its highest published
    /// `major.minor.patch` version ([`Error::NotFound`] when none is published).
    ///
    /// ```
    /// # use atdata_derive::packable;
    /// /// A point.
    /// #[packable(crate = "atdata_codec")]
    /// struct Point { x: f64 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let index = atdata_index::LocalIndex::open_sqlite(dir.path().join("index.db")).await?;
    /// index.publish_schema::<Point>("1.2.0", None).await?;
    /// index.publish_schema::<Point>("1.10.0", None).await?;
    /// assert_eq!(index.resolve_schema_ref("Point").await?, "atdata://local/schema/Point@1.10.0");
    /// assert_eq!(index.resolve_schema_ref("Point@1.2.0").await?, "atdata://local/schema/Point@1.2.0");
    /// assert!(index.resolve_schema_ref("Nothing").await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn resolve_schema_ref(&self, reference: impl AsRef<str>) -> Result<String> {
        let reference = reference.as_ref();
        if reference.contains("://") {
            SchemaRef::parse(reference)?;
            return Ok(reference.to_owned());
        }
        let invalid = |reason: &'static str| {
            Error::Codec(atdata_codec::Error::InvalidSchemaRef {
                reference: reference.to_owned(),
                reason,
            })
        };
        let parsed = match reference.rsplit_once('@') {
            Some((name, version)) if !name.is_empty() && !version.is_empty() => {
                SchemaRef::new(name, version)
            }
            Some(_) => return Err(invalid("empty name or version")),
            None if reference.is_empty() => return Err(invalid("empty reference")),
            None => {
                let versions = self.provider().schema_versions(reference).await?;
                let highest = versions
                    .iter()
                    .filter_map(|v| semver(v).map(|n| (n, v)))
                    .max()
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| Error::NotFound {
                        what: "a major.minor.patch version of schema",
                        key: reference.to_owned(),
                    })?;
                SchemaRef::new(reference, highest)
            }
        };
        Ok(parsed.format(self.inner.form))
    }

    /// The record `schema_ref` names (any of the three forms, or a short form as in
    /// [`resolve_schema_ref`](Self::resolve_schema_ref)), or [`Error::NotFound`]. Its
    /// `schema_ref` is in the index's form, as Python's `get_schema` writes `$ref` in its
    /// own form whatever form it was asked with.
    pub async fn get_schema(&self, schema_ref: impl AsRef<str>) -> Result<PublishedSchema> {
        let asked = schema_ref.as_ref();
        let full = self.resolve_schema_ref(asked).await?;
        let r = SchemaRef::parse(&full)?;
        let text = self
            .provider()
            .get_schema(r.name(), r.version())
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "schema",
                key: asked.to_owned(),
            })?;
        let record = SchemaRecord::from_json(&text).map_err(|e| Error::Corrupt {
            key: asked.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(PublishedSchema {
            schema_ref: r.format(self.inner.form),
            record,
        })
    }

    /// Every schema record, sorted by name then version; a record that cannot be read is an
    /// `Error::Corrupt` naming its key, listed after the others, so one bad record never hides
    /// the rest. A record under a legacy `module.Name` key is listed as `Name`.
    pub async fn list_schemas(&self) -> Result<Vec<Result<PublishedSchema>>> {
        let (mut good, bad): (Vec<_>, Vec<_>) = self
            .provider()
            .all_schemas()
            .await?
            .into_iter()
            .map(|(key, text)| {
                let mut record = SchemaRecord::from_json(&text).map_err(|e| Error::Corrupt {
                    key,
                    reason: e.to_string(),
                })?;
                if let Some((_, short)) = record.schema.name.rsplit_once('.') {
                    record.schema.name = short.to_owned();
                }
                let schema_ref =
                    SchemaRef::new(&record.schema.name, &record.version).format(self.inner.form);
                Ok(PublishedSchema { record, schema_ref })
            })
            .partition(Result::is_ok);
        good.sort_by(|a, b| match (a, b) {
            (Ok(a), Ok(b)) => (&a.record.schema.name, &a.record.version)
                .cmp(&(&b.record.schema.name, &b.record.version)),
            _ => std::cmp::Ordering::Equal,
        });
        good.extend(bad);
        Ok(good)
    }

    /// The runtime schema `schema_ref` names, for `Dataset::<DynamicSample>::with_schema`.
    pub async fn decode_schema(&self, schema_ref: impl AsRef<str>) -> Result<Schema> {
        Ok(self.get_schema(schema_ref).await?.record.schema)
    }
}

/// The last step of an insert: the entry, its label and its schema record in one commit.
struct Commit {
    index: LocalIndex,
    name: String,
    schema: Schema,
    schema_ref: String,
    mode: SchemaWrite,
    data_urls: Vec<String>,
    metadata: Option<Value>,
    /// The samples the written shards hold (an insert of none indexes nothing).
    samples: Option<u64>,
    /// The store the shards were written to (deleted again unless the entry is written).
    store: Option<Arc<dyn DataStore>>,
    /// Set when the insert's caller has gone: then nothing is indexed.
    cancelled: Arc<AtomicBool>,
}

impl Commit {
    async fn run(self) -> Result<LocalDatasetEntry> {
        let indexed = self.index_entry().await;
        if let (Err(e), Some(store)) = (&indexed, &self.store) {
            tracing::debug!(
                "insert of {} not indexed ({e}): deleting its shards and their sidecars",
                self.name
            );
            let deletes = self.data_urls.iter().map(|url| store.delete_shard(url));
            for (url, deleted) in self
                .data_urls
                .iter()
                .zip(futures::future::join_all(deletes).await)
            {
                if let Err(e) = deleted {
                    tracing::warn!("{url}: could not delete ({e}); `atdata gc` will find it");
                }
            }
        }
        indexed
    }

    async fn index_entry(&self) -> Result<LocalDatasetEntry> {
        if self.samples == Some(0) {
            return Err(Error::Invalid(format!(
                "{} holds no samples: nothing indexed",
                self.name
            )));
        }
        // The reference as given; reformatted only when a taken version moves it on.
        let mut shown = self.schema_ref.clone();
        let mut schema_ref = SchemaRef::parse(&shown)?;
        for _ in 0..VERSION_ATTEMPTS {
            if self.cancelled.load(Ordering::SeqCst) {
                return Err(atdata_store::Error::Cancelled.into());
            }
            let entry = LocalDatasetEntry::new(
                &self.name,
                &shown,
                self.data_urls.clone(),
                self.metadata.clone(),
            )?;
            // Stored under the reference's name, even if the sample type is called otherwise
            // (as Python does).
            let record = SchemaRecord::new(
                Schema {
                    name: schema_ref.name().to_owned(),
                    ..self.schema.clone()
                },
                schema_ref.version(),
                (self.index.inner.clock)(),
            );
            let label = LabelRow {
                name: self.name.clone(),
                cid: entry.cid().to_string(),
                version: String::new(),
                description: None,
            };
            let stored = self
                .index
                .provider()
                .put_entry(entry.to_row()?, label, schema_row(&record), self.mode)
                .await?;
            if stored {
                return Ok(entry);
            }
            // The version was published by another writer meanwhile: take the next patch.
            let mut versions = self
                .index
                .provider()
                .schema_versions(schema_ref.name())
                .await?;
            versions.push(schema_ref.version().to_owned());
            schema_ref = SchemaRef::new(schema_ref.name(), next_version(&versions));
            shown = schema_ref.format(self.index.inner.form);
        }
        Err(Error::Invalid(format!(
            "{}: every schema version tried was taken by another publisher",
            self.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_pythons_isoformat() {
        let t = now_isoformat();
        assert!(t.ends_with("+00:00"), "{t}");
        assert!(t.len() == 25 || t.len() == 32, "{t}");
        assert_eq!(&t[10..11], "T");
    }

    #[test]
    fn only_three_part_integer_versions_take_part_in_auto_increment() {
        assert_eq!(semver("0.10.0"), Some((0, 10, 0)));
        assert!(semver("0.10.0") > semver("0.9.0"));
        assert_eq!(semver("1.0"), None);
        assert_eq!(semver("1.0.0.1"), None);
        assert_eq!(semver("1.0.x"), None);
    }
}
