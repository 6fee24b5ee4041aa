//! One conformance suite that every store runs: memory, local disk, and a real S3 server
//! (SeaweedFS from `scripts/services.sh`; the S3 cases fail, loudly, without it).

use std::io::Read;

use atdata::prelude::*;
use atdata::wds::{TarReader, TarWriter};
use atdata_store::{
    Credentials, DataStore, DataStoreExt, LocalDiskStore, MemoryStore, S3DataStore, StoreOpener,
    WriteOptions,
};
use sha2::{Digest, Sha256};

#[packable]
#[derive(Debug, Clone, PartialEq)]
struct Blob {
    id: i64,
    data: Vec<u8>,
}

/// The test S3 server's settings (`ATDATA_TEST_S3_*`, on loopback).
pub fn test_s3() -> crate::services::TestS3 {
    crate::services::s3()
}

/// Credentials for the test S3 server.
pub fn test_credentials(s3: &crate::services::TestS3) -> Credentials {
    Credentials::from_map([
        ("AWS_ENDPOINT", s3.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", &s3.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key),
        ("AWS_REGION", &s3.region),
    ])
    .unwrap()
}

/// The S3 server the services script started, or a clear failure.
pub fn s3_store() -> S3DataStore {
    let s3 = test_s3();
    S3DataStore::new(test_credentials(&s3), &s3.bucket).unwrap()
}

/// Writes `n` blobs of `size` bytes to a local shard and returns its dataset.
fn source(dir: &std::path::Path, n: i64, size: usize) -> Dataset<Blob> {
    let path = dir.join("source.tar");
    let mut w = TarWriter::create(&path).unwrap();
    for id in 0..n {
        let data = (0..size).map(|i| (i as i64 * 31 + id) as u8).collect();
        w.write(&Blob { id, data }.as_wds(&format!("blob{id:04}")))
            .unwrap();
    }
    w.finish().unwrap().close().unwrap();
    Dataset::new(path.to_str().unwrap()).unwrap()
}

/// The error a dataset yields first.
fn first_error<O: atdata::wds::ShardOpener>(
    ds: &atdata::wds::Dataset<Blob, O>,
) -> atdata::wds::Error {
    ds.samples()
        .unwrap()
        .next()
        .expect("an item")
        .expect_err("an error")
}

fn read_all(store: &dyn DataStore, url: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    store
        .open_shard(url)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

async fn conformance<S: DataStore + Clone>(store: S, short_ids: bool) {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("conformance/{}", std::process::id());

    // write_shards: names, checksums, content and keys.
    let ds = source(dir.path(), 25, 100);
    let written = store
        .write_shards(
            &ds,
            &prefix,
            ShardOptions {
                maxcount: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(written.urls().len(), 3);
    for (i, (url, sum)) in written.urls().iter().zip(written.checksums()).enumerate() {
        let name = url.rsplit('/').next().unwrap();
        let id = name.split("--").nth(1).unwrap();
        assert!(url.starts_with(&store.url(&prefix)), "{url}");
        assert_eq!(name, format!("data--{id}--{i:06}.tar"));
        assert_eq!(id.len(), if short_ids { 8 } else { 36 }, "{name}");
        assert_eq!(
            hex::encode(Sha256::digest(read_all(&store, url))),
            *sum,
            "{url}"
        );
    }
    let keys: Vec<String> = written
        .urls()
        .iter()
        .flat_map(|u| {
            TarReader::new(store.open_shard(u).unwrap(), u.clone())
                .map(|s| s.unwrap().key)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        keys,
        (0..25).map(|i| format!("blob{i:04}")).collect::<Vec<_>>(),
        "keys are kept"
    );
    let url = format!("{{{}}}", written.urls().join(","));
    let stored = atdata::wds::Dataset::<Blob>::new(&url)
        .unwrap()
        .with_opener(StoreOpener::new(store.clone()));
    let back: Vec<Blob> = stored.samples().unwrap().map(Result::unwrap).collect();
    let original: Vec<Blob> = ds.samples().unwrap().map(Result::unwrap).collect();
    assert_eq!(back, original);

    // Staged (cache_local) and streamed writes of the same samples and mtime store the same bytes.
    let fixed = ShardOptions {
        maxcount: 10,
        mtime: Some(1_700_000_000),
        ..Default::default()
    };
    let streamed = store
        .write_shards(&ds, &prefix, fixed.clone())
        .await
        .unwrap();
    let staged = store
        .write_shards(
            &ds,
            &prefix,
            WriteOptions {
                shards: Some(fixed),
                cache_local: true,
                ..WriteOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(staged.checksums(), streamed.checksums());
    assert_ne!(staged.urls(), streamed.urls());
    for (url, sum) in staged.urls().iter().zip(staged.checksums()) {
        assert_eq!(
            hex::encode(Sha256::digest(read_all(&store, url))),
            *sum,
            "{url}"
        );
    }
    for url in staged.urls().iter().chain(streamed.urls()) {
        store.delete(url).await.unwrap();
    }

    // A shard of several multipart parts (8 MiB each) round-trips exactly.
    let big = source(dir.path(), 20, 1 << 20);
    let written_big = store
        .write_shards(&big, &prefix, ShardOptions::default())
        .await
        .unwrap();
    assert_eq!(written_big.urls().len(), 1);
    let bytes = read_all(&store, &written_big.urls()[0]);
    assert!(bytes.len() > 20 << 20, "{} bytes", bytes.len());
    let samples: Vec<_> = TarReader::new(&bytes[..], "big")
        .map(Result::unwrap)
        .collect();
    let expected: Vec<_> = big.raw_samples().unwrap().map(Result::unwrap).collect();
    assert_eq!(samples, expected);

    // A missing object is an error naming its URL, on first read.
    let missing = store.url(&format!("{prefix}/missing.tar"));
    let err = store
        .open_shard(&missing)
        .unwrap()
        .read(&mut [0; 16])
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains(&missing), "{err}");
    let through_dataset = atdata::wds::Dataset::<Blob>::new(&missing)
        .unwrap()
        .with_opener(StoreOpener::new(store.clone()));
    let err = first_error(&through_dataset);
    assert!(err.to_string().contains(&missing), "{err}");

    // Deleting removes; deleting a missing object succeeds; foreign URLs are refused.
    for url in written.urls().iter().chain(written_big.urls()) {
        store.delete(url).await.unwrap();
        let err = store
            .open_shard(url)
            .unwrap()
            .read(&mut [0; 16])
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{url}");
    }
    store.delete(&missing).await.unwrap();
    assert!(matches!(
        store.open_shard("elsewhere://x/y.tar"),
        Err(atdata_store::Error::ForeignUrl { .. })
    ));
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(MemoryStore::new().unwrap(), false).await;
}

#[tokio::test]
async fn local_disk_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDiskStore::new(dir.path().join("store")).unwrap();
    conformance(store.clone(), true).await;
    // Its URLs are plain absolute paths: any Dataset reads them without the store.
    let src = tempfile::tempdir().unwrap();
    let written = store
        .write_shards(&source(src.path(), 3, 10), "plain", ShardOptions::default())
        .await
        .unwrap();
    assert!(written.urls()[0].starts_with('/'));
    assert_eq!(
        Dataset::<Blob>::new(&written.urls()[0])
            .unwrap()
            .samples()
            .unwrap()
            .count(),
        3
    );
}

#[tokio::test]
async fn s3_store_conforms() {
    conformance(s3_store(), false).await;
}

/// Writes `n` blobs of `size` bytes to `store` from synchronous code.
fn write_from_sync(
    store: &S3DataStore,
    n: i64,
    size: usize,
    prefix: &str,
    options: ShardOptions,
) -> atdata::WrittenShards {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("{prefix}/{}", std::process::id());
    rt.block_on(store.write_shards(&source(dir.path(), n, size), &prefix, options))
        .unwrap()
}

#[test]
fn s3_shards_read_from_a_plain_sync_main() {
    let store = s3_store();
    let written = write_from_sync(
        &store,
        12,
        64,
        "sync",
        ShardOptions {
            maxcount: 5,
            ..Default::default()
        },
    );
    let url = format!("{{{}}}", written.urls().join(","));
    let ds = atdata::wds::Dataset::<Blob>::new(&url)
        .unwrap()
        .with_opener(StoreOpener::new(store));
    let ids: Vec<i64> = ds
        .ordered(4)
        .unwrap()
        .flat_map(|b| b.unwrap().id.clone())
        .collect();
    assert_eq!(ids, (0..12).collect::<Vec<_>>());
}

#[test]
fn s3_urls_open_with_credentials_from_the_environment() {
    let store = s3_store();
    let written = write_from_sync(&store, 3, 8, "env", ShardOptions::default());
    // The facade's Dataset opens s3:// URLs as given, credentials from the environment: the
    // `atdata` command reads through it, in a process whose AWS_* name the test server.
    let cat = |url: &str| {
        crate::services::scrub(&mut std::process::Command::new(crate::cli::built("atdata")))
            .args(["cat", url])
            .envs(test_s3().aws_env())
            .output()
            .unwrap()
    };
    let out = cat(&written.urls()[0]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    let missing = written.urls()[0].replace("data--", "nothing--");
    let out = cat(&missing);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&missing));
}
