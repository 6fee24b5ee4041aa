//! `Packable::from_bytes` and `DynamicSample::from_bytes` on arbitrary bytes: errors, never
//! panics; whatever decodes re-packs to bytes that decode to the same sample.
#![no_main]

use atdata_codec::{DynamicSample, Packable};
use atdata_derive::packable;
use libfuzzer_sys::fuzz_target;
use ndarray::{Array2, ArrayD};

#[packable(crate = "atdata_codec")]
#[derive(Debug, PartialEq)]
struct Sample {
    image: Array2<f32>,
    label: String,
    index: i64,
    score: f64,
    tags: Vec<String>,
    mask: Option<ArrayD<u8>>,
    blob: Vec<u8>,
    small: u8,
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Sample::from_bytes(data) {
        let repacked = s.packed().expect("a decoded sample packs");
        let again = Sample::from_bytes(&repacked).expect("a re-packed sample decodes");
        assert_eq!(again.packed().expect("packs"), repacked);
    }
    if let Ok(d) = DynamicSample::from_bytes(&Sample::schema(), data) {
        let repacked = d.packed().expect("a decoded dynamic sample packs");
        assert_eq!(DynamicSample::from_bytes(&Sample::schema(), &repacked).expect("decodes"), d);
    }
});
