//! End to end: the seed's complete workflow on the real Redis and S3 server, and the quickstart
//! example in a fresh temporary directory with no services.

use std::process::Command;

use atdata::ndarray::Array1;
use atdata::prelude::*;
use atdata::wds::ShardWriter;

use crate::cli::built;

/// One training example.
#[packable]
#[derive(Debug, Clone, PartialEq)]
struct TrainingSample {
    features: Array1<f32>,
    label: i64,
    source: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_workflow_on_redis_and_s3() {
    let redis_url = crate::index::fresh_db(20).await;
    let s3 = crate::stores::test_s3();
    let bucket = s3.bucket.clone();
    let dir = tempfile::tempdir().unwrap();

    // 1-3. Samples into local shards of 250.
    let samples: Vec<TrainingSample> = (0..1000)
        .map(|i| TrainingSample {
            features: Array1::from_iter((0..128).map(|j| (i * 128 + j) as f32)),
            label: i % 10,
            source: "synthetic".into(),
        })
        .collect();
    let pattern = dir.path().join("local-data-%06d.tar");
    let shards = ShardOptions {
        maxcount: 250,
        ..Default::default()
    };
    let mut sink = ShardWriter::new(pattern.to_str().unwrap(), shards).unwrap();
    for (i, s) in samples.iter().enumerate() {
        sink.write(&s.as_wds(&format!("{i:06}"))).unwrap();
    }
    assert_eq!(sink.finish().unwrap().len(), 4);
    let local = dir.path().join("local-data-{000000..000003}.tar");

    // 4. Index on Redis with the S3 store; publish and insert.
    let store = S3DataStore::new(crate::stores::test_credentials(&s3), &bucket).unwrap();
    let index = LocalIndex::builder()
        .redis_url(&redis_url)
        .data_store(store)
        .build()
        .await
        .unwrap();
    let schema_ref = index
        .publish_schema::<TrainingSample>("1.0.0", None)
        .await
        .unwrap();
    assert_eq!(schema_ref, "atdata://local/schema/TrainingSample@1.0.0");
    let local_ds = Dataset::<TrainingSample>::new(local.to_str().unwrap()).unwrap();
    let entry = index
        .insert_dataset(&local_ds, "training-v1", "workflow-test")
        .await
        .unwrap();
    assert!(entry.data_urls[0].starts_with(&format!("s3://{bucket}/workflow-test/data--")));
    assert_eq!(
        entry.schema_ref,
        "atdata://local/schema/TrainingSample@1.0.0"
    );
    // Shard for shard: the four shards stay four, with their counts and sizes recorded.
    assert_eq!(entry.data_urls.len(), 4);
    let metadata = entry.metadata.as_ref().unwrap();
    for (i, url) in entry.data_urls.iter().enumerate() {
        assert_eq!(metadata["sample_counts"][url], 250);
        let source = dir.path().join(format!("local-data-{i:06}.tar"));
        let source = std::fs::read(source).unwrap();
        assert_eq!(metadata["shard_sizes"][url], source.len());
        let sum = atdata::store::sha256_hex(&source[..]).unwrap();
        assert_eq!(metadata["checksums"][url], sum, "a byte-for-byte copy");
    }
    assert_eq!(entry.sample_count(), Some(1000));

    // 5. Retrieve later, from another handle on the same Redis, and read from S3.
    let later = LocalIndex::connect_redis(&redis_url).await.unwrap();
    let found = later.get_entry_by_name("training-v1").await.unwrap();
    assert_eq!(found, entry);
    assert_eq!(
        later
            .get_schema(&found.schema_ref)
            .await
            .unwrap()
            .record
            .schema,
        TrainingSample::schema()
    );
    // Read with the test server's credentials (the seed reads the environment's: the
    // tests never use a user's AWS_*).
    let store = S3DataStore::new(crate::stores::test_credentials(&s3), &bucket).unwrap();
    let dataset = Dataset::<TrainingSample>::new(found.shards_url())
        .unwrap()
        .with_opener(atdata::DefaultOpener::with_store(store));
    // Four shards split over two ranks.
    assert_eq!(dataset.split(1, 2).unwrap().shard_list().len(), 2);
    let read: Vec<TrainingSample> = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for batch in dataset.ordered(32).unwrap() {
            let batch = batch.unwrap();
            assert_eq!(batch.features.shape()[1], 128);
            out.extend(batch.samples().iter().cloned());
        }
        out
    })
    .await
    .unwrap();
    assert_eq!(read, samples);
}

#[test]
fn the_quickstart_runs_in_a_fresh_directory_without_services() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::services::scrub(&mut Command::new(built("examples/quickstart")))
        .current_dir(dir.path())
        .env("TMPDIR", dir.path())
        .env("HOME", dir.path())
        .output()
        .expect("the quickstart runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "quickstart failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("published atdata://local/schema/TrainingSample@1.0.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("inserted training-v1 as bafyrei"),
        "{stdout}"
    );
    assert!(stdout.contains("read 100 samples back"), "{stdout}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "the quickstart cleans up after itself: {left:?}"
    );
}
