//! Nothing lost, nothing orphaned (issue 9): concurrent publishes and inserts, refused
//! in-memory SQLite paths, panicking shard readers, samples checked against their schema,
//! bare-key members, dropped insert futures, and the `atdata` command interrupted by SIGINT or
//! killed, with `atdata gc` cleaning up after it. Each test names the row of the issue it
//! covers.
//!
//! Redis tests use databases 22 and 23.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use atdata::index::Error as IndexError;
use atdata::prelude::*;
use atdata::wds::{Error as WdsError, ShardOpener, TarWriter};
use atdata::{WdsSample, json_to_msgpack};
use serde_json::{Value as Json, json};

use crate::cli::built;
use crate::index::{fresh_db, shard_files, walk as files};

/// A row of the tests' datasets.
#[packable]
#[derive(Debug, Clone, PartialEq)]
struct Item {
    id: i64,
    text: String,
}

/// The same fields, `id` typed otherwise: a schema the data does not follow.
#[packable]
struct Misfit {
    id: String,
    text: String,
}

/// Writes `n` items per shard into `shards` shards `{stem}-{k}.tar` in `dir`; the pattern.
fn write_items(dir: &Path, stem: &str, shards: usize, n: i64) -> String {
    for k in 0..shards {
        let mut w = TarWriter::create(dir.join(format!("{stem}-{k}.tar"))).unwrap();
        for i in 0..n {
            let id = k as i64 * n + i;
            let item = Item {
                id,
                text: format!("item {id}"),
            };
            w.write(&item.as_wds(&format!("{id:06}"))).unwrap();
        }
        w.finish().unwrap().close().unwrap();
    }
    dir.join(format!("{stem}-{{0..{}}}.tar", shards - 1))
        .display()
        .to_string()
}

/// A SQLite index in `dir` writing shards to the local store `dir/store`; that folder.
pub async fn sqlite_with_store(dir: &Path) -> (LocalIndex, PathBuf) {
    let store_dir = dir.join("store");
    let index = LocalIndex::builder()
        .sqlite_path(dir.join("index.db"))
        .data_store(LocalDiskStore::new(&store_dir).unwrap())
        .build()
        .await
        .unwrap();
    (index, store_dir)
}

/// Nothing indexed, no schema published, no file left in the store.
async fn nothing_left(index: &LocalIndex, store_dir: &Path) {
    assert!(index.all_entries().await.unwrap().is_empty(), "an entry");
    assert!(index.list_schemas().await.unwrap().is_empty(), "a schema");
    let left = files(store_dir);
    assert!(left.is_empty(), "left in the store: {left:?}");
}

// ------------------------------------------------------------------ row 1: concurrent publishes

async fn concurrent_publishes(index: LocalIndex) {
    let schema = Item::schema();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (index, schema) = (index.clone(), schema.clone());
            tokio::spawn(async move {
                let description = format!("writer {t}");
                let r = index
                    .publish_schema_of(&schema, None, Some(&description))
                    .await
                    .unwrap();
                (r, description)
            })
        })
        .collect();
    let mut refs = Vec::new();
    for task in tasks {
        refs.push(task.await.unwrap());
    }
    let mut distinct: Vec<_> = refs.iter().map(|(r, _)| r.clone()).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 8, "versions handed out twice: {refs:?}");
    for (r, description) in &refs {
        let stored = index.get_schema(r).await.unwrap();
        assert_eq!(
            stored.record.schema.description.as_deref(),
            Some(description.as_str()),
            "{r} was overwritten"
        );
    }
    assert_eq!(index.list_schemas().await.unwrap().len(), 8);

    // An explicit version: the same record again is a no-op, another one a conflict.
    let r = index.publish_schema::<Item>("5.0.0", None).await.unwrap();
    assert_eq!(
        index.publish_schema::<Item>("5.0.0", None).await.unwrap(),
        r
    );
    let mut other = Misfit::schema();
    other.name = "Item".into();
    let err = index
        .publish_schema_of(&other, "5.0.0", None)
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::SchemaConflict { .. }), "{err}");
    assert_eq!(
        index.get_schema(&r).await.unwrap().record.schema,
        Item::schema()
    );
    index
        .replace_schema_of(&other, "5.0.0", None)
        .await
        .unwrap();
    assert_eq!(index.get_schema(&r).await.unwrap().record.schema, other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_auto_versioned_publishes_get_eight_versions_on_redis() {
    let index = LocalIndex::connect_redis(fresh_db(22).await).await.unwrap();
    concurrent_publishes(index).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_auto_versioned_publishes_get_eight_versions_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let index = LocalIndex::open_sqlite(dir.path().join("index.db"))
        .await
        .unwrap();
    concurrent_publishes(index).await;
}

/// Eight writers insert datasets of eight different shapes under one name, each publishing
/// its schema: every entry decodes by the record it names.
async fn concurrent_inserts_under_one_name(index: LocalIndex, dir: &Path) {
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let index = index.clone();
            let path = dir.join(format!("shape-{t}.tar"));
            tokio::spawn(async move {
                let field = format!("f{t}");
                let payloads: Vec<Vec<u8>> = (0..20)
                    .map(|i| json_to_msgpack(&json!({"id": i, field.clone(): "x"})).unwrap())
                    .collect();
                let mut w = TarWriter::create(&path).unwrap();
                for (i, p) in payloads.iter().enumerate() {
                    w.write(&WdsSample::msgpack(format!("{i:04}"), p.clone()))
                        .unwrap();
                }
                w.finish().unwrap().close().unwrap();
                let schema =
                    atdata::Schema::infer("Shared", payloads.iter().map(Vec::as_slice)).unwrap();
                let ds =
                    Dataset::<DynamicSample>::with_schema(path.to_str().unwrap(), schema).unwrap();
                let options = InsertOptions {
                    publish_schema: true,
                    ..Default::default()
                };
                let entry = index
                    .insert_dataset_with(&ds, "shared", options)
                    .await
                    .unwrap();
                (field, entry)
            })
        })
        .collect();
    let mut refs = Vec::new();
    for task in tasks {
        let (field, entry) = task.await.unwrap();
        let schema = index.decode_schema(&entry.schema_ref).await.unwrap();
        assert!(
            schema.field(&field).is_some(),
            "{} names a record of other data",
            entry.schema_ref
        );
        assert_eq!(entry.data_urls.len(), 1);
        let ds = Dataset::<DynamicSample>::with_schema(&entry.data_urls[0], schema).unwrap();
        let decoded = ds.samples().unwrap().collect::<Result<Vec<_>, _>>();
        assert_eq!(decoded.unwrap().len(), 20, "{}", entry.schema_ref);
        refs.push(entry.schema_ref);
    }
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_inserts_under_one_name_all_decode_on_redis() {
    let dir = tempfile::tempdir().unwrap();
    let index = LocalIndex::builder()
        .redis_url(fresh_db(23).await)
        .data_store(LocalDiskStore::new(dir.path().join("store")).unwrap())
        .build()
        .await
        .unwrap();
    concurrent_inserts_under_one_name(index, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_inserts_under_one_name_all_decode_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = sqlite_with_store(dir.path()).await;
    concurrent_inserts_under_one_name(index, dir.path()).await;
}

// ------------------------------------------------------------------ row 2: SQLite paths

#[tokio::test]
async fn an_empty_or_in_memory_sqlite_path_is_refused() {
    for path in ["", ":memory:", "file::memory:?cache=shared"] {
        let err = LocalIndex::open_sqlite(path).await.unwrap_err();
        assert!(matches!(err, IndexError::Invalid(_)), "{path:?}: {err}");
        assert!(err.to_string().contains("lost"), "{path:?}: {err}");
    }
}

// ------------------------------------------------------------------ row 3: panics in readers

/// Opens local shards, panicking when opening a shard whose name contains `open`, or midway
/// through reading one whose name contains `read`.
#[derive(Clone)]
struct PanickingOpener {
    open: &'static str,
    read: &'static str,
}

struct PanicAfter {
    inner: Box<dyn Read + Send>,
    left: usize,
}

impl Read for PanicAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        assert!(self.left > 0, "a reader that breaks down");
        let len = buf.len().min(self.left);
        let n = self.inner.read(&mut buf[..len])?;
        self.left -= n;
        Ok(n)
    }
}

impl ShardOpener for PanickingOpener {
    fn open(&self, url: &str) -> atdata::wds::Result<Box<dyn Read + Send>> {
        assert!(!url.contains(self.open), "an opener that breaks down");
        let inner = atdata::wds::LocalOpener.open(url)?;
        if url.contains(self.read) {
            return Ok(Box::new(PanicAfter { inner, left: 4096 }));
        }
        Ok(inner)
    }
}

#[test]
fn a_panicking_opener_or_reader_is_an_error_naming_the_shard_not_a_short_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = write_items(dir.path(), "items", 3, 10);
    let ds = atdata::wds::Dataset::<Item>::new(&pattern)
        .unwrap()
        .with_opener(PanickingOpener {
            open: "items-1",
            read: "items-2",
        });
    let results: Vec<_> = ds.samples().unwrap().collect();
    let errors: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| {
            assert!(matches!(e, WdsError::ReaderPanicked { .. }), "{e}");
            e.to_string()
        })
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("items-1.tar") && errors[0].contains("opener"));
    assert!(errors[1].contains("items-2.tar") && errors[1].contains("breaks down"));
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert!((10..20).contains(&ok), "{ok} samples before the panics");
}

#[tokio::test]
async fn an_insert_whose_reader_panics_indexes_nothing_and_leaves_no_shard() {
    let dir = tempfile::tempdir().unwrap();
    let (index, store_dir) = sqlite_with_store(dir.path()).await;
    let pattern = write_items(dir.path(), "items", 3, 10);
    let ds = atdata::wds::Dataset::<Item>::new(&pattern)
        .unwrap()
        .with_opener(PanickingOpener {
            open: "nothing",
            read: "items-2",
        });
    let err = index
        .insert_dataset(&ds, "items", "items")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    index.shutdown().await.unwrap();
    nothing_left(&index, &store_dir).await;
}

// ------------------------------------------------------------------ rows 5 and 6: checked inserts

#[tokio::test]
async fn an_insert_under_a_schema_its_samples_do_not_follow_fails_naming_key_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let (index, store_dir) = sqlite_with_store(dir.path()).await;
    let pattern = write_items(dir.path(), "items", 2, 5);
    // Typed: the samples are Items, the dataset claims Misfits.
    let ds = Dataset::<Misfit>::new(&pattern).unwrap();
    let err = index
        .insert_dataset(&ds, "items", "items")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("000000") && text.contains("id"), "{text}");
    // Dynamic, publishing the schema in the same commit: nothing published either.
    let ds = Dataset::<DynamicSample>::with_schema(&pattern, Misfit::schema()).unwrap();
    let options = InsertOptions {
        publish_schema: true,
        ..Default::default()
    };
    let err = index
        .insert_dataset_with(&ds, "items", options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("id"), "{err}");
    index.shutdown().await.unwrap();
    nothing_left(&index, &store_dir).await;

    // The same data under its own schema goes in, with the schema published with it.
    let ds = Dataset::<DynamicSample>::with_schema(&pattern, Item::schema()).unwrap();
    let options = InsertOptions {
        publish_schema: true,
        ..Default::default()
    };
    let entry = index
        .insert_dataset_with(&ds, "items", options)
        .await
        .unwrap();
    assert!(
        entry.schema_ref.ends_with("Item@1.0.0"),
        "{}",
        entry.schema_ref
    );
    assert_eq!(index.list_schemas().await.unwrap().len(), 1);
}

// ------------------------------------------------------------------ row 7: bare-key members

#[test]
fn members_named_by_the_bare_key_are_missing_their_msgpack_member_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.tar");
    let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for i in 0..3i64 {
        let payload = Item {
            id: i,
            text: "x".into(),
        }
        .packed()
        .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(payload.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("{i:06}"), &payload[..])
            .unwrap();
    }
    tar.into_inner().unwrap();
    let ds = Dataset::<Item>::new(path.to_str().unwrap()).unwrap();
    let results: Vec<_> = ds.samples().unwrap().collect();
    assert_eq!(results.len(), 3, "every bare member is reported");
    for (i, r) in results.iter().enumerate() {
        let err = r.as_ref().unwrap_err();
        assert!(
            matches!(err, WdsError::MissingMember { key, shard, .. }
                if *key == format!("{i:06}") && shard.ends_with("bare.tar")),
            "{err}"
        );
    }
}

// ------------------------------------------------------------------ cancellation

/// `n` blobs of 1 MiB in one shard: large enough that writing it takes a while.
#[packable]
struct Blob {
    id: i64,
    data: Vec<u8>,
}

/// `atdata insert` of the blobs at `source` in 16 MB shards.
pub fn blob_insert(source: &str) -> [&str; 6] {
    ["insert", source, "--name", "blobs", "--maxsize", "16000000"]
}

pub fn write_blobs(dir: &Path, n: i64) -> String {
    let path = dir.join("blobs.tar");
    let mut w = TarWriter::create(&path).unwrap();
    for id in 0..n {
        let blob = Blob {
            id,
            data: vec![id as u8; 1 << 20],
        };
        w.write(&blob.as_wds(&format!("b{id:05}"))).unwrap();
    }
    w.finish().unwrap().close().unwrap();
    path.display().to_string()
}

/// Drops an insert of 300 MiB of blobs in one shard after 400 ms (copied shard for shard, or
/// re-cut at `maxsize`), then checks nothing is left and a rerun succeeds.
async fn dropped_insert(maxsize: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (index, store_dir) = sqlite_with_store(dir.path()).await;
    let path = write_blobs(dir.path(), 300);
    let ds = Dataset::<Blob>::new(&path).unwrap();
    let options = || InsertOptions {
        maxsize,
        ..Default::default()
    };
    let cut = tokio::time::timeout(
        Duration::from_millis(400),
        index.insert_dataset_with(&ds, "blobs", options()),
    )
    .await;
    assert!(
        cut.is_err(),
        "the insert ended before it was dropped: make it larger"
    );
    index.shutdown().await.unwrap();
    nothing_left(&index, &store_dir).await;
    let entry = index
        .insert_dataset_with(&ds, "blobs", options())
        .await
        .unwrap();
    let blobs = shard_files(&store_dir);
    assert_eq!(blobs.len(), entry.data_urls.len(), "{blobs:?}");
    if maxsize == 0 {
        assert_eq!(entry.data_urls.len(), 1, "copied shard for shard");
    } else {
        assert!(entry.data_urls.len() > 10, "re-cut at 16 MiB");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_insert_future_stops_and_leaves_nothing_and_a_rerun_succeeds() {
    dropped_insert(16 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_shard_for_shard_insert_leaves_nothing_and_a_rerun_succeeds() {
    dropped_insert(0).await;
}

// ------------------------------------------------------------------ the command, interrupted

/// An `atdata` process in its own home, on a SQLite index and a local store there.
pub struct Atdata {
    pub home: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Atdata {
    pub fn new() -> Atdata {
        let home = tempfile::tempdir().unwrap();
        let env = vec![
            ("HOME".into(), home.path().display().to_string()),
            (
                "ATDATA_INDEX".into(),
                format!("sqlite:{}", home.path().join("index.db").display()),
            ),
            (
                "ATDATA_STORE_DIR".into(),
                home.path().join("store").display().to_string(),
            ),
        ];
        Atdata { home, env }
    }

    pub fn store(&self) -> PathBuf {
        self.home.path().join("store")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(built("atdata"));
        crate::services::scrub(&mut cmd)
            .args(args)
            .current_dir(self.home.path())
            .envs(self.env.iter().cloned());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("atdata runs")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "atdata {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Json {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Starts `args`, waits until `ready()` (the insert is writing: polled, 90 s at most, so
    /// a loaded machine does not make the test signal too early), sends `signal` (`INT`,
    /// `TERM`, `KILL`); the child.
    pub fn interrupt(&self, args: &[&str], ready: impl Fn() -> bool, signal: &str) -> Child {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("atdata starts");
        let deadline = Instant::now() + Duration::from_secs(90);
        while !ready() {
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "the insert never got to writing before the signal: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child
    }

    /// Whether a multipart write to the local store is under way (a `name#N` staging file).
    pub fn staging(&self) -> bool {
        files(&self.store())
            .iter()
            .any(|p| p.to_string_lossy().contains('#'))
    }

    /// Entries and schema records, through the command.
    pub fn is_empty(&self) -> bool {
        self.json(&["ls", "--json"]) == json!([])
            && self.json(&["schema", "list", "--json"]) == json!([])
    }
}

/// Waits for `child` (at most `limit`); its output.
pub fn finish(child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    let id = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if started.elapsed() > limit {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            panic!("atdata did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter.join().unwrap()
}

#[test]
fn sigint_and_sigterm_mid_insert_exit_130_and_143_leaving_nothing_and_a_rerun_succeeds() {
    let cli = Atdata::new();
    let source = write_blobs(cli.home.path(), 300);
    let insert = blob_insert(&source);
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let child = cli.interrupt(&insert, || cli.staging(), signal);
        let out = finish(child, Duration::from_secs(90));
        assert_eq!(
            out.status.code(),
            Some(code),
            "{signal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let left = files(&cli.store());
        assert!(left.is_empty(), "{signal}: left in the store: {left:?}");
        assert!(cli.is_empty(), "{signal}: something was indexed");
    }
    cli.ok(&insert);
    let entry = cli.json(&["get", "blobs", "--json"]);
    assert_eq!(
        shard_files(&cli.store()).len(),
        entry["data_urls"].as_array().unwrap().len()
    );
}

#[test]
fn the_sqlite_path_of_an_unset_variable_is_an_error_and_nothing_is_inserted() {
    let cli = Atdata::new();
    let source = write_items(cli.home.path(), "items", 1, 3);
    for spec in ["sqlite:", "sqlite::memory:"] {
        let out = cli.run(&["insert", &source, "--name", "items", "--index", spec]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{spec}: {stderr}");
        assert!(stderr.contains("lost"), "{spec}: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("inserted"));
        assert!(files(&cli.store()).is_empty(), "{spec}: shards written");
    }
}

#[test]
fn a_cli_insert_that_contradicts_its_schema_fails_naming_key_and_field_and_publishes_nothing() {
    let cli = Atdata::new();
    // 150 samples: `id` is an integer in the first 120 (all inference sees), a string after.
    let path = cli.home.path().join("drift.tar");
    let mut w = TarWriter::create(&path).unwrap();
    for i in 0..150 {
        let id = if i < 120 {
            json!(i)
        } else {
            json!(format!("#{i}"))
        };
        let payload = json_to_msgpack(&json!({"id": id, "text": "t"})).unwrap();
        w.write(&WdsSample::msgpack(format!("{i:06}"), payload))
            .unwrap();
    }
    w.finish().unwrap().close().unwrap();
    let source = path.display().to_string();
    let out = cli.run(&["insert", &source, "--name", "drift"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("000120") && stderr.contains("id"),
        "{stderr}"
    );
    assert!(cli.is_empty(), "a failed insert left an entry or a schema");
    assert!(files(&cli.store()).is_empty());

    // --schema naming a record the samples follow only up to sample 120.
    let items = write_items(cli.home.path(), "items", 1, 3);
    cli.ok(&["insert", &items, "--name", "items"]);
    let published = cli.json(&["schema", "list", "--json"]);
    let items_ref = published[0]["$ref"].as_str().unwrap().to_owned();
    let out = cli.run(&["insert", &source, "--name", "drift", "--schema", &items_ref]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("000120"));
    assert_eq!(cli.json(&["ls", "--json"]).as_array().unwrap().len(), 1);
}

#[test]
fn eight_concurrent_cli_inserts_under_one_name_publish_eight_versions_that_all_decode() {
    let cli = Atdata::new();
    let children: Vec<_> = (0..8)
        .map(|t| {
            let path = cli.home.path().join(format!("shape-{t}.tar"));
            let mut w = TarWriter::create(&path).unwrap();
            for i in 0..10 {
                let payload = json_to_msgpack(&json!({"id": i, format!("f{t}"): t})).unwrap();
                w.write(&WdsSample::msgpack(format!("{i:04}"), payload))
                    .unwrap();
            }
            w.finish().unwrap().close().unwrap();
            let source = path.display().to_string();
            cli.command(&["insert", &source, "--name", "shared", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut refs = Vec::new();
    for child in children {
        let out = finish(child, Duration::from_secs(120));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let entry: Json = serde_json::from_slice(&out.stdout).unwrap();
        let schema_ref = entry["schema_ref"].as_str().unwrap().to_owned();
        let url = entry["data_urls"][0].as_str().unwrap();
        let lines = cli.ok(&["cat", url, "--schema", &schema_ref]);
        assert_eq!(lines.lines().count(), 10, "{schema_ref}");
        refs.push(schema_ref);
    }
    refs.sort();
    refs.dedup();
    assert_eq!(refs.len(), 8, "{refs:?}");
    assert_eq!(
        cli.json(&["schema", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        8
    );
}

// ------------------------------------------------------------------ gc on real leftovers

#[test]
fn gc_removes_what_a_killed_insert_left_and_never_what_an_entry_references() {
    let cli = Atdata::new();
    let items = write_items(cli.home.path(), "items", 2, 5);
    cli.ok(&["insert", &items, "--name", "kept", "--maxcount", "5"]);
    assert_eq!(shard_files(&cli.store()).len(), 2);
    // Each shard's sidecar beside it is part of it.
    let kept = files(&cli.store());
    assert_eq!(kept.len(), 4);

    // A SIGKILL mid-insert: staging files (`name.tar#N`) stay behind.
    let source = write_blobs(cli.home.path(), 300);
    let insert = blob_insert(&source);
    let child = cli.interrupt(&insert, || cli.staging(), "KILL");
    finish(child, Duration::from_secs(30));
    let staging: Vec<_> = files(&cli.store())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains('#'))
        .collect();
    assert!(
        !staging.is_empty(),
        "the kill left no staging file: kill earlier"
    );
    // And an object no entry references, as a crash between commit and index would leave.
    let stray = cli.store().join("blobs/data--deadbeef--000000.tar");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"stray").unwrap();

    // Everything is fresh: the default age keeps it all.
    let fresh = cli.json(&["gc", "--json"]);
    assert_eq!(fresh["found"], json!([]), "{fresh}");
    // Listed, not removed, without --apply.
    let listed = cli.json(&["gc", "--older-than", "0s", "--json"]);
    let found: Vec<&str> = listed["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["url"].as_str().unwrap())
        .collect();
    assert_eq!(found.len(), staging.len() + 1, "{listed}");
    assert!(
        found
            .iter()
            .any(|u| u.ends_with("data--deadbeef--000000.tar"))
    );
    assert_eq!(listed["kept_referenced"], json!(4), "{listed}");
    assert!(stray.exists() && staging.iter().all(|p| p.exists()));
    // Applied.
    let applied = cli.json(&["gc", "--older-than", "0s", "--apply", "--json"]);
    assert!(
        applied["found"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["removed"] == json!(true)),
        "{applied}"
    );
    let mut left = files(&cli.store());
    left.sort();
    let mut expected = kept.clone();
    expected.sort();
    assert_eq!(left, expected);
    assert!(cli.ok(&["verify", "kept"]).contains("ok"));
}

// ------------------------------------------------------------------ the suite spares the user's servers

#[test]
fn the_suite_accepts_only_loopback_hosts() {
    use crate::services::require_loopback;
    for ok in [
        "redis://127.0.0.1:6379",
        "redis://:pw@localhost:6379/3",
        "http://[::1]:9000",
        "http://127.1.2.3",
    ] {
        require_loopback("X", ok);
    }
    for bad in [
        "redis://10.0.0.1:6379",
        "redis://user:pw@redis.example.com/0",
        "http://192.168.1.5:9000",
        "http://127.0.0.1.example.com:9000",
        "https://s3.amazonaws.com",
    ] {
        let refused = std::panic::catch_unwind(|| require_loopback("X", bad));
        assert!(refused.is_err(), "{bad} was accepted");
    }
}

/// A database holding keys the suite did not write is refused, and left as it was.
#[tokio::test]
async fn the_suite_never_flushes_a_redis_database_with_data_it_did_not_write() {
    let url = format!("{}/24", crate::services::redis_base());
    let mut conn = crate::index::raw_redis(&url).await;
    // This test's own stand-in for somebody else's data (removed at the end).
    let () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
    let () = redis::cmd("SET")
        .arg("someone:else")
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    let refused = tokio::spawn(fresh_db(24)).await;
    assert!(refused.is_err(), "flushed a database it did not mark");
    let kept: Option<String> = redis::cmd("GET")
        .arg("someone:else")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("x"));
    // Once marked (as fresh_db marks it), it is the suite's own.
    let () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
    fresh_db(24).await;
    fresh_db(24).await;
}

// ------------------------------------------------------------------ issue 10: listings, timeouts, the command's output

/// One key of the wrong type, one hash without its fields and one broken schema record among
/// good ones: each is reported naming its key, and the rest are still listed.
#[tokio::test]
async fn bad_redis_items_are_reported_per_item_and_the_rest_still_listed() {
    let url = fresh_db(25).await;
    let index = LocalIndex::connect_redis(&url).await.unwrap();
    for n in 0..3 {
        let ds = Dataset::<Item>::new(format!("good-{n}.tar")).unwrap();
        index
            .add_entry(&ds, format!("good-{n}"), None, None)
            .await
            .unwrap();
    }
    let mut raw = crate::index::raw_redis(&url).await;
    let () = redis::cmd("SET")
        .arg("LocalDatasetEntry:bafywrongtype")
        .arg("a string, not a hash")
        .query_async(&mut raw)
        .await
        .unwrap();
    let () = redis::cmd("HSET")
        .arg("LocalDatasetEntry:bafyhalf")
        .arg("name")
        .arg("half")
        .query_async(&mut raw)
        .await
        .unwrap();
    let () = redis::cmd("SET")
        .arg("LocalSchema:Broken@1.0.0")
        .arg("{")
        .query_async(&mut raw)
        .await
        .unwrap();

    let listed: Vec<_> = futures::StreamExt::collect(index.entries()).await;
    let good: Vec<_> = listed.iter().filter_map(|e| e.as_ref().ok()).collect();
    assert_eq!(good.len(), 3, "{listed:?}");
    let mut bad: Vec<String> = listed
        .iter()
        .filter_map(|e| match e {
            Err(IndexError::Corrupt { key, .. }) => Some(key.clone()),
            Err(other) => panic!("not a per-item error: {other}"),
            Ok(_) => None,
        })
        .collect();
    bad.sort();
    assert_eq!(
        bad,
        [
            "LocalDatasetEntry:bafyhalf",
            "LocalDatasetEntry:bafywrongtype"
        ]
    );
    // A by-name lookup that falls back to a scan passes over them.
    assert!(matches!(
        index.get_entry_by_name("nothing").await,
        Err(IndexError::NotFound { .. })
    ));
    let schemas = index.list_schemas().await.unwrap();
    assert_eq!(schemas.iter().filter(|s| s.is_ok()).count(), 1);
    assert!(schemas.iter().any(
        |s| matches!(s, Err(IndexError::Corrupt { key, .. }) if key == "LocalSchema:Broken@1.0.0")
    ));

    // The command lists the good ones and reports each bad one on its own line.
    let cli = Atdata::new();
    let out = cli.run(&["ls", "--index", &url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error: ")).count(),
        2,
        "{stderr}"
    );
    let out = cli.run(&["schema", "list", "--index", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LocalSchema:Broken@1.0.0"));
}

#[test]
fn an_s3_endpoint_that_never_answers_fails_within_seconds() {
    // A server of this test's own that accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..8 {
            match listener.accept() {
                Ok((conn, _)) => held.push(conn),
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let credentials = Credentials::from_map([
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}").as_str()),
        ("AWS_ACCESS_KEY_ID", "k"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
    ])
    .unwrap();
    let store = S3DataStore::new(credentials, "silent").unwrap();
    let started = Instant::now();
    let mut reader = store.open_shard("s3://silent/a.tar").unwrap();
    let mut buf = [0u8; 16];
    let err = reader.read(&mut buf).unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(40),
        "failed only after {took:?}: {err}"
    );
    assert!(err.to_string().contains("s3://silent/a.tar"), "{err}");
    drop(hold);
}

#[test]
fn inspect_counts_a_shard_listed_twice_twice_and_cat_shows_nan_apart_from_nil() {
    let cli = Atdata::new();
    let path = cli.home.path().join("nan.tar");
    let mut w = TarWriter::create(&path).unwrap();
    let mut nan = vec![0x82, 0xa1, b'x', 0xcb];
    nan.extend_from_slice(&f64::NAN.to_be_bytes());
    nan.extend_from_slice(&[0xa1, b'y', 0xc0]);
    w.write(&WdsSample::msgpack("k0", nan)).unwrap();
    w.finish().unwrap().close().unwrap();
    let shard = path.display().to_string();
    let twice = format!("{{{shard},{shard}}}");
    let inspected = cli.json(&["inspect", &twice, "--json"]);
    let counts: Vec<_> = inspected["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["samples"].clone())
        .collect();
    assert_eq!(counts, [json!(1), json!(1)], "{inspected}");
    let line = cli.ok(&["cat", &shard]);
    let sample: Json = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(sample["x"], "NaN", "{line}");
    assert_eq!(sample["y"], Json::Null, "{line}");
}
