//! Quickstart: define a sample type, pack and unpack samples, batch them, and describe the
//! type with a schema record and the dataset with a CID, exactly as Python atdata would.
//!
//! Run with `cargo run --example quickstart`. Needs no services.

use atdata::ndarray::Array1;
use atdata::prelude::*;
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
    let samples: Vec<TrainingSample> = (0..4)
        .map(|i| TrainingSample {
            features: Array1::from_iter((0..8).map(|j| (i * 8 + j) as f32 / 10.0)),
            label: i % 2,
            source: "synthetic".into(),
            note: (i == 3).then(|| "the last one".into()),
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

    // The WebDataset form: the key plus one `msgpack` member, ready for a tar shard.
    let wds = samples[1].as_wds("000001");
    println!(
        "webdataset sample {:?} with members {:?}",
        wds.key,
        wds.members.iter().map(|(ext, _)| ext).collect::<Vec<_>>()
    );

    // Batches stack array fields along a leading axis and collect the rest.
    let batch = SampleBatch::from_samples(samples.clone())?;
    println!(
        "batch of {}: features {:?}, labels {:?}, notes {:?}",
        batch.len(),
        batch.features.shape(),
        batch.label,
        batch.note
    );

    // The schema record the index stores (JSON text identical to Python's for the same type).
    let schema = TrainingSample::schema();
    let record = SchemaRecord::new(schema, "1.0.0", "2025-01-02T03:04:05.678901+00:00");
    println!("schema record: {}", record.to_json());

    // An entry's CID covers its schema reference and shard URLs, as Python computes it.
    let schema_ref = SchemaRef::new("TrainingSample", "1.0.0");
    let urls = vec!["data-{000000..000009}.tar".to_string()];
    println!("schema ref: {schema_ref}");
    println!(
        "entry CID (seed ref form): {}",
        entry_cid(&schema_ref.to_string(), &urls)?
    );
    println!(
        "entry CID (Python ref form): {}",
        entry_cid(&schema_ref.format(SchemaRefForm::Python), &urls)?
    );
    Ok(())
}
