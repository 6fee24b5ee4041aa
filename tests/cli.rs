//! The `atdata` command driven as a process over a real index (SQLite, and Redis with shards in
//! a local folder and in the S3 server): insert, ls, get, schema, cat, inspect, verify
//! (including a tampered shard), and the exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use atdata::ndarray::Array1;
use atdata::prelude::*;
use serde_json::{Value as Json, json};

/// A built binary of the workspace (`scripts/test.sh` builds them before the tests).
pub fn built(relative: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test binary>");
    let path = profile_dir.join(relative);
    assert!(
        path.exists(),
        "{} is not built: run `bash scripts/test.sh`, or `cargo build --workspace --bins --examples` first",
        path.display()
    );
    path
}

#[packable]
struct Row {
    id: i64,
    text: String,
    vec: Array1<f32>,
}

struct Cli {
    home: tempfile::TempDir,
    index: String,
    /// Variables the command gets besides HOME and the store folder (the test S3 server's).
    env: Vec<(String, String)>,
}

impl Cli {
    fn new(index: impl FnOnce(&Path) -> String) -> Cli {
        let home = tempfile::tempdir().unwrap();
        let index = index(home.path());
        Cli {
            home,
            index,
            env: Vec::new(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        crate::services::scrub(&mut Command::new(built("atdata")))
            .args(args)
            .args(["--index", &self.index])
            .current_dir(self.home.path())
            .env("HOME", self.home.path())
            .env("ATDATA_STORE_DIR", self.home.path().join("store"))
            .envs(self.env.iter().cloned())
            .env_remove("AWS_BUCKET") // shards to the local folder unless --bucket is given
            .output()
            .expect("atdata runs")
    }

    /// Runs, expects success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "atdata {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Json {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("atdata {args:?}: {e}: {text}"))
    }

    /// Two source shards of five rows each.
    fn source(&self) -> String {
        for shard in 0..2 {
            let path = self.home.path().join(format!("rows-{shard}.tar"));
            let mut w = atdata::wds::TarWriter::create(&path).unwrap();
            for i in 0..5 {
                let id = shard * 5 + i;
                let row = Row {
                    id,
                    text: format!("row {id}"),
                    vec: Array1::from(vec![id as f32, 0.5]),
                };
                w.write(&row.as_wds(&format!("{id:06}"))).unwrap();
            }
            w.finish().unwrap().close().unwrap();
        }
        self.home
            .path()
            .join("rows-{0..1}.tar")
            .display()
            .to_string()
    }
}

fn suite(cli: &Cli) {
    let source = cli.source();

    // insert: the schema inferred and published, shards through the local store.
    let entry = cli.json(&[
        "insert",
        &source,
        "--name",
        "rows",
        "--maxcount",
        "3",
        "--json",
    ]);
    let urls = entry["data_urls"].as_array().unwrap().clone();
    assert_eq!(urls.len(), 4, "10 samples, 3 per shard");
    let schema_ref = entry["schema_ref"].as_str().unwrap().to_owned();
    assert_eq!(schema_ref, "atdata://local/schema/Rows@1.0.0");
    let cid = entry["cid"].as_str().unwrap().to_owned();

    // ls, get by name and by CID.
    let listed = cli.json(&["ls", "--json"]);
    assert_eq!(listed, json!([entry.clone()]));
    assert!(cli.ok(&["ls"]).contains(&cid));
    assert_eq!(cli.json(&["get", "rows", "--json"]), entry);
    assert_eq!(cli.json(&["get", &cid, "--json"]), entry);
    assert!(cli.ok(&["get", "rows"]).contains("name:       rows"));

    // schema list / show.
    let schemas = cli.json(&["schema", "list", "--json"]);
    assert_eq!(schemas[0]["$ref"], json!(schema_ref));
    let fields: Vec<&str> = schemas[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["id", "text", "vec"]);
    let shown = cli.json(&["schema", "show", &schema_ref, "--json"]);
    assert_eq!(
        shown["fields"][2]["fieldType"],
        json!({"$type": "local#ndarray", "dtype": "float32"})
    );
    assert!(cli.ok(&["schema", "show", &schema_ref]).contains("vec: "));

    // A second insert of the same shards under the published schema (shard for shard: the
    // source's two), found as the newest.
    let again = cli.json(&[
        "insert",
        &source,
        "--name",
        "rows",
        "--schema",
        &schema_ref,
        "--json",
    ]);
    assert_eq!(again["data_urls"].as_array().unwrap().len(), 2);
    assert_eq!(cli.json(&["get", "rows", "--json"]), again);
    assert_eq!(cli.json(&["get", &cid, "--json"]), entry);

    // cat: decoded by the schema, or the raw msgpack map.
    let stored = format!(
        "{{{}}}",
        urls.iter()
            .map(|u| u.as_str().unwrap())
            .collect::<Vec<_>>()
            .join(",")
    );
    let typed = cli.ok(&["cat", &stored, "--schema", &schema_ref, "--limit", "3"]);
    let lines: Vec<Json> = typed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[1],
        json!({"__key__": "000001", "id": 1, "text": "row 1",
               "vec": {"dtype": "float32", "shape": [2], "data": [1.0, 0.5]}})
    );
    let raw = cli.ok(&["cat", &stored]);
    assert_eq!(raw.lines().count(), 10);
    let first: Json = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
    assert_eq!(first["text"], "row 0");
    assert!(
        first["vec"].is_string(),
        "raw arrays are base64 bytes: {first}"
    );

    // inspect.
    let inspected = cli.json(&["inspect", &stored, "--json"]);
    assert_eq!(inspected["samples"], 10);
    assert_eq!(inspected["shards"].as_array().unwrap().len(), 4);
    assert_eq!(inspected["extensions"], json!({"msgpack": 10}));
    let with_schema = cli.json(&["inspect", &stored, "--schema", &schema_ref, "--json"]);
    assert_eq!(with_schema["fields"][0]["type"]["primitive"], "int");

    // verify: all good, then a tampered shard is flagged and the exit code is 1.
    let verified = cli.json(&["verify", &cid, "--json"]);
    assert!(
        verified
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "ok"),
        "{verified}"
    );
    let victim = PathBuf::from(urls[2].as_str().unwrap());
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[600] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let out = cli.run(&["verify", &cid, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let results: Json = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "ok", "mismatch", "ok"]);

    // Errors: one line on stderr and exit 1; usage errors exit 2.
    let out = cli.run(&["get", "no-such-dataset"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("no-such-dataset"),
        "{stderr}"
    );
    assert_eq!(cli.run(&["ls", "--no-such-flag"]).status.code(), Some(2));
    assert_eq!(cli.run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn the_cli_works_on_a_sqlite_index() {
    let cli = Cli::new(|home| format!("sqlite:{}", home.join("index.db").display()));
    suite(&cli);
}

#[test]
fn the_cli_works_on_a_redis_index_with_shards_in_s3() {
    let url = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(crate::index::fresh_db(21));
    let mut cli = Cli::new(|_| url.clone());
    let s3 = crate::services::s3();
    cli.env = s3.aws_env();
    suite(&cli);

    // Shards to the S3 server with --bucket (credentials from the environment), read back.
    let bucket = s3.bucket;
    let source = cli.home.path().join("rows-0.tar").display().to_string();
    let entry = cli.json(&[
        "insert", &source, "--name", "rows-s3", "--bucket", &bucket, "--prefix", "cli-test",
        "--json",
    ]);
    let url = entry["data_urls"][0].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("s3://{bucket}/cli-test/data--")),
        "{url}"
    );
    let verified = cli.json(&["verify", "rows-s3", "--json"]);
    assert_eq!(verified[0]["status"], "ok", "{verified}");
    assert_eq!(cli.ok(&["cat", &url]).lines().count(), 5);
    // A server's error (an XML body, for unknown credentials) is one line with its reason.
    let out = crate::services::scrub(&mut Command::new(built("atdata")))
        .args(["cat", &url])
        .current_dir(cli.home.path())
        .env("HOME", cli.home.path())
        .envs(cli.env.iter().cloned())
        .env("AWS_ACCESS_KEY_ID", "nobody")
        .env("AWS_SECRET_ACCESS_KEY", "nothing")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        !stderr.contains("<?xml") && !stderr.contains("<Error>"),
        "{stderr}"
    );
    assert!(stderr.contains("InvalidAccessKeyId"), "{stderr}");
}
