//! Our side of `scripts/bench-peer.sh`: `ordered(32)` over shards another program wrote (Python
//! atdata, there), after one warm-up read: for each of `RUNS` reads, its samples, wall seconds
//! and CPU seconds (all threads), one line each; then the process's peak RSS.
//!
//! `cargo bench -p atdata-ml --bench peer -- tabular|image URL RUNS`, or `-- own DIR RUNS` to
//! write 100,000 tabular samples with `ShardWriter` (maxcount 10,000) and read those, or `--
//! one DIR RUNS` to write them as one shard (read in pieces, by its sidecar, on the cores);
//! `ATDATA_BENCH_PARALLELISM` sets the reads' parallelism. Without arguments (as `cargo test
//! --benches` runs it) it reads a few shards it writes itself, so it cannot rot.

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
    read(url)?; // the page cache warm
    for _ in 0..runs {
        let (cpu, start) = (cpu_seconds()?, Instant::now());
        let samples = read(url)?;
        let wall = start.elapsed().as_secs_f64();
        println!("{samples} {wall:.6} {:.6}", cpu_seconds()? - cpu);
    }
    println!("peak RSS {:.1} MB", peak_rss_mb()?);
    Ok(())
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
    read_runs("tabular", &tabular, 1)
}
