//! `msgpack_to_json` (index metadata, written by anyone) and `Schema::infer` (samples without a
//! schema) on arbitrary bytes: errors, never panics; a decoded value re-packs to msgpack that
//! decodes to the same value, and an inferred schema decodes the sample it came from.
#![no_main]

use atdata_codec::{DynamicSample, Schema, json_to_msgpack, msgpack_to_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = msgpack_to_json(data) {
        let packed = json_to_msgpack(&value).expect("a decoded value packs");
        assert_eq!(msgpack_to_json(&packed).expect("re-packed decodes"), value);
    }
    if let Ok(schema) = Schema::infer("Fuzz", [data]) {
        DynamicSample::from_bytes(&schema, data).expect("a sample decodes by its own schema");
    }
});
