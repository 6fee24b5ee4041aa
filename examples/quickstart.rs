//! Quickstart: define a sample type, pack and unpack samples, write them as WebDataset shards,
//! read them back in batches (ordered and shuffled), then publish the type's schema, insert the
//! dataset into the embedded index (a SQLite file, shards through a local-disk store), find it by
//! name and read the stored copy back: the same records, keys and CIDs Python atdata writes.
//!
//! Run with `cargo run --example quickstart`. Needs no services: everything goes to a folder
//! under the system temp directory, removed at the end; `cargo run --example quickstart -- DIR`
//! writes to `DIR` and keeps it (to open `DIR/index.db` from Python atdata, say).

use atdata::ndarray::Array1;
use atdata::prelude::*;
use atdata::wds::ShardWriter;

/// One training example: a feature vector and its label.
#[packable]
#[derive(Debug, Clone, PartialEq)]
struct TrainingSample {
    features: Array1<f32>,
    label: i64,
    source: String,
    note: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let samples: Vec<TrainingSample> = (0..100)
        .map(|i| TrainingSample {
            features: Array1::from_iter((0..8).map(|j| (i * 8 + j) as f32 / 10.0)),
            label: i % 10,
            source: "synthetic".into(),
            note: (i == 3).then(|| "the odd one".into()),
        })
        .collect();

    // A msgpack payload, byte-identical to what Python atdata writes for the same values.
    let payload = samples[0].packed()?;
    println!("packed sample 0: {} bytes", payload.len());
    let back = TrainingSample::from_bytes(&payload)?;
    assert_eq!(back, samples[0]);
    println!(
        "decoded it back: label {}, features {:?}",
        back.label,
        back.features.to_vec()
    );

    // Bad input is a typed error, never a panic.
    let err = TrainingSample::from_bytes(&payload[..payload.len() - 3]).unwrap_err();
    println!("a truncated payload fails cleanly: {err}");

    // Batches stack array fields along a leading axis and collect the rest.
    let batch = SampleBatch::from_samples(samples[..4].to_vec())?;
    println!(
        "batch of {}: features {:?}, labels {:?}, notes {:?}",
        batch.len(),
        batch.features.shape(),
        batch.label,
        batch.note
    );

    // Write the samples as WebDataset tar shards of at most 30 samples each.
    let kept = std::env::args_os().nth(1).map(std::path::PathBuf::from);
    let dir = kept.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("atdata-quickstart-{}", std::process::id()))
    });
    let pattern = dir.join("train-%06d.tar");
    let options = ShardOptions {
        maxcount: 30,
        ..Default::default()
    };
    let mut writer = ShardWriter::new(pattern.to_str().expect("a UTF-8 temp dir"), options)?;
    for (i, s) in samples.iter().enumerate() {
        writer.write(&s.as_wds(&format!("{i:06}")))?;
    }
    let shards = writer.finish()?;
    println!("wrote {} shards to {}", shards.len(), dir.display());

    // Read them back: a brace pattern names every shard; batches span shard boundaries.
    let url = dir.join(format!("train-{{000000..{:06}}}.tar", shards.len() - 1));
    let url = url.to_str().expect("a UTF-8 temp dir");
    let ds = Dataset::<TrainingSample>::new(url)?;
    let mut seen = 0;
    for batch in ds.ordered(32)? {
        let batch = batch?;
        seen += batch.len();
        println!(
            "ordered batch: features {:?}, labels {:?}...",
            batch.features.shape(),
            &batch.label[..4]
        );
    }
    assert_eq!(seen, samples.len());
    let shuffled = ds
        .shuffled(8, ShuffleOptions::seeded(7))?
        .next()
        .expect("a batch")?;
    println!(
        "first shuffled batch (seed 7: the same every run): labels {:?}",
        shuffled.label
    );

    // The embedded index: a SQLite file in Python atdata's layout, shards through a local
    // store. Schema references are Python's (`atdata://local/schema/...`).
    let index = LocalIndex::builder()
        .sqlite_path(dir.join("index.db"))
        .data_store(LocalDiskStore::new(dir.join("store"))?)
        .build()
        .await?;
    let schema_ref = index
        .publish_schema::<TrainingSample>("1.0.0", None)
        .await?;
    println!("published {schema_ref}");
    let record = index.get_schema(&schema_ref).await?;
    println!("schema record: {}", record.record.to_json());

    // Shard for shard: the stored copy keeps the four shards, and the entry records each
    // one's SHA-256, sample count and size.
    let entry = index
        .insert_dataset_with(
            &ds,
            "training-v1",
            InsertOptions {
                prefix: Some("training".into()),
                schema_ref: Some(schema_ref.clone()),
                ..Default::default()
            },
        )
        .await?;
    println!(
        "inserted {} as {} ({} shards, {} samples)",
        entry.name,
        entry.cid(),
        entry.data_urls.len(),
        entry.sample_count().unwrap_or_default()
    );

    // Later: find it by name and read the stored copy.
    let found = index.get_entry_by_name("training-v1").await?;
    assert_eq!(found, entry);
    let stored = Dataset::<TrainingSample>::new(found.shards_url())?;
    let mut labels = 0;
    for batch in stored.ordered(32)? {
        labels += batch?.label.len();
    }
    assert_eq!(labels, samples.len());
    println!("read {labels} samples back from {}", found.shards_url());

    index.shutdown().await?;
    if kept.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
