//! The index on a real Redis and on SQLite: the golden Python index read back, Rust writes
//! byte-identical to Python's for the same inputs, one behaviour suite on both providers,
//! concurrent inserts, and inserts through a data store.
//!
//! Redis tests each use their own database of the test server (`ATDATA_TEST_REDIS_URL`; the
//! services start Redis with 64): 1-9 here, 10-19 in `faults` (19: the workflow example),
//! 20-29 in `hardening` and `workflow`, 62 for the interop script, 63 for the benchmark. A
//! database is emptied before use only when it is empty or carries the suite's marker key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use atdata::index::Error as IndexError;
use atdata::prelude::*;
use atdata::{DynamicSample, LocalIndex, json_to_msgpack};
use futures::TryStreamExt;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use crate::golden::{self, load, unhex};
use crate::samples::{GoldenImage, GoldenPoint};

const CREATED_AT: &str = "2025-01-02T03:04:05.678901+00:00";

pub use crate::redis_db::fresh_db;

pub async fn raw_redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} does not answer: {e}"))
}

fn ops() -> Vec<Json> {
    load("redis_dump.json")["operations_in_order"]
        .as_array()
        .unwrap()
        .clone()
}

/// The entry Python returned for the operation whose call starts with `call`.
fn returned(call: &str) -> Json {
    ops()
        .into_iter()
        .find(|o| o["call"].as_str().unwrap().starts_with(call))
        .unwrap_or_else(|| panic!("no operation {call}"))["returned"]
        .clone()
}

fn query(dump: &str, q: &str) -> Json {
    let queries = load(dump)["queries_after_operations"].clone();
    let (_, v) = queries
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.starts_with(q))
        .unwrap_or_else(|| panic!("no query {q}"));
    v.clone()
}

/// The documented corrections to Python's schema text: the real dtype of GoldenImage's mask
/// (Python writes float32 for every bare NDArray), and no description for the undocumented
/// GoldenPoint (Python writes its dataclass signature).
fn corrected(text: &str) -> String {
    let text = text.replace(
        r#"{"name": "mask", "fieldType": {"$type": "local#ndarray", "dtype": "float32"}"#,
        r#"{"name": "mask", "fieldType": {"$type": "local#ndarray", "dtype": "uint8"}"#,
    );
    let signature = r#""description": "GoldenPoint(x: float, y: float, name: str, embedding: NDArray, weights: NDArray[numpy.float64])""#;
    text.replace(signature, r#""description": null"#)
}

fn golden_shards(pattern: &str) -> String {
    golden::dir().join(pattern).display().to_string()
}

/// Python's operations, replayed through the Rust index (apart from the last, which Python
/// refused: the seed's `sampleSchema` form, which we accept).
async fn replay(index: &LocalIndex) {
    let image_ref = index
        .publish_schema::<GoldenImage>("1.0.0", Some("Golden image sample (explicit description)"))
        .await
        .unwrap();
    assert_eq!(
        image_ref,
        returned("index.publish_schema(GoldenImage, version='1.0.0'")
    );
    let next = index
        .publish_schema::<GoldenImage>(None, None)
        .await
        .unwrap();
    assert_eq!(
        next,
        returned("index.publish_schema(GoldenImage, version=None")
    );

    let images = Dataset::<GoldenImage>::new("shards/golden_image-{000000..000001}.tar").unwrap();
    let metadata = json!({"description": "five tiny images", "split": "train", "n": 5,
        "ratio": 0.5, "tags": ["golden", "images"], "nested": {"k": null}});
    let entry = index
        .insert_dataset_with(
            &images,
            "golden-images",
            InsertOptions {
                schema_ref: Some(image_ref.clone()),
                metadata: Some(metadata),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        entry.to_json(),
        returned("index.insert_dataset(Dataset[GoldenImage]('shards/golden_image-{000000..000001}")
    );

    let points = Dataset::<GoldenPoint>::new("shards/golden_point-00000{0,1}.tar").unwrap();
    let entry = index
        .add_entry(&points, "golden-points", None, None)
        .await
        .unwrap();
    assert_eq!(entry.to_json(), returned("index.add_entry("));

    let point_ref = index
        .publish_schema::<GoldenPoint>("2.0.0", Some("Golden point sample (explicit description)"))
        .await
        .unwrap();
    assert_eq!(
        point_ref,
        returned("index.publish_schema(GoldenPoint, version='2.0.0'")
    );

    for (shard, call) in [
        (
            "000000",
            "index.insert_dataset(Dataset[GoldenImage]('shards/golden_image-000000.tar'), name='dup-name')",
        ),
        (
            "000001",
            "index.insert_dataset(Dataset[GoldenImage]('shards/golden_image-000001.tar'), name='dup-name')",
        ),
    ] {
        let ds = Dataset::<GoldenImage>::new(format!("shards/golden_image-{shard}.tar")).unwrap();
        let entry = index
            .insert_dataset_with(&ds, "dup-name", InsertOptions::default())
            .await
            .unwrap();
        assert_eq!(entry.to_json(), returned(call));
    }

    let first =
        returned("index.insert_dataset(Dataset[GoldenImage]('shards/golden_image-{000000..000001}");
    index
        .label(
            "golden-images",
            first["cid"].as_str().unwrap(),
            "1.0.0",
            Some("first release"),
        )
        .await
        .unwrap();

    let ds = Dataset::<GoldenImage>::new("shards/golden_image-000000.tar").unwrap();
    let entry = index
        .insert_dataset_with(
            &ds,
            "legacy-ref",
            InsertOptions {
                schema_ref: Some("local://schemas/golden.models.GoldenImage@1.0.0".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        entry.to_json(),
        returned(
            "index.insert_dataset(Dataset[GoldenImage]('shards/golden_image-000000.tar'), name='legacy-ref'"
        )
    );
}

/// Python's Redis keys, loaded as they are.
async fn load_redis_dump(url: &str) {
    let mut conn = raw_redis(url).await;
    for key in load("redis_dump.json")["keys"].as_array().unwrap() {
        let name = key["key"].as_str().unwrap();
        match key["type"].as_str().unwrap() {
            "hash" => {
                for (field, v) in key["fields"].as_object().unwrap() {
                    let bytes = field_bytes(v);
                    let () = redis::cmd("HSET")
                        .arg(name)
                        .arg(field)
                        .arg(bytes)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                }
            }
            "string" => {
                let () = redis::cmd("SET")
                    .arg(name)
                    .arg(key["value_text"].as_str().unwrap())
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
            other => panic!("unexpected key type {other}"),
        }
    }
}

fn field_bytes(v: &Json) -> Vec<u8> {
    match v.get("hex") {
        Some(hex) => unhex(hex),
        None => v["text"].as_str().unwrap().as_bytes().to_vec(),
    }
}

/// What Python's index answers, asked of the Rust index over Python's data.
async fn check_golden_reads(index: &LocalIndex, dump: &str) {
    for op in ops() {
        let r = &op["returned"];
        if let Some(cid) = r.get("cid").and_then(Json::as_str) {
            assert_eq!(
                index.get_entry(cid).await.unwrap().to_json(),
                *r,
                "{}",
                op["call"]
            );
        }
    }
    let mut names: Vec<String> = index
        .entries()
        .map_ok(|e| e.name)
        .try_collect()
        .await
        .unwrap();
    names.sort();
    assert_eq!(json!(names), query(dump, "sorted(entry.name")["returned"]);

    // The label decides: the newest insert under a name (Python's get_dataset).
    let newest = query(dump, "get_dataset('dup-name')")["returned"].clone();
    assert_eq!(
        index.get_entry_by_name("dup-name").await.unwrap().to_json(),
        newest
    );
    assert_eq!(
        index
            .get_entry_by_label("golden-images", "1.0.0")
            .await
            .unwrap()
            .to_json(),
        query(dump, "get_label('golden-images', version='1.0.0')")["returned"]
    );

    let err = index.get_entry_by_name("no-such-name").await.unwrap_err();
    assert!(matches!(err, IndexError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("no-such-name"), "{err}");
    let err = index.get_entry("bafyreinotthere").await.unwrap_err();
    assert!(
        matches!(err, IndexError::NotFound { .. }) && err.to_string().contains("bafyreinotthere")
    );
    let err = index
        .get_schema("atdata://local/schema/Missing@1.0.0")
        .await
        .unwrap_err();
    assert!(
        matches!(err, IndexError::NotFound { .. }) && err.to_string().contains("Missing@1.0.0")
    );
    for bad in ["atdata://local/schema/NoVersion", "foo://x/Y@1.0.0"] {
        let err = index.get_schema(bad).await.unwrap_err();
        assert!(
            matches!(err, IndexError::Codec(_)) && err.to_string().contains(bad),
            "{err}"
        );
    }

    // The legacy form names the same record; `$ref` comes back in Python's form.
    let legacy = index
        .get_schema("local://schemas/golden.models.GoldenImage@1.0.0")
        .await
        .unwrap();
    let got: Json = serde_json::from_str(&legacy.to_json()).unwrap();
    assert_eq!(got, query(dump, "get_schema('local://schemas/")["returned"]);

    let listed = index.list_schemas().await.unwrap();
    let expected = query(dump, "list_schemas()")["returned"].clone();
    assert_eq!(listed.len(), expected.as_array().unwrap().len());
    for (got, want) in listed.iter().zip(expected.as_array().unwrap()) {
        let got: Json = serde_json::from_str(&got.as_ref().unwrap().to_json()).unwrap();
        for key in ["name", "version", "fields", "createdAt", "$ref"] {
            assert_eq!(got[key], want[key], "{key} of {}", want["$ref"]);
        }
        assert_eq!(got["description"], want["description"]);
    }

    // Python's record decodes Python's shards (the payload's own dtype wins for the mask).
    let schema = index
        .decode_schema("atdata://local/schema/GoldenImage@1.0.0")
        .await
        .unwrap();
    let ds = Dataset::<DynamicSample>::with_schema(
        golden_shards("shards/golden_image-{000000..000001}.tar"),
        schema,
    )
    .unwrap();
    let samples: Vec<DynamicSample> = ds.samples().unwrap().map(Result::unwrap).collect();
    assert_eq!(samples.len(), 5);
}

#[tokio::test]
async fn the_golden_redis_dump_reads_as_python_recorded_it() {
    let url = fresh_db(1).await;
    load_redis_dump(&url).await;
    let index = LocalIndex::builder()
        .redis_url(&url)
        .python_schema_refs(true)
        .build()
        .await
        .unwrap();
    check_golden_reads(&index, "redis_dump.json").await;
}

#[tokio::test]
async fn the_golden_sqlite_file_reads_as_python_recorded_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    std::fs::copy(golden::dir().join("index.db"), &path).unwrap();
    let index = LocalIndex::builder()
        .sqlite_path(&path)
        .python_schema_refs(true)
        .build()
        .await
        .unwrap();
    check_golden_reads(&index, "sqlite_dump.json").await;
}

#[tokio::test]
async fn rust_writes_pythons_redis_keys_byte_for_byte() {
    let url = fresh_db(2).await;
    let index = LocalIndex::builder()
        .redis_url(&url)
        .python_schema_refs(true)
        .clock(|| CREATED_AT.to_owned())
        .build()
        .await
        .unwrap();
    replay(&index).await;

    let mut conn = raw_redis(&url).await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.retain(|k| k != crate::services::REDIS_MARKER);
    keys.sort();
    let golden = load("redis_dump.json")["keys"].as_array().unwrap().clone();
    let mut expected: Vec<String> = golden
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_owned())
        .collect();
    expected.sort();
    assert_eq!(keys, expected);

    for key in &golden {
        let name = key["key"].as_str().unwrap();
        if key["type"] == "hash" {
            let got: BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
                .arg(name)
                .query_async(&mut conn)
                .await
                .unwrap();
            let want: BTreeMap<String, Vec<u8>> = key["fields"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(f, v)| (f.clone(), field_bytes(v)))
                .collect();
            assert_eq!(got, want, "{name}");
        } else {
            let got: String = redis::cmd("GET")
                .arg(name)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(
                got,
                corrected(key["value_text"].as_str().unwrap()),
                "{name}"
            );
        }
    }
}

fn sqlite_column(v: &Json) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v["type"].as_str().unwrap() {
        "null" => Value::Null,
        "text" => Value::Text(v["text"].as_str().unwrap().to_owned()),
        "blob" => Value::Blob(unhex(&v["hex"])),
        other => panic!("unexpected column type {other}"),
    }
}

#[tokio::test]
async fn rust_writes_pythons_sqlite_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let index = LocalIndex::builder()
        .sqlite_path(&path)
        .python_schema_refs(true)
        .clock(|| CREATED_AT.to_owned())
        .build()
        .await
        .unwrap();
    replay(&index).await;
    drop(index);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let dump = load("sqlite_dump.json");
    for table in dump["tables"].as_array().unwrap() {
        let name = table["table"].as_str().unwrap();
        let key = table["primary_key"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect::<Vec<_>>()
            .join(", ");
        let columns: Vec<&str> = table["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .filter(|c| *c != "created_at") // SQLite's clock, as in Python
            .collect();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {} FROM {name} ORDER BY {key}",
                columns.join(", ")
            ))
            .unwrap();
        let got: Vec<Vec<rusqlite::types::Value>> = stmt
            .query_map([], |r| (0..columns.len()).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut want: Vec<Vec<rusqlite::types::Value>> = table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|c| sqlite_column(&row["columns"][c]))
                    .collect()
            })
            .collect();
        // Python's dump lists rows by primary key too; schema text takes the corrections.
        for row in &mut want {
            for v in row.iter_mut() {
                if let rusqlite::types::Value::Text(t) = v
                    && t.starts_with('{')
                {
                    *t = corrected(t);
                }
            }
        }
        assert_eq!(got, want, "table {name}");
    }
}

/// A row type of the behaviour suite.
#[packable]
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: i64,
    text: String,
}

/// Documented (its doc comment is its description).
#[packable]
struct Unpublished {
    x: f32,
}

/// Where a behaviour suite's index lives, with raw access to write what Python might.
enum Backend {
    Redis(String),
    Sqlite(PathBuf),
}

impl Backend {
    fn builder(&self) -> atdata::index::LocalIndexBuilder {
        match self {
            Backend::Redis(url) => LocalIndex::builder().redis_url(url),
            Backend::Sqlite(path) => LocalIndex::builder().sqlite_path(path),
        }
    }

    /// Writes an entry the way an older writer might: no label.
    async fn write_unlabelled(&self, e: &LocalDatasetEntry) {
        let urls = json_to_msgpack(&json!(e.data_urls)).unwrap();
        match self {
            Backend::Redis(url) => {
                let () = redis::cmd("HSET")
                    .arg(format!("LocalDatasetEntry:{}", e.cid()))
                    .arg("name")
                    .arg(&e.name)
                    .arg("schema_ref")
                    .arg(&e.schema_ref)
                    .arg("data_urls")
                    .arg(urls)
                    .arg("cid")
                    .arg(e.cid().to_string())
                    .query_async(&mut raw_redis(url).await)
                    .await
                    .unwrap();
            }
            Backend::Sqlite(path) => {
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute(
                        "INSERT INTO dataset_entries (cid, name, schema_ref, data_urls) VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![e.cid().to_string(), e.name, e.schema_ref, urls],
                    )
                    .unwrap();
            }
        }
    }
}

fn write_rows(dir: &Path, n: i64) -> Dataset<Row> {
    let path = dir.join("rows.tar");
    let mut w = atdata::wds::TarWriter::create(&path).unwrap();
    for id in 0..n {
        w.write(
            &Row {
                id,
                text: format!("row {id}"),
            }
            .as_wds(&format!("{id:06}")),
        )
        .unwrap();
    }
    w.finish().unwrap().close().unwrap();
    Dataset::new(path.to_str().unwrap()).unwrap()
}

async fn behaviour(backend: Backend) {
    let index = backend.builder().build().await.unwrap();

    // Schemas: explicit versions, the next patch version, numeric ordering, non-semver ignored.
    assert_eq!(
        index
            .publish_schema::<Row>(None, Some("rows"))
            .await
            .unwrap(),
        "atdata://local/schema/Row@1.0.0"
    );
    assert!(
        index
            .publish_schema::<Row>(None, None)
            .await
            .unwrap()
            .ends_with("Row@1.0.1")
    );
    index.publish_schema::<Row>("0.10.0", None).await.unwrap();
    index.publish_schema::<Row>("latest", None).await.unwrap();
    assert!(
        index
            .publish_schema::<Row>(None, None)
            .await
            .unwrap()
            .ends_with("Row@1.0.2")
    );
    index.publish_schema::<Row>("2.0.0", None).await.unwrap();
    assert!(
        index
            .publish_schema::<Row>(None, None)
            .await
            .unwrap()
            .ends_with("Row@2.0.1")
    );

    // One record, three reference forms; `$ref` in the index's form (Python's by default).
    let a = index
        .get_schema("atdata://local/sampleSchema/Row@1.0.0")
        .await
        .unwrap();
    let b = index
        .get_schema("atdata://local/schema/Row@1.0.0")
        .await
        .unwrap();
    let c = index
        .get_schema("local://schemas/my.module.Row@1.0.0")
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a.schema_ref, "atdata://local/schema/Row@1.0.0");
    // Short forms: `Name@version`, and `Name` at its highest major.minor.patch version.
    assert_eq!(index.get_schema("Row@1.0.0").await.unwrap(), a);
    assert_eq!(
        index.resolve_schema_ref("Row").await.unwrap(),
        "atdata://local/schema/Row@2.0.1"
    );
    assert_eq!(
        index.get_schema("Row").await.unwrap().record.version,
        "2.0.1"
    );
    assert!(matches!(
        index.resolve_schema_ref("Nobody").await,
        Err(IndexError::NotFound { .. })
    ));
    assert!(index.resolve_schema_ref("@1.0.0").await.is_err());
    // The seed's form is still written on request, and read either way.
    let seed = backend
        .builder()
        .python_schema_refs(false)
        .build()
        .await
        .unwrap();
    assert_eq!(
        seed.get_schema("Row@1.0.0").await.unwrap().schema_ref,
        "atdata://local/sampleSchema/Row@1.0.0"
    );
    assert_eq!(
        seed.publish_schema::<Row>("3.0.0", None).await.unwrap(),
        "atdata://local/sampleSchema/Row@3.0.0"
    );
    assert_eq!(a.record.schema.description.as_deref(), Some("rows"));
    let versions: Vec<String> = index
        .list_schemas()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.unwrap().record.version)
        .collect();
    assert_eq!(
        versions,
        [
            "0.10.0", "1.0.0", "1.0.1", "1.0.2", "2.0.0", "2.0.1", "3.0.0", "latest"
        ]
    );
    let err = index
        .get_schema("atdata://local/schema/Row@9.9.9")
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::NotFound { .. }) && err.to_string().contains("Row@9.9.9"));

    // add_entry: the URL as given, the default ref at 1.0.0, the record stored if missing.
    let un = Dataset::<Unpublished>::new("elsewhere/u-{0..3}.tar").unwrap();
    let entry = index.add_entry(&un, "u", None, None).await.unwrap();
    assert_eq!(entry.data_urls, ["elsewhere/u-{0..3}.tar"]);
    assert_eq!(entry.schema_ref, "atdata://local/schema/Unpublished@1.0.0");
    let stored = index.decode_schema(&entry.schema_ref).await.unwrap();
    assert_eq!(stored, Unpublished::schema());
    assert_eq!(
        stored.description.as_deref(),
        Some("Documented (its doc comment is its description).")
    );

    // Names: the newest insert wins; the older entry stays reachable by CID.
    let first = Dataset::<Row>::new("rows/a.tar").unwrap();
    let second = Dataset::<Row>::new("rows/b.tar").unwrap();
    let metadata = json!({"z": 1, "a": [1.5, "x"], "m": {"k": null}});
    let e1 = index
        .add_entry(&first, "rows", None, Some(metadata.clone()))
        .await
        .unwrap();
    let e2 = index.add_entry(&second, "rows", None, None).await.unwrap();
    assert_eq!(index.get_entry_by_name("rows").await.unwrap(), e2);
    let back = index.get_entry(e1.cid().to_string()).await.unwrap();
    assert_eq!(back, e1);
    assert_eq!(
        back.metadata
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["z", "a", "m"],
        "metadata keeps its key order"
    );

    // A versioned label stays put when later inserts move the name.
    index
        .label("rows", e1.cid().to_string(), "1.0.0", Some("first"))
        .await
        .unwrap();
    let e3 = index
        .add_entry(
            &Dataset::<Row>::new("rows/c.tar").unwrap(),
            "rows",
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(index.get_entry_by_label("rows", "1.0.0").await.unwrap(), e1);
    assert_eq!(index.get_entry_by_name("rows").await.unwrap(), e3);
    let missing = index
        .label("rows", "bafyreinothere", "2", None)
        .await
        .unwrap_err();
    assert!(matches!(missing, IndexError::NotFound { .. }));
    assert!(matches!(
        index.get_entry_by_label("rows", "9").await.unwrap_err(),
        IndexError::NotFound { .. }
    ));

    // An entry written without a label is still found by name.
    let old = LocalDatasetEntry::new(
        "legacy",
        "atdata://local/schema/Row@1.0.0",
        vec!["old.tar".into()],
        None,
    )
    .unwrap();
    backend.write_unlabelled(&old).await;
    assert_eq!(index.get_entry_by_name("legacy").await.unwrap(), old);
    let err = index.get_entry_by_name("nobody").await.unwrap_err();
    assert!(matches!(err, IndexError::NotFound { .. }) && err.to_string().contains("nobody"));

    let all = index.all_entries().await.unwrap();
    assert_eq!(all.len(), 5);

    // Through a data store: shards re-cut by maxcount, checksums, counts and sizes merged
    // into the metadata, the stored copy readable from the entry.
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDiskStore::new(dir.path().join("store")).unwrap();
    let stored_index = backend.builder().data_store(store).build().await.unwrap();
    let rows = write_rows(dir.path(), 5);
    let entry = stored_index
        .insert_dataset_with(
            &rows,
            "stored-rows",
            InsertOptions {
                prefix: Some("rows/v1".into()),
                metadata: Some(json!({"split": "train"})),
                maxcount: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(entry.data_urls.len(), 3);
    let metadata = entry.metadata.clone().unwrap();
    assert_eq!(metadata["split"], "train");
    for url in &entry.data_urls {
        assert!(url.contains("/rows/v1/data--"), "{url}");
        let bytes = std::fs::read(url).unwrap();
        let sum = hex::encode(Sha256::digest(&bytes));
        assert_eq!(metadata["checksums"][url], json!(sum));
        assert_eq!(metadata["shard_sizes"][url], json!(bytes.len()));
    }
    let counts: Vec<_> = entry
        .data_urls
        .iter()
        .map(|u| metadata["sample_counts"][u].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [2, 2, 1]);
    assert_eq!(entry.sample_count(), Some(5));
    let back = Dataset::<Row>::new(entry.shards_url()).unwrap();
    let ids: Vec<i64> = back.samples().unwrap().map(|r| r.unwrap().id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert_eq!(
        stored_index.get_entry_by_name("stored-rows").await.unwrap(),
        entry
    );

    // insert_dataset without a store indexes the URL as given.
    let plain = index
        .insert_dataset(&rows, "plain", "ignored")
        .await
        .unwrap();
    assert_eq!(plain.data_urls, [rows.url()]);
}

#[tokio::test]
async fn behaviour_on_redis() {
    behaviour(Backend::Redis(fresh_db(3).await)).await;
}

#[tokio::test]
async fn behaviour_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    behaviour(Backend::Sqlite(dir.path().join("index.db"))).await;
}

async fn concurrent_inserts(index: LocalIndex) {
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let index = index.clone();
            tokio::spawn(async move {
                for i in 0..500 {
                    let ds = Dataset::<Row>::new(format!("c/{t}/{i}.tar")).unwrap();
                    index
                        .add_entry(&ds, format!("c-{t}-{i}"), None, None)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let all = index.all_entries().await.unwrap();
    assert_eq!(all.len(), 4000);
    for e in &all {
        let (t, i) = e.name[2..].split_once('-').unwrap();
        assert_eq!(e.data_urls, [format!("c/{t}/{i}.tar")], "{}", e.name);
    }
    for name in ["c-0-0", "c-7-499", "c-3-250"] {
        assert_eq!(index.get_entry_by_name(name).await.unwrap().name, name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_tasks_inserting_500_entries_each_leave_4000_on_redis() {
    concurrent_inserts(LocalIndex::connect_redis(fresh_db(4).await).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_tasks_inserting_500_entries_each_leave_4000_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_inserts(
        LocalIndex::open_sqlite(dir.path().join("index.db"))
            .await
            .unwrap(),
    )
    .await;
}

/// A SQLite index in `dir` writing shards through a local store there; with both paths.
pub async fn stored_sqlite_index(dir: &Path) -> (LocalIndex, PathBuf, PathBuf) {
    let (db, store_dir) = (dir.join("index.db"), dir.join("store"));
    let index = LocalIndex::builder()
        .sqlite_path(&db)
        .data_store(LocalDiskStore::new(&store_dir).unwrap())
        .build()
        .await
        .unwrap();
    (index, db, store_dir)
}

#[tokio::test]
async fn a_failed_index_write_deletes_the_shards_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let (index, db, store_dir) = stored_sqlite_index(dir.path()).await;
    // Another writer breaks the table the entry goes to.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("DROP TABLE dataset_entries")
        .unwrap();
    let rows = write_rows(dir.path(), 5);
    let options = InsertOptions {
        maxcount: 2,
        ..Default::default()
    };
    let err = index
        .insert_dataset_with(&rows, "rows", options)
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::Sqlite { .. }), "{err}");
    let left: Vec<_> = walk(&store_dir);
    assert!(left.is_empty(), "shards left behind: {left:?}");
}

/// Every file under `dir`.
/// The shard files under `dir` (sidecars left out), after checking that each sidecar is
/// beside its shard and each uncompressed shard has its sidecar: a sidecar is part of its
/// shard.
pub fn shard_files(dir: &Path) -> Vec<PathBuf> {
    let all = walk(dir);
    let (sidecars, shards): (Vec<PathBuf>, Vec<PathBuf>) = all
        .iter()
        .cloned()
        .partition(|p| p.extension().is_some_and(|e| e == "idx"));
    for sidecar in &sidecars {
        assert!(
            all.contains(&sidecar.with_extension("tar")),
            "a sidecar without its shard: {sidecar:?}"
        );
    }
    for shard in shards
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
    {
        assert!(
            sidecars.contains(&shard.with_extension("idx")),
            "a shard without its sidecar: {shard:?}"
        );
    }
    shards
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.flat_map(|e| {
        let p = e.unwrap().path();
        if p.is_dir() { walk(&p) } else { vec![p] }
    })
    .collect()
}

#[tokio::test]
async fn metadata_that_cannot_take_checksums_is_refused_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _, store_dir) = stored_sqlite_index(dir.path()).await;
    let rows = write_rows(dir.path(), 2);
    let options = InsertOptions {
        metadata: Some(json!([1, 2])),
        ..Default::default()
    };
    let err = index
        .insert_dataset_with(&rows, "rows", options)
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::Invalid(_)), "{err}");
    assert!(walk(&store_dir).is_empty());
    assert!(index.all_entries().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_repo_writes_to_s3_and_indexes_in_redis() {
    #![allow(deprecated)]
    let url = fresh_db(5).await;
    let s3 = crate::stores::test_s3();
    let repo = atdata::Repo::new(
        crate::stores::test_credentials(&s3),
        format!("{}/repo-test", s3.bucket),
        &url,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rows = write_rows(dir.path(), 5);
    let options = InsertOptions {
        maxcount: 2,
        ..Default::default()
    };
    let (entry, stored) = repo.insert(&rows, "repo-rows", options).await.unwrap();
    assert_eq!(stored.shard_list(), entry.data_urls);
    assert!(
        stored
            .url()
            .starts_with(&format!("s3://{}/repo-test/repo-rows/data--", s3.bucket)),
        "{}",
        stored.url()
    );
    let ids: Vec<i64> = stored.samples().unwrap().map(|r| r.unwrap().id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert_eq!(
        repo.index().get_entry_by_name("repo-rows").await.unwrap(),
        entry
    );
}

#[tokio::test]
async fn an_empty_dataset_through_a_store_is_an_error_and_indexes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _, _) = stored_sqlite_index(dir.path()).await;
    let rows = write_rows(dir.path(), 0);
    let err = index
        .insert_dataset(&rows, "empty", "empty")
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("no samples"), "{err}");
    assert!(index.all_entries().await.unwrap().is_empty());
}
