//! Our side of `scripts/bench-peer.sh`: `ordered(32)` over shards another program wrote (Python
//! atdata, there), after one warm-up read: for each of `RUNS` reads, its samples, wall seconds
//! and CPU seconds (all threads), one line each; then the process's peak RSS.
//!
//! `cargo bench -p atdata-ml --bench peer -- tabular|image URL RUNS`, or `-- own DIR RUNS` to
//! write 100,000 tabular samples with `ShardWriter` (maxcount 10,000) and read those, or `--
//! one DIR RUNS` to write them as one shard (read in pieces, by its sidecar, on the cores), or
//! `-- copy URL RUNS` for the ceiling of a reader that copies each byte once into the batches it
//! hands out: the shards read in chunks the size of a 32-image batch, each into new memory
//! (the bytes read stand in for the samples); `ATDATA_BENCH_PARALLELISM` sets the reads'
//! parallelism. Without arguments (as `cargo test
//! --benches` runs it) it reads a few shards it writes itself, so it cannot rot.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use atdata::ndarray::Array3;
use atdata::prelude::*;

mod common;
use common::{Image, Tabular, dataset, peak_rss_mb, write_shards};

const BATCH: usize = 32;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.as_slice() {
        [own, dir, runs] if own == "own" || own == "one" => {
            // The check on our own shards: 100,000 tabular samples by ShardWriter,
            // maxcount 10,000 (or all in one shard).
            let maxcount = if own == "own" { 10_000 } else { 100_000 };
            let url = write_shards(
                Path::new(dir),
                own,
                maxcount,
                (0..100_000).map(|_| Tabular::row()),
            )?;
            read_runs("tabular", &url, runs.parse()?)
        }
        [copy, url, runs] if copy == "copy" => timed_runs(runs.parse()?, || copy_once(url)),
        [kind, url, runs] => read_runs(kind, url, runs.parse()?),
        [] => self_check(),
        _ => anyhow::bail!("usage: peer tabular|image URL RUNS, or peer own|one DIR RUNS"),
    }
}

fn read_runs(kind: &str, url: &str, runs: usize) -> anyhow::Result<()> {
    let read = match kind {
        "tabular" => read::<Tabular>,
        "image" => read::<Image>,
        _ => anyhow::bail!("tabular or image, not {kind}"),
    };
    timed_runs(runs, || read(url))
}

/// `runs` timed calls of `once` after a warm-up (the page cache warm): what each counted, its
/// wall seconds and CPU seconds, then the peak RSS.
fn timed_runs(runs: usize, mut once: impl FnMut() -> anyhow::Result<usize>) -> anyhow::Result<()> {
    once()?;
    for _ in 0..runs {
        let (cpu, start) = (cpu_seconds()?, Instant::now());
        let counted = once()?;
        let wall = start.elapsed().as_secs_f64();
        println!("{counted} {wall:.6} {:.6}", cpu_seconds()? - cpu);
    }
    println!("peak RSS {:.1} MB", peak_rss_mb()?);
    Ok(())
}

/// The shards of `url` read once, in chunks of a 32-image batch's bytes, each into new memory
/// (`read_to_end` into reserved capacity: no zeroing pass): the bytes read.
fn copy_once(url: &str) -> anyhow::Result<usize> {
    const CHUNK: u64 = 32 * 224 * 224 * 3 * 4;
    let mut total = 0;
    for path in atdata::wds::expand_urls(url)? {
        let mut file = File::open(&path)?;
        loop {
            let mut batch = Vec::with_capacity(CHUNK as usize);
            let read = (&mut file).take(CHUNK).read_to_end(&mut batch)?;
            total += std::hint::black_box(batch).len();
            if read < CHUNK as usize {
                break;
            }
        }
    }
    Ok(total)
}

/// One `ordered(32)` pass: the samples read.
fn read<T: Packable + Send + 'static>(url: &str) -> anyhow::Result<usize>
where
    T::Columns: Send,
{
    let mut n = 0;
    for batch in dataset::<T>(url)?.ordered(BATCH)? {
        n += batch?.len();
    }
    Ok(n)
}

/// This process's CPU time so far, user and system, all threads (`/proc/self/stat`).
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow::anyhow!("{stat}"))?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0) // USER_HZ: 100 on Linux
}

fn self_check() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rows = (0..100).map(|_| Tabular::row());
    let images = (0..10).map(|_| Image {
        image: Array3::zeros((8, 8, 3)),
        label: "x".into(),
    });
    let (tabular, image) = (
        write_shards(dir.path(), "tab", 40, rows)?,
        write_shards(dir.path(), "img", 40, images)?,
    );
    anyhow::ensure!(read::<Tabular>(&tabular)? == 100);
    anyhow::ensure!(read::<Image>(&image)? == 10);
    let bytes: u64 = atdata::wds::expand_urls(&image)?
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()))
        .sum::<std::io::Result<_>>()?;
    anyhow::ensure!(copy_once(&image)? as u64 == bytes);
    read_runs("tabular", &tabular, 1)
}
