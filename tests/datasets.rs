//! Shards and datasets: the golden shards read back exactly, the writer reproduces them byte
//! for byte, and reading is ordered, reproducibly shuffled, split without overlap or gap, and
//! robust to every kind of damage.

use std::path::{Path, PathBuf};

use atdata::prelude::*;
use atdata::wds::{Error, ShardWriter, TarReader, TarWriter, expand_urls};
use atdata::{Column, DynamicBatch, WdsSample};
use proptest::prelude::*;

use crate::golden::{self, load, payloads, strings, unhex};
use crate::samples::{GoldenImage, GoldenPoint, python_record};

const GOLDEN_MTIME: u64 = 1_735_787_045;

fn golden_url(relative: &str) -> String {
    golden::dir()
        .join(relative)
        .to_str()
        .expect("utf-8 path")
        .to_owned()
}

fn keys<T: atdata::SampleType, O: atdata::wds::ShardOpener>(
    ds: &atdata::wds::Dataset<T, O>,
) -> Vec<String> {
    ds.raw_samples().unwrap().map(|s| s.unwrap().key).collect()
}

/// Reads a golden shard set as `T` and checks shards, keys and samples against the record.
fn check_golden_read<T>(type_name: &str)
where
    T: Packable + atdata::SampleType<Context = ()> + PartialEq + std::fmt::Debug,
{
    let read = load("samples.json")["dataset_reads"][type_name].clone();
    let url = golden_url(read["url"].as_str().unwrap());
    let ds = Dataset::<T>::new(&url).unwrap();
    let expected_shards: Vec<String> = strings(&read["list_shards"])
        .into_iter()
        .map(golden_url)
        .collect();
    assert_eq!(ds.shard_list(), expected_shards);
    assert_eq!(keys(&ds), strings(&read["ordered_keys"]));
    let got: Vec<T> = ds.samples().unwrap().map(Result::unwrap).collect();
    let want: Vec<T> = payloads(type_name)
        .iter()
        .map(|p| T::from_bytes(p).unwrap())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn golden_shards_read_back_as_python_wrote_them() {
    check_golden_read::<GoldenImage>("GoldenImage");
    check_golden_read::<GoldenPoint>("GoldenPoint");
    let reads = load("samples.json")["dataset_reads"].clone();
    for type_name in ["GoldenImage", "GoldenPoint"] {
        let url = golden_url(reads[type_name]["url"].as_str().unwrap());
        let payloads = payloads(type_name);
        // Raw members are exactly the golden payloads.
        let raw: Vec<WdsSample> = Dataset::<GoldenPoint>::new(&url)
            .unwrap()
            .raw_samples()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            raw.iter()
                .map(|s| s.member("msgpack").unwrap().to_vec())
                .collect::<Vec<_>>(),
            payloads
        );
    }
}

/// A golden shard set read as `ordered(2)` batches, and the batches Python recorded for it.
fn golden_batches<T>(type_name: &str) -> (Vec<SampleBatch<T>>, Vec<serde_json::Value>)
where
    T: Packable + atdata::SampleType<Context = (), Batch = SampleBatch<T>>,
{
    let read = load("samples.json")["dataset_reads"][type_name].clone();
    let ds = Dataset::<T>::new(golden_url(read["url"].as_str().unwrap())).unwrap();
    let batches = ds.ordered(2).unwrap().map(Result::unwrap).collect();
    (
        batches,
        read["ordered_batch_size_2"].as_array().unwrap().clone(),
    )
}

#[test]
fn golden_batches_group_as_dataset_reads_records() {
    let (batches, expected) = golden_batches::<GoldenImage>("GoldenImage");
    assert_eq!(batches.len(), expected.len());
    for (batch, exp) in batches.iter().zip(expected) {
        assert_eq!(batch.len() as u64, exp["size"].as_u64().unwrap());
        assert_eq!(
            serde_json::json!(batch.image.shape()),
            exp["fields"]["image"]["shape"]
        );
        assert_eq!(
            batch.label.len() as u64,
            exp["fields"]["label"]["len"].as_u64().unwrap()
        );
        // Our correction: optional arrays batch as a list of optionals (upstream raises).
        assert_eq!(batch.mask.len(), batch.len());
    }
    let (batches, expected) = golden_batches::<GoldenPoint>("GoldenPoint");
    for (batch, exp) in batches.iter().zip(expected) {
        assert_eq!(
            serde_json::json!(batch.embedding.shape()),
            exp["fields"]["embedding"]["shape"]
        );
        // Our correction: `weights` (NDArray[np.float64]) stacks as an array; upstream keeps bytes.
        assert_eq!(batch.weights.shape(), &[2, 2]);
    }
}

#[test]
fn dynamic_datasets_read_and_batch_by_pythons_schema() {
    let url = golden_url("shards/golden_point-00000{0,1}.tar");
    let schema = python_record("GoldenPoint").schema;
    let ds = Dataset::<DynamicSample>::with_schema(&url, schema.clone()).unwrap();
    let samples: Vec<DynamicSample> = ds.samples().unwrap().map(Result::unwrap).collect();
    assert_eq!(samples.len(), 4);
    assert_eq!(samples[2].get("name").and_then(|v| v.as_str()), Some("p2"));
    let batches: Vec<DynamicBatch> = ds.ordered(3).unwrap().map(Result::unwrap).collect();
    assert_eq!(
        batches.iter().map(DynamicBatch::len).collect::<Vec<_>>(),
        [3, 1]
    );
    let Some(Column::Array(embedding)) = batches[0].column("embedding") else {
        panic!("embedding stacks")
    };
    assert_eq!(
        (embedding.dtype().as_str(), embedding.shape()),
        ("<f4", &[3, 4][..])
    );
    let stacked: Vec<f32> = embedding
        .to_array::<f32, atdata::ndarray::Ix2>()
        .unwrap()
        .iter()
        .copied()
        .collect();
    let expected: Vec<f32> = samples[..3]
        .iter()
        .flat_map(|s| {
            s.get("embedding")
                .unwrap()
                .as_array()
                .unwrap()
                .to_array::<f32, atdata::ndarray::Ix1>()
                .unwrap()
                .to_vec()
        })
        .collect();
    assert_eq!(stacked, expected);
    let Some(Column::Values(names)) = batches[0].column("name") else {
        panic!("names are values")
    };
    assert_eq!(
        names
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect::<Vec<_>>(),
        ["p0", "p1", "p2"]
    );

    // GoldenImage by Python's schema: `mask` is optional, so it is a list; `image` stacks.
    let ds = Dataset::<DynamicSample>::with_schema(
        golden_url("shards/golden_image-{000000..000001}.tar"),
        python_record("GoldenImage").schema,
    )
    .unwrap();
    let batch = ds.ordered(5).unwrap().next().unwrap().unwrap();
    assert!(matches!(batch.column("image"), Some(Column::Array(a)) if a.shape() == [5, 2, 3]));
    assert!(matches!(batch.column("mask"), Some(Column::Values(v)) if v.len() == 5));
}

#[test]
fn dynamic_batches_name_the_field_whose_arrays_disagree() {
    #[packable]
    #[derive(Debug)]
    struct Vector {
        v: atdata::ndarray::ArrayD<f32>,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.tar");
    let mut w = TarWriter::create(&path).unwrap();
    w.write(
        &Vector {
            v: atdata::ndarray::ArrayD::zeros(vec![2]),
        }
        .as_wds("a"),
    )
    .unwrap();
    w.write(
        &Vector {
            v: atdata::ndarray::ArrayD::zeros(vec![3]),
        }
        .as_wds("b"),
    )
    .unwrap();
    w.finish().unwrap().close().unwrap();
    let ds =
        Dataset::<DynamicSample>::with_schema(path.to_str().unwrap(), Vector::schema()).unwrap();
    let err = ds.ordered(2).unwrap().next().unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot batch samples: field `v`: cannot stack arrays: sample 1 has shape [3], sample 0 has [2]"
    );
    let typed = Dataset::<Vector>::new(path.to_str().unwrap()).unwrap();
    let err = typed.ordered(2).unwrap().next().unwrap().unwrap_err();
    assert!(err.to_string().contains("field `v`"), "{err}");
}

#[test]
fn tar_writer_reproduces_the_golden_shards_byte_for_byte() {
    let samples = load("samples.json")["samples"].as_array().unwrap().clone();
    let images: Vec<WdsSample> = samples
        .iter()
        .filter(|s| s["type"] == "GoldenImage")
        .map(|s| WdsSample::msgpack(s["key"].as_str().unwrap(), unhex(&s["msgpack_hex"])))
        .collect();
    for (shard, range) in [(0, 0..3), (1, 3..5)] {
        let mut w = TarWriter::new(Vec::new()).mtime(GOLDEN_MTIME);
        for s in &images[range] {
            w.write(s).unwrap();
        }
        let written = w.finish().unwrap();
        let golden =
            std::fs::read(golden::dir().join(format!("shards/golden_image-00000{shard}.tar")))
                .unwrap();
        assert_eq!(written, golden, "shard {shard}");
    }
}

#[packable]
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: i64,
    text: String,
}

/// Writes `counts[i]` rows to shard `i` of `dir`; ids run on across shards.
fn write_shards(dir: &Path, counts: &[usize]) -> String {
    let mut id = 0;
    for (i, &count) in counts.iter().enumerate() {
        let mut w = TarWriter::create(dir.join(format!("rows-{i:03}.tar"))).unwrap();
        for _ in 0..count {
            w.write(
                &Row {
                    id,
                    text: format!("row {id}"),
                }
                .as_wds(&format!("{id:08}")),
            )
            .unwrap();
            id += 1;
        }
        w.finish().unwrap().close().unwrap();
    }
    let last = counts.len().saturating_sub(1);
    dir.join(format!("rows-{{000..{last:03}}}.tar"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Writes rows `ids` (text `text`, keys the ids) through a `ShardWriter` on `dir/pattern`.
fn write_rows(
    dir: &Path,
    pattern: &str,
    options: ShardOptions,
    ids: std::ops::Range<i64>,
    text: &str,
) -> Vec<PathBuf> {
    let mut w = ShardWriter::new(dir.join(pattern).to_str().unwrap(), options).unwrap();
    for id in ids {
        w.write(
            &Row {
                id,
                text: text.into(),
            }
            .as_wds(&format!("{id:04}")),
        )
        .unwrap();
    }
    w.finish().unwrap()
}

fn ids(samples: impl Iterator<Item = atdata::wds::Result<Row>>) -> Vec<i64> {
    samples.map(|r| r.unwrap().id).collect()
}

#[test]
fn shard_writer_rolls_over_by_count_and_size_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ShardOptions {
        maxcount: 4,
        mtime: Some(GOLDEN_MTIME),
        ..Default::default()
    };
    let paths = write_rows(dir.path(), "sub/dir/out-%06d.tar", opts, 0..10, "x");
    assert_eq!(
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect::<Vec<_>>(),
        ["out-000000.tar", "out-000001.tar", "out-000002.tar"]
    );
    let counts: Vec<usize> = paths
        .iter()
        .map(|p| TarReader::new(std::fs::File::open(p).unwrap(), "x").count())
        .collect();
    assert_eq!(counts, [4, 4, 2]);
    let ds = Dataset::<Row>::new(
        dir.path()
            .join("sub/dir/out-{000000..000002}.tar")
            .to_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ids(ds.samples().unwrap()), (0..10).collect::<Vec<_>>());

    // maxsize counts payload bytes and is checked before each write.
    let payload_len = Row {
        id: 0,
        text: "x".into(),
    }
    .packed()
    .unwrap()
    .len() as u64;
    let opts = ShardOptions {
        maxsize: payload_len * 2 + 1,
        ..Default::default()
    };
    assert_eq!(
        write_rows(dir.path(), "size-%d.tar", opts, 0..7, "x").len(),
        3,
        "3 + 3 + 1 samples"
    );

    // No samples, no shard; an exact multiple leaves no trailing empty shard.
    assert!(write_rows(dir.path(), "none-%d.tar", ShardOptions::default(), 0..0, "").is_empty());
    let opts = ShardOptions {
        maxcount: 2,
        ..Default::default()
    };
    assert_eq!(
        write_rows(dir.path(), "even-%d.tar", opts, 0..4, "").len(),
        2
    );
}

#[test]
fn gzip_shards_write_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ShardOptions {
        maxcount: 3,
        ..Default::default()
    };
    let paths = write_rows(dir.path(), "z-%02d.tar.gz", opts, 0..5, "zip");
    assert_eq!(&std::fs::read(&paths[0]).unwrap()[..2], &[0x1f, 0x8b]);
    let ds = Dataset::<Row>::new(dir.path().join("z-{00..01}.tar.gz").to_str().unwrap()).unwrap();
    assert_eq!(ids(ds.samples().unwrap()), [0, 1, 2, 3, 4]);

    // `finish` alone completes a gzip shard: it is readable while the file is still open.
    let path = dir.path().join("single.tgz");
    let mut w = TarWriter::create(&path).unwrap();
    w.write(
        &Row {
            id: 9,
            text: "z".into(),
        }
        .as_wds("k"),
    )
    .unwrap();
    let open_file = w.finish().unwrap();
    let mut tar = Vec::new();
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap());
    std::io::Read::read_to_end(&mut { gz }, &mut tar)
        .expect("a complete gzip stream, trailer included");
    assert_eq!(tar.len() % 10240, 0);
    open_file.close().unwrap();
}

#[test]
fn raw_samples_copy_a_dataset_keeping_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = golden_url("shards/golden_point-00000{0,1}.tar");
    let source = Dataset::<GoldenPoint>::new(&url).unwrap();
    let mut w = ShardWriter::new(
        dir.path().join("copy-%d.tar").to_str().unwrap(),
        ShardOptions::default(),
    )
    .unwrap();
    for s in source.raw_samples().unwrap() {
        w.write(&s.unwrap()).unwrap();
    }
    let copy = w.finish().unwrap();
    let copied = Dataset::<GoldenPoint>::new(copy[0].to_str().unwrap()).unwrap();
    assert_eq!(keys(&copied), keys(&source));
}

#[test]
fn ordered_batches_span_shards_and_the_last_is_short() {
    let dir = tempfile::tempdir().unwrap();
    let url = write_shards(dir.path(), &[3, 0, 4, 2]);
    let ds = Dataset::<Row>::new(&url).unwrap();
    let batches: Vec<SampleBatch<Row>> = ds.ordered(4).unwrap().map(Result::unwrap).collect();
    assert_eq!(
        batches.iter().map(|b| b.id.clone()).collect::<Vec<_>>(),
        [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8]]
    );
    assert!(matches!(ds.ordered(0), Err(Error::ZeroBatchSize)));
    assert!(matches!(
        ds.shuffled(0, ShuffleOptions::seeded(1)),
        Err(Error::ZeroBatchSize)
    ));
}

#[test]
fn shuffling_is_reproducible_whatever_the_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let url = write_shards(dir.path(), &[50, 50, 50, 50, 50, 50]);
    let ds = Dataset::<Row>::new(&url).unwrap();
    let opts = ShuffleOptions {
        seed: 7,
        buffer_samples: 64,
    };
    let order = |ds: &atdata::Dataset<Row>| ids(ds.shuffled_samples(opts).unwrap());
    let reference = order(&ds.clone().with_parallelism(1));
    for parallelism in [2, 3, 8] {
        assert_eq!(
            order(&ds.clone().with_parallelism(parallelism)),
            reference,
            "parallelism {parallelism}"
        );
    }
    let mut sorted = reference.clone();
    sorted.sort();
    assert_eq!(sorted, (0..300).collect::<Vec<_>>(), "every sample once");
    assert_ne!(reference, (0..300).collect::<Vec<_>>(), "actually shuffled");
    assert_ne!(
        ids(ds
            .shuffled_samples(ShuffleOptions { seed: 8, ..opts })
            .unwrap()),
        reference,
        "seeds differ"
    );
    let mut next_epoch = ds.clone();
    next_epoch.set_epoch(1);
    assert_ne!(order(&next_epoch), reference, "epochs differ");
    let batched: Vec<i64> = ds
        .shuffled(32, opts)
        .unwrap()
        .flat_map(|b| b.unwrap().id.clone())
        .collect();
    assert_eq!(batched, reference, "batches follow the sample order");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Every sample is read exactly once per epoch across all ranks and workers, ordered or
    /// shuffled; too few shards is an error at construction.
    #[test]
    fn splits_cover_every_sample_exactly_once(
        counts in prop::collection::vec(0usize..6, 1..10),
        world in 1usize..4,
        workers in 1usize..3,
        seed in any::<u64>(),
        epoch in 0u64..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let url = write_shards(dir.path(), &counts);
        let total: usize = counts.iter().sum();
        let mut ds = Dataset::<Row>::new(&url).unwrap();
        ds.set_epoch(epoch);
        if counts.len() < world * workers {
            let err = ds.split(0, world).and_then(|d| d.worker_split(0, workers)).unwrap_err();
            prop_assert!(matches!(err, Error::TooFewShards { .. }), "{}", err);
            return Ok(());
        }
        for shuffled in [false, true] {
            let mut seen = Vec::new();
            for rank in 0..world {
                for worker in 0..workers {
                    let part = ds.split(rank, world).unwrap().worker_split(worker, workers).unwrap();
                    let samples = if shuffled {
                        part.shuffled_samples(ShuffleOptions { seed, buffer_samples: 8 }).unwrap()
                    } else {
                        part.samples().unwrap()
                    };
                    seen.extend(ids(samples));
                }
            }
            seen.sort();
            prop_assert_eq!(seen, (0..total as i64).collect::<Vec<_>>());
        }
    }
}

#[test]
fn invalid_splits_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ds = Dataset::<Row>::new(write_shards(dir.path(), &[1, 1])).unwrap();
    assert!(matches!(
        ds.split(2, 2),
        Err(Error::InvalidSplit { index: 2, count: 2 })
    ));
    assert!(matches!(
        ds.split(0, 3),
        Err(Error::TooFewShards {
            shards: 2,
            ranks: 3,
            workers: 1
        })
    ));
    assert_eq!(ds.split(1, 2).unwrap().shard_list().len(), 1);
}

/// Writes a valid shard of `n` rows and returns its bytes.
fn shard_bytes(n: i64) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new()).mtime(0);
    for id in 0..n {
        w.write(
            &Row {
                id,
                text: "a".repeat(600),
            }
            .as_wds(&format!("{id:04}")),
        )
        .unwrap();
    }
    w.finish().unwrap()
}

fn read_all(bytes: &[u8]) -> (Vec<String>, Option<Error>) {
    let mut keys = Vec::new();
    for s in TarReader::new(bytes, "test.tar") {
        match s {
            Ok(s) => keys.push(s.key),
            Err(e) => return (keys, Some(e)),
        }
    }
    (keys, None)
}

#[test]
fn truncated_archives_yield_intact_samples_then_an_error_naming_the_member() {
    let bytes = shard_bytes(5);
    // Each sample is a header (512) plus 1024 bytes of data: member k starts at k * 1536.
    let (keys, err) = read_all(&bytes[..2 * 1536 + 700]);
    assert_eq!(keys, ["0000", "0001"]);
    let err = err.expect("an error");
    assert_eq!(
        err.to_string(),
        "test.tar: truncated tar archive at member `0002.msgpack`"
    );
    // Cut at a member boundary: the end-of-archive marker is missing.
    let (keys, err) = read_all(&bytes[..3 * 1536]);
    assert_eq!(keys, ["0000", "0001", "0002"]);
    assert!(matches!(err, Some(Error::Truncated { member: None, .. })));
    // Every cut point: no panic, only intact samples, always an error before the marker.
    for cut in (0..5 * 1536).step_by(97) {
        let (keys, err) = read_all(&bytes[..cut]);
        assert!(keys.len() <= cut / 1536, "cut {cut}");
        assert!(err.is_some(), "cut {cut}");
    }
    let (keys, err) = read_all(&bytes);
    assert_eq!((keys.len(), err.is_none()), (5, true));
}

#[test]
fn corrupt_headers_and_repeated_members_are_errors() {
    let mut bytes = shard_bytes(3);
    bytes[1536 + 10] ^= 0xff; // inside member 1's name: the checksum no longer matches
    let (keys, err) = read_all(&bytes);
    assert_eq!(keys, ["0000"]);
    assert!(
        matches!(&err, Some(Error::CorruptHeader { reason, .. }) if reason == "checksum mismatch"),
        "{err:?}"
    );

    let mut w = TarWriter::new(Vec::new());
    let sample = WdsSample {
        key: "k".into(),
        members: vec![
            ("msgpack".into(), vec![0x80]),
            ("msgpack".into(), vec![0x80]),
        ],
    };
    w.write(&WdsSample::msgpack("first", vec![0x80])).unwrap();
    w.write(&sample).unwrap();
    let (keys, err) = read_all(&w.finish().unwrap());
    assert_eq!(keys, ["first"]);
    assert_eq!(
        err.unwrap().to_string(),
        "test.tar: sample `k` has two `msgpack` members"
    );

    let (keys, err) = read_all(b"not a tar file at all");
    assert!(keys.is_empty());
    assert!(matches!(err, Some(Error::Truncated { .. })));
    let (_, err) = read_all(&[b'x'; 1024]);
    assert!(matches!(err, Some(Error::CorruptHeader { .. })));
}

#[test]
fn bad_samples_are_errors_in_place_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.tar");
    let mut w = TarWriter::create(&path).unwrap();
    w.write(
        &Row {
            id: 1,
            text: "ok".into(),
        }
        .as_wds("a"),
    )
    .unwrap();
    w.write(&WdsSample::msgpack("b", vec![0xc1])).unwrap();
    w.write(&WdsSample {
        key: "c".into(),
        members: vec![("json".into(), b"{}".to_vec())],
    })
    .unwrap();
    w.write(
        &Row {
            id: 4,
            text: "ok".into(),
        }
        .as_wds("d"),
    )
    .unwrap();
    w.finish().unwrap().close().unwrap();
    let shard = path.to_str().unwrap();
    let results: Vec<_> = Dataset::<Row>::new(shard)
        .unwrap()
        .samples()
        .unwrap()
        .collect();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().unwrap().id, 1);
    assert_eq!(
        results[1].as_ref().unwrap_err().to_string(),
        format!("{shard}: sample `b`: expected map, found reserved byte 0xc1")
    );
    assert_eq!(
        results[2].as_ref().unwrap_err().to_string(),
        format!("{shard}: sample `c` has no `msgpack` member")
    );
    assert_eq!(results[3].as_ref().unwrap().id, 4);
    // A failing sample does not lose the samples gathered for the batch.
    let batches: Vec<_> = Dataset::<Row>::new(shard)
        .unwrap()
        .ordered(2)
        .unwrap()
        .collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[2].as_ref().unwrap().id, [1, 4]);
}

#[test]
fn missing_shards_and_unsupported_urls_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let url = write_shards(dir.path(), &[2]);
    let missing = dir.path().join("nope.tar").to_str().unwrap().to_owned();
    let ds = Dataset::<Row>::new(format!(
        "{{{},{missing}}}",
        url.replace("{000..000}", "000")
    ))
    .unwrap();
    let results: Vec<_> = ds.samples().unwrap().collect();
    assert_eq!(results.len(), 3);
    let err = results[2].as_ref().unwrap_err();
    assert!(
        matches!(err, Error::Io { path, .. } if *path == missing),
        "{err}"
    );
    // The shard crate's own opener reads local files only.
    let ds = atdata::wds::Dataset::<Row>::new("s3://bucket/data-{0..1}.tar").unwrap();
    let err = ds.samples().unwrap().next().unwrap().unwrap_err();
    assert!(matches!(err, Error::UnsupportedUrl { .. }), "{err}");
    assert!(matches!(
        Dataset::<Row>::new("data-{0..1.tar"),
        Err(Error::InvalidPattern { .. })
    ));
    assert_eq!(
        expand_urls("file:///d/x-{0..1}.tar").unwrap(),
        ["file:///d/x-0.tar", "file:///d/x-1.tar"]
    );
}

#[test]
fn file_urls_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let url = write_shards(dir.path(), &[2, 1]);
    let ds = Dataset::<Row>::new(format!("file://{url}")).unwrap();
    assert_eq!(ids(ds.samples().unwrap()), [0, 1, 2]);
}

#[tokio::test(flavor = "current_thread")]
async fn reading_works_inside_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let url = write_shards(dir.path(), &[10, 10]);
    let ds = Dataset::<Row>::new(&url).unwrap();
    let batches: Vec<SampleBatch<Row>> = ds.ordered(8).unwrap().map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(SampleBatch::len).sum::<usize>(), 20);
}

#[test]
fn dropping_an_iterator_early_stops_its_threads() {
    let dir = tempfile::tempdir().unwrap();
    let url = write_shards(dir.path(), &[600, 600, 600, 600]);
    for _ in 0..20 {
        let ds = Dataset::<Row>::new(&url).unwrap().with_parallelism(4);
        let mut it = ds.samples().unwrap();
        assert_eq!(it.next().unwrap().unwrap().id, 0);
    }
    // Reaching here without deadlock is the check; the threads end when their queues close.
    let _: PathBuf = dir.path().to_path_buf();
}

/// Shard threads wait for their queue's byte budget while the consumer is elsewhere: dropping
/// the reader wakes them, and they end.
#[test]
fn a_dropped_reader_ends_its_shard_threads_waiting_for_room() {
    let dir = tempfile::tempdir().unwrap();
    for shard in 0..4 {
        let mut w = TarWriter::create(dir.path().join(format!("big-{shard}.tar"))).unwrap();
        for i in 0..100 {
            let row = Row {
                id: i,
                text: "x".repeat(200_000),
            };
            w.write(&row.as_wds(&format!("{shard}-{i:03}"))).unwrap();
        }
        w.finish().unwrap().close().unwrap();
    }
    let ds = Dataset::<Row>::new(dir.path().join("big-{0..3}.tar"))
        .unwrap()
        .with_parallelism(4);
    let mut ended = false;
    // Other tests read at the same time: retry until this reader's threads are seen to go.
    for _ in 0..20 {
        let before = crate::threads::named("atdata-shard");
        let mut samples = ds.samples().unwrap();
        samples.next().unwrap().unwrap();
        // 80 MB of samples, a 32 MiB budget: the threads behind the first shard wait.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let during = crate::threads::named("atdata-shard");
        drop(samples);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while crate::threads::named("atdata-shard") > before && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if during >= before + 4 && crate::threads::named("atdata-shard") <= before {
            ended = true;
            break;
        }
    }
    assert!(ended, "the shard threads of a dropped reader end");
}
