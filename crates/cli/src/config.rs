//! Where the index and the store are: flags, then the environment (and `.env`).

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context;
use atdata::index::LocalIndexBuilder;
use atdata::{Credentials, DataStore, LocalDiskStore, LocalIndex, S3DataStore};

#[derive(Debug, clap::Args)]
pub struct Config {
    /// The index: `redis://[:password@]host:port/db` or `sqlite:PATH` [default:
    /// ~/.atdata/index.db, the file Python atdata uses by default].
    #[arg(long, global = true, env = "ATDATA_INDEX", hide_env_values = true)]
    index: Option<String>,

    /// Write shards to this S3 bucket (credentials from `AWS_*`), instead of a local folder.
    #[arg(long, global = true, env = "AWS_BUCKET", hide_env_values = true)]
    bucket: Option<String>,

    /// The local folder shards go to without `--bucket` [default: ~/.atdata/data, as Python's
    /// LocalDiskStore].
    #[arg(long, global = true, env = "ATDATA_STORE_DIR", hide_env_values = true)]
    store_dir: Option<PathBuf>,

    /// Write new schema references in Python atdata's form (`atdata://local/schema/`): the
    /// default, kept for scripts that pass it.
    #[arg(long, global = true, conflicts_with = "seed_schema_refs")]
    python_schema_refs: bool,

    /// Write new schema references in the seed's `atdata://local/sampleSchema/` form, which
    /// Python atdata cannot read (both forms are read either way).
    #[arg(long, global = true)]
    seed_schema_refs: bool,

    /// The largest shard member read, in bytes (a member is held in memory whole; larger ones
    /// are an error before they are read).
    #[arg(long, global = true, default_value_t = atdata::wds::DEFAULT_MAX_MEMBER_BYTES)]
    max_member_bytes: u64,

    /// The indexes opened, for `shutdown`.
    #[arg(skip)]
    opened: Mutex<Vec<LocalIndex>>,
}

/// `~/.atdata/data`, where Python's `LocalDiskStore` writes by default.
fn default_store_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .ok_or_else(|| anyhow::anyhow!("HOME is not set: pass --store-dir"))?;
    Ok(PathBuf::from(home).join(".atdata").join("data"))
}

impl Config {
    fn builder(&self) -> anyhow::Result<LocalIndexBuilder> {
        let builder = LocalIndex::builder().python_schema_refs(!self.seed_schema_refs);
        Ok(match self.index.as_deref() {
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                builder.redis_url(url)
            }
            Some(spec) => match spec.strip_prefix("sqlite:") {
                Some(path) => builder.sqlite_path(path),
                // The spec is not shown: it may hold a password in a form we do not parse.
                None => anyhow::bail!(
                    "--index (or ATDATA_INDEX): expected redis://host:port/db, rediss://... or sqlite:PATH"
                ),
            },
            // The builder's own default: ~/.atdata/index.db.
            None => builder,
        })
    }

    /// `--max-member-bytes`.
    pub fn max_member_bytes(&self) -> u64 {
        self.max_member_bytes
    }

    async fn open(&self, builder: LocalIndexBuilder) -> anyhow::Result<LocalIndex> {
        let index = builder.build().await?;
        self.opened
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(index.clone());
        Ok(index)
    }

    /// The index, without a data store.
    pub async fn index(&self) -> anyhow::Result<LocalIndex> {
        self.open(self.builder()?).await
    }

    /// The index, which must exist, opened read-only (for commands that only read: a
    /// mistyped `--index` is an error, not a new empty index).
    pub async fn existing_index(&self) -> anyhow::Result<LocalIndex> {
        self.open(self.builder()?.read_only(true))
            .await
            .context("opening the index (read-only commands never create one)")
    }

    /// The index, writing shards through the configured store.
    pub async fn index_with_store(&self) -> anyhow::Result<(LocalIndex, String)> {
        let (index, _, shown) = self.index_and_store().await?;
        Ok((index, shown))
    }

    /// The index writing through the configured store, a handle on that store, and its name.
    pub async fn index_and_store(
        &self,
    ) -> anyhow::Result<(LocalIndex, Box<dyn DataStore>, String)> {
        fn with<S: DataStore + Clone>(
            builder: LocalIndexBuilder,
            store: S,
        ) -> (LocalIndexBuilder, Box<dyn DataStore>) {
            (builder.data_store(store.clone()), Box::new(store))
        }
        let builder = self.builder()?;
        let ((builder, store), shown) = match &self.bucket {
            Some(bucket) => {
                let credentials = Credentials::from_env()
                    .context("--bucket needs S3 credentials (AWS_ACCESS_KEY_ID, ...)")?;
                let store = S3DataStore::new(credentials, bucket)?;
                (with(builder, store), format!("s3://{bucket}"))
            }
            None => {
                let dir = match &self.store_dir {
                    Some(dir) => dir.clone(),
                    None => default_store_dir()?,
                };
                let store = LocalDiskStore::new(&dir)?;
                (with(builder, store), dir.display().to_string())
            }
        };
        Ok((self.open(builder).await?, store, shown))
    }

    /// Waits for the background work of every index opened (inserts whose commit or cleanup
    /// was still running, aborted uploads), so the process leaves nothing behind.
    pub async fn shutdown(&self) -> anyhow::Result<()> {
        let opened = std::mem::take(
            &mut *self
                .opened
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for index in opened {
            index.shutdown().await?;
        }
        Ok(())
    }
}
