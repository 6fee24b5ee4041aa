//! Every vector of `golden/arrays.json`.

use atdata::ndarray::{Array, IxDyn};
use atdata::{ArrayError, ArrayPayload, decode_array, encode_array};
use serde_json::json;

use crate::golden::{array_values, load, unhex};

#[test]
fn compact_vectors_decode_to_their_values_and_little_endian_ones_re_encode() {
    let vectors = load("arrays.json")["compact"].as_array().unwrap().clone();
    assert_eq!(vectors.len(), 5);
    for v in &vectors {
        let payload = unhex(&v["payload_hex"]);
        let array = &v["array"];
        let p = ArrayPayload::from_bytes(payload.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", v["name"]));
        assert_eq!(p.dtype().as_str(), array["dtype"], "{}", v["name"]);
        assert_eq!(json!(p.shape()), array["shape"], "{}", v["name"]);
        assert_eq!(json!(array_values(&p)), array["values"], "{}", v["name"]);
        // The payload is kept exactly (big-endian included).
        assert_eq!(p.as_bytes(), &payload[..]);
        // Typed arrays re-encode little-endian, so big-endian vectors are decode-only.
        if !p.dtype().as_str().starts_with('>') {
            let reencoded = match p.dtype().name().unwrap() {
                "float32" => encode_array(&decode_array::<f32, IxDyn>(&payload).unwrap()),
                "int64" => encode_array(&decode_array::<i64, IxDyn>(&payload).unwrap()),
                "bool" => encode_array(&decode_array::<bool, IxDyn>(&payload).unwrap()),
                "uint8" => encode_array(&decode_array::<u8, IxDyn>(&payload).unwrap()),
                other => panic!("add {other} here"),
            };
            assert_eq!(reencoded.unwrap(), payload, "{}", v["name"]);
        }
    }
}

#[test]
fn big_endian_payloads_decode_into_native_arrays() {
    let v = &load("arrays.json")["compact"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "f32_big_endian")
        .unwrap()
        .clone();
    let a = decode_array::<f32, IxDyn>(&unhex(&v["payload_hex"])).unwrap();
    assert_eq!(a.iter().copied().collect::<Vec<_>>(), vec![1.5, -0.25]);
    let le = encode_array(&a).unwrap();
    assert_eq!(&le[..4], b"\x03<f4");
}

#[test]
fn legacy_npy_payloads_decode_and_re_encode_compactly() {
    let vectors = load("arrays.json")["legacy_npy"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!vectors.is_empty());
    for v in &vectors {
        let payload = unhex(&v["payload_hex"]);
        let a: Array<f32, IxDyn> = decode_array(&payload).unwrap();
        assert_eq!(json!(a.shape()), v["decoded"]["shape"]);
        assert_eq!(
            json!(a.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()),
            v["decoded"]["values"]
        );
        assert_eq!(
            hex::encode(encode_array(&a).unwrap()),
            v["compact_reencoding_hex"].as_str().unwrap()
        );
        let kept = ArrayPayload::from_bytes(payload.clone()).unwrap();
        assert!(kept.is_npy());
        assert_eq!(kept.as_bytes(), &payload[..]);
    }
}

#[test]
fn every_invalid_vector_is_rejected_with_the_matching_error() {
    let vectors = load("arrays.json")["invalid"].as_array().unwrap().clone();
    assert_eq!(vectors.len(), 5);
    for v in &vectors {
        let payload = unhex(&v["payload_hex"]);
        let upstream = v["upstream_error"].as_str().unwrap();
        let err = ArrayPayload::from_bytes(payload.clone()).unwrap_err();
        let typed = decode_array::<f32, IxDyn>(&payload).unwrap_err();
        assert_eq!(err.to_string(), typed.to_string());
        match err {
            ArrayError::TooShort { len, need, part } => {
                // Same facts as upstream's "Array buffer too short (N bytes): need at least M[ for ...]".
                assert!(
                    upstream.contains(&format!("({len} bytes): need at least {need}{part}")),
                    "{upstream} vs {err}"
                );
            }
            ArrayError::LengthMismatch { .. } => {
                assert!(upstream.contains("cannot reshape"), "{upstream}")
            }
            other => panic!("unexpected error {other} for {upstream}"),
        }
    }
}
