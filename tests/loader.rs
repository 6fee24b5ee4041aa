//! The elastic loader: every sample once per epoch, one global order for every world size,
//! exact resume on another world size (once and twice), seeds and epochs, states through JSON
//! and msgpack, errors before any batch, bytes per rank, failures that lose nothing, and S3.

use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use atdata::prelude::*;
use atdata::wds::{self, Error, LocalOpener, ShardOpener, ShardWriter};
use atdata::{StoreOpener, WdsSample, WriteOptions};
use proptest::prelude::*;

use crate::stores::s3_store;
use crate::threads;

#[packable]
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: i64,
}

/// `counts[i]` samples in shard `i` (ids counting up across shards); the brace URL.
fn write_items(dir: &Path, counts: &[usize]) -> String {
    let mut id = 0;
    for (i, &n) in counts.iter().enumerate() {
        let mut w = wds::TarWriter::create(dir.join(format!("items-{i:02}.tar"))).unwrap();
        for _ in 0..n {
            w.write(&Item { id }.as_wds(&format!("{id:06}"))).unwrap();
            id += 1;
        }
        w.finish().unwrap().close().unwrap();
    }
    let last = counts.len() - 1;
    dir.join(format!("items-{{00..{last:02}}}.tar"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The external scenario's dataset: 9,600 samples in nine shards of 1,000 and one of 600.
fn scenario(dir: &Path) -> Dataset<Item> {
    let pattern = dir.join("items-%02d.tar");
    let opts = ShardOptions {
        maxcount: 1000,
        ..Default::default()
    };
    let mut w = ShardWriter::new(pattern.to_str().unwrap(), opts).unwrap();
    for id in 0..9600 {
        w.write_sample(&Item { id }).unwrap();
    }
    assert_eq!(w.finish().unwrap().len(), 10);
    Dataset::new(dir.join("items-{00..09}.tar")).unwrap()
}

fn options(global_batch: usize, seed: Option<u64>, epoch: u64) -> LoaderOptions {
    LoaderOptions {
        global_batch,
        seed,
        epoch,
        ..Default::default()
    }
}

/// Runs `world` ranks side by side from `resume` for at most `batches` global batches: the
/// global batches (rank slices put back together) and the state every rank agrees on.
fn run<O: ShardOpener>(
    ds: &wds::Dataset<Item, O>,
    base: &LoaderOptions,
    world: usize,
    resume: Option<LoaderState>,
    batches: Option<usize>,
) -> (Vec<Vec<i64>>, LoaderState) {
    let mut loaders: Vec<_> = (0..world)
        .map(|rank| {
            ds.loader(LoaderOptions {
                rank,
                world_size: world,
                resume: resume.clone(),
                ..base.clone()
            })
            .unwrap()
        })
        .collect();
    let lens: Vec<usize> = loaders.iter().map(ExactSizeIterator::len).collect();
    assert!(
        lens.iter().all(|&n| n == lens[0]),
        "ranks disagree on the length: {lens:?}"
    );
    let mut global = Vec::new();
    while batches.is_none_or(|n| global.len() < n) {
        let slices: Vec<_> = loaders.iter_mut().map(Iterator::next).collect();
        if slices.iter().all(Option::is_none) {
            break;
        }
        let mut batch = Vec::new();
        for slice in slices {
            let slice = slice.expect("every rank yields as many batches").unwrap();
            assert_eq!(slice.keys().len(), slice.id.len());
            batch.extend_from_slice(&slice.id);
        }
        global.push(batch);
    }
    let state = loaders[0].state();
    for loader in &loaders {
        assert_eq!(loader.state(), state);
    }
    (global, state)
}

#[test]
fn every_sample_once_per_epoch_in_one_global_order_for_every_world_size() {
    let dir = tempfile::tempdir().unwrap();
    let ds = scenario(dir.path());
    for seed in [Some(7), None] {
        let base = options(64, seed, 0);
        let (one, state) = run(&ds, &base, 1, None, None);
        assert_eq!(one.len(), 150);
        assert!(one.iter().all(|b| b.len() == 64));
        assert_eq!(state.batches(), 150);
        let mut all: Vec<i64> = one.concat();
        all.sort_unstable();
        assert_eq!(all, (0..9600).collect::<Vec<_>>(), "seed {seed:?}");
        for world in [2, 4] {
            assert_eq!(
                run(&ds, &base, world, None, None).0,
                one,
                "world {world}, seed {seed:?}"
            );
        }
        let flat = one.concat();
        if seed.is_none() {
            // Without a seed, the order is ordered()'s.
            let ordered: Vec<i64> = ds
                .ordered(64)
                .unwrap()
                .flat_map(|b| b.unwrap().id.clone())
                .collect();
            assert_eq!(flat, ordered);
        } else {
            assert!(flat.windows(2).any(|w| w[0] > w[1]), "shuffled");
        }
    }
}

#[test]
fn resuming_once_or_twice_on_other_world_sizes_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ds = scenario(dir.path());
    let base = options(64, Some(11), 3);
    let (whole, _) = run(&ds, &base, 1, None, None);
    let (next_epoch, _) = run(&ds, &options(64, Some(11), 4), 1, None, None);
    // 7 batches: 56 samples into each partition, in the middle of a shard.
    for world in [1, 2, 4] {
        for then in [1, 2, 4] {
            for cut in [0, 7, 149, 150] {
                let (mut seen, state) = run(&ds, &base, world, None, Some(cut));
                assert_eq!(state.batches(), cut as u64);
                let (rest, end) = run(&ds, &base, then, Some(state), None);
                if cut == 150 {
                    // A state at the end of an epoch starts the next one.
                    assert_eq!((rest.as_slice(), end.epoch()), (next_epoch.as_slice(), 4));
                    continue;
                }
                seen.extend(rest);
                assert_eq!(seen, whole, "world {world} then {then}, cut {cut}");
                assert_eq!((end.epoch(), end.batches()), (3, 150));
            }
        }
    }
    for (first, second, third) in [(1, 4, 2), (4, 2, 1), (2, 1, 4), (4, 4, 4)] {
        for (a, b) in [(0, 149), (7, 100)] {
            let (mut seen, state) = run(&ds, &base, first, None, Some(a));
            let (more, state) = run(&ds, &base, second, Some(state), Some(b - a));
            seen.extend(more);
            seen.extend(run(&ds, &base, third, Some(state), None).0);
            assert_eq!(
                seen, whole,
                "worlds {first}, {second}, {third}; cuts {a}, {b}"
            );
        }
    }
}

#[test]
fn seeds_and_epochs_fix_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let ds = scenario(dir.path());
    let order = |seed, epoch| run(&ds, &options(64, seed, epoch), 2, None, Some(20)).0;
    let base = order(Some(7), 0);
    assert_eq!(order(Some(7), 0), base);
    assert_ne!(order(Some(8), 0), base);
    assert_ne!(order(Some(7), 1), base);
    assert_ne!(order(None, 0), base);
    // Without a seed the epoch changes nothing.
    assert_eq!(order(None, 0), order(None, 5));
    // A batch mixes samples from far apart: every partition gives some.
    let firsts: Vec<i64> = base[0].iter().map(|id| id / 1200).collect();
    for partition in 0..8 {
        assert!(
            firsts.contains(&partition),
            "batch 0 lacks partition {partition}: {firsts:?}"
        );
    }
}

#[test]
fn states_round_trip_through_json_and_msgpack() {
    let dir = tempfile::tempdir().unwrap();
    let ds = scenario(dir.path());
    let mut loader = ds.loader(options(64, Some(3), 2)).unwrap();
    assert_eq!(loader.len(), 150);
    for _ in 0..5 {
        loader.next().unwrap().unwrap();
    }
    assert_eq!(loader.len(), 145);
    let state = loader.state();
    assert_eq!((state.epoch(), state.batches()), (2, 5));
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<LoaderState>(&json).unwrap(), state);
    for field in [
        "version",
        "fingerprint",
        "seed",
        "epoch",
        "global_batch",
        "partitions",
        "batches",
    ] {
        assert!(json.contains(&format!("\"{field}\"")), "{field} in {json}");
    }
    let packed = rmp_serde::to_vec_named(&state).unwrap();
    assert_eq!(
        rmp_serde::from_slice::<LoaderState>(&packed).unwrap(),
        state
    );
    // Resuming from the decoded state gives what the loader would have given next.
    let resumed = ds
        .loader(LoaderOptions {
            resume: Some(serde_json::from_str(&json).unwrap()),
            ..options(64, Some(3), 0)
        })
        .unwrap();
    let next: Vec<Vec<i64>> = loader.map(|b| b.unwrap().id.to_vec()).collect();
    let again: Vec<Vec<i64>> = resumed.map(|b| b.unwrap().id.to_vec()).collect();
    assert_eq!(next, again);
}

fn options_error<O: ShardOpener>(ds: &wds::Dataset<Item, O>, options: LoaderOptions) -> Error {
    match ds.loader(options) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn bad_options_and_states_that_do_not_fit_are_errors_before_any_batch() {
    let dir = tempfile::tempdir().unwrap();
    let ds = scenario(dir.path());
    let bad = |o: LoaderOptions| match options_error(&ds, o) {
        Error::BadLoaderOptions { reason } => reason,
        e => panic!("{e}"),
    };
    assert!(bad(options(0, None, 0)).contains("global_batch is 0"));
    let world = |rank, world_size, global_batch| LoaderOptions {
        rank,
        world_size,
        ..options(global_batch, None, 0)
    };
    assert!(bad(world(0, 4, 66)).contains("not a multiple of world size 4"));
    assert!(bad(world(0, 3, 66)).contains("does not divide the 8 partitions"));
    assert!(bad(world(2, 2, 64)).contains("rank 2 of world size 2"));
    let split = ds.split(0, 2).unwrap();
    assert!(matches!(
        options_error(&split, options(64, None, 0)),
        Error::BadLoaderOptions { .. }
    ));
    // world_size 0 is 1.
    assert_eq!(ds.loader(world(0, 0, 64)).unwrap().len(), 150);

    let mut loader = ds.loader(options(64, Some(1), 0)).unwrap();
    loader.next().unwrap().unwrap();
    let state = loader.state();
    let field = |o: LoaderOptions| match options_error(
        &ds,
        LoaderOptions {
            resume: Some(state.clone()),
            ..o
        },
    ) {
        Error::LoaderStateMismatch { field, .. } => field,
        e => panic!("{e}"),
    };
    assert_eq!(field(options(64, Some(2), 0)), "seed");
    assert_eq!(field(options(64, None, 0)), "seed");
    assert_eq!(field(options(128, Some(1), 0)), "global batch");
    let other = |o: LoaderOptions| LoaderOptions { seed: Some(1), ..o };
    assert_eq!(
        field(other(LoaderOptions {
            partitions: 16,
            ..options(64, None, 0)
        })),
        "partitions"
    );
    assert_eq!(
        field(other(LoaderOptions {
            shuffle_block: 10,
            ..options(64, None, 0)
        })),
        "shuffle block"
    );
    assert_eq!(
        field(other(LoaderOptions {
            drop_last: true,
            ..options(64, None, 0)
        })),
        "drop last"
    );
    // Options equal to the defaults fit a state made with the defaults.
    let explicit = LoaderOptions {
        partitions: wds::DEFAULT_PARTITIONS,
        shuffle_block: wds::DEFAULT_SHUFFLE_BLOCK,
        resume: Some(state.clone()),
        ..options(64, Some(1), 9)
    };
    assert_eq!(ds.loader(explicit).unwrap().len(), 149);

    // Another dataset: one shard fewer.
    let fewer = Dataset::<Item>::new(dir.path().join("items-{00..08}.tar")).unwrap();
    let e = options_error(
        &fewer,
        LoaderOptions {
            resume: Some(state.clone()),
            ..options(64, Some(1), 0)
        },
    );
    assert!(
        matches!(
            e,
            Error::LoaderStateMismatch {
                field: "dataset fingerprint",
                ..
            }
        ),
        "{e}"
    );
    // A state edited past the end, or of another format version.
    let json = serde_json::to_string(&state).unwrap();
    for (from, to, what) in [
        ("\"batches\":1", "\"batches\":151", "batches"),
        ("\"version\":1", "\"version\":2", "format version"),
    ] {
        let edited: LoaderState = serde_json::from_str(&json.replace(from, to)).unwrap();
        let e = options_error(
            &ds,
            LoaderOptions {
                resume: Some(edited),
                ..options(64, Some(1), 0)
            },
        );
        assert!(
            matches!(e, Error::LoaderStateMismatch { field, .. } if field == what),
            "{e}"
        );
    }
}

/// Counts the bytes read by positioned reads.
#[derive(Default)]
struct Counting {
    bytes: Arc<AtomicU64>,
}

impl ShardOpener for Counting {
    fn open(&self, url: &str) -> wds::Result<Box<dyn Read + Send>> {
        LocalOpener.open(url)
    }

    fn read_range(&self, url: &str, range: Range<u64>) -> wds::Result<Vec<u8>> {
        self.bytes
            .fetch_add(range.end - range.start, Ordering::Relaxed);
        LocalOpener.read_range(url, range)
    }
}

#[test]
fn a_rank_reads_about_its_share_of_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path());
    let total: u64 = (0..10)
        .map(|i| {
            std::fs::metadata(dir.path().join(format!("items-{i:02}.tar")))
                .unwrap()
                .len()
        })
        .sum();
    for (world, seed) in [
        (1, Some(5)),
        (2, Some(5)),
        (4, Some(5)),
        (2, None),
        (4, None),
    ] {
        let mut per_rank = Vec::new();
        for rank in 0..world {
            let counting = Counting::default();
            let bytes = counting.bytes.clone();
            let ds = wds::Dataset::<Item, _>::with_context(
                dir.path().join("items-{00..09}.tar"),
                (),
                counting,
            )
            .unwrap();
            let loader = ds
                .loader(LoaderOptions {
                    rank,
                    world_size: world,
                    ..options(64, seed, 0)
                })
                .unwrap();
            assert_eq!(loader.map(Result::unwrap).count(), 150);
            per_rank.push(bytes.load(Ordering::Relaxed));
        }
        let share = total / world as u64;
        for (rank, &read) in per_rank.iter().enumerate() {
            // Its samples' bytes: less the end-of-archive blocks, and without a seed the
            // padding after each run of B/R samples.
            assert!(
                read <= share && read * 100 >= share * 90,
                "world {world} rank {rank}, seed {seed:?}: {read} of {total}"
            );
        }
    }
}

#[test]
fn a_bad_sample_fails_its_batch_and_a_missing_shard_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let url = write_items(dir.path(), &[40, 40, 48]);
    // Sample 50 of shard 1 is not msgpack.
    let bad = dir.path().join("items-01.tar");
    let mut w = wds::TarWriter::create(&bad).unwrap();
    for id in 40..80 {
        let sample = if id == 50 {
            WdsSample::msgpack(format!("{id:06}"), vec![0xc1])
        } else {
            Item { id }.as_wds(&format!("{id:06}"))
        };
        w.write(&sample).unwrap();
    }
    w.finish().unwrap().close().unwrap();
    let ds = Dataset::<Item>::new(&url).unwrap();
    let base = LoaderOptions {
        partitions: 4,
        shuffle_block: 16,
        ..options(16, Some(9), 0)
    };
    let results: Vec<_> = ds.loader(base.clone()).unwrap().collect();
    assert_eq!(results.len(), 8);
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(ToString::to_string)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("000050"), "{}", failed[0]);
    let seen: usize = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|b| b.id.len())
        .sum();
    assert_eq!(seen, 128 - 16);

    // Repair it; an uninterrupted run for reference.
    let mut w = wds::TarWriter::create(&bad).unwrap();
    for id in 40..80 {
        w.write(&Item { id }.as_wds(&format!("{id:06}"))).unwrap();
    }
    w.finish().unwrap().close().unwrap();
    // A new dataset: the old one keeps the sidecar it read (and would call the shard changed).
    let ds = Dataset::<Item>::new(&url).unwrap();
    let (whole, _) = run(&ds, &base, 2, None, None);

    // A shard gone mid-epoch: an error, then nothing; the state resumes at the failed batch.
    let (mut seen, state) = run(&ds, &base, 2, None, Some(2));
    let moved = dir.path().join("moved.tar");
    std::fs::rename(dir.path().join("items-02.tar"), &moved).unwrap();
    let mut loader = ds
        .loader(LoaderOptions {
            resume: Some(state),
            ..base.clone()
        })
        .unwrap();
    let mut yielded = Vec::new();
    let error = loop {
        match loader.next().expect("an error before the end") {
            Ok(batch) => yielded.push(batch.id.to_vec()),
            Err(e) => break e,
        }
    };
    assert!(matches!(error, Error::Io { .. }), "{error}");
    assert!(loader.next().is_none());
    assert_eq!(loader.len(), 0);
    let state = loader.state();
    assert_eq!(state.batches(), 2 + yielded.len() as u64);
    std::fs::rename(&moved, dir.path().join("items-02.tar")).unwrap();
    seen.extend(yielded);
    seen.extend(run(&ds, &base, 1, Some(state), None).0);
    assert_eq!(seen, whole);
}

#[test]
fn a_dropped_loader_joins_its_threads_and_gzip_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let ds = scenario(dir.path());
    // Other tests run loaders at the same time: look for this one's eight threads coming and
    // going, with retries.
    let mut joined = false;
    for _ in 0..20 {
        let before = threads::named("atdata-loader");
        let mut loader = ds.loader(options(64, Some(1), 0)).unwrap();
        loader.next().unwrap().unwrap();
        let during = threads::named("atdata-loader");
        drop(loader);
        let after = threads::named("atdata-loader");
        if during >= before + 8 && after + 8 <= during && after <= before {
            joined = true;
            break;
        }
    }
    assert!(
        joined,
        "a dropped loader's threads are joined when it returns"
    );

    let gz = dir.path().join("rows.tar.gz");
    let mut w = wds::TarWriter::create(&gz).unwrap();
    w.write(&Item { id: 1 }.as_wds("000001")).unwrap();
    w.finish().unwrap().close().unwrap();
    let e = options_error(&Dataset::<Item>::new(&gz).unwrap(), options(1, None, 0));
    assert!(matches!(e, Error::NoRandomAccess { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_reads_s3_shards_as_local_ones() {
    let dir = tempfile::tempdir().unwrap();
    let url = write_items(dir.path(), &[300, 200, 250]);
    let local = Dataset::<Item>::new(&url).unwrap();
    let store = s3_store();
    let prefix = format!("atdata-test/loader/{}", std::process::id());
    let written = store
        .write_shards(&local, &prefix, WriteOptions::default())
        .await
        .unwrap();
    let remote_url = format!("{{{}}}", written.urls().join(","));
    let base = options(32, Some(4), 1);
    let (expected, _) = run(&local, &base, 1, None, None);
    let dataset = wds::Dataset::<Item>::new(&remote_url)
        .unwrap()
        .with_opener(StoreOpener::new(s3_store()));
    let got = tokio::task::spawn_blocking(move || {
        let (mut seen, state) = run(&dataset, &base, 2, None, Some(5));
        seen.extend(run(&dataset, &base, 4, Some(state), None).0);
        seen
    })
    .await
    .unwrap();
    // The order follows the shards' counts, not where they are: a copy reads the same.
    assert_eq!(got, expected);
    for url in written.urls() {
        store.delete_shard(url).await.unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any shard sizes, batch, partitions, block, seed and drop-last: every kept sample once,
    /// the same global order and batch count on 1, 2 and 4 ranks, and a resume that continues it.
    #[test]
    fn the_order_is_the_same_on_any_world_size(
        counts in proptest::collection::vec(0usize..120, 1..6),
        per_rank in 1usize..12,
        partitions in prop_oneof![Just(4usize), Just(8)],
        shuffle_block in 1usize..40,
        seed in proptest::option::of(any::<u64>()),
        drop_last in any::<bool>(),
        cut in 0usize..10,
    ) {
        prop_assume!(counts.iter().sum::<usize>() > 0);
        let dir = tempfile::tempdir().unwrap();
        let ds = Dataset::<Item>::new(write_items(dir.path(), &counts)).unwrap();
        let total = counts.iter().sum::<usize>();
        let b = per_rank * 4;
        let base = LoaderOptions { partitions, shuffle_block, drop_last, ..options(b, seed, 2) };
        let (one, _) = run(&ds, &base, 1, None, None);
        let mut ids = one.concat();
        let full = total / b;
        let rest = total % b;
        let kept = full * b + if drop_last || rest < partitions { 0 } else { rest };
        prop_assert_eq!(ids.len(), kept);
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), kept);
        prop_assert!(ids.iter().all(|&id| (0..total as i64).contains(&id)));
        for world in [2, 4] {
            prop_assert_eq!(&run(&ds, &base, world, None, None).0, &one);
        }
        // Before the end (a state at the end starts the next epoch).
        let cut = cut.min(one.len().saturating_sub(1));
        let (mut seen, state) = run(&ds, &base, 4, None, Some(cut));
        seen.extend(run(&ds, &base, 2, Some(state), None).0);
        prop_assert_eq!(seen, one);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_dataset_loads_in_its_sources_order_typed_and_dynamic() {
    let dir = tempfile::tempdir().unwrap();
    let url = write_items(dir.path(), &[70, 50, 80]);
    let source = Dataset::<Item>::new(&url).unwrap();
    let (index, _, _) = crate::index::stored_sqlite_index(dir.path()).await;
    index.insert_dataset(&source, "items", "i").await.unwrap();
    let typed = atdata::open_dataset::<Item>(&index, "items").await.unwrap();
    let dynamic = atdata::open_dataset::<DynamicSample>(&index, "items")
        .await
        .unwrap();
    assert_eq!(typed.shard_facts().len(), 3, "counts from the entry");
    let base = options(20, Some(3), 0);
    let (expected, _) = run(&source, &base, 1, None, None);
    let (got, rows) = tokio::task::spawn_blocking(move || {
        let (got, _) = run(&typed, &base, 2, None, None);
        // A dynamic dataset's loader yields DynamicBatches with the same samples.
        let mut rows = Vec::new();
        for batch in dynamic.loader(base).unwrap() {
            let batch = batch.unwrap();
            rows.push(batch.keys().iter().map(String::from).collect::<Vec<_>>());
        }
        (got, rows)
    })
    .await
    .unwrap();
    // The copy's URLs differ; the order follows the counts, so it is the source's.
    assert_eq!(got, expected);
    let keys: Vec<Vec<String>> = expected
        .iter()
        .map(|b| b.iter().map(|id| format!("{id:06}")).collect())
        .collect();
    assert_eq!(rows, keys);
}
