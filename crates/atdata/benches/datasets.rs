//! Dataset throughput: writing and reading shards through the typed API, next to the raw read
//! of the same files (`std::io::copy` to a sink) measured in the same run, and the peak RSS of
//! a 2 GB ordered read in its own process.
//!
//! `cargo bench -p atdata-ml --bench datasets` runs the full sizes (figures in
//! docs/performance.md); without `--bench` (as `cargo test --benches` runs it) it uses small
//! sizes, so the benchmark cannot rot.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use atdata::ndarray::Array3;
use atdata::prelude::*;

mod common;
use common::{Image, Tabular, dataset, peak_rss_mb};

const BATCH: usize = 32;

struct Sizes {
    tabular: usize,
    tabular_per_shard: usize,
    images: usize,
    images_rss: usize,
    images_per_shard: usize,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // `--read-child tabular|image URL [ordered|shuffled|loader]`: one read in this process
    // (ordered by default), then its peak RSS (used for the 2 GB RSS check, and handy under a
    // profiler).
    if let Some(i) = args.iter().position(|a| a == "--read-child") {
        let (kind, url) = (args.get(i + 1), args.get(i + 2));
        let order = match args.get(i + 3).map(String::as_str) {
            None | Some("ordered") => Order::Ordered,
            Some("shuffled") => Order::Shuffled,
            Some("loader") => Order::Loader,
            Some(other) => anyhow::bail!("ordered, shuffled or loader, not {other}"),
        };
        return match (kind.map(String::as_str), url) {
            (Some("tabular"), Some(url)) => read_child::<Tabular>(url, order),
            (Some("image"), Some(url)) => read_child::<Image>(url, order),
            _ => anyhow::bail!("usage: --read-child tabular|image URL [ordered|shuffled|loader]"),
        };
    }
    let full = args.iter().any(|a| a == "--bench");
    let sizes = if full {
        // 3,400 images of 602 KB: the 2 GB dataset of the RSS check; the first 2,000 are timed.
        Sizes {
            tabular: 200_000,
            tabular_per_shard: 20_000,
            images: 2_000,
            images_rss: 3_400,
            images_per_shard: 200,
        }
    } else {
        Sizes {
            tabular: 2_000,
            tabular_per_shard: 500,
            images: 20,
            images_rss: 40,
            images_per_shard: 10,
        }
    };
    // ATDATA_BENCH_DIR keeps the shards in that folder (to profile reads with --read-child).
    let kept = std::env::var_os("ATDATA_BENCH_DIR").map(PathBuf::from);
    let temp = tempfile::tempdir()?;
    let dir = kept.as_deref().unwrap_or(temp.path());
    println!(
        "{:<28} {:>9} {:>9} {:>12} {:>10} {:>14} {:>9}",
        "benchmark", "samples", "seconds", "samples/s", "MB/s", "ceiling MB/s", "of ceiling"
    );

    // Tabular.
    let row = Tabular::row();
    let (shards, secs) = write(dir, "tab", sizes.tabular, sizes.tabular_per_shard, |i| {
        row.as_wds(&format!("{i:09}"))
    })?;
    let bytes = total_size(&shards)?;
    report("tabular write", sizes.tabular, secs, bytes, None);
    let raw = raw_read(&shards)?;
    let url = pattern(dir, "tab", shards.len());
    let secs = time(|| read::<Tabular>(&url, sizes.tabular))?;
    report(
        "tabular read (batch 32)",
        sizes.tabular,
        secs,
        bytes,
        Some(raw),
    );

    // Images.
    let img = Image {
        image: Array3::from_shape_fn((224, 224, 3), |(y, x, c)| (y + x + c) as f32),
        label: "n01440764".into(),
    };
    let (shards, secs) = write(dir, "img", sizes.images_rss, sizes.images_per_shard, |i| {
        img.as_wds(&format!("{i:09}"))
    })?;
    let rss_bytes = total_size(&shards)?;
    report("image write", sizes.images_rss, secs, rss_bytes, None);
    let timed = &shards[..sizes.images / sizes.images_per_shard];
    let bytes = total_size(timed)?;
    let raw = raw_read(timed)?;
    let url = pattern(dir, "img", timed.len());
    let secs = time(|| read::<Image>(&url, sizes.images))?;
    report(
        "image read (batch 32)",
        sizes.images,
        secs,
        bytes,
        Some(raw),
    );
    for (name, order) in [
        ("shuffled (buffer 256)", Order::Shuffled),
        ("loader (block 32)", Order::Loader),
    ] {
        let other = time(|| read_as::<Image>(&url, sizes.images, order))?;
        report(
            &format!("image {name}"),
            sizes.images,
            other,
            bytes,
            Some(raw),
        );
        println!("{:<28} {:.0}% of ordered", "", 100.0 * secs / other);
    }

    // Peak RSS of an ordered read of the whole image dataset, in a fresh process.
    let url = pattern(dir, "img", shards.len());
    let out = Command::new(std::env::current_exe()?)
        .args(["--read-child", "image", &url])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "rss child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "peak RSS of an ordered read of {:.2} GB ({} images, batch 32), own process: {}",
        rss_bytes as f64 / 1e9,
        sizes.images_rss,
        String::from_utf8_lossy(&out.stdout).trim()
    );
    println!(
        "peak RSS of this process (writes included): {:.1} MB",
        peak_rss_mb()?
    );
    Ok(())
}

/// Writes `n` samples in shards of `per_shard`; returns the shard paths and the seconds taken.
fn write(
    dir: &Path,
    name: &str,
    n: usize,
    per_shard: usize,
    sample: impl Fn(usize) -> atdata::WdsSample,
) -> anyhow::Result<(Vec<PathBuf>, f64)> {
    let start = Instant::now();
    let pattern = dir.join(format!("{name}-%06d.tar"));
    let options = ShardOptions {
        maxcount: per_shard,
        ..Default::default()
    };
    let mut writer = atdata::wds::ShardWriter::new(pattern.to_str().expect("utf-8"), options)?;
    for i in 0..n {
        writer.write(&sample(i))?;
    }
    let shards = writer.finish()?;
    Ok((shards, start.elapsed().as_secs_f64()))
}

fn pattern(dir: &Path, name: &str, shards: usize) -> String {
    dir.join(format!("{name}-{{000000..{:06}}}.tar", shards - 1))
        .to_str()
        .expect("utf-8")
        .to_owned()
}

fn total_size(paths: &[PathBuf]) -> anyhow::Result<u64> {
    Ok(paths
        .iter()
        .map(|p| p.metadata().map(|m| m.len()))
        .sum::<io::Result<u64>>()?)
}

/// Reads every sample in batches; checks the count.
fn read<T: BatchLen<Context = ()>>(url: &str, expected: usize) -> anyhow::Result<()> {
    read_as::<T>(url, expected, Order::Ordered)
}

/// How a timed read orders its batches.
#[derive(Clone, Copy)]
enum Order {
    Ordered,
    /// `shuffled(32)` with a 256-sample buffer.
    Shuffled,
    /// `loader`, one rank, global batch 32, shuffle blocks of 32.
    Loader,
}

fn read_as<T: BatchLen<Context = ()>>(
    url: &str,
    expected: usize,
    order: Order,
) -> anyhow::Result<()> {
    let n = read_all::<T>(url, order)?;
    // The loader leaves out a last batch of fewer samples than partitions.
    anyhow::ensure!(
        n + atdata::wds::DEFAULT_PARTITIONS > expected && n <= expected,
        "read {n} samples, expected {expected}"
    );
    Ok(())
}

/// Reads every batch in `order`: the samples read.
fn read_all<T: BatchLen<Context = ()>>(url: &str, order: Order) -> anyhow::Result<usize> {
    let ds = dataset::<T>(url)?;
    let batches: Box<dyn Iterator<Item = atdata::wds::Result<T::Batch>>> = match order {
        Order::Ordered => Box::new(ds.ordered(BATCH)?),
        Order::Shuffled => {
            let options = ShuffleOptions {
                seed: 1,
                buffer_samples: 256,
            };
            Box::new(ds.shuffled(BATCH, options)?)
        }
        Order::Loader => {
            let options = LoaderOptions {
                global_batch: BATCH,
                seed: Some(1),
                shuffle_block: 32,
                ..Default::default()
            };
            Box::new(ds.loader(options)?)
        }
    };
    let mut n = 0;
    for batch in batches {
        let batch = batch?;
        n += std::hint::black_box(T::batch_len(&batch));
    }
    Ok(n)
}

/// The ceiling: the files' bytes copied to a sink, in MB/s.
fn raw_read(paths: &[PathBuf]) -> anyhow::Result<f64> {
    let bytes = total_size(paths)?;
    let secs = time(|| {
        for p in paths {
            io::copy(&mut File::open(p)?, &mut io::sink())?;
        }
        Ok(())
    })?;
    Ok(bytes as f64 / 1e6 / secs)
}

/// Best of three runs, in seconds (the first also warms the page cache).
fn time(mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        f()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn report(name: &str, samples: usize, secs: f64, bytes: u64, ceiling: Option<f64>) {
    let mbps = bytes as f64 / 1e6 / secs;
    let (ceiling, ratio) = match ceiling {
        Some(c) => (format!("{c:.0}"), format!("{:.0}%", 100.0 * mbps / c)),
        None => ("-".into(), "-".into()),
    };
    println!(
        "{name:<28} {samples:>9} {secs:>9.3} {:>12.0} {mbps:>10.0} {ceiling:>14} {ratio:>9}",
        samples as f64 / secs
    );
}

fn read_child<T: BatchLen<Context = ()>>(url: &str, order: Order) -> anyhow::Result<()> {
    let n = read_all::<T>(url, order)?;
    println!("{:.1} MB ({n} samples read)", peak_rss_mb()?);
    Ok(())
}

/// The number of samples in a batch, whatever the sample type.
trait BatchLen: atdata::SampleType {
    fn batch_len(batch: &Self::Batch) -> usize;
}

impl<T: Packable + Send + 'static> BatchLen for T
where
    T::Columns: Send,
{
    fn batch_len(batch: &SampleBatch<T>) -> usize {
        batch.len()
    }
}
