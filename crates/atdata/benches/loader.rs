//! The elastic loader on local shards: a shuffled `Dataset::loader` epoch next to `ordered()`
//! of the same files in the same run, on one rank and on two ranks read side by side, the
//! bytes each rank reads, and the peak RSS of 2 GB epochs (each read in its own process, best
//! of three epochs) beside the loader's stated bound. (The loader from S3 is in `atdata-store`'s `stores`
//! benchmark.)
//!
//! `cargo bench -p atdata-ml --bench loader` runs the full sizes (figures in
//! docs/performance.md); without `--bench` (as `cargo test --benches` runs it) small ones.

use std::ops::Range;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use atdata::ndarray::Array3;
use atdata::prelude::*;
use atdata::wds::{self, LocalOpener, ShardOpener};

mod common;
use common::{Image, Tabular, peak_rss_mb, write_shards};

const BATCH: usize = 64;
const SEED: u64 = 1;

/// Counts the bytes of positioned reads (what the loader reads of the shards).
#[derive(Default)]
struct Counting {
    bytes: Arc<AtomicU64>,
}

impl ShardOpener for Counting {
    fn open(&self, url: &str) -> wds::Result<Box<dyn std::io::Read + Send>> {
        LocalOpener.open(url)
    }

    fn read_range(&self, url: &str, range: Range<u64>) -> wds::Result<Vec<u8>> {
        self.bytes
            .fetch_add(range.end - range.start, Ordering::Relaxed);
        LocalOpener.read_range(url, range)
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // `--child ordered|loader URL BLOCK`: one epoch of images in this process, then its peak RSS.
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let (how, url, block) = (&args[i + 1], &args[i + 2], args[i + 3].parse()?);
        return child(how, url, block);
    }
    let full = args.iter().any(|a| a == "--bench");
    let (tabular, per_shard, images, images_per_shard) = if full {
        (200_000, 20_000, 10_600, 530)
    } else {
        (2_000, 500, 40, 10)
    };
    let dir = tempfile::tempdir()?;
    let url = write_shards(
        dir.path(),
        "tab",
        per_shard,
        (0..tabular).map(|_| Tabular::row()),
    )?;
    let bytes = shard_bytes(&url)?;
    println!(
        "tabular: {tabular} samples in {} shards, {:.0} MB",
        tabular / per_shard,
        bytes as f64 / 1e6
    );
    println!(
        "{:<40} {:>10} {:>12} {:>9} {:>10} {:>14}",
        "benchmark", "seconds", "samples/s", "MB/s", "of ordered", "read per rank"
    );
    let ds = Dataset::<Tabular>::new(&url)?;
    let ordered = best_of(3, || {
        let mut n = 0;
        for batch in ds.ordered(BATCH)? {
            n += batch?.len();
        }
        anyhow::ensure!(n == tabular);
        Ok(())
    })?;
    let line = |name: &str, secs: f64, read: &str| {
        println!(
            "{name:<40} {secs:>10.3} {:>12.0} {:>9.0} {:>9.0}% {read:>14}",
            tabular as f64 / secs,
            bytes as f64 / 1e6 / secs,
            100.0 * ordered / secs
        );
    };
    line(&format!("ordered({BATCH})"), ordered, "");
    for world in [1, 2] {
        let mut reads = Vec::new();
        let secs = best_of(3, || {
            reads = epoch(&url, world)?;
            Ok(())
        })?;
        let read = reads
            .iter()
            .map(|r| format!("{:.0}%", 100.0 * *r as f64 / bytes as f64))
            .collect::<Vec<_>>()
            .join(" ");
        line(
            &format!("loader, shuffled, {world} rank(s) side by side"),
            secs,
            &read,
        );
    }

    // 2 GB of images, each read in its own process: the peak RSS of ordered(64) and of a
    // loader epoch with a 32-sample shuffle block, beside the loader's bound.
    let image = Image {
        image: Array3::from_elem((128, 128, 3), 0.5),
        label: "cat".into(),
    };
    let url = write_shards(
        dir.path(),
        "img",
        images_per_shard,
        (0..images).map(|_| image.clone()),
    )?;
    let bytes = shard_bytes(&url)?;
    let sample = bytes / images as u64;
    println!(
        "images: {images} samples of {} KB in {} shards, {:.0} MB",
        sample / 1000,
        images / images_per_shard,
        bytes as f64 / 1e6
    );
    let block = 32u64;
    let lanes = wds::DEFAULT_PARTITIONS as u64;
    // The stated bound: two decoded blocks and one read per partition, the batch being built
    // and the one the caller holds (docs/datasets.md).
    let bound =
        lanes * (2 * block * sample + (block * sample).min(16 << 20)) + 2 * BATCH as u64 * sample;
    println!(
        "{:<40} {:>10} {:>12} {:>9} {:>12} {:>12}",
        "benchmark", "seconds", "samples/s", "MB/s", "peak RSS MB", "bound MB"
    );
    for how in ["ordered", "loader"] {
        let exe = std::env::current_exe()?;
        let out = Command::new(exe)
            .args(["--child", how, &url, &block.to_string()])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout)?;
        let mut fields = text.split_whitespace().map(str::parse::<f64>);
        let (secs, rss) = (
            fields.next().ok_or_else(|| anyhow::anyhow!("{text}"))??,
            fields.next().ok_or_else(|| anyhow::anyhow!("{text}"))??,
        );
        let name = if how == "ordered" {
            format!("ordered({BATCH}), own process")
        } else {
            format!("loader, shuffle_block {block}, own process")
        };
        let bound = if how == "loader" {
            format!("{:.0}", bound as f64 / 1e6)
        } else {
            String::new()
        };
        println!(
            "{name:<40} {secs:>10.3} {:>12.0} {:>9.0} {rss:>12.0} {bound:>12}",
            images as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
    }
    Ok(())
}

fn shard_bytes(url: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    for shard in wds::expand_urls(url)? {
        total += std::fs::metadata(shard)?.len();
    }
    Ok(total)
}

/// One shuffled epoch of `world` ranks, each on its own thread: the bytes each read.
fn epoch(url: &str, world: usize) -> anyhow::Result<Vec<u64>> {
    std::thread::scope(|scope| {
        let ranks: Vec<_> = (0..world)
            .map(|rank| {
                scope.spawn(move || {
                    let counting = Counting::default();
                    let bytes = counting.bytes.clone();
                    let ds = wds::Dataset::<Tabular, _>::with_context(url, (), counting)?;
                    let options = LoaderOptions {
                        global_batch: BATCH,
                        seed: Some(SEED),
                        rank,
                        world_size: world,
                        ..Default::default()
                    };
                    let loader = ds.loader(options)?;
                    let batches = loader.len();
                    let mut n = 0;
                    for batch in loader {
                        n += batch?.len();
                    }
                    anyhow::ensure!(n > (batches - 1) * BATCH / world);
                    Ok(bytes.load(Ordering::Relaxed))
                })
            })
            .collect();
        ranks
            .into_iter()
            .map(|r| r.join().map_err(|_| anyhow::anyhow!("a rank panicked"))?)
            .collect()
    })
}

/// The best wall time of `runs` runs of `f`, in seconds.
fn best_of(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Three epochs of images `how` in this process; prints the best one's seconds and the
/// process's peak RSS in MB.
fn child(how: &str, url: &str, block: usize) -> anyhow::Result<()> {
    let ds = Dataset::<Image>::new(url)?;
    let secs = best_of(3, || {
        let mut n = 0;
        if how == "ordered" {
            for batch in ds.ordered(BATCH)? {
                n += batch?.len();
            }
        } else {
            let options = LoaderOptions {
                global_batch: BATCH,
                seed: Some(SEED),
                shuffle_block: block,
                ..Default::default()
            };
            for batch in ds.loader(options)? {
                n += batch?.len();
            }
        }
        anyhow::ensure!(n > 0);
        Ok(())
    })?;
    println!("{secs} {}", peak_rss_mb()?);
    Ok(())
}
