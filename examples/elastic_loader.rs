//! Training that is preempted and comes back on another number of GPUs, with the elastic
//! loader: two ranks read part of an epoch and checkpoint the loader's state to a file; the
//! job restarts on four ranks from that file and finishes the epoch. Every sample is seen
//! once, none twice. (Ranks are threads here; in a real job each is its own process.)
//!
//! `cargo run --example elastic_loader [DIR]` (DIR keeps the shards and the checkpoint).

use std::path::Path;

use atdata::prelude::*;

/// One training example.
#[packable]
pub struct Example {
    /// Which example: checked to be seen once.
    pub id: i64,
    /// Its inputs.
    pub features: atdata::ndarray::Array1<f32>,
}

const SAMPLES: i64 = 10_000;
const GLOBAL_BATCH: usize = 64;

fn main() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = match std::env::args().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => temp.path().to_owned(),
    };
    std::fs::create_dir_all(&dir)?;
    let ds = write_dataset(&dir)?;
    let options = |rank, world_size| LoaderOptions {
        global_batch: GLOBAL_BATCH,
        seed: Some(2026),
        epoch: 0,
        rank,
        world_size,
        ..Default::default()
    };

    // Two ranks train for 40 steps, then the job is preempted after a checkpoint.
    let checkpoint = dir.join("loader-state.json");
    let first = train(&ds, 2, |rank| options(rank, 2), Some(40), &checkpoint)?;
    println!(
        "2 ranks: {} steps, {} samples, then a checkpoint",
        first.steps, first.samples
    );

    // The job comes back on four ranks and resumes from the checkpoint file.
    let state: LoaderState = serde_json::from_str(&std::fs::read_to_string(&checkpoint)?)?;
    let resumed = |rank| LoaderOptions {
        resume: Some(state.clone()),
        ..options(rank, 4)
    };
    let second = train(&ds, 4, resumed, None, &checkpoint)?;
    println!(
        "4 ranks: {} more steps, {} samples, to the end of the epoch",
        second.steps, second.samples
    );

    let mut seen = [first.ids, second.ids].concat();
    seen.sort_unstable();
    let before = seen.len();
    seen.dedup();
    anyhow::ensure!(seen.len() == before, "a sample was seen twice");
    // 10,000 = 156 × 64 + 16: the 16 left make a short last batch (at least one per partition).
    anyhow::ensure!(
        seen == (0..SAMPLES).collect::<Vec<_>>(),
        "a sample was lost"
    );
    println!("every one of the {SAMPLES} samples seen exactly once");
    Ok(())
}

/// What one run of the job saw.
struct Run {
    steps: usize,
    samples: usize,
    ids: Vec<i64>,
}

/// `world` ranks (threads) read batches in lock step for `steps` steps (or to the end of the
/// epoch); rank 0 writes the loader state to `checkpoint` after the last step, as it would
/// beside the model's weights.
fn train(
    ds: &Dataset<Example>,
    world: usize,
    options: impl Fn(usize) -> LoaderOptions + Sync,
    steps: Option<usize>,
    checkpoint: &Path,
) -> anyhow::Result<Run> {
    let per_rank = std::thread::scope(|scope| {
        let ranks: Vec<_> = (0..world)
            .map(|rank| {
                let options = &options;
                scope.spawn(move || -> anyhow::Result<(usize, Vec<i64>)> {
                    let mut loader = ds.loader(options(rank))?;
                    let mut ids = Vec::new();
                    let mut step = 0;
                    while steps.is_none_or(|n| step < n) {
                        let Some(batch) = loader.next() else { break };
                        let batch = batch?;
                        // The model's step would go here: batch.features is [B / world, 16].
                        ids.extend_from_slice(&batch.id);
                        step += 1;
                    }
                    if rank == 0 {
                        std::fs::write(checkpoint, serde_json::to_string(&loader.state())?)?;
                    }
                    Ok((step, ids))
                })
            })
            .collect();
        ranks
            .into_iter()
            .map(|r| r.join().map_err(|_| anyhow::anyhow!("a rank panicked"))?)
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let steps = per_rank[0].0;
    anyhow::ensure!(
        per_rank.iter().all(|(s, _)| *s == steps),
        "ranks took different numbers of steps"
    );
    let ids: Vec<i64> = per_rank.into_iter().flat_map(|(_, ids)| ids).collect();
    Ok(Run {
        steps,
        samples: ids.len(),
        ids,
    })
}

/// 10,000 samples in shards of 1,000 (with their sidecars) under `dir`.
fn write_dataset(dir: &Path) -> anyhow::Result<Dataset<Example>> {
    let pattern = dir.join("train-%02d.tar");
    let options = ShardOptions {
        maxcount: 1_000,
        ..Default::default()
    };
    let mut writer = atdata::wds::ShardWriter::new(pattern.to_str().unwrap(), options)?;
    for id in 0..SAMPLES {
        let features = atdata::ndarray::Array1::from_elem(16, id as f32);
        writer.write_sample(&Example { id, features })?;
    }
    let last = writer.finish()?.len() - 1;
    Ok(Dataset::new(
        dir.join(format!("train-{{00..{last:02}}}.tar")),
    )?)
}
