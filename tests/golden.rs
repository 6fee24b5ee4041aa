//! Loading the golden vectors and comparing values in their tagged form.

use std::path::PathBuf;

use atdata::ndarray::IxDyn;
use atdata::{ArrayPayload, Value};
use half::f16;
use serde_json::{Value as Json, json};

/// The folder holding the golden files (a copy of `shared/golden`, unchanged).
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// A golden JSON file.
pub fn load(name: &str) -> Json {
    let text = std::fs::read_to_string(dir().join(name))
        .unwrap_or_else(|e| panic!("read golden/{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse golden/{name}: {e}"))
}

/// A JSON list of strings.
pub fn strings(v: &Json) -> Vec<&str> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string"))
        .collect()
}

/// The msgpack payloads of the golden samples of `type_name`, in order.
pub fn payloads(type_name: &str) -> Vec<Vec<u8>> {
    let samples = load("samples.json")["samples"]
        .as_array()
        .expect("samples")
        .clone();
    samples
        .iter()
        .filter(|s| s["type"] == type_name)
        .map(|s| unhex(&s["msgpack_hex"]))
        .collect()
}

pub fn unhex(v: &Json) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

/// A float as the golden files write it (non-finite and negative zero as strings).
fn float(v: f64) -> Json {
    if v.is_nan() {
        json!("nan")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "inf" } else { "-inf" })
    } else if v == 0.0 && v.is_sign_negative() {
        json!("-0.0")
    } else {
        json!(v)
    }
}

/// The flat C-order values of an array payload, as JSON numbers or bools.
pub fn array_values(a: &ArrayPayload) -> Vec<Json> {
    macro_rules! values {
        ($t:ty, $f:expr) => {
            a.to_array::<$t, IxDyn>()
                .expect("typed view")
                .iter()
                .map($f)
                .collect()
        };
    }
    match a.dtype().name().expect("numeric dtype") {
        "bool" => values!(bool, |v| json!(*v)),
        "int8" => values!(i8, |v| json!(*v)),
        "int16" => values!(i16, |v| json!(*v)),
        "int32" => values!(i32, |v| json!(*v)),
        "int64" => values!(i64, |v| json!(*v)),
        "uint8" => values!(u8, |v| json!(*v)),
        "uint16" => values!(u16, |v| json!(*v)),
        "uint32" => values!(u32, |v| json!(*v)),
        "uint64" => values!(u64, |v| json!(*v)),
        "float16" => values!(f16, |v| float(f64::from(*v))),
        "float32" => values!(f32, |v| float(f64::from(*v))),
        "float64" => values!(f64, |v| float(*v)),
        other => panic!("no golden comparison for {other}"),
    }
}

/// The tagged form of a value, as `samples.json` and `arrays.json` write it (without the
/// `upstream_from_bytes_python_type` annotation).
pub fn tagged(v: &Value) -> Json {
    match v {
        Value::Nil => json!({"type": "none"}),
        Value::Bool(b) => json!({"type": "bool", "value": b}),
        Value::Int(i) => json!({"type": "int", "value": i}),
        Value::UInt(u) => json!({"type": "int", "value": u}),
        Value::Float(f) => json!({"type": "float", "value": float(*f)}),
        Value::Str(s) => json!({"type": "str", "value": s}),
        Value::Bytes(b) => json!({"type": "bytes", "hex": hex::encode(b)}),
        Value::List(items) => {
            json!({"type": "list", "items": items.iter().map(tagged).collect::<Vec<_>>()})
        }
        Value::Array(a) => json!({
            "type": "ndarray",
            "dtype": a.dtype().as_str(),
            "shape": a.shape(),
            "values": array_values(a),
            "payload_hex": hex::encode(a.as_bytes()),
        }),
        other => panic!("no tagged form for {other:?}"),
    }
}

/// A golden tagged value without the annotations that describe upstream's behaviour.
pub fn strip_annotations(v: &Json) -> Json {
    let mut v = v.clone();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("upstream_from_bytes_python_type");
        if let Some(items) = obj.get_mut("items").and_then(Json::as_array_mut) {
            *items = items.iter().map(strip_annotations).collect();
        }
    }
    v
}
