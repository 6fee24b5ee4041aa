//! The user's path, part 2: keys on samples and batches, generated keys, opening a dataset by
//! name, paths, `usize` fields, batching any iterator; and the command taking directories,
//! globs and dataset names, opening read-only, suggesting names, and printing less.

use std::path::PathBuf;

use atdata::ndarray::Array1;
use atdata::prelude::*;
use atdata::wds::{BatchedExt, ShardWriter};
use atdata::{DynamicBatch, Value};
use serde_json::json;

use crate::hardening::Atdata;

/// A labelled row with a `usize` label.
#[packable]
#[derive(Debug, Clone, PartialEq)]
struct Labelled {
    label: usize,
    offset: isize,
    features: Array1<f32>,
}

fn labelled(i: usize) -> Labelled {
    Labelled {
        label: i,
        offset: -(i as isize),
        features: Array1::from(vec![i as f32; 3]),
    }
}

/// A writer of shards of 4 rows `rows-00.tar`, `rows-01.tar`... in `dir`, with a fixed mtime.
fn writer(dir: &std::path::Path) -> ShardWriter {
    let options = ShardOptions {
        maxcount: 4,
        mtime: Some(0),
        ..Default::default()
    };
    let pattern = dir.join("rows-%02d.tar");
    ShardWriter::new(pattern.to_str().unwrap(), options).unwrap()
}

/// 10 rows in shards of 4 written with generated keys; the folder and its pattern.
fn write_labelled(prefix: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path()).with_key_prefix(prefix);
    for i in 0..10 {
        w.write_sample(&labelled(i)).unwrap();
    }
    assert_eq!(w.finish().unwrap().len(), 3);
    let url = dir.path().join("rows-{00..02}.tar");
    (dir, url)
}

#[test]
fn samples_and_batches_carry_their_keys() {
    let (_dir, url) = write_labelled("row-");
    // `&Path` and `PathBuf` are dataset URLs too.
    let ds = Dataset::<Labelled>::new(&url).unwrap();
    let keyed: Vec<(String, Labelled)> = ds
        .samples_with_keys()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(keyed[0].0, "row-000000");
    assert_eq!(keyed[9].0, "row-000009");
    assert_eq!(keyed[7].1, labelled(7));

    let batches: Vec<_> = ds.ordered(4).unwrap().map(Result::unwrap).collect();
    assert_eq!(
        batches[1].keys(),
        ["row-000004", "row-000005", "row-000006", "row-000007"]
    );
    assert_eq!(batches[1].label, [4, 5, 6, 7]);
    assert_eq!(batches[2].keys().len(), 2);
    let shuffled: Vec<String> = ds
        .shuffled(3, ShuffleOptions::seeded(1))
        .unwrap()
        .flat_map(|b| {
            b.unwrap()
                .keys()
                .iter()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut sorted = shuffled.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        keyed.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
    );

    // DynamicBatch too, through the schema; filtered first with `batched_with`.
    let dynamic = Dataset::<DynamicSample>::with_schema(&url, Labelled::schema()).unwrap();
    let first: DynamicBatch = dynamic.ordered(2).unwrap().next().unwrap().unwrap();
    assert_eq!(first.keys(), ["row-000000", "row-000001"]);
    let late = dynamic
        .samples_with_keys()
        .unwrap()
        .filter(|r| r.as_ref().map_or(true, |(k, _)| k.as_str() >= "row-000008"));
    let batch = late
        .batched_with(Labelled::schema(), 4)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(batch.keys(), ["row-000008", "row-000009"]);

    // Any keyed iterator batches, so a filter can come first.
    let odd = ds
        .samples_with_keys()
        .unwrap()
        .filter(|r| r.as_ref().map_or(true, |(_, s)| s.label % 2 == 1));
    let batch = odd.batched(3).unwrap().next().unwrap().unwrap();
    assert_eq!(batch.label, [1, 3, 5]);
    assert_eq!(batch.keys(), ["row-000001", "row-000003", "row-000005"]);
    assert!(matches!(
        ds.samples_with_keys().unwrap().batched(0),
        Err(atdata::wds::Error::ZeroBatchSize)
    ));
}

#[test]
fn generated_keys_make_the_same_bytes_twice_and_match_explicit_keys() {
    let (a, _) = write_labelled("");
    let (b, _) = write_labelled("");
    let explicit = tempfile::tempdir().unwrap();
    let mut w = writer(explicit.path());
    for i in 0..10 {
        w.write(&labelled(i).as_wds(&format!("{i:06}"))).unwrap();
    }
    w.finish().unwrap();
    for shard in ["rows-00.tar", "rows-01.tar", "rows-02.tar"] {
        let bytes = std::fs::read(a.path().join(shard)).unwrap();
        assert_eq!(
            bytes,
            std::fs::read(b.path().join(shard)).unwrap(),
            "{shard}"
        );
        assert_eq!(
            bytes,
            std::fs::read(explicit.path().join(shard)).unwrap(),
            "{shard}"
        );
    }
}

#[test]
fn usize_and_isize_fields_are_python_ints_range_checked_on_read() {
    let schema = Labelled::schema();
    assert_eq!(
        serde_json::to_value(&schema.fields[0].field_type).unwrap(),
        json!({"$type": "local#primitive", "primitive": "int"})
    );
    let bytes = labelled(300).packed().unwrap();
    assert_eq!(Labelled::from_bytes(&bytes).unwrap(), labelled(300));
    // The same bytes as u64 / i64 fields would give.
    let as_json = atdata::msgpack_to_json(&bytes).unwrap();
    assert_eq!(as_json["label"], 300);
    assert_eq!(as_json["offset"], -300);
    // A negative label does not fit a usize: a typed error naming the field.
    let negative = atdata::json_to_msgpack(&json!({
        "label": -1, "offset": 0, "features": as_json["features"].clone()
    }))
    .unwrap();
    let err = Labelled::from_bytes(&negative).unwrap_err();
    assert!(err.to_string().contains("label"), "{err}");
}

#[test]
fn a_non_utf8_path_is_a_typed_error() {
    use std::os::unix::ffi::OsStrExt;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(b"/tmp/\xff.tar"));
    assert!(matches!(
        Dataset::<Labelled>::new(path),
        Err(atdata::wds::Error::NonUtf8Path { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_opens_by_name_in_one_call() {
    let (dir, url) = write_labelled("");
    let index = LocalIndex::builder()
        .sqlite_path(dir.path().join("index.db"))
        .data_store(LocalDiskStore::new(dir.path().join("store")).unwrap())
        .build()
        .await
        .unwrap();
    let entry = index
        .insert_dataset(&Dataset::<Labelled>::new(&url).unwrap(), "labelled", "l")
        .await
        .unwrap();
    let by_name = atdata::open_dataset::<Labelled>(&index, "labelled")
        .await
        .unwrap();
    let by_cid = atdata::open_dataset::<Labelled>(&index, entry.cid().to_string())
        .await
        .unwrap();
    assert_eq!(by_name.shard_list(), by_cid.shard_list());
    assert_eq!(by_name.shard_list().len(), 3);
    let read = tokio::task::spawn_blocking(move || {
        by_name
            .samples()
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(read, (0..10).map(labelled).collect::<Vec<_>>());
    let dynamic = atdata::open_dataset::<DynamicSample>(&index, "labelled")
        .await
        .unwrap();
    let first = tokio::task::spawn_blocking(move || dynamic.samples().unwrap().next().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.get("label"), Some(&Value::Int(0)));
    assert!(matches!(
        atdata::open_dataset::<Labelled>(&index, "nothing").await,
        Err(atdata::index::Error::NotFound { .. })
    ));
}

// ------------------------------------------------------------------ the command

/// Python's golden image shards copied into `dir/python`, beside files that are not shards.
fn python_shards_dir(cli: &Atdata) -> PathBuf {
    let dir = cli.home.path().join("python");
    std::fs::create_dir_all(&dir).unwrap();
    for k in 0..2 {
        let name = format!("golden_image-00000{k}.tar");
        std::fs::copy(
            crate::golden::dir().join("shards").join(&name),
            dir.join(&name),
        )
        .unwrap();
    }
    std::fs::write(dir.join("README.txt"), "not a shard").unwrap();
    std::fs::write(dir.join("golden_image-000000.idx"), "v1.2 3\n").unwrap();
    dir
}

#[test]
fn the_command_takes_directories_globs_and_dataset_names() {
    let cli = Atdata::new();
    let dir = python_shards_dir(&cli);
    let dir_text = dir.display().to_string();

    // A directory of Python-written shards: its two shards, sorted; nothing else.
    let inspected = cli.json(&["inspect", &dir_text, "--json"]);
    let shards: Vec<&str> = inspected["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["url"].as_str().unwrap())
        .collect();
    assert_eq!(shards.len(), 2);
    assert!(shards[0].ends_with("golden_image-000000.tar") && shards[1].ends_with("000001.tar"));
    assert_eq!(inspected["samples"], 5);
    // A glob.
    let glob = format!("{dir_text}/golden_image-*.tar");
    assert_eq!(cli.json(&["inspect", &glob, "--json"])["samples"], 5);
    let nothing = cli.run(&["inspect", &format!("{dir_text}/*.tgz")]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("matches no shard files"));

    // Insert the directory; then every reading command takes the name.
    let entry = cli.json(&["insert", &dir_text, "--name", "golden-images", "--json"]);
    assert_eq!(entry["data_urls"].as_array().unwrap().len(), 2);
    assert_eq!(
        cli.json(&["inspect", "golden-images", "--json"])["samples"],
        5
    );
    let lines = cli.ok(&[
        "cat",
        "golden-images",
        "--limit",
        "2",
        "--fields",
        "label,index",
    ]);
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(
        first,
        json!({"__key__": "000000", "label": "img_0", "index": -1})
    );
    let bad_field = cli.run(&["cat", "golden-images", "--fields", "nope"]);
    assert_eq!(bad_field.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_field.stderr).contains("`nope` is not a field"));
    // --summary: arrays as dtype, shape and the first values.
    let summary = cli.ok(&["cat", "golden-images", "--limit", "1", "--summary"]);
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(summary["image"]["shape"], json!([2, 3]));
    assert_eq!(summary["image"]["head"].as_array().unwrap().len(), 4);
    assert!(summary["image"].get("data").is_none());
    let full = cli.ok(&["cat", "golden-images", "--limit", "1"]);
    let full: serde_json::Value = serde_json::from_str(full.trim()).unwrap();
    assert_eq!(full["image"]["data"].as_array().unwrap().len(), 2 * 3);

    // A missed name: the error says what the argument could have been, and suggests.
    let missed = cli.run(&["cat", "golden-image"]);
    let stderr = String::from_utf8_lossy(&missed.stderr);
    assert_eq!(missed.status.code(), Some(1));
    assert!(stderr.contains("did you mean `golden-images`?"), "{stderr}");
    assert!(
        stderr.contains("not a file, a directory, a pattern or a URL"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let got = cli.run(&["get", "golden-imagez"]);
    assert!(String::from_utf8_lossy(&got.stderr).contains("did you mean `golden-images`?"));
}

#[test]
fn read_only_commands_never_create_an_index() {
    let cli = Atdata::new();
    let missing = cli.home.path().join("typo.db");
    let spec = format!("sqlite:{}", missing.display());
    for args in [
        vec!["ls"],
        vec!["get", "x"],
        vec!["schema", "list"],
        vec!["schema", "show", "X"],
        vec!["verify", "x"],
        vec!["cat", "x"],
        vec!["inspect", "x"],
    ] {
        let mut full = args.clone();
        full.extend(["--index", spec.as_str()]);
        let out = cli.run(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("index file not found"),
            "{args:?}: {stderr}"
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
    // An existing index opens read-only and reads.
    let (_dir, url) = write_labelled("");
    cli.ok(&["insert", url.to_str().unwrap(), "--name", "rows"]);
    assert!(cli.ok(&["ls"]).contains("rows"));
}

/// Runs `atdata ARGS` on a terminal (under `script`, which gives it a pty); what it drew.
fn on_a_terminal(cli: &Atdata, args: &[&str]) -> String {
    let line = std::iter::once(crate::cli::built("atdata").display().to_string())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(cli.home.path())
        .envs(cli.env.iter().cloned())
        .output()
        .expect("script (util-linux) runs");
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_terminal_gets_a_progress_bar_with_total_rate_and_eta() {
    let cli = Atdata::new();
    let dir = python_shards_dir(&cli).display().to_string();
    let drawn = on_a_terminal(&cli, &["insert", &dir, "--name", "golden"]);
    assert!(drawn.contains("ETA") && drawn.contains("B/s"), "{drawn}");
    assert!(drawn.contains("inserted golden"), "{drawn}");
    let drawn = on_a_terminal(&cli, &["verify", "golden"]);
    assert!(drawn.contains("ETA"), "{drawn}");
    // Piped, as in every other test: no bar.
    let piped = cli.run(&["verify", "golden"]);
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("ETA"));
}
