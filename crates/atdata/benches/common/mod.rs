//! What the facade's benchmarks share.

/// This process's peak resident set size (`VmHWM`), in MB.
pub fn peak_rss_mb() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/self/status"))?;
    Ok(kb / 1024.0)
}

use atdata::ndarray::{Array1, Array3};
use atdata::prelude::*;

/// The tabular sample of the targets.
#[packable]
#[derive(Clone)]
pub struct Tabular {
    pub features: Array1<f32>,
    pub label: i64,
    pub source: String,
}

impl Tabular {
    /// The row every tabular benchmark writes: 128 features, label 7.
    pub fn row() -> Tabular {
        Tabular {
            features: Array1::from_iter((0..128).map(|i| i as f32)),
            label: 7,
            source: "synthetic/benchmark".into(),
        }
    }
}

/// The image sample of the targets (`f32[224, 224, 3]` in them; other shapes where a benchmark
/// says so).
#[packable]
#[derive(Clone)]
#[allow(dead_code)] // not every benchmark reads images
pub struct Image {
    pub image: Array3<f32>,
    pub label: String,
}

/// `samples` written by `ShardWriter::write_sample` into shards of `maxcount` under `dir`
/// (`{name}-0000.tar`, ... with sidecars); the brace URL of them.
#[allow(dead_code)] // not every benchmark writes its shards this way
pub fn write_shards<T: Packable>(
    dir: &std::path::Path,
    name: &str,
    maxcount: usize,
    samples: impl IntoIterator<Item = T>,
) -> anyhow::Result<String> {
    let pattern = dir.join(format!("{name}-%04d.tar"));
    let opts = ShardOptions {
        maxcount,
        ..Default::default()
    };
    let mut w = atdata::wds::ShardWriter::new(pattern.to_str().unwrap(), opts)?;
    for sample in samples {
        w.write_sample(&sample)?;
    }
    let last = w.finish()?.len() - 1;
    let url = dir.join(format!("{name}-{{0000..{last:04}}}.tar"));
    Ok(url.to_str().unwrap().to_owned())
}

/// The dataset at `url`; `ATDATA_BENCH_PARALLELISM` overrides its default parallelism.
#[allow(dead_code)] // not every benchmark reads through it
pub fn dataset<T: atdata::SampleType<Context = ()>>(
    url: &str,
) -> anyhow::Result<atdata::wds::Dataset<T>> {
    let ds = atdata::wds::Dataset::<T>::new(url)?;
    Ok(
        match std::env::var("ATDATA_BENCH_PARALLELISM")
            .ok()
            .and_then(|p| p.parse().ok())
        {
            Some(p) => ds.with_parallelism(p),
            None => ds,
        },
    )
}
