//! The NDArray decoder (compact and `.npy`) on arbitrary bytes: errors, never panics, never
//! allocates more than the input justifies; whatever decodes re-encodes losslessly.
#![no_main]

use atdata_codec::{ArrayPayload, decode_array, encode_array};
use libfuzzer_sys::fuzz_target;
use ndarray::{ArrayD, Ix2};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ArrayPayload::from_bytes(data.to_vec()) {
        assert_eq!(p.as_bytes(), data);
        let n: usize = p.shape().iter().product();
        assert_eq!(p.data().len(), n * p.dtype().itemsize());
    }
    if let Ok(a) = decode_array::<f32, ndarray::IxDyn>(data) {
        let again: ArrayD<f32> = decode_array(&encode_array(&a).expect("encodes")).expect("decodes");
        assert_eq!(again.shape(), a.shape());
    }
    let _ = decode_array::<bool, Ix2>(data);
    let _ = decode_array::<i16, ndarray::Ix1>(data);
});
