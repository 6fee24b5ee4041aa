//! Sidecar indexes and random access: every writer puts a DALI v1.2 sidecar beside its
//! shards, its offsets agree with GNU tar, `len`/`get`/`get_key` read ours, Python's and S3's
//! shards, and a sidecar that lies is an error, never a wrong sample.

use std::path::{Path, PathBuf};
use std::process::Command;

use atdata::prelude::*;
use atdata::wds::{Error, ShardFacts, ShardOpener, ShardWriter, Sidecar, TarWriter, sidecar_url};
use atdata::{StoreOpener, WdsSample, WriteOptions};

use crate::golden;
use crate::hardening::Atdata;
use crate::samples::GoldenPoint;
use crate::stores::s3_store;

#[packable]
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: i64,
    pub text: String,
}

fn row(id: i64) -> Row {
    Row {
        id,
        text: "x".repeat(id as usize % 700),
    }
}

/// `n` rows in shards of `per` under `dir` (`rows-00.tar`...); the brace URL.
fn write_rows(dir: &Path, n: i64, per: usize) -> String {
    let pattern = dir.join("rows-%02d.tar");
    let opts = ShardOptions {
        maxcount: per,
        ..Default::default()
    };
    let mut w = ShardWriter::new(pattern.to_str().unwrap(), opts).unwrap();
    for id in 0..n {
        w.write_sample(&row(id)).unwrap();
    }
    let shards = w.finish().unwrap();
    let last = shards.len() - 1;
    dir.join(format!("rows-{{00..{last:02}}}.tar"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// (block, size) of each member GNU tar lists, and the block of the end-of-archive marker.
fn gnu_blocks(shard: &Path) -> (Vec<(u64, u64)>, u64) {
    let out = Command::new("tar")
        .args([
            "--list",
            "--verbose",
            "--block-number",
            "--numeric-owner",
            "-f",
        ])
        .arg(shard)
        .output()
        .expect("GNU tar runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut members = Vec::new();
    let mut end = None;
    for line in text.lines() {
        let rest = line.strip_prefix("block ").unwrap();
        let (block, rest) = rest.split_once(": ").unwrap();
        let block: u64 = block.parse().unwrap();
        if rest.contains("Block of NULs") {
            end = Some(block);
            continue;
        }
        let size: u64 = rest.split_whitespace().nth(2).unwrap().parse().unwrap();
        members.push((block, size));
    }
    (members, end.expect("an end-of-archive marker"))
}

/// Checks the sidecar beside `shard` against GNU tar's listing: each member's data starts
/// where GNU tar's next block minus the member's padded size says (whatever extended headers
/// precede it), and with a plain header right after its header block.
fn check_against_gnu_tar(shard: &Path, plain_headers: bool) -> Sidecar {
    let text = std::fs::read(sidecar_url(shard.to_str().unwrap()).unwrap()).unwrap();
    let sidecar = Sidecar::parse(&text, "sidecar").unwrap();
    let (members, end) = gnu_blocks(shard);
    let listed: Vec<(u64, u64)> = String::from_utf8(text)
        .unwrap()
        .lines()
        .skip(1)
        .flat_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            fields
                .chunks(4)
                .map(|m| (m[1].parse().unwrap(), m[2].parse().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(listed.len(), members.len());
    for (i, (&(offset, size), &(block, gnu_size))) in listed.iter().zip(&members).enumerate() {
        assert_eq!(size, gnu_size, "member {i}");
        // GNU tar numbers a member by its own header block (Python's PAX members) or by the
        // extended header before it (a GNU long name): the data follows the one, and the
        // next member's numbered block follows the data.
        let after_header = (block + 1) * 512;
        let next = members.get(i + 1).map_or(end, |m| m.0);
        let before_next = next * 512 - size.div_ceil(512) * 512;
        assert!(
            offset == after_header || offset == before_next,
            "member {i}: offset {offset}, GNU tar's blocks {block} and {next}"
        );
        if plain_headers {
            assert_eq!(offset, after_header, "member {i}");
        }
    }
    sidecar
}

#[test]
fn every_writer_puts_a_sidecar_gnu_tar_agrees_with_beside_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    // ShardWriter, with a sample of two members.
    let pattern = dir.path().join("mixed-%02d.tar");
    let mut w = ShardWriter::new(pattern.to_str().unwrap(), ShardOptions::default()).unwrap();
    w.write_sample(&row(3)).unwrap();
    let mut two = WdsSample::msgpack("two", row(650).packed().unwrap());
    two.members.push(("json".into(), b"{\"a\": 1}".to_vec()));
    w.write(&two).unwrap();
    w.write_sample(&row(1)).unwrap();
    w.finish().unwrap();
    let shard = dir.path().join("mixed-00.tar");
    let sidecar = check_against_gnu_tar(&shard, true);
    assert_eq!(sidecar.len(), 3);
    assert_eq!(sidecar.key(1), Some("two"));
    assert_eq!(
        Sidecar::build(std::fs::File::open(&shard).unwrap(), "s").unwrap(),
        sidecar
    );

    // TarWriter::create, with a name long enough for an extended header.
    let long = dir.path().join("long.tar");
    let mut w = TarWriter::create(&long).unwrap();
    let key = "k".repeat(150);
    w.write(&WdsSample::msgpack(&key, row(5).packed().unwrap()))
        .unwrap();
    w.write(&WdsSample::msgpack("short", row(6).packed().unwrap()))
        .unwrap();
    w.finish().unwrap().close().unwrap();
    check_against_gnu_tar(&long, false);
    let ds = Dataset::<Row>::new(long.to_str().unwrap()).unwrap();
    assert_eq!(ds.get_key(&key).unwrap(), row(5));
    assert_eq!(ds.get(1).unwrap(), row(6));

    // Turned off: no sidecar.
    let off = dir.path().join("off-%02d.tar");
    let mut w = ShardWriter::new(off.to_str().unwrap(), ShardOptions::default())
        .unwrap()
        .with_sidecars(false);
    w.write_sample(&row(1)).unwrap();
    w.finish().unwrap();
    assert!(!dir.path().join("off-00.idx").exists());
    // Compressed: none either; len by a scan, get a typed error.
    let gz = dir.path().join("gz-%02d.tar.gz");
    let mut w = ShardWriter::new(gz.to_str().unwrap(), ShardOptions::default()).unwrap();
    w.write_sample(&row(1)).unwrap();
    w.write_sample(&row(2)).unwrap();
    w.finish().unwrap();
    assert!(!dir.path().join("gz-00.idx").exists());
    let ds = Dataset::<Row>::new(dir.path().join("gz-00.tar.gz").to_str().unwrap()).unwrap();
    assert_eq!(ds.len().unwrap(), 2);
    assert!(matches!(ds.get(0), Err(Error::NoRandomAccess { .. })));
}

#[test]
fn a_name_the_line_format_cannot_hold_is_a_typed_error_when_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = TarWriter::create(dir.path().join("ws.tar")).unwrap();
    let err = w
        .write(&WdsSample::msgpack("a key", row(1).packed().unwrap()))
        .unwrap_err();
    assert!(matches!(err, Error::SidecarName { .. }), "{err}");
    // Without a sidecar the same sample is written.
    let mut w = TarWriter::new(Vec::new());
    w.write(&WdsSample::msgpack("a key", row(1).packed().unwrap()))
        .unwrap();
}

#[test]
fn len_get_and_get_key_follow_ordered_order_on_whole_and_split_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let url = write_rows(dir.path(), 25, 4); // 7 shards: 4 x 6, then 1
    let ds = Dataset::<Row>::new(&url).unwrap();
    assert_eq!(ds.len().unwrap(), 25);
    assert!(!ds.is_empty().unwrap());
    let ordered: Vec<Row> = ds.samples().unwrap().map(Result::unwrap).collect();
    for (i, expected) in ordered.iter().enumerate() {
        assert_eq!(&ds.get(i).unwrap(), expected, "sample {i}");
    }
    assert_eq!(ds.get_key("000017").unwrap(), row(17));
    assert!(matches!(
        ds.get(25),
        Err(Error::IndexOutOfRange { index: 25, len: 25 })
    ));
    assert!(matches!(ds.get_key("nope"), Err(Error::KeyNotFound { .. })));
    // A split covers its own shards only.
    let split = ds.split(1, 2).unwrap();
    let mine: Vec<Row> = split.samples().unwrap().map(Result::unwrap).collect();
    assert_eq!(split.len().unwrap(), mine.len());
    for (i, expected) in mine.iter().enumerate() {
        assert_eq!(&split.get(i).unwrap(), expected);
    }
    let other = ds.split(0, 2).unwrap().get(0).unwrap();
    assert!(matches!(
        split.get_key(&format!("{:06}", other.id)),
        Err(Error::KeyNotFound { .. })
    ));
    // Without sidecars the same answers, from a header scan.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "idx") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let bare = Dataset::<Row>::new(&url).unwrap();
    assert_eq!(bare.len().unwrap(), 25);
    assert_eq!(bare.get(13).unwrap(), row(13));
}

#[test]
fn pythons_shards_are_read_at_random_and_get_sidecars_from_the_command() {
    let dir = tempfile::tempdir().unwrap();
    for shard in ["golden_point-000000.tar", "golden_point-000001.tar"] {
        std::fs::copy(
            golden::dir().join("shards").join(shard),
            dir.path().join(shard),
        )
        .unwrap();
    }
    let url = dir.path().join("golden_point-00000{0,1}.tar");
    let ds = Dataset::<GoldenPoint>::new(url.to_str().unwrap()).unwrap();
    let ordered: Vec<GoldenPoint> = ds.samples().unwrap().map(Result::unwrap).collect();
    assert_eq!(ds.len().unwrap(), ordered.len()); // built in memory: Python wrote no sidecar
    assert_eq!(ds.get(2).unwrap(), ordered[2]);

    let cli = Atdata::new();
    let out = cli.ok(&["sidecar", dir.path().to_str().unwrap()]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("wrote")).count(),
        2,
        "{out}"
    );
    for shard in ["golden_point-000000.tar", "golden_point-000001.tar"] {
        // Python's tarfile writes an extended header before each member.
        check_against_gnu_tar(&dir.path().join(shard), false);
    }
    let fresh = Dataset::<GoldenPoint>::new(url.to_str().unwrap()).unwrap();
    assert_eq!(fresh.get(3).unwrap(), ordered[3]);
    assert_eq!(
        fresh
            .get_key(&ds.raw_samples().unwrap().nth(1).unwrap().unwrap().key)
            .unwrap(),
        ordered[1]
    );
}

/// One shard of 3 rows with its sidecar; the shard's path.
fn one_shard(dir: &Path) -> PathBuf {
    let path = dir.join("one.tar");
    let mut w = TarWriter::create(&path).unwrap();
    for id in 0..3 {
        w.write(&row(id).as_wds(&format!("{id:06}"))).unwrap();
    }
    w.finish().unwrap().close().unwrap();
    path
}

fn mismatch(ds: &Dataset<Row>, index: usize) -> String {
    match ds.get(index) {
        Err(Error::SidecarMismatch { reason, .. }) => reason,
        other => panic!("expected a sidecar mismatch, got {other:?}"),
    }
}

#[test]
fn a_sidecar_that_lies_is_an_error_never_a_wrong_sample() {
    let dir = tempfile::tempdir().unwrap();
    let shard = one_shard(dir.path());
    let idx = dir.path().join("one.idx");
    let url = shard.to_str().unwrap();
    let truth = std::fs::read_to_string(&idx).unwrap();
    let lie = |text: &str| {
        std::fs::write(&idx, text).unwrap();
        Dataset::<Row>::new(url).unwrap()
    };
    let lines: Vec<&str> = truth.lines().collect();
    let fields = |i: usize| -> Vec<String> { lines[i].split(' ').map(str::to_owned).collect() };

    // A header at an offset that is not the member it names: sample 1 pointed at sample 2.
    let (one, two) = (fields(2), fields(3));
    let swapped = format!(
        "v1.2 2\n{}\n{} {} {} {}\n",
        lines[1], one[0], two[1], two[2], one[3]
    );
    let reason = mismatch(&lie(&swapped), 1);
    assert!(
        reason.contains("names `000002.msgpack`, not `000001.msgpack`"),
        "{reason}"
    );

    // A size that differs from the header's.
    let grown = format!(
        "{}\n{} {} {} {}\n{}\n{}\n",
        lines[0],
        one[0],
        fields(1)[1],
        1,
        fields(1)[3],
        lines[2],
        lines[3]
    );
    let reason = mismatch(&lie(&grown), 0);
    assert!(reason.contains("sidecar says 1"), "{reason}");

    // A member past the shard's end.
    let size = std::fs::metadata(&shard).unwrap().len();
    let past = format!(
        "{}\n{}\n{}\n{} {} {} {}\n",
        lines[0],
        lines[1],
        lines[2],
        two[0],
        size + 512,
        two[2],
        two[3]
    );
    let reason = mismatch(&lie(&past), 2);
    assert!(reason.contains("past the shard's end"), "{reason}");

    // A count that differs from what the index recorded, a size past the recorded size.
    std::fs::write(&idx, &truth).unwrap();
    let counted = Dataset::<Row>::new(url).unwrap().with_shard_facts([(
        url.to_owned(),
        ShardFacts {
            samples: Some(4),
            bytes: None,
        },
    )]);
    assert_eq!(counted.len().unwrap(), 4, "len trusts the entry's counts");
    assert!(matches!(counted.get(0), Err(Error::SidecarMismatch { .. })));
    let sized = Dataset::<Row>::new(url).unwrap().with_shard_facts([(
        url.to_owned(),
        ShardFacts {
            samples: None,
            bytes: Some(1024),
        },
    )]);
    assert!(matches!(sized.get(0), Err(Error::SidecarMismatch { .. })));

    // Not the format at all.
    let bad = lie("v1.2 3\nmsgpack 512\n");
    assert!(matches!(bad.get(0), Err(Error::BadSidecar { line: 2, .. })));
    let bad = lie("v1.2 99999999999999\n");
    assert!(
        matches!(bad.len(), Ok(99_999_999_999_999)),
        "len reads the first line only"
    );
    assert!(matches!(bad.get(0), Err(Error::BadSidecar { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_shards_stores_sidecars_in_s3_and_get_reads_one_range() {
    let dir = tempfile::tempdir().unwrap();
    let url = write_rows(dir.path(), 30, 8);
    let ds = Dataset::<Row>::new(&url).unwrap();
    let store = s3_store();
    let prefix = format!("atdata-test/sidecars/{}", std::process::id());
    let written = store
        .write_shards(&ds, &prefix, WriteOptions::default())
        .await
        .unwrap();
    let recut = store
        .write_shards(
            &ds,
            &format!("{prefix}/recut"),
            ShardOptions {
                maxcount: 7,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let opener = StoreOpener::new(s3_store());
    let check = |urls: Vec<String>, counts: Vec<u64>| {
        let url = format!("{{{}}}", urls.join(","));
        let facts = urls.iter().cloned().zip(counts.iter().map(|&n| ShardFacts {
            samples: Some(n),
            bytes: None,
        }));
        let remote = Dataset::<Row>::new(&url)
            .unwrap()
            .with_opener(opener.clone())
            .with_shard_facts(facts);
        assert_eq!(remote.len().unwrap(), 30);
        let ordered: Vec<Row> = remote.samples().unwrap().map(Result::unwrap).collect();
        for i in [0, 7, 8, 29] {
            assert_eq!(remote.get(i).unwrap(), ordered[i], "sample {i}");
        }
        assert_eq!(remote.get_key("000021").unwrap(), row(21));
        for shard in &urls {
            let side = sidecar_url(shard).unwrap();
            let text = opener.read_range(&side, 0..5).unwrap();
            assert_eq!(&text, b"v1.2 ", "{side}");
        }
    };
    check(written.urls().to_vec(), written.sample_counts().to_vec());
    check(recut.urls().to_vec(), recut.sample_counts().to_vec());
    // Off: no sidecar objects.
    let bare = store
        .write_shards(
            &ds,
            &format!("{prefix}/bare"),
            WriteOptions {
                sidecars: false,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let missing = opener
        .read_range(&sidecar_url(&bare.urls()[0]).unwrap(), 0..4)
        .unwrap_err();
    assert!(
        matches!(&missing, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{missing}"
    );
    // Past the end of an object: UnexpectedEof.
    let past = opener
        .read_range(&bare.urls()[0], 1 << 40..(1 << 40) + 8)
        .unwrap_err();
    assert!(
        matches!(&past, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof),
        "{past}"
    );
    for shard in written.urls().iter().chain(recut.urls()).chain(bare.urls()) {
        store.delete_shard(shard).await.unwrap();
    }
}

/// One shard of `n` rows of about 5 KB (over 8 MiB in all, so that it is read in pieces on
/// several cores), by `TarWriter` with its sidecar, or by Python-style PAX headers when
/// `pax`; the shard's path.
fn big_shard(dir: &Path, n: i64, pax: bool) -> PathBuf {
    let path = dir.join("big.tar");
    let sample = |id: i64| {
        let mut r = row(id);
        r.text = format!("{id}").repeat(1000);
        r.as_wds(&format!("{id:07}"))
    };
    if pax {
        // GNU tar's PAX format (an extended header before every member, as Python's tarfile
        // writes), then the sidecar built from its headers.
        let files = dir.join("files");
        std::fs::create_dir_all(&files).unwrap();
        let mut names = Vec::new();
        for id in 0..n {
            let s = sample(id);
            let name = format!("{}.msgpack", s.key);
            std::fs::write(files.join(&name), &s.members[0].1).unwrap();
            names.push(name);
        }
        let list = dir.join("list");
        std::fs::write(&list, names.join("\n")).unwrap();
        let status = Command::new("tar")
            .args(["--format=pax", "-cf", path.to_str().unwrap(), "-C"])
            .arg(&files)
            .arg("-T")
            .arg(&list)
            .status()
            .unwrap();
        assert!(status.success());
        let sidecar = Sidecar::build(std::fs::File::open(&path).unwrap(), "big.tar").unwrap();
        sidecar.write_file(dir.join("big.idx")).unwrap();
    } else {
        let mut w = TarWriter::create(&path).unwrap();
        for id in 0..n {
            w.write(&sample(id)).unwrap();
        }
        w.finish().unwrap().close().unwrap();
    }
    path
}

#[test]
fn a_large_shard_is_read_in_pieces_in_order_alike() {
    for pax in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let shard = big_shard(dir.path(), 3_001, pax);
        assert!(dir.path().join("big.idx").exists());
        let url = shard.to_str().unwrap();
        // One thread reads the shard whole: the reference.
        let whole = Dataset::<Row>::new(url).unwrap().with_parallelism(1);
        let expected: Vec<(String, Row)> = whole
            .samples_with_keys()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(expected.len(), 3_001);
        for threads in [2, 3, 8] {
            let ds = Dataset::<Row>::new(url).unwrap().with_parallelism(threads);
            let read: Vec<(String, Row)> = ds
                .samples_with_keys()
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(read == expected, "{threads} threads, pax {pax}");
            for size in [1, 32, 1000] {
                let batches: Vec<SampleBatch<Row>> =
                    ds.ordered(size).unwrap().map(Result::unwrap).collect();
                assert_eq!(batches.len(), 3_001usize.div_ceil(size));
                let rows: Vec<Row> = batches.iter().flat_map(|b| b.samples().to_vec()).collect();
                let keys: Vec<&str> = batches.iter().flat_map(|b| b.keys()).collect();
                assert!(
                    rows.iter().eq(expected.iter().map(|(_, r)| r)),
                    "batches of {size}"
                );
                assert!(keys.into_iter().eq(expected.iter().map(|(k, _)| k)));
            }
        }
    }
}

#[test]
fn a_large_shard_whose_sidecar_is_stale_is_an_error_never_a_wrong_sample() {
    let dir = tempfile::tempdir().unwrap();
    let shard = big_shard(dir.path(), 3_001, false);
    let url = shard.to_str().unwrap();
    // The shard rewritten with its second half's keys changed, under the old sidecar.
    let idx = std::fs::read(dir.path().join("big.idx")).unwrap();
    let mut w = TarWriter::create(&shard).unwrap();
    for id in 0..3_001i64 {
        let key = if id < 1_500 {
            format!("{id:07}")
        } else {
            format!("{:07}", id + 5)
        };
        let mut r = row(id);
        r.text = format!("{id}").repeat(1000);
        w.write(&r.as_wds(&key)).unwrap();
    }
    w.finish().unwrap().close().unwrap();
    std::fs::write(dir.path().join("big.idx"), idx).unwrap();

    for threads in [1, 2, 3] {
        let ds = Dataset::<Row>::new(url).unwrap().with_parallelism(threads);
        let (mut ids, mut errors) = (Vec::new(), Vec::new());
        for sample in ds.samples().unwrap() {
            match sample {
                Ok(row) => ids.push(row.id),
                Err(e) => errors.push(e.to_string()),
            }
        }
        // Whatever was read is in order and read once.
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{threads} threads");
        if threads == 1 {
            // Read whole, the sidecar is not used.
            assert_eq!((ids.len(), errors.len()), (3_001, 0));
        } else if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
            assert!(!errors.is_empty(), "{threads} threads: {} rows", ids.len());
            assert!(errors.iter().all(|e| e.contains("sidecar")), "{errors:?}");
        }
    }
}
