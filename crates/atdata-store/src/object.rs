//! The stores: one object_store-backed implementation behind three constructors.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt, TryStreamExt};
#[cfg(feature = "s3")]
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

use crate::cleanup::{CLEANUP_DEADLINE, Cleanup, WorkGuard};
#[cfg(feature = "s3")]
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::fetch::{self, Window};
use crate::items::{StoredItem, staging_files, staging_key};
use crate::store::{DataStore, ShardUpload};

/// Bytes per uploaded part (S3 requires at least 5 MiB for all but the last).
const PART_SIZE: usize = 8 << 20;
/// Parts uploading at once per shard; with the part being filled, the memory bound per shard.
const PARTS_IN_FLIGHT: usize = 2;

/// The runtime a store's I/O runs on: its own, so blocking callers never `block_on` a runtime
/// they are inside. Dropped without blocking, so a store may be dropped inside async code.
#[derive(Debug)]
struct IoRuntime {
    runtime: Option<Runtime>,
    handle: Handle,
    /// Aborts and deletes still running for callers that have gone.
    cleanup: Cleanup,
}

impl IoRuntime {
    fn new() -> Result<IoRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("atdata-store-io")
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        Ok(IoRuntime {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            cleanup: Cleanup::default(),
        })
    }

    fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `fut` on the store's runtime and waits for it from any thread: a plain thread, a
/// `Dataset` thread, or (blocking it, as any synchronous I/O would) an async task's thread.
fn wait<T: Send + 'static>(
    handle: &Handle,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T> {
    // `unconstrained`: inside a tokio task, nested polls would spend that task's coop budget,
    // which never resets while we block, and then stay pending forever.
    futures::executor::block_on(tokio::task::unconstrained(handle.spawn(fut)))
        .map_err(|e| Error::Runtime(e.to_string()))
}

/// Where keys live, for URLs.
#[derive(Debug, Clone)]
enum Location {
    #[cfg(feature = "s3")]
    S3 {
        bucket: String,
        credentials: Box<Credentials>,
    },
    Disk {
        root: PathBuf,
    },
    Memory,
    /// `http(s)://host[:port]`, read-only.
    #[cfg(feature = "http")]
    Http {
        origin: String,
    },
}

/// The shared implementation.
#[derive(Clone)]
struct Backend {
    store: Arc<dyn ObjectStore>,
    location: Location,
    runtime: Arc<IoRuntime>,
    short_ids: bool,
    window: Window,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Backend {
    fn new(store: Arc<dyn ObjectStore>, location: Location) -> Result<Backend> {
        Ok(Backend {
            short_ids: matches!(location, Location::Disk { .. }),
            store,
            location,
            runtime: Arc::new(IoRuntime::new()?),
            window: Window::default(),
        })
    }

    fn prefix(&self) -> String {
        match &self.location {
            #[cfg(feature = "s3")]
            Location::S3 { bucket, .. } => format!("s3://{bucket}/"),
            Location::Disk { root } => format!("{}/", root.display()),
            Location::Memory => "memory:///".to_owned(),
            #[cfg(feature = "http")]
            Location::Http { origin } => format!("{origin}/"),
        }
    }

    fn key<'u>(&self, url: &'u str) -> Result<&'u str> {
        let prefix = self.prefix();
        url.strip_prefix(&prefix).ok_or_else(|| Error::ForeignUrl {
            url: url.to_owned(),
            expected: prefix,
        })
    }

    /// Runs `fut` on the store's runtime and waits for it (from async code).
    async fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        self.runtime
            .handle()
            .spawn(fut)
            .await
            .map_err(|e| Error::Runtime(e.to_string()))
    }

    fn path(&self, url: &str) -> Result<Path> {
        Path::parse(self.key(url)?).map_err(|e| Error::store(url, e.into()))
    }
}

#[async_trait]
impl DataStore for Backend {
    fn url(&self, key: &str) -> String {
        format!("{}{}", self.prefix(), key.trim_start_matches('/'))
    }

    fn open_shard(&self, url: &str) -> Result<Box<dyn Read + Send>> {
        let path = self.path(url)?;
        // One range waits for the reader beside the window's ranges in flight.
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<fetch::Body>>(1);
        let (store, shown, window) = (self.store.clone(), url.to_owned(), self.window);
        // A panic in the download task is an error for the reader, never a clean end.
        let on_panic = tx.clone();
        self.runtime.handle().spawn(async move {
            let downloaded =
                std::panic::AssertUnwindSafe(fetch::stream(store, path, shown.clone(), tx, window))
                    .catch_unwind()
                    .await;
            if downloaded.is_err() {
                let message = format!("{shown}: the download task panicked");
                let _ = on_panic.send(Err(io::Error::other(message))).await;
            }
        });
        Ok(Box::new(ChunkReader {
            chunks: rx,
            pieces: VecDeque::new(),
            _runtime: self.runtime.clone(),
        }))
    }

    fn read_range(&self, url: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
        let path = self.path(url)?;
        let (store, window) = (self.store.clone(), self.window);
        let fetch = range.clone();
        let got = wait(&self.runtime.handle(), async move {
            fetch::read_range(store, path, fetch, window).await
        })?;
        match got {
            // No copy when the body arrived in one piece.
            Ok(Some(bytes)) => Ok(Vec::from(bytes)),
            Ok(None) => Err(Error::Io {
                path: url.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "bytes {}..{} are past the object's end",
                        range.start, range.end
                    ),
                ),
            }),
            Err(e) => Err(Error::store(url, e)),
        }
    }

    fn create_shard(&self, key: &str) -> Result<Box<dyn ShardUpload>> {
        let url = self.url(key);
        let path = Path::parse(key.trim_start_matches('/'))
            .map_err(|e| Error::store(url.clone(), e.into()))?;
        let handle = self.runtime.handle();
        let store = self.store.clone();
        let upload = wait(&handle, async move { store.put_multipart(&path).await })?
            .map_err(|e| Error::store(url.clone(), e))?;
        let local = match &self.location {
            Location::Disk { root } => Some((root.clone(), root.join(key.trim_start_matches('/')))),
            _ => None,
        };
        Ok(Box::new(Upload {
            local,
            handle,
            cleanup: self.runtime.cleanup.clone(),
            url,
            upload: Some(upload),
            buffer: Vec::with_capacity(PART_SIZE),
            parts: 0,
            in_flight: VecDeque::new(),
            hasher: Sha256::new(),
            committed: false,
        }))
    }

    async fn delete(&self, url: &str) -> Result<()> {
        let path = self.path(url)?;
        let store = self.store.clone();
        let shown = url.to_owned();
        let result = self.run(async move { store.delete(&path).await }).await?;
        match result {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::store(shown, e)),
        }
        if let Location::Disk { root } = &self.location {
            remove_empty_folders(root, &root.join(self.key(url)?));
        }
        Ok(())
    }

    fn supports_streaming(&self) -> bool {
        true
    }

    fn shard_key(&self, prefix: &str, id: &uuid::Uuid, index: usize) -> String {
        // LocalDiskStore names shards as Python's does: the first 8 hex digits of the id.
        let id = if self.short_ids {
            id.simple().to_string()[..8].to_owned()
        } else {
            id.to_string()
        };
        crate::store::shard_key(prefix, &id, index)
    }

    fn clone_store(&self) -> Box<dyn DataStore> {
        Box::new(self.clone())
    }

    async fn shutdown(&self) -> Result<()> {
        self.runtime.cleanup.wait(&self.runtime.handle()).await
    }

    fn work_guard(&self) -> WorkGuard {
        self.runtime.cleanup.guard()
    }

    async fn list_items(&self, prefix: &str) -> Result<Vec<StoredItem>> {
        let prefix = prefix.trim_matches('/').to_owned();
        let (store, path) = (
            self.store.clone(),
            (!prefix.is_empty()).then(|| Path::from(prefix.as_str())),
        );
        let listed = self
            .run(async move { store.list(path.as_ref()).try_collect::<Vec<_>>().await })
            .await?
            .map_err(|e| Error::store(self.url(&prefix), e))?;
        let mut items: Vec<StoredItem> = listed
            .into_iter()
            .map(|meta| StoredItem {
                url: self.url(meta.location.as_ref()),
                size: Some(meta.size),
                modified: meta.last_modified.into(),
                upload_id: None,
            })
            .collect();
        let uploads = match &self.location {
            #[cfg(feature = "s3")]
            Location::S3 {
                bucket,
                credentials,
            } => {
                let (bucket, credentials, p) =
                    (bucket.clone(), credentials.clone(), prefix.clone());
                self.run(
                    async move { crate::items::s3::list_uploads(&credentials, &bucket, &p).await },
                )
                .await??
            }
            Location::Disk { root } => staging_files(root, &prefix)?,
            Location::Memory => Vec::new(),
            #[cfg(feature = "http")]
            Location::Http { .. } => Vec::new(),
        };
        items.extend(uploads.into_iter().map(|(key, id, started)| StoredItem {
            url: self.url(&key),
            size: None,
            modified: started,
            upload_id: Some(id),
        }));
        Ok(items)
    }

    async fn remove_item(&self, item: &StoredItem) -> Result<()> {
        let Some(id) = &item.upload_id else {
            return self.delete(&item.url).await;
        };
        match &self.location {
            #[cfg(feature = "s3")]
            Location::S3 {
                bucket,
                credentials,
            } => {
                let key = self.key(&item.url)?.to_owned();
                let (bucket, credentials, id) = (bucket.clone(), credentials.clone(), id.clone());
                self.run(async move {
                    crate::items::s3::abort_upload(&credentials, &bucket, &key, &id).await
                })
                .await?
            }
            Location::Disk { root } => {
                // Only a staging file of this store's own folder is ever removed.
                let staging = FsPath::new(id);
                let inside = staging
                    .components()
                    .all(|c| !matches!(c, std::path::Component::ParentDir));
                if !inside || staging_key(root, id).is_none() {
                    return Err(Error::ForeignUrl {
                        url: id.clone(),
                        expected: format!("a staging file under {}", root.display()),
                    });
                }
                match std::fs::remove_file(staging) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(Error::Io {
                        path: id.clone(),
                        source: e,
                    }),
                }
            }
            Location::Memory => Err(Error::Unsupported(
                "a memory store has no unfinished uploads".into(),
            )),
            #[cfg(feature = "http")]
            Location::Http { .. } => {
                Err(Error::Unsupported("an http(s) origin is read-only".into()))
            }
        }
    }
}

pub(crate) fn io_error(e: Error) -> io::Error {
    match e {
        Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
        e => io::Error::other(e.to_string()),
    }
}

/// A blocking reader over the ranges a download task sends, each in the pieces it came in.
struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<io::Result<fetch::Body>>,
    pieces: VecDeque<Bytes>,
    /// Keeps the download's runtime alive as long as the reader, even if the store is dropped.
    _runtime: Arc<IoRuntime>,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.pieces.front_mut() {
                Some(piece) if piece.is_empty() => {
                    self.pieces.pop_front();
                }
                Some(piece) => {
                    let n = buf.len().min(piece.len());
                    buf[..n].copy_from_slice(&piece.split_to(n));
                    return Ok(n);
                }
                None => {
                    let next = self.chunks.recv();
                    match futures::executor::block_on(tokio::task::unconstrained(next)) {
                        Some(body) => self.pieces = body?.into(),
                        None => return Ok(0),
                    }
                }
            }
        }
    }
}

/// A multipart upload fed through `Write`.
struct Upload {
    handle: Handle,
    cleanup: Cleanup,
    url: String,
    /// For a local store, its root and the object's path: folders the upload created are
    /// removed again when it is aborted.
    local: Option<(PathBuf, PathBuf)>,
    upload: Option<Box<dyn MultipartUpload>>,
    buffer: Vec<u8>,
    parts: usize,
    in_flight: VecDeque<JoinHandle<object_store::Result<()>>>,
    hasher: Sha256,
    committed: bool,
}

impl Upload {
    fn send_part(&mut self) -> io::Result<()> {
        let Some(upload) = self.upload.as_mut() else {
            return Err(io::Error::other(format!(
                "{}: upload already ended",
                self.url
            )));
        };
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_SIZE));
        let part = upload.put_part(PutPayload::from(Bytes::from(data)));
        self.in_flight.push_back(self.handle.spawn(part));
        self.parts += 1;
        while self.in_flight.len() > PARTS_IN_FLIGHT {
            self.wait_oldest()?;
        }
        Ok(())
    }

    fn wait_oldest(&mut self) -> io::Result<()> {
        if let Some(part) = self.in_flight.pop_front() {
            let result = futures::executor::block_on(tokio::task::unconstrained(part))
                .map_err(io::Error::other)?;
            result.map_err(|e| io_error(Error::store(self.url.clone(), e)))?;
        }
        Ok(())
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        let mut rest = buf;
        while !rest.is_empty() {
            let room = PART_SIZE - self.buffer.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.buffer.extend_from_slice(now);
            rest = later;
            if self.buffer.len() == PART_SIZE {
                self.send_part()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ShardUpload for Upload {
    fn url(&self) -> &str {
        &self.url
    }

    fn finish(&mut self) -> Result<()> {
        let to_error = |e: io::Error, url: &str| Error::Io {
            path: url.to_owned(),
            source: e,
        };
        if !self.buffer.is_empty() || self.parts == 0 {
            self.send_part().map_err(|e| to_error(e, &self.url))?;
        }
        while !self.in_flight.is_empty() {
            self.wait_oldest().map_err(|e| to_error(e, &self.url))?;
        }
        // A finished upload waits for its commit holding no part buffer (a write of many
        // shards holds them all until the last is stored).
        self.buffer = Vec::new();
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        let upload = self
            .upload
            .take()
            .ok_or_else(|| Error::Runtime(format!("{}: upload already ended", self.url)))?;
        let (upload, result) = wait(&self.handle, async move {
            let mut upload = upload;
            let result = upload.complete().await;
            (upload, result)
        })?;
        match result {
            Ok(_) => {
                self.committed = true;
                Ok(())
            }
            Err(e) => {
                self.upload = Some(upload);
                Err(Error::store(self.url.clone(), e))
            }
        }
    }

    fn sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

impl Drop for Upload {
    /// An upload that was not committed is aborted in the background on the store's runtime,
    /// retried with backoff (for up to a minute) so that its parts are cleared once the server
    /// answers again, while the error that dropped it is returned at once. The abort is
    /// tracked: `DataStore::shutdown` waits for it.
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        for part in self.in_flight.drain(..) {
            part.abort();
        }
        let url = std::mem::take(&mut self.url);
        let local = self.local.take();
        self.cleanup.spawn(&self.handle, async move {
            let mut delay = std::time::Duration::from_millis(200);
            let deadline = tokio::time::Instant::now() + CLEANUP_DEADLINE;
            while upload.abort().await.is_err() {
                if tokio::time::Instant::now() + delay > deadline {
                    tracing::warn!("{url}: could not abort the upload; `atdata gc` will find it");
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            if let Some((root, object)) = local {
                remove_empty_folders(&root, &object);
            }
        });
    }
}

/// Removes the folders between `root` and `object` that are empty, innermost first (those an
/// aborted or deleted object leaves behind); stops at the first that is not.
fn remove_empty_folders(root: &FsPath, object: &FsPath) {
    let mut dir = object.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root) {
        if std::fs::remove_dir(d).is_err() {
            return;
        }
        dir = d.parent();
    }
}

/// Declares a public store type wrapping the shared implementation.
macro_rules! store_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(Backend);

        impl $name {
            /// The bytes one shard streamed from this store may have in flight and waiting
            /// for its reader (default 32 MiB, at least 64 KiB): it is fetched as concurrent
            /// ranged GETs of a quarter of the window (64 KiB to 8 MiB), plus one range
            /// handed to the reader. Ranged reads (random access, the loader) larger than a range
            /// are fetched the same way.
            ///
            /// ```
            /// let store = atdata_store::MemoryStore::new()?.with_read_window(128 << 20);
            /// # Ok::<(), atdata_store::Error>(())
            /// ```
            pub fn with_read_window(mut self, bytes: u64) -> $name {
                self.0.window = Window::new(bytes);
                self
            }
        }

        #[async_trait]
        impl DataStore for $name {
            fn url(&self, key: &str) -> String {
                self.0.url(key)
            }

            fn open_shard(&self, url: &str) -> Result<Box<dyn Read + Send>> {
                self.0.open_shard(url)
            }

            fn read_range(&self, url: &str, range: std::ops::Range<u64>) -> Result<Vec<u8>> {
                self.0.read_range(url, range)
            }

            fn create_shard(&self, key: &str) -> Result<Box<dyn ShardUpload>> {
                self.0.create_shard(key)
            }

            async fn delete(&self, url: &str) -> Result<()> {
                self.0.delete(url).await
            }

            fn supports_streaming(&self) -> bool {
                self.0.supports_streaming()
            }

            fn shard_key(&self, prefix: &str, id: &uuid::Uuid, index: usize) -> String {
                self.0.shard_key(prefix, id, index)
            }

            fn clone_store(&self) -> Box<dyn DataStore> {
                Box::new(self.clone())
            }

            async fn shutdown(&self) -> Result<()> {
                self.0.shutdown().await
            }

            fn work_guard(&self) -> WorkGuard {
                self.0.work_guard()
            }

            async fn list_items(&self, prefix: &str) -> Result<Vec<StoredItem>> {
                self.0.list_items(prefix).await
            }

            async fn remove_item(&self, item: &StoredItem) -> Result<()> {
                self.0.remove_item(item).await
            }
        }
    };
}

#[cfg(feature = "s3")]
store_type! {
    /// Shards in an S3 bucket on AWS or any S3-compatible server (MinIO, SeaweedFS, R2...).
    ///
    /// Path-style requests when an endpoint is given; `http://` endpoints are allowed. URLs are
    /// `s3://{bucket}/{key}`.
    ///
    /// ```
    /// use atdata_store::{Credentials, DataStore, S3DataStore};
    ///
    /// let creds = Credentials::from_map([
    ///     ("AWS_ENDPOINT", "http://localhost:9000"),
    ///     ("AWS_ACCESS_KEY_ID", "minioadmin"),
    ///     ("AWS_SECRET_ACCESS_KEY", "minioadmin"),
    /// ]).unwrap();
    /// let store = S3DataStore::new(creds, "my-bucket").unwrap(); // no I/O yet
    /// assert_eq!(store.url("datasets/a.tar"), "s3://my-bucket/datasets/a.tar");
    /// ```
    S3DataStore
}

#[cfg(feature = "s3")]
impl S3DataStore {
    /// A store for `bucket` with `credentials`. Does no I/O.
    pub fn new(credentials: Credentials, bucket: &str) -> Result<S3DataStore> {
        // Timeouts: a connection is given 5 s, a request 20 s (an 8 MiB part needs 0.4 MB/s).
        // Set first: client options set later would reset `allow_http`.
        let client = object_store::ClientOptions::new()
            .with_connect_timeout(std::time::Duration::from_secs(5))
            .with_timeout(std::time::Duration::from_secs(20));
        let mut builder = AmazonS3Builder::new()
            .with_client_options(client)
            .with_bucket_name(bucket)
            .with_region(credentials.region())
            .with_access_key_id(credentials.access_key_id())
            .with_secret_access_key(credentials.secret_access_key());
        if let Some(token) = credentials.session_token() {
            builder = builder.with_token(token);
        }
        if let Some(endpoint) = credentials.endpoint() {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        // Retry transient failures with backoff, but give up on a dead server within about
        // 20 s rather than object_store's default of minutes: no retry starts 20 s after the
        // first attempt.
        let retry = object_store::RetryConfig {
            max_retries: 5,
            retry_timeout: std::time::Duration::from_secs(20),
            ..Default::default()
        };
        let store = builder
            .with_retry(retry)
            .build()
            .map_err(|e| Error::store(format!("s3://{bucket}"), e))?;
        Ok(S3DataStore(Backend::new(
            Arc::new(store),
            Location::S3 {
                bucket: bucket.to_owned(),
                credentials: Box::new(credentials),
            },
        )?))
    }

    /// A store for `bucket`, credentials from the environment (`AWS_*`).
    pub fn from_env(bucket: &str) -> Result<S3DataStore> {
        S3DataStore::new(Credentials::from_env()?, bucket)
    }
}

store_type! {
    /// Shards in a local folder: the embedded default. URLs are absolute paths, so any
    /// `Dataset` reads them directly; shards are named `data--{8 hex}--{000000}.tar` as Python's
    /// `LocalDiskStore` names them.
    ///
    /// ```
    /// use atdata_store::{DataStore, LocalDiskStore};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = LocalDiskStore::new(dir.path()).unwrap();
    /// assert!(store.url("a.tar").ends_with("/a.tar"));
    /// ```
    LocalDiskStore
}

impl LocalDiskStore {
    /// A store rooted at `root`, created if missing.
    pub fn new(root: impl AsRef<FsPath>) -> Result<LocalDiskStore> {
        let root = root.as_ref();
        let io = |e| Error::Io {
            path: root.display().to_string(),
            source: e,
        };
        std::fs::create_dir_all(root).map_err(io)?;
        let root = root.canonicalize().map_err(io)?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| Error::store(root.display().to_string(), e))?;
        Ok(LocalDiskStore(Backend::new(
            Arc::new(store),
            Location::Disk { root },
        )?))
    }
}

store_type! {
    /// Shards in memory, for tests and examples. URLs are `memory:///{key}`.
    ///
    /// ```
    /// let store = atdata_store::MemoryStore::new().unwrap();
    /// ```
    MemoryStore
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Result<MemoryStore> {
        Ok(MemoryStore(Backend::new(
            Arc::new(InMemory::new()),
            Location::Memory,
        )?))
    }
}

/// The environment variable holding a bearer token for `http(s)://` shard URLs (gated
/// datasets). It is sent over `https://` to any host, over plain `http://` only to a loopback
/// host, and never printed.
#[cfg(feature = "http")]
pub const HTTP_TOKEN_VAR: &str = "ATDATA_HTTP_TOKEN";

/// Whether a bearer token may be sent to `origin`: over TLS, or to this machine.
#[cfg(feature = "http")]
fn token_allowed(origin: &str) -> bool {
    let Some(host) = origin.strip_prefix("http://") else {
        return origin.starts_with("https://");
    };
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(host, _)| host),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A read-only store for the `http(s)://host[:port]` `origin`: ranged GETs, retried as S3's
/// are, with the bearer token from [`HTTP_TOKEN_VAR`] where it may be sent.
#[cfg(feature = "http")]
pub(crate) fn http_store(origin: &str) -> Result<Arc<dyn DataStore>> {
    let mut client = object_store::ClientOptions::new()
        .with_allow_http(origin.starts_with("http://"))
        .with_connect_timeout(std::time::Duration::from_secs(5))
        .with_timeout(std::time::Duration::from_secs(20));
    let token = std::env::var(HTTP_TOKEN_VAR).ok().filter(|t| !t.is_empty());
    if let Some(token) = token.filter(|_| token_allowed(origin)) {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| {
                Error::Unsupported(format!("{HTTP_TOKEN_VAR} is not a valid header value"))
            })?;
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        client = client.with_default_headers(headers);
    }
    let retry = object_store::RetryConfig {
        max_retries: 5,
        retry_timeout: std::time::Duration::from_secs(20),
        ..Default::default()
    };
    let store = object_store::http::HttpBuilder::new()
        .with_url(origin)
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .map_err(|e| Error::store(origin, e))?;
    Ok(Arc::new(Backend::new(
        Arc::new(store),
        Location::Http {
            origin: origin.to_owned(),
        },
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "http")]
    #[test]
    fn tokens_go_over_tls_or_to_this_machine_only() {
        for origin in [
            "https://hf.co",
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:80",
        ] {
            assert!(token_allowed(origin), "{origin}");
        }
        for origin in [
            "http://example.com",
            "http://10.0.0.1:80",
            "http://[2001:db8::1]:80",
            "ftp://x",
        ] {
            assert!(!token_allowed(origin), "{origin}");
        }
    }

    /// Reading a many-chunk object synchronously from inside a tokio task must not hang (tokio's
    /// coop budget would otherwise starve the nested waits).
    #[tokio::test(flavor = "current_thread")]
    async fn blocking_reads_inside_a_tokio_task_finish() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDiskStore::new(dir.path()).unwrap();
        let mut upload = store.create_shard("a/b.tar").unwrap();
        upload.write_all(&vec![7u8; 3 << 20]).unwrap();
        upload.finish().unwrap();
        upload.commit().unwrap();
        let mut out = Vec::new();
        store
            .open_shard(upload.url())
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 3 << 20);
    }
}
