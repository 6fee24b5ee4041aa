//! Quickstart: define a sample type, pack and unpack samples, write them as WebDataset shards,
//! read them back in batches (ordered and shuffled), and describe the type with a schema record
//! and the dataset with a CID, exactly as Python atdata would.
//!
//! Run with `cargo run --example quickstart`. Needs no services.

use atdata::ndarray::Array1;
use atdata::prelude::*;
use atdata::wds::ShardWriter;
use atdata::{SchemaRecord, SchemaRefForm, entry_cid};

/// One training example: a feature vector and its label.
#[packable]
#[derive(Debug, Clone, PartialEq)]
struct TrainingSample {
    features: Array1<f32>,
    label: i64,
    source: String,
    note: Option<String>,
}

fn main() -> anyhow::Result<()> {
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
    let dir = std::env::temp_dir().join(format!("atdata-quickstart-{}", std::process::id()));
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

    // The schema record the index stores (JSON text identical to Python's for the same type).
    let record = SchemaRecord::new(
        TrainingSample::schema(),
        "1.0.0",
        "2025-01-02T03:04:05.678901+00:00",
    );
    println!("schema record: {}", record.to_json());

    // An entry's CID covers its schema reference and shard URLs, as Python computes it.
    let schema_ref = SchemaRef::new("TrainingSample", "1.0.0");
    let urls = vec![url.to_owned()];
    println!("schema ref: {schema_ref}");
    println!(
        "entry CID (seed ref form): {}",
        entry_cid(&schema_ref.to_string(), &urls)?
    );
    println!(
        "entry CID (Python ref form): {}",
        entry_cid(&schema_ref.format(SchemaRefForm::Python), &urls)?
    );

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
