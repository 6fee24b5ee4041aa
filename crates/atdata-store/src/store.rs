//! The `DataStore` trait and the generic shard writer on top of it.

use std::fmt;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use atdata_codec::SampleType;
use atdata_wds::{Dataset, ShardOpener, ShardOptions, ShardWriter, Sidecar, SinkFactory};
use sha2::{Digest, Sha256};

use crate::cleanup::WorkGuard;
use crate::error::{Error, Result};
use crate::items::StoredItem;

/// A place shards live: an S3 bucket, a local folder, memory.
///
/// The object-safe core, in object_store's shape: open a shard URL for streaming reads, create a
/// shard upload, delete. The generic conveniences ([`DataStoreExt::write_shards`]) build on it.
/// All I/O runs on a runtime the store owns, so the blocking methods are safe from any
/// non-async thread, including the threads of a `Dataset` inside a tokio program.
///
/// ```
/// use atdata_store::{DataStore, MemoryStore};
///
/// let store = MemoryStore::new().unwrap();
/// assert_eq!(store.url("a/b.tar"), "memory:///a/b.tar");
/// assert!(store.supports_streaming());
/// ```
#[async_trait]
pub trait DataStore: Send + Sync + fmt::Debug + 'static {
    /// The URL of the object `key` (`s3://bucket/key`, an absolute path, `memory:///key`).
    fn url(&self, key: &str) -> String;

    /// A streaming reader over the object at `url`. A missing object is an error on the first
    /// read, naming the URL. Call it from a blocking thread, not an async task.
    fn open_shard(&self, url: &str) -> Result<Box<dyn Read + Send>>;

    /// The bytes `range` of the object at `url`, in one request (a ranged GET): exactly that
    /// many, or an error (`UnexpectedEof` I/O when the object is shorter). What
    /// [`StoreOpener`](crate::StoreOpener) serves `Dataset::get` with; a store without ranged
    /// reads returns [`Error::Unsupported`] (the default), and the opener then reads up to
    /// the range. Call it from a blocking thread.
    fn read_range(&self, url: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        let _ = range;
        Err(Error::Unsupported(format!("{url}: ranged reads")))
    }

    /// Starts writing the object `key`. Nothing is visible under `key` until the upload is
    /// committed; an upload dropped uncommitted is aborted. Call it from a blocking thread.
    fn create_shard(&self, key: &str) -> Result<Box<dyn ShardUpload>>;

    /// Deletes the object at `url`; deleting a missing object succeeds.
    async fn delete(&self, url: &str) -> Result<()>;

    /// Whether shards can be read as a stream without downloading them first (all ours can).
    fn supports_streaming(&self) -> bool;

    /// The object key of shard `index` of one `write_shards` call, `id` identifying the call:
    /// `{prefix}/data--{id}--{index:06}.tar`.
    fn shard_key(&self, prefix: &str, id: &uuid::Uuid, index: usize) -> String {
        shard_key(prefix, &id.to_string(), index)
    }

    /// An owned handle on the same store, for the writer thread.
    fn clone_store(&self) -> Box<dyn DataStore>;

    /// Waits until the work this store finishes in the background has ended: aborting uploads
    /// that were never committed, and the writes of dropped [`DataStoreExt::write_shards`]
    /// futures stopping and deleting what they stored. Bounded (75 s: each task retries for
    /// at most a minute); an [`Error::CleanupPending`] says how much was still running. Call
    /// it before a program exits, so that what it cancelled leaves nothing behind; work still
    /// pending at exit is lost with the process, and its leftovers are what `atdata gc` finds.
    /// The store stays usable afterwards.
    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    /// A guard that keeps [`shutdown`](Self::shutdown) waiting while it is held (a store
    /// without background work returns one that keeps nothing waiting).
    fn work_guard(&self) -> WorkGuard {
        WorkGuard::default()
    }

    /// Every object under `prefix`, and every upload under it that was started and never
    /// completed (S3 multipart uploads; a local store's `name#N` staging files), for
    /// `atdata gc`.
    async fn list_items(&self, prefix: &str) -> Result<Vec<StoredItem>> {
        let _ = prefix;
        Err(Error::Unsupported(format!(
            "{self:?} cannot list what it holds"
        )))
    }

    /// Deletes an object or aborts an upload that [`list_items`](Self::list_items) found.
    async fn remove_item(&self, item: &StoredItem) -> Result<()> {
        match item.upload_id {
            None => self.delete(&item.url).await,
            Some(_) => Err(Error::Unsupported(format!("{self:?} cannot abort uploads"))),
        }
    }
}

/// A shard being written to a store: bytes go in through `Write` (buffered and uploaded in
/// parts as they come, so memory stays bounded), and a SHA-256 of them is kept.
pub trait ShardUpload: Write + Send {
    /// The URL the object will have.
    fn url(&self) -> &str;

    /// Stores every byte written so far; the object is still not visible.
    fn finish(&mut self) -> Result<()>;

    /// Makes the object visible under its URL (call after [`finish`](Self::finish)).
    fn commit(&mut self) -> Result<()>;

    /// The SHA-256 (hex) of the bytes written.
    fn sha256(&self) -> String;
}

/// The shards one `write_shards` call stored: their URLs, and for each a SHA-256, its sample
/// count and its size in bytes.
///
/// ```
/// # async fn demo(store: &atdata_store::MemoryStore, ds: &atdata_wds::Dataset<atdata_codec::DynamicSample>) -> atdata_store::Result<()> {
/// use atdata_store::DataStoreExt;
/// let written = store.write_shards(ds, "datasets/v1", atdata_store::WriteOptions::default()).await?;
/// for (i, url) in written.urls().iter().enumerate() {
///     println!("{url} {} {} samples {} bytes", written.checksums()[i], written.sample_counts()[i], written.sizes()[i]);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenShards {
    urls: Vec<String>,
    checksums: Vec<String>,
    sample_counts: Vec<u64>,
    sizes: Vec<u64>,
}

impl WrittenShards {
    /// The shard URLs, in order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The SHA-256 (hex) of each shard, in the order of [`urls`](Self::urls).
    pub fn checksums(&self) -> &[String] {
        &self.checksums
    }

    /// The samples in each shard, in the order of [`urls`](Self::urls).
    pub fn sample_counts(&self) -> &[u64] {
        &self.sample_counts
    }

    /// The size in bytes of each shard as stored, in the order of [`urls`](Self::urls).
    pub fn sizes(&self) -> &[u64] {
        &self.sizes
    }
}

/// How [`DataStoreExt::write_shards`] writes: the source's shards copied as they are (the
/// default) or re-cut, whether each shard is staged in a local temporary file before it
/// is uploaded, and whether each uncompressed shard gets its sidecar index.
///
/// `write_shards` takes these or plain [`ShardOptions`] (which re-cut).
///
/// ```
/// use atdata_store::WriteOptions;
///
/// let opts = WriteOptions { cache_local: true, ..Default::default() };
/// assert!(opts.shards.is_none()); // shard for shard
/// assert!(opts.sidecars);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// `None` (the default): each source shard is copied byte for byte, keeping its samples,
    /// their boundaries, its compression and its checksum. `Some`: the samples are re-cut
    /// into new uncompressed shards by these limits (and mtime).
    pub shards: Option<ShardOptions>,
    /// Stage each shard in a temporary file, then upload it (useful when the source is slow and
    /// the connection is not: the upload then runs at full speed). The checksum is the same
    /// either way.
    pub cache_local: bool,
    /// Store each uncompressed shard's sidecar index (`data--…--000000.idx`, DALI's format)
    /// beside it, committed with it (default `true`): what `Dataset::get` and `len` read.
    /// A member name the sidecar's lines cannot hold (whitespace) then fails the write.
    pub sidecars: bool,
}

impl Default for WriteOptions {
    fn default() -> WriteOptions {
        WriteOptions {
            shards: None,
            cache_local: false,
            sidecars: true,
        }
    }
}

impl From<ShardOptions> for WriteOptions {
    fn from(shards: ShardOptions) -> WriteOptions {
        WriteOptions {
            shards: Some(shards),
            ..WriteOptions::default()
        }
    }
}

/// The SHA-256 (hex) of everything `input` holds, as [`WrittenShards::checksums`] records it
/// for a shard.
///
/// ```
/// let sum = atdata_store::sha256_hex(&b"abc"[..]).unwrap();
/// assert_eq!(&sum[..8], "ba7816bf");
/// ```
pub fn sha256_hex(mut input: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match input.read(&mut buf) {
            Ok(0) => return Ok(hex::encode(hasher.finalize())),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `{prefix}/data--{id}--{index:06}.tar` (no leading `/` for an empty prefix).
pub(crate) fn shard_key(prefix: &str, id: &str, index: usize) -> String {
    let name = format!("data--{id}--{index:06}.tar");
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// Conveniences over any [`DataStore`].
#[async_trait]
pub trait DataStoreExt: DataStore {
    /// Deletes the shard at `url` and its sidecar index beside it (`<stem>.idx`, see
    /// [`atdata_wds::sidecar_url`]): a shard is never deleted leaving its sidecar to describe
    /// a missing shard. The sidecar goes first; deleting a missing object succeeds.
    ///
    /// ```
    /// # async fn demo(store: &atdata_store::MemoryStore) -> atdata_store::Result<()> {
    /// use atdata_store::DataStoreExt;
    /// store.delete_shard("memory:///p/data--x--000000.tar").await?; // and data--x--000000.idx
    /// # Ok(()) }
    /// ```
    async fn delete_shard(&self, url: &str) -> Result<()> {
        if let Some(sidecar) = atdata_wds::sidecar_url(url) {
            self.delete(&sidecar).await?;
        }
        self.delete(url).await
    }

    /// Writes `dataset` into this store as shards named `{prefix}/data--{uuid}--{000000}.tar`:
    /// by default each source shard copied byte for byte (a `.tar.gz` or `.tgz` source keeps
    /// its compression and its suffix), or, with [`ShardOptions`], the samples re-cut by their
    /// limits (maxcount, maxsize, mtime). Each shard streams into a multipart upload with
    /// bounded memory, hashed and counted on the way. Samples keep their keys. Each
    /// uncompressed shard's sidecar index (`….idx`) is stored beside it, unless
    /// [`WriteOptions::sidecars`] is off; sidecars are committed and deleted with their shards.
    ///
    /// Nothing becomes visible until every shard is complete: a failure aborts the uploads this
    /// call started; if a failure strikes between completions, the completed shards are deleted
    /// (best effort) and named in the error. Every sample is first checked to decode as `T`
    /// (for a `DynamicSample` dataset, by its schema): one that does not fails the write,
    /// naming the shard, the key and the field.
    ///
    /// Dropping the returned future cancels the write: the writer thread stops at its next
    /// sample (or before its next commit), aborts its uploads and deletes any shard it had
    /// already committed; [`DataStore::shutdown`] waits for that.
    ///
    /// `options` is [`ShardOptions`] (re-cut) or [`WriteOptions`] (copy or re-cut, staged
    /// locally or not).
    async fn write_shards<T, O>(
        &self,
        dataset: &Dataset<T, O>,
        prefix: &str,
        options: impl Into<WriteOptions> + Send,
    ) -> Result<WrittenShards>
    where
        T: SampleType,
        O: ShardOpener,
    {
        let options = options.into();
        let store = self.clone_store();
        let dataset = dataset.clone();
        let prefix = prefix.trim_matches('/').to_owned();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let cancel = Cancel::default();
        let cancelled = cancel.0.clone();
        let guard = store.work_guard();
        // The dataset reader and the tar writer are blocking: they run on a thread of their own,
        // and this future only waits (on any executor). The thread holds a work guard, so the
        // store's shutdown waits for it when this future is dropped.
        let thread = std::thread::Builder::new()
            .name("atdata-write-shards".into())
            .spawn(move || {
                let _guard = guard;
                let written = write_blocking(&*store, &dataset, &prefix, options, &cancelled);
                if let Err(Ok(unclaimed)) = tx.send(written) {
                    // The caller is gone: what was committed is no one's.
                    delete_blocking(&*store, unclaimed.urls());
                }
            })
            .map_err(|e| Error::Runtime(format!("cannot start the writer thread: {e}")))?;
        let written = rx.await;
        drop(cancel); // the thread has answered; the flag matters only if this future is dropped first
        match written {
            Ok(written) => {
                let _ = thread.join(); // it has sent its result: it is ending
                written
            }
            // The panic's message went to stderr through the panic hook.
            Err(_) => Err(Error::Runtime(match thread.join() {
                Err(_) => "the writer thread panicked".into(),
                Ok(()) => "the writer thread ended without a result".into(),
            })),
        }
    }
}

impl<S: DataStore + ?Sized> DataStoreExt for S {}

/// Sets its flag when dropped unfinished: the `write_shards` future's way of telling its thread
/// that nobody waits for the result any more.
#[derive(Default)]
struct Cancel(Arc<AtomicBool>);

impl Drop for Cancel {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A shard being uploaded, its key, and the bytes written to it. Writes fail once the write is
/// cancelled, so that even one large shard stops within a buffer's time.
struct Measured<'s> {
    upload: Box<dyn ShardUpload + 's>,
    key: String,
    bytes: u64,
    cancelled: &'s AtomicBool,
}

impl Write for Measured<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(io::Error::other("the write was cancelled"));
        }
        let n = self.upload.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.upload.flush()
    }
}

/// A shard whose bytes (and its sidecar's) are all stored, not yet committed.
struct Stored<'s> {
    upload: Box<dyn ShardUpload + 's>,
    sidecar: Option<Box<dyn ShardUpload + 's>>,
    samples: u64,
    bytes: u64,
}

/// Shard sinks that are uploads to a store.
struct UploadSinks<'s> {
    store: &'s dyn DataStore,
    prefix: &'s str,
    id: uuid::Uuid,
    cache_local: bool,
    sidecars: bool,
    cancelled: &'s AtomicBool,
}

impl<'s> UploadSinks<'s> {
    /// An upload for shard `index`, its key ending in `suffix` (`.tar`, `.tar.gz`, `.tgz`).
    fn create_with_suffix(&self, index: usize, suffix: &str) -> Result<Measured<'s>> {
        let key = self.store.shard_key(self.prefix, &self.id, index);
        let key = match key.strip_suffix(".tar") {
            Some(stem) => format!("{stem}{suffix}"),
            None => key,
        };
        let upload = if self.cache_local {
            Box::new(StagedUpload::new(self.store, key.clone())?) as Box<dyn ShardUpload + 's>
        } else {
            self.store.create_shard(&key)?
        };
        Ok(Measured {
            upload,
            key,
            bytes: 0,
            cancelled: self.cancelled,
        })
    }

    /// Stores the shard's bytes and, if it has one and sidecars are on, its sidecar beside
    /// it; neither is visible yet.
    fn store(
        &self,
        mut sink: Measured<'s>,
        samples: u64,
        sidecar: Option<Sidecar>,
    ) -> atdata_wds::Result<Stored<'s>> {
        let url = sink.upload.url().to_owned();
        sink.upload
            .finish()
            .map_err(|e| sink_error(url.clone(), e))?;
        let sidecar = match sidecar.filter(|_| self.sidecars) {
            None => None,
            Some(sidecar) => {
                // Only an uncompressed shard has a layout; its key has a stem.
                let key = atdata_wds::sidecar_url(&sink.key).unwrap_or_default();
                let text = sidecar.to_text()?;
                let mut upload = self
                    .store
                    .create_shard(&key)
                    .map_err(|e| sink_error(url.clone(), e))?;
                let shown = upload.url().to_owned();
                upload
                    .write_all(text.as_bytes())
                    .map_err(|source| atdata_wds::Error::Io {
                        path: shown.clone(),
                        source,
                    })?;
                upload.finish().map_err(|e| sink_error(shown, e))?;
                Some(upload)
            }
        };
        Ok(Stored {
            upload: sink.upload,
            sidecar,
            samples,
            bytes: sink.bytes,
        })
    }
}

/// A store error as the shard writer reports it: naming the shard's URL.
fn sink_error(url: String, e: Error) -> atdata_wds::Error {
    atdata_wds::Error::Io {
        path: url,
        source: std::io::Error::other(e),
    }
}

impl<'s> SinkFactory for UploadSinks<'s> {
    type Sink = Measured<'s>;
    type Shard = Stored<'s>;

    fn create(&mut self, index: usize) -> atdata_wds::Result<Measured<'s>> {
        self.create_with_suffix(index, ".tar").map_err(|e| {
            sink_error(
                self.store
                    .url(&self.store.shard_key(self.prefix, &self.id, index)),
                e,
            )
        })
    }

    fn close(
        &mut self,
        _index: usize,
        sink: Measured<'s>,
        samples: usize,
        sidecar: Option<Sidecar>,
    ) -> atdata_wds::Result<Stored<'s>> {
        self.store(sink, samples as u64, sidecar)
    }
}

/// The suffix a copy of the shard `url` keeps: `.tar.gz`, `.tgz`, else `.tar`.
fn copy_suffix(url: &str) -> &'static str {
    if url.ends_with(".tar.gz") {
        ".tar.gz"
    } else if url.ends_with(".tgz") {
        ".tgz"
    } else {
        ".tar"
    }
}

fn write_blocking<T: SampleType, O: ShardOpener>(
    store: &dyn DataStore,
    dataset: &Dataset<T, O>,
    prefix: &str,
    options: WriteOptions,
    cancelled: &AtomicBool,
) -> Result<WrittenShards> {
    let check = || {
        if cancelled.load(Ordering::SeqCst) {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    };
    let sinks = UploadSinks {
        store,
        prefix,
        id: uuid::Uuid::new_v4(),
        cache_local: options.cache_local,
        sidecars: options.sidecars,
        cancelled,
    };
    // Every shard's bytes are stored; none is visible yet. Dropping an upload uncommitted aborts it.
    let stored = (|| -> Result<Vec<Stored<'_>>> {
        let Some(shards) = options.shards else {
            let mut stored = Vec::new();
            for (index, url) in dataset.shard_list().iter().enumerate() {
                check()?;
                let mut sink = sinks.create_with_suffix(index, copy_suffix(url))?;
                let copied = dataset.copy_shard(url, &mut sink)?;
                stored.push(sinks.store(sink, copied.samples, copied.sidecar)?);
            }
            return Ok(stored);
        };
        let mut writer = ShardWriter::with_sinks(sinks, shards).with_sidecars(options.sidecars);
        for sample in dataset.checked_raw_samples()? {
            check()?;
            writer.write(&sample?)?;
        }
        Ok(writer.finish()?)
    })();
    // A write that failed because it was cancelled says so.
    let mut stored = stored.map_err(|e| {
        if check().is_err() {
            Error::Cancelled
        } else {
            e
        }
    })?;
    let mut written = WrittenShards {
        urls: Vec::with_capacity(stored.len()),
        checksums: Vec::with_capacity(stored.len()),
        sample_counts: Vec::with_capacity(stored.len()),
        sizes: Vec::with_capacity(stored.len()),
    };
    for shard in &mut stored {
        // The shard first: a sidecar is never visible without its shard.
        let committed =
            check()
                .and_then(|()| shard.upload.commit())
                .and_then(|()| match &mut shard.sidecar {
                    Some(sidecar) => sidecar.commit(),
                    None => Ok(()),
                });
        if let Err(e) = committed {
            let urls = written.urls;
            // This shard may be visible without its sidecar: it goes too.
            let doomed: Vec<String> = urls
                .iter()
                .chain([&shard.upload.url().to_owned()])
                .cloned()
                .collect();
            let deleted = delete_blocking(store, &doomed);
            if matches!(e, Error::Cancelled) {
                return Err(e);
            }
            return Err(Error::PartialCommit {
                completed: urls,
                deleted,
                source: Box::new(e),
            });
        }
        written.urls.push(shard.upload.url().to_owned());
        written.checksums.push(shard.upload.sha256());
        written.sample_counts.push(shard.samples);
        written.sizes.push(shard.bytes);
    }
    Ok(written)
}

/// Deletes the shards `urls` and their sidecars from a blocking thread (deleting a missing
/// object succeeds); whether every delete succeeded.
fn delete_blocking(store: &dyn DataStore, urls: &[String]) -> bool {
    urls.iter()
        .all(|url| futures::executor::block_on(store.delete_shard(url)).is_ok())
}

/// A shard staged in a temporary file (hashed on the way), uploaded through the store when
/// finished. The file is removed when the upload is dropped.
struct StagedUpload<'s> {
    store: &'s dyn DataStore,
    key: String,
    url: String,
    file: BufWriter<tempfile::NamedTempFile>,
    hasher: Sha256,
    upload: Option<Box<dyn ShardUpload>>,
}

impl<'s> StagedUpload<'s> {
    fn new(store: &'s dyn DataStore, key: String) -> Result<StagedUpload<'s>> {
        let file = tempfile::NamedTempFile::new().map_err(|e| Error::Io {
            path: std::env::temp_dir().display().to_string(),
            source: e,
        })?;
        Ok(StagedUpload {
            url: store.url(&key),
            store,
            key,
            file: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            upload: None,
        })
    }
}

impl Write for StagedUpload<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl ShardUpload for StagedUpload<'_> {
    fn url(&self) -> &str {
        &self.url
    }

    fn finish(&mut self) -> Result<()> {
        let path = self.file.get_ref().path().display().to_string();
        let io = |e| Error::Io {
            path: path.clone(),
            source: e,
        };
        self.file.flush().map_err(io)?;
        let file = self.file.get_mut().as_file_mut();
        file.rewind().map_err(io)?;
        let mut upload = self.store.create_shard(&self.key)?;
        io::copy(file, &mut upload).map_err(io)?;
        upload.finish()?;
        self.upload = Some(upload);
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        match &mut self.upload {
            Some(upload) => upload.commit(),
            None => Err(Error::Runtime(format!(
                "{}: committed before it was finished",
                self.url
            ))),
        }
    }

    fn sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}
