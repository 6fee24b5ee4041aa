//! Samples as JSON: arrays as `{"dtype", "shape", "data"}`, bytes as base64.

use atdata::ndarray::{ArrayD, IxDyn};
use atdata::{ArrayPayload, DynamicSample, Element, Value};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value as Json, json};

/// How arrays and byte strings are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every element: `{"dtype", "shape", "data"}`; bytes as base64.
    Full,
    /// `{"dtype", "shape", "head"}` with the first few elements; bytes as their length.
    Summary,
}

/// Elements an array summary shows.
const HEAD: usize = 4;

/// A decoded sample, its fields in schema order after `__key__` (only `fields`, when given).
pub fn sample(
    key: &str,
    sample: &DynamicSample,
    fields: Option<&[String]>,
    detail: Detail,
) -> anyhow::Result<Json> {
    let mut out = Map::new();
    out.insert("__key__".into(), Json::from(key));
    for (name, value) in sample.fields() {
        if fields.is_none_or(|f| f.iter().any(|n| n == name)) {
            out.insert(name.to_owned(), self::value(value, detail)?);
        }
    }
    Ok(Json::Object(out))
}

fn value(v: &Value, detail: Detail) -> anyhow::Result<Json> {
    if detail == Detail::Summary {
        match v {
            Value::Array(a) => return summary(a),
            Value::Bytes(b) => return Ok(json!({"bytes": b.len()})),
            _ => {}
        }
    }
    Ok(match v {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::from(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => float(*f),
        Value::Str(s) => Json::from(s.as_str()),
        Value::Bytes(b) => Json::from(STANDARD.encode(b)),
        Value::List(items) => Json::Array(
            items
                .iter()
                .map(|i| value(i, detail))
                .collect::<anyhow::Result<_>>()?,
        ),
        Value::Array(a) => array(a)?,
        other => anyhow::bail!("a value this version cannot show: {other:?}"),
    })
}

fn numbers<A: Element>(a: &ArrayPayload, f: impl Fn(&A) -> Json) -> anyhow::Result<Json> {
    let arr: ArrayD<A> = a.to_array::<A, IxDyn>()?;
    Ok(Json::Array(arr.iter().map(f).collect()))
}

fn float(f: f64) -> Json {
    // Text, never `null` (which is nil), as `msgpack_to_json` writes them.
    match serde_json::Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::from("NaN"),
        None if f > 0.0 => Json::from("Infinity"),
        None => Json::from("-Infinity"),
    }
}

/// `{"dtype": "float32", "shape": [2, 3], "data": [...]}` in C order; complex elements as
/// `[re, im]`, NaN and infinities as strings; dtypes without a numeric form keep their bytes
/// (base64) under `"bytes"`.
fn array(a: &ArrayPayload) -> anyhow::Result<Json> {
    use num_complex::{Complex32, Complex64};
    let data = match a.dtype().name() {
        Some("bool") => numbers::<bool>(a, |v| Json::from(*v))?,
        Some("int8") => numbers::<i8>(a, |v| Json::from(*v))?,
        Some("int16") => numbers::<i16>(a, |v| Json::from(*v))?,
        Some("int32") => numbers::<i32>(a, |v| Json::from(*v))?,
        Some("int64") => numbers::<i64>(a, |v| Json::from(*v))?,
        Some("uint8") => numbers::<u8>(a, |v| Json::from(*v))?,
        Some("uint16") => numbers::<u16>(a, |v| Json::from(*v))?,
        Some("uint32") => numbers::<u32>(a, |v| Json::from(*v))?,
        Some("uint64") => numbers::<u64>(a, |v| Json::from(*v))?,
        Some("float16") => numbers::<half::f16>(a, |v| float(v.to_f64()))?,
        Some("float32") => numbers::<f32>(a, |v| float(f64::from(*v)))?,
        Some("float64") => numbers::<f64>(a, |v| float(*v))?,
        Some("complex64") => numbers::<Complex32>(a, |v| {
            json!([float(f64::from(v.re)), float(f64::from(v.im))])
        })?,
        Some("complex128") => numbers::<Complex64>(a, |v| json!([float(v.re), float(v.im)]))?,
        _ => {
            return Ok(json!({
                "dtype": a.dtype().as_str(),
                "shape": a.shape(),
                "bytes": STANDARD.encode(a.data()),
            }));
        }
    };
    Ok(json!({
        "dtype": a.dtype().name().unwrap_or(a.dtype().as_str()),
        "shape": a.shape(),
        "data": data,
    }))
}

/// `{"dtype", "shape", "head"}`: the first few elements, in C order.
fn summary(a: &ArrayPayload) -> anyhow::Result<Json> {
    let mut full = array(a)?;
    if let Some(Json::Array(data)) = full.get_mut("data").map(Json::take) {
        let head: Vec<Json> = data.into_iter().take(HEAD).collect();
        if let Json::Object(map) = &mut full {
            map.remove("data");
            map.insert("head".into(), Json::Array(head));
        }
    } else if let Json::Object(map) = &mut full {
        map.remove("bytes");
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atdata::ndarray::array;

    #[test]
    fn arrays_render_with_dtype_shape_and_data() {
        let a = ArrayPayload::from_array(&array![[1.5f32, 2.0], [3.0, f32::NAN]]).unwrap();
        assert_eq!(
            array(&a).unwrap(),
            json!({"dtype": "float32", "shape": [2, 2], "data": [1.5, 2.0, 3.0, "NaN"]})
        );
        let b = ArrayPayload::from_array(&array![true, false]).unwrap();
        assert_eq!(array(&b).unwrap()["data"], json!([true, false]));
    }

    #[test]
    fn bytes_render_as_base64() {
        assert_eq!(
            value(&Value::Bytes(vec![0xff, 0]), Detail::Full).unwrap(),
            json!("/wA=")
        );
        assert_eq!(
            value(&Value::Bytes(vec![0xff, 0]), Detail::Summary).unwrap(),
            json!({"bytes": 2})
        );
    }

    #[test]
    fn a_summary_shows_dtype_shape_and_the_first_elements() {
        let a = ArrayPayload::from_array(&atdata::ndarray::Array::from_elem((224, 224, 3), 0.5f32))
            .unwrap();
        assert_eq!(
            value(&Value::Array(a), Detail::Summary).unwrap(),
            json!({"dtype": "float32", "shape": [224, 224, 3], "head": [0.5, 0.5, 0.5, 0.5]})
        );
    }
}
