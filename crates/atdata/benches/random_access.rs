//! Random access and length on local shards: `Dataset::get(i)` latency (p50, p99) from the page
//! cache next to a positioned read of the same bytes in the same run, `len()` of a 1,000-shard
//! dataset from its sidecars next to opening and reading each sidecar's first line, and
//! building a missing sidecar next to `cat` of the same shard; with this process's peak RSS.
//! (`get(i)` from S3 is in `atdata-store`'s `stores` benchmark.)
//!
//! `cargo bench -p atdata-ml --bench random_access` runs the full sizes (figures in
//! docs/performance.md); without `--bench` (as `cargo test --benches` runs it) small ones.

use std::io::Read;
use std::time::{Duration, Instant};

use atdata::prelude::*;

mod common;
use atdata::wds::{LocalOpener, ShardOpener, ShardWriter, Sidecar};
use common::{Tabular, peak_rss_mb};

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let (samples, per_shard, gets, shards_for_len, big_mb) = if full {
        (200_000, 20_000, 100_000, 1_000, 512)
    } else {
        (2_000, 500, 1_000, 20, 4)
    };
    let dir = tempfile::tempdir()?;
    let row = Tabular::row();
    let pattern = dir.path().join("tab-%04d.tar");
    let opts = ShardOptions {
        maxcount: per_shard,
        ..Default::default()
    };
    let mut w = ShardWriter::new(pattern.to_str().unwrap(), opts)?;
    for i in 0..samples {
        w.write(&row.as_wds(&format!("{i:09}")))?;
    }
    let shards = w.finish()?;
    let url = dir
        .path()
        .join(format!("tab-{{0000..{:04}}}.tar", shards.len() - 1));
    let ds = Dataset::<Tabular>::new(url.to_str().unwrap())?;
    anyhow::ensure!(ds.len()? == samples);

    // get(i) at deterministic pseudo-random indices, after one pass that reads the sidecars.
    let indices: Vec<usize> = (0..gets as u64)
        .map(|i| {
            (i.wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407)
                >> 33) as usize
                % samples
        })
        .collect();
    for &i in indices.iter().take(shards.len() * 4) {
        ds.get(i)?;
    }
    let mut latencies = Vec::with_capacity(gets);
    for &i in &indices {
        let start = Instant::now();
        let sample = ds.get(i)?;
        latencies.push(start.elapsed());
        anyhow::ensure!(sample.label == 7);
    }
    // The floor: one positioned read of a sample's bytes (its span in the shard).
    let span = std::fs::metadata(&shards[0])?.len() / per_shard as u64;
    let shard = shards[0].to_str().unwrap().to_owned();
    let mut floor = Vec::with_capacity(gets);
    for &i in &indices {
        let at = (i % per_shard) as u64 * span;
        let start = Instant::now();
        LocalOpener.read_range(&shard, at..at + span)?;
        floor.push(start.elapsed());
    }
    println!(
        "{:<44} {:>10} {:>10} {:>14} {:>14}",
        "benchmark", "p50 µs", "p99 µs", "floor p50 µs", "floor p99 µs"
    );
    let (p50, p99) = percentiles(&mut latencies);
    let (f50, f99) = percentiles(&mut floor);
    println!(
        "{:<44} {p50:>10.1} {p99:>10.1} {f50:>14.1} {f99:>14.1}",
        format!("get(i), tabular, page cache ({gets} gets)")
    );

    // len() of many shards, each with its sidecar, on a fresh Dataset.
    let pattern = dir.path().join("many-%05d.tar");
    let opts = ShardOptions {
        maxcount: 10,
        ..Default::default()
    };
    let mut w = ShardWriter::new(pattern.to_str().unwrap(), opts)?;
    for i in 0..shards_for_len * 10 {
        w.write(&row.as_wds(&format!("{i:09}")))?;
    }
    let many = w.finish()?;
    let url = dir
        .path()
        .join(format!("many-{{00000..{:05}}}.tar", many.len() - 1));
    let start = Instant::now();
    let n = Dataset::<Tabular>::new(url.to_str().unwrap())?.len()?;
    let len_ms = start.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(n == shards_for_len * 10);
    let start = Instant::now();
    for shard in &many {
        let mut head = [0u8; 64];
        let mut f = std::fs::File::open(shard.with_extension("idx"))?;
        let _ = f.read(&mut head)?;
    }
    let floor_ms = start.elapsed().as_secs_f64() * 1e3;
    println!("{:<44} {:>10} {:>10} {:>14}", "", "ms", "", "floor ms");
    println!(
        "{:<44} {len_ms:>10.1} {:>10} {floor_ms:>14.1}",
        format!("len() of {} shards from sidecars", many.len()),
        ""
    );

    // Building a missing sidecar (a header scan) next to `cat` of the same shard.
    let big = dir.path().join("big-%02d.tar");
    let mut w =
        ShardWriter::new(big.to_str().unwrap(), ShardOptions::default())?.with_sidecars(false);
    let blob = vec![7u8; 1 << 20];
    for i in 0..big_mb {
        w.write(&atdata::WdsSample {
            key: format!("{i:06}"),
            members: vec![("bin".into(), blob.clone())],
        })?;
    }
    let big = w.finish()?.remove(0);
    let mb = std::fs::metadata(&big)?.len() as f64 / 1e6;
    let start = Instant::now();
    let cat = std::process::Command::new("cat")
        .arg(&big)
        .stdout(std::process::Stdio::null())
        .status()?;
    let cat_s = start.elapsed().as_secs_f64();
    anyhow::ensure!(cat.success());
    let start = Instant::now();
    let sidecar = Sidecar::build(std::fs::File::open(&big)?, "big")?;
    let build_s = start.elapsed().as_secs_f64();
    anyhow::ensure!(sidecar.len() == big_mb);
    println!("{:<44} {:>10} {:>10} {:>14}", "", "MB/s", "", "cat MB/s");
    println!(
        "{:<44} {:>10.0} {:>10} {:>14.0}",
        format!("build a sidecar ({mb:.0} MB, 1 MB members)"),
        mb / build_s,
        "",
        mb / cat_s
    );
    println!("peak RSS of this process: {:.0} MB", peak_rss_mb()?);
    Ok(())
}

/// p50 and p99 in microseconds.
fn percentiles(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}
