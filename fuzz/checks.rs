//! The properties the fuzz targets check, as plain functions: the targets call them on
//! arbitrary input, and the test suite calls them on the committed seeds (`fuzz/seeds/`), so
//! the seeds run in CI without a fuzzer. Each runs on a thread with a small stack (256 KiB), so
//! a recursion that input could deepen shows up as a crash here rather than in production.

use atdata_codec::{BatchBuilder, DynamicSample, Packable, SampleBatch, SampleType, Schema};
use atdata_derive::packable;
use atdata_wds::expand_urls;
use ndarray::{Array1, Array2};

/// Stack size of the checking thread.
const SMALL_STACK: usize = 256 << 10;

fn on_small_stack(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(SMALL_STACK)
            .spawn_scoped(s, f)
            .expect("a checking thread")
            .join()
            .expect("the check passed");
    });
}

/// Brace expansion of any text: an error or at most a million URLs, never a panic or a stack
/// overflow; a pattern without braces or escapes is its own single URL.
pub fn brace_expansion(data: &[u8]) {
    let Ok(pattern) = std::str::from_utf8(data) else {
        return;
    };
    on_small_stack(|| {
        if let Ok(urls) = expand_urls(pattern) {
            assert!(urls.len() <= 1_000_000);
            if !pattern.contains(['{', '}', '\\']) {
                assert_eq!(urls, [pattern]);
            }
        }
    });
}

/// Schema inference from any payload: an error or a schema that passes `validate` and decodes
/// the payload it came from, never a panic or a stack overflow.
pub fn schema_inference(data: &[u8]) {
    on_small_stack(|| {
        if let Ok(schema) = Schema::infer("Fuzz", [data]) {
            schema.validate().expect("an inferred schema is valid");
            DynamicSample::from_bytes(&schema, data).expect("a sample decodes by its own schema");
        }
    });
}

/// The sample type of [`batch_columns`]: two array fields and a string.
#[packable(crate = "atdata_codec")]
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    v: Array2<f32>,
    w: Array1<u8>,
    s: String,
}

/// Payloads (each after a byte giving its length) decoded straight into a batch's columns
/// (`BatchBuilder::decode_into`: an array column appends a payload whose header repeats the
/// last one's without parsing it again) against each payload decoded alone and the rows
/// stacked: every payload has the same outcome both ways, and the batches hold the same
/// samples, compared as packed bytes (a NaN is not equal to itself; its bits are), or both
/// fail. The rows decoded.
pub fn batch_columns(data: &[u8]) -> usize {
    let mut payloads = Vec::new();
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let (payload, after) = tail.split_at(usize::from(n).min(tail.len()));
        payloads.push(payload);
        rest = after;
    }
    let mut columns = <Row as SampleType>::Builder::with_capacity(&(), payloads.len());
    let mut rows = Vec::new();
    for payload in payloads {
        let alone = Row::from_bytes(payload);
        let into = columns.decode_into(&(), payload);
        assert_eq!(alone.is_ok(), into.is_ok(), "{alone:?} / {into:?}");
        rows.extend(alone.ok());
    }
    assert_eq!(columns.rows(), rows.len());
    let decoded = rows.len();
    let packed = |batch: &SampleBatch<Row>| -> Vec<Vec<u8>> {
        let samples = batch.samples().iter();
        samples
            .map(|s| s.packed().expect("a decoded sample packs"))
            .collect()
    };
    let keys = (0..rows.len()).map(|i| i.to_string()).collect();
    match (columns.finish(&(), keys), SampleBatch::from_samples(rows)) {
        (Ok(built), Ok(stacked)) => assert_eq!(packed(&built), packed(&stacked)),
        (Err(_), Err(_)) => {}
        (built, stacked) => panic!("{:?} / {:?}", built.err(), stacked.err()),
    }
    decoded
}
