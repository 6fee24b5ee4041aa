//! Inserts that keep what the user gave (shard for shard, compression, counts and sizes), the
//! identical insert that writes nothing, deleting entries (library and command) on SQLite and
//! Redis, short schema references, and schema inference over every sample.

use std::path::Path;

use atdata::index::Error as IndexError;
use atdata::prelude::*;
use atdata::wds::{ShardWriter, TarWriter};
use atdata::{DeleteOptions, WdsSample, json_to_msgpack};
use serde_json::json;

use crate::hardening::Atdata;
use crate::index::{fresh_db, shard_files, walk as files};

/// A row.
#[packable]
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: i64,
    text: String,
}

/// Shards `{stem}-{k}.tar` (or `.tar.gz`) of `counts[k]` rows each; their pattern.
fn write_rows(dir: &Path, stem: &str, counts: &[i64], suffix: &str) -> String {
    let mut id = 0;
    for (k, n) in counts.iter().enumerate() {
        let mut w = TarWriter::create(dir.join(format!("{stem}-{k}{suffix}"))).unwrap();
        for _ in 0..*n {
            let row = Row {
                id,
                text: format!("row {id} {}", "x".repeat(200)),
            };
            w.write(&row.as_wds(&format!("{id:06}"))).unwrap();
            id += 1;
        }
        w.finish().unwrap().close().unwrap();
    }
    dir.join(format!("{stem}-{{0..{}}}{suffix}", counts.len() - 1))
        .display()
        .to_string()
}

/// An index on `backend` (a Redis URL, or a SQLite file in `dir`) writing to `dir/store`.
async fn index_on(backend: Option<&str>, dir: &Path) -> LocalIndex {
    let builder = match backend {
        Some(url) => LocalIndex::builder().redis_url(url),
        None => LocalIndex::builder().sqlite_path(dir.join("index.db")),
    };
    builder
        .data_store(LocalDiskStore::new(dir.join("store")).unwrap())
        .build()
        .await
        .unwrap()
}

fn ids(url: &str) -> Vec<i64> {
    Dataset::<Row>::new(url)
        .unwrap()
        .samples()
        .unwrap()
        .map(|r| r.unwrap().id)
        .collect()
}

async fn shard_for_shard(backend: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let index = index_on(backend, dir.path()).await;

    // Three plain shards (one empty) stay three, byte for byte, with counts and sizes.
    let source = write_rows(dir.path(), "rows", &[4, 0, 3], ".tar");
    let ds = Dataset::<Row>::new(&source).unwrap();
    let entry = index.insert_dataset(&ds, "rows", "rows").await.unwrap();
    assert_eq!(entry.data_urls.len(), 3);
    let metadata = entry.metadata.clone().unwrap();
    let keys: Vec<_> = metadata.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["checksums", "sample_counts", "shard_sizes"]);
    for (k, (url, count)) in entry.data_urls.iter().zip([4, 0, 3]).enumerate() {
        assert!(url.ends_with(".tar"), "{url}");
        let source = std::fs::read(dir.path().join(format!("rows-{k}.tar"))).unwrap();
        assert_eq!(
            std::fs::read(url).unwrap(),
            source,
            "shard {k} copied as it was"
        );
        assert_eq!(metadata["sample_counts"][url], count);
        assert_eq!(metadata["shard_sizes"][url], source.len());
    }
    assert_eq!(entry.sample_count(), Some(7));
    assert_eq!(ids(&entry.shards_url()), (0..7).collect::<Vec<_>>());

    // A gzip dataset stays gzip: the same small bytes, the suffix kept.
    let gz = write_rows(dir.path(), "packed", &[50, 50], ".tar.gz");
    let gz_ds = Dataset::<Row>::new(&gz).unwrap();
    let packed = index
        .insert_dataset(&gz_ds, "packed", "packed")
        .await
        .unwrap();
    let mut stored = 0;
    for (k, url) in packed.data_urls.iter().enumerate() {
        assert!(url.ends_with(".tar.gz"), "{url}");
        let source = std::fs::read(dir.path().join(format!("packed-{k}.tar.gz"))).unwrap();
        assert_eq!(std::fs::read(url).unwrap(), source);
        stored += source.len();
    }
    assert!(stored < 50 * 200, "{stored} bytes: stored compressed");
    assert_eq!(packed.sample_count(), Some(100));
    assert_eq!(ids(&packed.shards_url()).len(), 100);

    // maxcount re-cuts (uncompressed), maxsize alone too.
    let options = InsertOptions {
        maxcount: 40,
        ..Default::default()
    };
    let recut = index
        .insert_dataset_with(&gz_ds, "recut", options)
        .await
        .unwrap();
    let counts: Vec<u64> = recut
        .data_urls
        .iter()
        .map(|u| {
            recut.metadata.as_ref().unwrap()["sample_counts"][u]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(counts, [40, 40, 20]);
    assert!(recut.data_urls.iter().all(|u| u.ends_with(".tar")));
    let options = InsertOptions {
        maxsize: 1,
        ..Default::default()
    };
    let by_size = index
        .insert_dataset_with(&ds, "by-size", options)
        .await
        .unwrap();
    assert_eq!(by_size.data_urls.len(), 7, "one sample a shard");
    index.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_copy_shard_for_shard_on_sqlite() {
    shard_for_shard(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_copy_shard_for_shard_on_redis() {
    shard_for_shard(Some(&fresh_db(26).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identical_insert_returns_the_newest_entry_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let index = index_on(None, dir.path()).await;
    let source = write_rows(dir.path(), "rows", &[3, 3], ".tar");
    let ds = Dataset::<Row>::new(&source).unwrap();
    let first = index.insert_dataset(&ds, "rows", "rows").await.unwrap();
    let stored = files(&dir.path().join("store"));
    assert_eq!(shard_files(&dir.path().join("store")).len(), 2);

    let again = index.insert_dataset(&ds, "rows", "rows").await.unwrap();
    assert_eq!(again, first);
    assert_eq!(files(&dir.path().join("store")), stored, "nothing written");
    assert_eq!(index.all_entries().await.unwrap().len(), 1);

    // Other metadata, another name, or other bytes: a new entry.
    let with_metadata = InsertOptions {
        metadata: Some(json!({"split": "train"})),
        ..Default::default()
    };
    let described = index
        .insert_dataset_with(&ds, "rows", with_metadata.clone())
        .await
        .unwrap();
    assert_ne!(described.cid(), first.cid());
    let same = index
        .insert_dataset_with(&ds, "rows", with_metadata)
        .await
        .unwrap();
    assert_eq!(same, described);
    let other_name = index
        .insert_dataset(&ds, "rows-copy", "rows")
        .await
        .unwrap();
    assert_ne!(other_name.cid(), first.cid());
    write_rows(dir.path(), "rows", &[3, 4], ".tar");
    let changed = index.insert_dataset(&ds, "rows", "rows").await.unwrap();
    assert_ne!(changed.cid(), first.cid());
    assert_eq!(changed.sample_count(), Some(7));
    assert_eq!(index.all_entries().await.unwrap().len(), 4);

    // A newest entry without counts (as Python writes) is not taken for identical.
    let bare = index.add_entry(&ds, "bare", None, None).await.unwrap();
    let inserted = index.insert_dataset(&ds, "bare", "bare").await.unwrap();
    assert_ne!(inserted.cid(), bare.cid());
    index.shutdown().await.unwrap();
}

async fn deletes(backend: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let index = index_on(backend, dir.path()).await;
    let source = write_rows(dir.path(), "rows", &[2, 2, 2], ".tar");
    let ds = Dataset::<Row>::new(&source).unwrap();
    let entry = index.insert_dataset(&ds, "rows", "rows").await.unwrap();
    let cid = entry.cid().to_string();
    index.label("rows", &cid, "1.0", None).await.unwrap();
    // Each shard's sidecar (written by the insert) goes with it; another entry shares the
    // last shard.
    let sidecar = |url: &str| url.replace(".tar", ".idx");
    assert!(Path::new(&sidecar(&entry.data_urls[0])).exists());
    let shared = &entry.data_urls[2];
    let other = index
        .add_entry(&Dataset::<Row>::new(shared).unwrap(), "other", None, None)
        .await
        .unwrap();

    // A dry run reports and deletes nothing.
    let plan = DeleteOptions {
        shards: true,
        dry_run: true,
    };
    let planned = index.delete(&cid, plan).await.unwrap();
    let mut labels = planned.labels.clone();
    labels.sort();
    assert_eq!(labels, ["rows@", "rows@1.0"]);
    let mut doomed = planned.deleted_files.clone();
    doomed.sort();
    let mut expected = vec![
        entry.data_urls[0].clone(),
        sidecar(&entry.data_urls[0]),
        entry.data_urls[1].clone(),
        sidecar(&entry.data_urls[1]),
    ];
    expected.sort();
    assert_eq!(doomed, expected);
    assert_eq!(planned.kept_files.len(), 1);
    assert_eq!(&planned.kept_files[0].0, shared);
    assert_eq!(index.get_entry(&cid).await.unwrap(), entry);
    assert!(Path::new(&sidecar(&entry.data_urls[0])).exists());

    // The real thing.
    let deleted = index
        .delete(
            &cid,
            DeleteOptions {
                shards: true,
                dry_run: false,
            },
        )
        .await
        .unwrap();
    assert!(deleted.failed_files.is_empty());
    assert!(matches!(
        index.get_entry(&cid).await,
        Err(IndexError::NotFound { .. })
    ));
    assert!(matches!(
        index.get_entry_by_label("rows", "1.0").await,
        Err(IndexError::NotFound { .. })
    ));
    assert!(matches!(
        index.get_entry_by_name("rows").await,
        Err(IndexError::NotFound { .. })
    ));
    for file in &expected {
        assert!(!Path::new(file).exists(), "{file} deleted");
    }
    assert!(Path::new(shared).exists(), "the shared shard is kept");
    assert!(Path::new(&sidecar(shared)).exists(), "with its sidecar");
    assert_eq!(ids(shared), [4, 5]);
    assert_eq!(index.get_entry_by_name("other").await.unwrap(), other);

    // Without `shards`, only the entry and its labels go.
    let cid = other.cid().to_string();
    let report = index.delete(&cid, DeleteOptions::default()).await.unwrap();
    assert_eq!(report.labels, ["other@"]);
    assert!(Path::new(shared).exists());
    assert!(matches!(
        index.delete(&cid, DeleteOptions::default()).await,
        Err(IndexError::NotFound { .. })
    ));
    assert!(index.all_entries().await.unwrap().is_empty());
    index.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_entry_its_labels_and_unshared_shards_on_sqlite() {
    deletes(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_entry_its_labels_and_unshared_shards_on_redis() {
    deletes(Some(&fresh_db(27).await)).await;
}

#[test]
fn the_command_keeps_shards_infers_from_every_sample_dedupes_and_deletes() {
    let cli = Atdata::new();
    // 200 samples in 4 shards of 50; `note` is text in the first 150 and nil after.
    let pattern = cli.home.path().join("notes-%06d.tar");
    let shards = ShardOptions {
        maxcount: 50,
        ..Default::default()
    };
    let mut w = ShardWriter::new(pattern.to_str().unwrap(), shards).unwrap();
    for i in 0..200 {
        let note = if i < 150 { json!("n") } else { json!(null) };
        let payload = json_to_msgpack(&json!({"id": i, "note": note})).unwrap();
        w.write(&WdsSample::msgpack(format!("{i:06}"), payload))
            .unwrap();
    }
    w.finish().unwrap();
    let source = cli
        .home
        .path()
        .join("notes-{000000..000003}.tar")
        .display()
        .to_string();

    let entry = cli.json(&["insert", &source, "--name", "notes", "--json"]);
    assert_eq!(entry["data_urls"].as_array().unwrap().len(), 4);
    assert_eq!(entry["schema_ref"], "atdata://local/schema/Notes@1.0.0");
    let counts = &entry["metadata"]["sample_counts"];
    assert!(
        entry["data_urls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| counts[u.as_str().unwrap()] == 50)
    );
    // The schema saw sample 150: `note` is optional. Short references work.
    let schema = cli.json(&["schema", "show", "Notes", "--json"]);
    assert_eq!(schema["fields"][1]["name"], "note");
    assert_eq!(schema["fields"][1]["optional"], true);
    assert_eq!(
        cli.json(&["schema", "show", "Notes@1.0.0", "--json"]),
        schema
    );
    let shown = cli.ok(&["get", "notes"]);
    assert!(shown.contains("samples:    200 samples"), "{shown}");
    assert!(cli.ok(&["ls"]).contains("200 samples"));

    // The same insert again: the same entry, no second copy, no new schema version.
    let stored = files(&cli.store());
    let again = cli.json(&["insert", &source, "--name", "notes", "--json"]);
    assert_eq!(again["cid"], entry["cid"]);
    assert_eq!(files(&cli.store()), stored);
    assert_eq!(
        cli.json(&["schema", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let said = cli.ok(&["insert", &source, "--name", "notes"]);
    assert!(said.contains("unchanged"), "{said}");

    // --schema by a short reference, re-cut by --maxcount.
    let recut = cli.json(&[
        "insert",
        &source,
        "--name",
        "notes-recut",
        "--schema",
        "Notes",
        "--maxcount",
        "150",
        "--json",
    ]);
    assert_eq!(recut["data_urls"].as_array().unwrap().len(), 2);
    assert_eq!(recut["schema_ref"], "atdata://local/schema/Notes@1.0.0");

    // delete: a dry run, then the entry and its shards.
    let cid = entry["cid"].as_str().unwrap();
    let dry = cli.json(&["delete", "notes", "--shards", "--json"]);
    assert_eq!(dry["applied"], false);
    assert_eq!(
        dry["deleted_files"].as_array().unwrap().len(),
        8,
        "4 shards, 4 sidecars"
    );
    assert_eq!(shard_files(&cli.store()).len(), 6);
    let out = cli.ok(&["delete", cid, "--shards", "--apply"]);
    assert!(
        out.contains(&format!("deleted entry notes ({cid})")),
        "{out}"
    );
    assert_eq!(
        shard_files(&cli.store()).len(),
        2,
        "the re-cut copy's shards stay"
    );
    let missing = cli.run(&["get", "notes"]);
    assert_eq!(missing.status.code(), Some(1));
    let listed = cli.json(&["ls", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "notes-recut");
}
