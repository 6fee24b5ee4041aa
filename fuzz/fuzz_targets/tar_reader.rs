//! The tar shard reader on arbitrary bytes (plain or gzip): errors, never panics, never
//! allocates more than the input holds.
#![no_main]

use atdata_wds::TarReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut samples = 0usize;
    for item in TarReader::new(data, "fuzz.tar") {
        match item {
            Ok(sample) => {
                assert!(!sample.members.is_empty());
                samples += 1;
            }
            // After an error the reader may still yield what it held, then stops.
            Err(_) => {}
        }
        // Each sample needs a 512-byte header (gzip input decompresses to more than it is).
        if !data.starts_with(&[0x1f, 0x8b]) {
            assert!(samples <= data.len() / 512 + 1);
        }
    }
});
