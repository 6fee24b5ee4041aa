//! Remote reads: S3 shards streamed through a small read window, `http(s)://` shards from a
//! file server the test starts on loopback (a gated one in a child process with the token),
//! and the local shard cache: checked copies, eviction, a second epoch with the store's
//! shards gone, `clear`, and two processes sharing one cache.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use atdata::prelude::*;
use atdata::wds::{self, CachedOpener, ShardCache, ShardOpener, TarWriter};
use atdata_store::{DataStoreExt, StoreOpener, WriteOptions};

use crate::http::FileServer;
use crate::stores::s3_store;

#[packable]
#[derive(Debug, Clone, PartialEq)]
struct Chunk {
    id: i64,
    data: Vec<u8>,
}

/// The bytes of sample `id`: one in 25 is 300 KB (more than one small window's range).
fn data_of(id: i64) -> Vec<u8> {
    let len = if id % 25 == 3 {
        300_000
    } else {
        5_000 + id as usize % 97
    };
    (0..len).map(|i| (i as i64 * 7 + id) as u8).collect()
}

/// Shards `data-00000{i}.tar` (with sidecars) of `counts[i]` samples under `dir`; ids run on
/// across shards. The brace pattern of their names.
fn write_shards(dir: &Path, counts: &[usize]) -> String {
    let mut id = 0;
    for (i, &n) in counts.iter().enumerate() {
        let mut w = TarWriter::create(dir.join(format!("data-{i:06}.tar"))).unwrap();
        for _ in 0..n {
            w.write(
                &Chunk {
                    id,
                    data: data_of(id),
                }
                .as_wds(&format!("s{id:06}")),
            )
            .unwrap();
            id += 1;
        }
        w.finish().unwrap().close().unwrap();
    }
    format!("data-{{000000..{:06}}}.tar", counts.len() - 1)
}

/// Every sample's id, checking its bytes.
fn checked_ids<O: ShardOpener>(ds: &wds::Dataset<Chunk, O>) -> Vec<i64> {
    ds.samples()
        .unwrap()
        .map(|s| {
            let s = s.unwrap();
            assert_eq!(s.data, data_of(s.id), "sample {} is its bytes", s.id);
            s.id
        })
        .collect()
}

fn tmp_files(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_shards_stream_through_a_small_window_as_they_read_locally() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = write_shards(dir.path(), &[60, 1, 45]);
    let local = wds::Dataset::<Chunk>::new(dir.path().join(&pattern)).unwrap();
    let prefix = format!("atdata-test/remote/window/{}", std::process::id());
    let store = s3_store();
    let written = store
        .write_shards(&local, &prefix, WriteOptions::default())
        .await
        .unwrap();
    let url = format!("{{{}}}", written.urls().join(","));
    let expected: Vec<i64> = (0..106).collect();
    let reads = tokio::task::spawn_blocking(move || {
        // 256 KiB: 64 KiB ranges, four in flight; a 300 KB sample spans five of them.
        let mut out = Vec::new();
        for window in [256 << 10, 32 << 20] {
            let opener = StoreOpener::new(s3_store().with_read_window(window));
            let ds = wds::Dataset::<Chunk>::new(&url)
                .unwrap()
                .with_opener(opener);
            let ids = checked_ids(&ds);
            let big = ds.get(53).unwrap(); // a ranged read over five ranges
            let batches: Vec<i64> = ds
                .ordered(7)
                .unwrap()
                .flat_map(|b| b.unwrap().id.clone())
                .collect();
            out.push((ids, big, batches));
        }
        out
    })
    .await
    .unwrap();
    for (ids, big, batches) in reads {
        assert_eq!(ids, expected);
        assert_eq!(batches, expected);
        assert_eq!((big.id, big.data.len()), (53, 300_000));
        assert_eq!(big.data, data_of(53));
    }
    for url in written.urls() {
        store.delete_shard(url).await.unwrap();
    }
}

#[test]
fn http_shards_read_like_local_files() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = write_shards(dir.path(), &[30, 0, 27]);
    let server = FileServer::start(dir.path().to_owned(), None);
    let ds = atdata::Dataset::<Chunk>::new(server.url(&pattern)).unwrap();
    let expected: Vec<i64> = (0..57).collect();
    assert_eq!(checked_ids(&ds), expected);
    assert_eq!(ds.len().unwrap(), 57); // sidecars over http
    let got = ds.get(28).unwrap(); // a 300 KB sample: a ranged GET
    assert_eq!(got.data, data_of(28));
    let ordered: Vec<i64> = ds
        .ordered(8)
        .unwrap()
        .flat_map(|b| b.unwrap().id.clone())
        .collect();
    assert_eq!(ordered, expected);
    let loader = ds
        .loader(LoaderOptions {
            global_batch: 19, // 57 = 3 x 19: no short last batch to drop
            seed: Some(3),
            partitions: 4,
            ..Default::default()
        })
        .unwrap();
    let mut seen: Vec<i64> = loader.flat_map(|b| b.unwrap().id.clone()).collect();
    seen.sort();
    assert_eq!(seen.len(), 57);
    assert_eq!(seen, expected);

    let missing = atdata::Dataset::<Chunk>::new(server.url("nope.tar")).unwrap();
    let err = missing.samples().unwrap().next().unwrap().unwrap_err();
    assert!(err.to_string().contains("nope.tar"), "{err}");
    assert!(
        matches!(&err, wds::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
    assert!(
        server.authorizations().iter().all(String::is_empty),
        "no token is sent when none is set"
    );
}

/// The gated server's token; it must never appear in anything the reader prints.
const TOKEN: &str = "tok-3f9a7c1e-never-printed";

#[test]
fn a_gated_http_dataset_reads_with_the_token_and_fails_clearly_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = write_shards(dir.path(), &[20, 9]);
    let server = FileServer::start(dir.path().to_owned(), Some(TOKEN));
    let child = |token: Option<&str>| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--ignored",
            "--exact",
            "remote::child_reads_a_gated_http_dataset",
        ])
        .args(["--nocapture", "--test-threads", "1"])
        .env("ATDATA_TEST_HTTP_DATASET", server.url(&pattern))
        .env_remove("ATDATA_HTTP_TOKEN");
        if let Some(token) = token {
            cmd.env("ATDATA_HTTP_TOKEN", token);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(TOKEN), "the token was printed: {text}");
        (out.status.success(), text)
    };
    let (ok, text) = child(Some(TOKEN));
    assert!(ok, "{text}");
    assert!(text.contains("read 29 samples"), "{text}");
    let bearer = format!("Bearer {TOKEN}");
    assert!(server.authorizations().iter().all(|a| *a == bearer));

    let (ok, text) = child(None);
    assert!(!ok, "a gated dataset without the token fails");
    assert!(
        text.contains("401") || text.contains("nauthenticated"),
        "{text}"
    );
}

#[test]
#[ignore = "run in a child process by the gated http test"]
fn child_reads_a_gated_http_dataset() {
    let url = std::env::var("ATDATA_TEST_HTTP_DATASET").unwrap();
    let ds = atdata::Dataset::<Chunk>::new(&url).unwrap();
    println!("{ds:?}");
    match ds.samples().unwrap().collect::<Result<Vec<_>, _>>() {
        Ok(samples) => println!("read {} samples", samples.len()),
        Err(e) => panic!("{e} / {e:?}"),
    }
}

/// An SQLite index whose data store is the test bucket, and `counts` shards inserted as
/// `name` (with checksums); the entry.
async fn indexed(dir: &Path, counts: &[usize], name: &str) -> (LocalIndex, LocalDatasetEntry) {
    let pattern = write_shards(dir, counts);
    let index = LocalIndex::builder()
        .sqlite_path(dir.join("index.db"))
        .data_store(s3_store())
        .build()
        .await
        .unwrap();
    let local = atdata::Dataset::<Chunk>::new(dir.join(pattern)).unwrap();
    let prefix = format!("atdata-test/remote/cache/{}/{name}", std::process::id());
    let entry = index.insert_dataset(&local, name, &prefix).await.unwrap();
    assert!(entry.data_urls.iter().all(|u| u.starts_with("s3://")));
    assert_eq!(entry.checksums().len(), counts.len());
    (index, entry)
}

async fn delete_shards(entry: &LocalDatasetEntry) {
    let store = s3_store();
    for url in &entry.data_urls {
        store.delete_shard(url).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_epoch_reads_checked_copies_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (index, entry) = indexed(dir.path(), &[40, 35, 50], "cached").await;
    let cache_dir = dir.path().join("cache");
    let cache = ShardCache::new(&cache_dir, 1 << 30).unwrap();
    let ds = atdata::open_cached_dataset::<Chunk>(&index, "cached", Some(cache.clone()))
        .await
        .unwrap();
    let expected: Vec<i64> = (0..125).collect();
    let first = tokio::task::spawn_blocking({
        let ds = ds.clone();
        move || (checked_ids(&ds), ds.get(78).unwrap())
    })
    .await
    .unwrap();
    assert_eq!(first.0, expected);
    assert_eq!(first.1.data, data_of(78));
    let names: BTreeSet<String> = cache.list().unwrap().into_iter().map(|c| c.name).collect();
    let mut wanted = BTreeSet::new();
    for (_, sum) in entry.checksums() {
        wanted.insert(format!("{sum}.tar"));
    }
    assert!(wanted.is_subset(&names), "{names:?} holds every shard");
    assert!(
        names.iter().any(|n| n.ends_with(".idx")),
        "a sidecar read for random access is kept too: {names:?}"
    );
    assert!(tmp_files(&cache_dir).is_empty());

    // The store's shards gone, the next epoch still reads, from the cache alone.
    delete_shards(&entry).await;
    let again = atdata::open_cached_dataset::<Chunk>(&index, "cached", Some(cache.clone()))
        .await
        .unwrap();
    let second = tokio::task::spawn_blocking({
        let again = again.clone();
        move || (checked_ids(&again), again.get(78).unwrap())
    })
    .await
    .unwrap();
    assert_eq!(second.0, expected);
    assert_eq!(second.1, first.1);

    // Cleared, nothing is left to read: the copies were what the second epoch read.
    assert!(cache.clear().unwrap() > 0);
    assert!(cache.list().unwrap().is_empty());
    let err = tokio::task::spawn_blocking(move || again.samples().unwrap().next().unwrap())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, wds::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_to_its_limit_and_never_keeps_a_shard_that_fails_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let (index, entry) = indexed(dir.path(), &[30, 30, 30], "limited").await;
    let sizes: Vec<u64> = entry
        .shard_facts()
        .iter()
        .map(|f| f.1.bytes.unwrap())
        .collect();
    let limit = sizes[0] + sizes[1] + sizes[2] / 2; // room for two shards
    let cache_dir = dir.path().join("cache");
    let cache = ShardCache::new(&cache_dir, limit).unwrap();
    let ds = atdata::open_cached_dataset::<Chunk>(&index, "limited", Some(cache.clone()))
        .await
        .unwrap();
    let ids = tokio::task::spawn_blocking(move || (checked_ids(&ds), checked_ids(&ds)))
        .await
        .unwrap();
    let expected: Vec<i64> = (0..90).collect();
    assert_eq!((ids.0, ids.1), (expected.clone(), expected));
    let copies = cache.list().unwrap();
    let held: u64 = copies.iter().map(|c| c.bytes).sum();
    assert!(held <= limit, "{held} bytes held over the limit {limit}");
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(tmp_files(&cache_dir).is_empty());

    // A checksum the shard does not have: the read ends with an error, nothing is kept.
    let wrong = ShardCache::new(dir.path().join("wrong"), 1 << 30).unwrap();
    let url = entry.data_urls[0].clone();
    let opener = CachedOpener::new(
        StoreOpener::new(s3_store()),
        wrong.clone(),
        [(url.clone(), "ab".repeat(32))],
    );
    let ds = wds::Dataset::<Chunk>::new(&url)
        .unwrap()
        .with_opener(opener);
    let last = tokio::task::spawn_blocking(move || ds.samples().unwrap().last().unwrap())
        .await
        .unwrap();
    let err = last.unwrap_err();
    assert!(
        err.to_string().contains("does not match its checksum"),
        "{err}"
    );
    assert!(wrong.list().unwrap().is_empty());
    assert!(tmp_files(&dir.path().join("wrong")).is_empty());
    delete_shards(&entry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_cache_without_losing_a_shard() {
    let dir = tempfile::tempdir().unwrap();
    let (_index, entry) = indexed(dir.path(), &[25, 25, 25, 25], "shared").await;
    let sizes: Vec<u64> = entry
        .shard_facts()
        .iter()
        .map(|f| f.1.bytes.unwrap())
        .collect();
    // Room for two of four shards: both processes evict while the other reads.
    let limit = sizes[0] + sizes[1] + sizes[2] / 2;
    let cache_dir = dir.path().join("cache");
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "remote::child_reads_through_a_shared_cache",
                ])
                .args(["--nocapture", "--test-threads", "1"])
                .env("ATDATA_TEST_CACHE_INDEX", dir.path().join("index.db"))
                .env("ATDATA_CACHE_DIR", &cache_dir)
                .env("ATDATA_CACHE_LIMIT", limit.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(text.contains("3 epochs of 100 samples"), "{text}");
    }
    let cache = ShardCache::new(&cache_dir, limit).unwrap();
    let held: u64 = cache.list().unwrap().iter().map(|c| c.bytes).sum();
    assert!(held <= limit, "{held} over {limit}");
    assert!(tmp_files(&cache_dir).is_empty());
    // Eviction deleted cache copies only: every shard is still in the store, whole.
    let url = format!("{{{}}}", entry.data_urls.join(","));
    let ids = tokio::task::spawn_blocking(move || {
        let ds = wds::Dataset::<Chunk>::new(&url)
            .unwrap()
            .with_opener(StoreOpener::new(s3_store()));
        checked_ids(&ds)
    })
    .await
    .unwrap();
    assert_eq!(ids, (0..100).collect::<Vec<_>>());
    delete_shards(&entry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run in child processes by the shared cache test"]
async fn child_reads_through_a_shared_cache() {
    let index = LocalIndex::builder()
        .sqlite_path(std::env::var("ATDATA_TEST_CACHE_INDEX").unwrap())
        .data_store(s3_store())
        .build()
        .await
        .unwrap();
    let ds = atdata::open_dataset::<Chunk>(&index, "shared")
        .await
        .unwrap();
    let epochs = tokio::task::spawn_blocking(move || {
        (0..3)
            .map(|_| checked_ids(&ds) == (0..100).collect::<Vec<_>>())
            .filter(|same| *same)
            .count()
    })
    .await
    .unwrap();
    println!("{epochs} epochs of 100 samples");
}

#[test]
fn atdata_cache_lists_and_clears_copies_only() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = write_shards(dir.path(), &[10, 12]);
    let shards = wds::expand_urls(dir.path().join(&pattern).to_str().unwrap()).unwrap();
    let sums: Vec<(String, String)> = shards
        .iter()
        .map(|s| {
            let sum = atdata_store::sha256_hex(std::fs::File::open(s).unwrap()).unwrap();
            (s.clone(), sum)
        })
        .collect();
    let cache_dir = dir.path().join("cache");
    let cache = ShardCache::new(&cache_dir, 1 << 30).unwrap();
    let opener = CachedOpener::new(wds::LocalOpener, cache.clone(), sums.clone());
    let ds = wds::Dataset::<Chunk>::new(dir.path().join(&pattern))
        .unwrap()
        .with_opener(opener);
    assert_eq!(checked_ids(&ds).len(), 22);
    let held: u64 = cache.list().unwrap().iter().map(|c| c.bytes).sum();

    let atdata = |args: &[&str], env_dir: Option<&Path>| {
        let mut cmd = Command::new(crate::cli::built("atdata"));
        crate::services::scrub(&mut cmd)
            .args(args)
            .env_remove("ATDATA_CACHE_DIR")
            .env_remove("ATDATA_CACHE_LIMIT")
            .current_dir(dir.path());
        if let Some(d) = env_dir {
            cmd.env("ATDATA_CACHE_DIR", d);
        }
        cmd.output().unwrap()
    };
    let out = atdata(
        &[
            "cache",
            "ls",
            "--json",
            "--dir",
            cache_dir.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: BTreeSet<&str> = listed["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let wanted: Vec<String> = sums.iter().map(|(_, s)| format!("{s}.tar")).collect();
    assert_eq!(names, wanted.iter().map(String::as_str).collect());
    assert_eq!(listed["bytes"], held);

    let out = atdata(&["cache", "ls"], Some(&cache_dir));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("2 copies, {held} bytes of {}", 1u64 << 30)),
        "{text}"
    );

    let out = atdata(&["cache", "clear"], Some(&cache_dir));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("freed {held} bytes")));
    assert!(cache.list().unwrap().is_empty());
    assert!(
        shards.iter().all(|s| Path::new(s).is_file()),
        "sources are never deleted"
    );

    let out = atdata(&["cache", "ls"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ATDATA_CACHE_DIR"));
}
