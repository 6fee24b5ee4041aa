//! The seed document's complete workflow, on Redis and S3: define a type, write 10,000 samples
//! to local shards of 1,000, publish the schema, insert the dataset (the same ten shards to S3,
//! the entry to Redis), then find it by name and read it back in batches.
//!
//! Needs the services: `eval "$(bash scripts/services.sh)"`, then
//! `cargo run --example workflow`. Reads `REDIS_URL`, `AWS_BUCKET` and the `AWS_*` credentials
//! (from the environment or a `.env` file).

use anyhow::Context;
use atdata::ndarray::Array1;
use atdata::prelude::*;
use atdata::wds::ShardWriter;

/// One training example.
#[packable]
#[derive(Debug, Clone, PartialEq)]
struct TrainingSample {
    features: Array1<f32>,
    label: i64,
    source: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A `.env` in the current directory fills what the environment lacks; none is fine.
    let _ = dotenvy::dotenv();
    let redis_url =
        std::env::var("REDIS_URL").context("REDIS_URL (a Redis server, redis://host:port/db)")?;
    let bucket = std::env::var("AWS_BUCKET")
        .context("AWS_BUCKET (an S3 bucket; AWS_ENDPOINT and credentials beside it)")?;

    // 1-2. Samples.
    let samples = (0..10_000).map(|i| TrainingSample {
        features: Array1::from_iter((0..128).map(|j| ((i * 128 + j) % 97) as f32 / 97.0)),
        label: i % 10,
        source: "synthetic".into(),
    });

    // 3. Local shards of 1,000 samples.
    let dir = std::env::temp_dir().join(format!("atdata-workflow-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pattern = dir.join("local-data-%06d.tar");
    let shards = ShardOptions {
        maxcount: 1_000,
        ..Default::default()
    };
    let mut sink = ShardWriter::new(pattern.to_str().context("a UTF-8 path")?, shards)?;
    for (i, sample) in samples.enumerate() {
        sink.write(&sample.as_wds(&format!("{i:06}")))?;
    }
    sink.finish()?;
    let local = dir.join("local-data-{000000..000009}.tar");

    // 4. The index on Redis with an S3 data store; publish the schema and insert.
    let store = S3DataStore::new(Credentials::from_env()?, &bucket)?;
    let index = LocalIndex::builder()
        .redis_url(&redis_url)
        .data_store(store)
        .build()
        .await?;
    let schema_ref = index
        .publish_schema::<TrainingSample>("1.0.0", None)
        .await?;
    let local_ds = Dataset::<TrainingSample>::new(local.to_str().context("a UTF-8 path")?)?;
    let entry = index
        .insert_dataset(&local_ds, "training-v1", "training")
        .await?;
    println!(
        "published {schema_ref}; inserted {} as {}: {} shards, {} samples",
        entry.name,
        entry.cid(),
        entry.data_urls.len(),
        entry.sample_count().unwrap_or_default()
    );
    for url in &entry.data_urls {
        println!("  {url}");
    }

    // 5. Later: open it by name and read it in batches, straight from S3 (through the
    // index's store and its credentials).
    let dataset = atdata::open_dataset::<TrainingSample>(&index, "training-v1").await?;
    let mut n = 0;
    for batch in dataset.ordered(32)? {
        let batch = batch?;
        if n == 0 {
            // [32, 128], keys 000000...
            println!(
                "first batch: features {:?}, keys {}...",
                batch.features.shape(),
                &batch.keys()[0]
            );
        }
        n += batch.len();
    }
    println!("read {n} samples back");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
