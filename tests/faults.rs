//! Faults against a real S3 server of the test's own: SeaweedFS started on spare ports with
//! `scripts/services.sh` (its own state folder), killed in the middle of `write_shards`, then
//! started again.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use atdata::prelude::*;
use atdata::wds::TarWriter;
use atdata_store::StoreOpener;
use futures::StreamExt;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};

#[packable]
struct Blob {
    id: i64,
    data: Vec<u8>,
}

const BUCKET: &str = "fault";

/// A SeaweedFS of this test's own.
struct OwnS3 {
    env: Vec<(String, String)>,
    port: u16,
    state: PathBuf,
}

impl OwnS3 {
    /// Starts a server; `salt` keeps concurrently running tests on different ports.
    fn start(state: &Path, salt: u32) -> OwnS3 {
        let weed = std::env::var("WEED_BIN").expect(
            "the fault test needs the test services (for the SeaweedFS binary): run `bash scripts/test.sh`, \
             or `eval \"$(bash scripts/services.sh)\"` before `cargo test`",
        );
        let venv = Path::new(&weed)
            .parent()
            .and_then(Path::parent)
            .expect("weed lives in a venv's bin/")
            .to_owned();
        let base = spare_ports(salt);
        let env = vec![
            ("S3_PORT".into(), base.to_string()),
            ("WEED_MASTER_PORT".into(), (base + 1).to_string()),
            ("WEED_VOLUME_PORT".into(), (base + 2).to_string()),
            ("WEED_FILER_PORT".into(), (base + 3).to_string()),
            ("WEED_ADMIN_PORT".into(), (base + 4).to_string()),
            ("S3_BUCKET".into(), BUCKET.into()),
            ("SERVICES_DIR".into(), state.display().to_string()),
            ("SEAWEEDFS_VENV".into(), venv.display().to_string()),
        ];
        let s3 = OwnS3 {
            env,
            port: base,
            state: state.to_owned(),
        };
        s3.script(&[]);
        s3
    }

    fn script(&self, args: &[&str]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh");
        let out = Command::new("bash")
            .arg(script)
            .args(args)
            .envs(self.env.iter().cloned())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "services.sh {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (no clean shutdown).
    fn kill(&self) {
        let pid = std::fs::read_to_string(self.state.join(format!("weed-{}.pid", self.port)))
            .expect("pid file");
        let status = Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Multipart uploads still open in the bucket (ListMultipartUploads, signed with curl).
    fn open_uploads(&self) -> usize {
        let out = Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "10",
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
                "--user",
                "minioadmin:minioadmin",
            ])
            // `uploads=`: curl signs a bare `?uploads` differently from S3's canonical query.
            .arg(format!("{}/{BUCKET}?uploads=", self.endpoint()))
            .output()
            .expect("curl runs");
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            body.contains("<ListMultipartUploadsResult"),
            "ListMultipartUploads failed: {body}"
        );
        body.matches("<UploadId>").count()
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        self.script(&["stop"]);
    }
}

/// A base port p with p..p+5 and p+10000..p+10005 free (SeaweedFS binds both), all below
/// Linux's ephemeral range (32768 up), where an outgoing connection could take one first.
fn spare_ports(salt: u32) -> u16 {
    const BLOCKS: u32 = 270; // 20000..22700, so the gRPC ports stay under 32700
    let first = (std::process::id() + salt) % BLOCKS;
    (0..BLOCKS)
        .map(|i| 20_000 + ((first + i) % BLOCKS) as u16 * 10)
        .find(|&p| {
            (0..5).all(|o| {
                TcpListener::bind(("127.0.0.1", p + o)).is_ok()
                    && TcpListener::bind(("127.0.0.1", p + o + 10_000)).is_ok()
            })
        })
        .expect("a free block of ports")
}

fn credentials(s3: &OwnS3) -> Credentials {
    Credentials::from_map([
        ("AWS_ENDPOINT", s3.endpoint().as_str()),
        ("AWS_ACCESS_KEY_ID", "minioadmin"),
        ("AWS_SECRET_ACCESS_KEY", "minioadmin"),
    ])
    .unwrap()
}

fn raw_store(s3: &OwnS3) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(s3.endpoint())
        .with_allow_http(true)
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_access_key_id("minioadmin")
        .with_secret_access_key("minioadmin")
        .build()
        .unwrap()
}

fn source(dir: &Path, n: i64) -> Dataset<Blob> {
    let path = dir.join("source.tar");
    let mut w = TarWriter::create(&path).unwrap();
    for id in 0..n {
        w.write(
            &Blob {
                id,
                data: vec![id as u8; 1 << 20],
            }
            .as_wds(&format!("b{id:05}")),
        )
        .unwrap();
    }
    w.finish().unwrap().close().unwrap();
    Dataset::new(path.to_str().unwrap()).unwrap()
}

#[test]
fn a_server_killed_mid_write_leaves_nothing_visible_and_the_write_succeeds_after_restart() {
    let state = tempfile::tempdir().unwrap();
    let s3 = OwnS3::start(state.path(), 0);
    let store = S3DataStore::new(credentials(&s3), BUCKET).unwrap();

    // The probe of open uploads sees a real one (so its zero below means something).
    let rt_probe = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt_probe.block_on(async {
        let raw = raw_store(&s3);
        let mut upload = object_store::ObjectStoreExt::put_multipart(&raw, &"probe.tar".into())
            .await
            .unwrap();
        upload.put_part(vec![0u8; 1024].into()).await.unwrap();
        assert_eq!(s3.open_uploads(), 1);
        upload.abort().await.unwrap();
        assert_eq!(s3.open_uploads(), 0);
    });
    let dir = tempfile::tempdir().unwrap();
    let ds = source(dir.path(), 300); // 300 MB: a couple of seconds to upload
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let options = ShardOptions {
        maxsize: 32 << 20,
        ..Default::default()
    };

    let write = {
        let (store, ds, options) = (store.clone(), ds.clone(), options.clone());
        rt.spawn(async move { store.write_shards(&ds, "killed", options).await })
    };
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        !write.is_finished(),
        "the write ended before the server was killed; make the source larger"
    );
    let open_before = s3.open_uploads();
    s3.kill();
    let started = Instant::now();
    let err = rt
        .block_on(write)
        .unwrap()
        .expect_err("a write to a dead server fails");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "failed only after {:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().contains("s3://fault/killed/"),
        "the error names the shard: {err}"
    );

    s3.script(&[]); // start again, same data
    // No object is visible under the final names.
    let raw = raw_store(&s3);
    let listed: Vec<_> = rt.block_on(raw.list(Some(&"killed".into())).collect::<Vec<_>>());
    assert!(listed.is_empty(), "objects left visible: {listed:?}");
    // The uploads it started are aborted once the server answers again.
    assert!(
        open_before > 0,
        "the write had multipart uploads open when the server died"
    );
    eprintln!(
        "multipart uploads open: {open_before} before the kill, {} after the restart",
        s3.open_uploads()
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while s3.open_uploads() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} multipart uploads still open",
            s3.open_uploads()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // A rerun succeeds, and reads back.
    let written = rt
        .block_on(store.write_shards(&ds, "rerun", options))
        .unwrap();
    assert_eq!(written.urls().len(), 10);
    let url = format!("{{{}}}", written.urls().join(","));
    let back = atdata::wds::Dataset::<Blob>::new(&url)
        .unwrap()
        .with_opener(StoreOpener::new(store.clone()));
    assert_eq!(back.samples().unwrap().map(Result::unwrap).count(), 300);
}

#[test]
fn a_download_broken_off_by_a_server_restart_resumes_where_it_stopped() {
    let state = tempfile::tempdir().unwrap();
    let s3 = OwnS3::start(state.path(), 450);
    let store = S3DataStore::new(credentials(&s3), BUCKET).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let written = rt
        .block_on(store.write_shards(&source(dir.path(), 64), "resume", ShardOptions::default()))
        .unwrap();
    let (url, checksum) = (&written.urls()[0], &written.checksums()[0]);

    let mut reader = store.open_shard(url).unwrap();
    let mut bytes = vec![0u8; 1 << 20];
    reader.read_exact(&mut bytes).unwrap();
    s3.kill();
    s3.script(&[]); // start again
    reader.read_to_end(&mut bytes).unwrap();
    assert!(bytes.len() > 64 << 20);
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        *checksum,
        "the resumed download is the stored shard"
    );
}

/// A redis-server of this test's own, on a port outside the ephemeral range.
struct OwnRedis {
    child: std::process::Child,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--databases", "4"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (installed by scripts/services.sh)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnRedis { child }
    }

    fn stop(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port in 22800..23000 (below the ephemeral range, apart from SeaweedFS's blocks).
fn spare_port(salt: u32) -> u16 {
    let first = (std::process::id() + salt) % 200;
    (0..200)
        .map(|i| 22_800 + ((first + i) % 200) as u16)
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port")
}

#[tokio::test]
async fn a_redis_stopped_mid_run_gives_typed_errors_and_the_index_works_after_restart() {
    use atdata::index::Error as IndexError;

    let port = spare_port(7);
    let mut redis = OwnRedis::start(port);
    let index = LocalIndex::connect_redis(format!("redis://127.0.0.1:{port}/1"))
        .await
        .unwrap();
    let ds = |n: u32| Dataset::<Blob>::new(format!("blobs-{n}.tar")).unwrap();
    let first = index.add_entry(&ds(1), "blobs", None, None).await.unwrap();

    redis.stop();
    let started = Instant::now();
    let err = index.get_entry(first.cid().to_string()).await.unwrap_err();
    assert!(matches!(err, IndexError::Redis { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    let err = index
        .add_entry(&ds(2), "blobs", None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::Redis { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "errors took {:?}",
        started.elapsed()
    );

    let _redis = OwnRedis::start(port); // no persistence: an empty server
    let deadline = Instant::now() + Duration::from_secs(20);
    let again = loop {
        match index.add_entry(&ds(3), "blobs", None, None).await {
            Ok(entry) => break entry,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "still failing after the restart: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(index.get_entry_by_name("blobs").await.unwrap(), again);
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_naming_the_host_never_the_password() {
    use atdata::index::Error as IndexError;

    let port = spare_port(11); // nothing listens there
    let started = Instant::now();
    let err = LocalIndex::connect_redis(format!("redis://:hunter2secret@127.0.0.1:{port}/3"))
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::Redis { .. }), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains(&format!("127.0.0.1:{port}/3")), "{shown}");
    assert!(!shown.contains("hunter2secret"), "{shown}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn insert_dataset_against_a_stopped_s3_server_leaves_no_entry() {
    let state = tempfile::tempdir().unwrap();
    let s3 = OwnS3::start(state.path(), 90);
    let store = S3DataStore::new(credentials(&s3), BUCKET).unwrap();
    s3.kill();
    let url = crate::index::fresh_db(10).await;
    let index = LocalIndex::builder()
        .redis_url(&url)
        .data_store(store)
        .build()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = index
        .insert_dataset(&source(dir.path(), 3), "blobs", "blobs")
        .await
        .unwrap_err();
    assert!(matches!(err, atdata::index::Error::Store(_)), "{err}");
    assert!(index.all_entries().await.unwrap().is_empty());
    assert!(index.get_entry_by_name("blobs").await.is_err());
    assert!(
        index.list_schemas().await.unwrap().is_empty(),
        "nothing written at all"
    );
}

/// The `atdata` command on a SQLite index of its own, writing shards to `s3`'s bucket.
fn cli_on(s3: &OwnS3) -> crate::hardening::Atdata {
    let mut cli = crate::hardening::Atdata::new();
    for (k, v) in [
        ("AWS_ENDPOINT", s3.endpoint()),
        ("AWS_ACCESS_KEY_ID", "minioadmin".into()),
        ("AWS_SECRET_ACCESS_KEY", "minioadmin".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_BUCKET", BUCKET.into()),
    ] {
        cli.env.push((k.into(), v));
    }
    cli
}

/// Objects visible under `prefix` in the bucket.
fn objects(s3: &OwnS3, prefix: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let raw = raw_store(s3);
    rt.block_on(raw.list(Some(&prefix.into())).collect::<Vec<_>>())
        .into_iter()
        .map(|meta| meta.unwrap().location.to_string())
        .collect()
}

#[test]
fn sigint_mid_insert_to_s3_leaves_no_upload_and_gc_clears_what_a_sigkill_leaves() {
    use crate::hardening::finish;

    let state = tempfile::tempdir().unwrap();
    let s3 = OwnS3::start(state.path(), 150);
    let cli = cli_on(&s3);
    let source = crate::hardening::write_blobs(cli.home.path(), 300);
    let insert = crate::hardening::blob_insert(&source);

    // SIGINT: the insert is cancelled, its uploads aborted before the command exits.
    let child = cli.interrupt(&insert, || s3.open_uploads() > 0, "INT");
    let out = finish(child, Duration::from_secs(120));
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s3.open_uploads(), 0, "uploads left open after SIGINT");
    assert!(objects(&s3, "blobs").is_empty());
    assert!(cli.is_empty());

    // SIGKILL: nothing can clean up; the open uploads are what gc is for.
    let child = cli.interrupt(&insert, || s3.open_uploads() > 0, "KILL");
    finish(child, Duration::from_secs(30));
    let open = s3.open_uploads();
    assert!(open > 0, "the kill left no upload open: kill earlier");
    assert!(cli.is_empty());
    let recent = cli.json(&["gc", "--json"]);
    assert_eq!(
        recent["found"],
        serde_json::json!([]),
        "fresh uploads are kept: {recent}"
    );
    let listed = cli.json(&["gc", "--older-than", "0s", "--json"]);
    assert_eq!(listed["found"].as_array().unwrap().len(), open, "{listed}");
    assert_eq!(s3.open_uploads(), open, "a dry run removes nothing");
    let applied = cli.json(&["gc", "--older-than", "0s", "--apply", "--json"]);
    assert!(
        applied["found"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"] == "upload" && f["removed"] == true),
        "{applied}"
    );
    assert_eq!(s3.open_uploads(), 0, "gc left uploads open");

    // The same insert then succeeds; gc keeps what it references.
    cli.ok(&insert);
    let stored = objects(&s3, "blobs");
    assert!(stored.len() > 10, "{stored:?}");
    let after = cli.json(&["gc", "--older-than", "0s", "--apply", "--json"]);
    assert_eq!(after["found"], serde_json::json!([]), "{after}");
    assert_eq!(after["kept_referenced"], serde_json::json!(stored.len()));
    assert_eq!(objects(&s3, "blobs"), stored);
    assert!(cli.ok(&["verify", "blobs"]).contains("ok"));
}

#[test]
fn an_s3_server_killed_mid_insert_or_a_dropped_insert_future_leaves_nothing() {
    let state = tempfile::tempdir().unwrap();
    let s3 = OwnS3::start(state.path(), 210);
    let cli = cli_on(&s3);
    let source = crate::hardening::write_blobs(cli.home.path(), 300);
    let insert = crate::hardening::blob_insert(&source);

    // The server dies mid-insert and comes back while the command cleans up.
    let child = cli
        .command(&insert)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while s3.open_uploads() == 0 {
        assert!(
            Instant::now() < deadline,
            "the insert never opened an upload"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s3.kill();
    std::thread::sleep(Duration::from_secs(10)); // the write gives up meanwhile
    s3.script(&[]);
    let out = crate::hardening::finish(child, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error:"), "{stderr}");
    assert_eq!(s3.open_uploads(), 0, "uploads left open: {stderr}");
    assert!(objects(&s3, "blobs").is_empty());
    assert!(cli.is_empty());

    // A dropped insert future: the write stops, and shutdown waits for its cleanup.
    let options = || InsertOptions {
        maxsize: 16 << 20,
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let index = rt.block_on(async {
        let index = LocalIndex::builder()
            .sqlite_path(cli.home.path().join("lib.db"))
            .data_store(S3DataStore::new(credentials(&s3), BUCKET).unwrap())
            .build()
            .await
            .unwrap();
        let ds = Dataset::<Blob>::new(&source).unwrap();
        let cut = tokio::time::timeout(
            Duration::from_millis(1500),
            index.insert_dataset_with(&ds, "dropped", options()),
        )
        .await;
        assert!(cut.is_err(), "the insert ended before it was dropped");
        index.shutdown().await.unwrap();
        assert!(index.all_entries().await.unwrap().is_empty());
        assert!(index.list_schemas().await.unwrap().is_empty());
        index
    });
    assert_eq!(
        s3.open_uploads(),
        0,
        "uploads left open by a dropped future"
    );
    assert!(objects(&s3, "dropped").is_empty());
    let ds = Dataset::<Blob>::new(&source).unwrap();
    let entry = rt
        .block_on(index.insert_dataset_with(&ds, "dropped", options()))
        .unwrap();
    let stored = objects(&s3, "dropped");
    let sidecars = stored.iter().filter(|o| o.ends_with(".idx")).count();
    assert_eq!(
        (stored.len() - sidecars, sidecars),
        (entry.data_urls.len(), entry.data_urls.len()),
        "each shard and its sidecar: {stored:?}"
    );
}
