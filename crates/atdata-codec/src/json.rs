//! JSON values as msgpack, packed as msgpack-python packs the same Python values: the form
//! of an index entry's `metadata` and `data_urls`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rmp::Marker;
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::msgpack::{Decoder, Encoder, Int};

/// Nesting deeper than this is refused when decoding (no stack overflow on hostile input).
const MAX_DEPTH: usize = 128;

/// Packs a JSON value as msgpack-python packs the equal Python value: maps keep their key
/// order, integers take their smallest encoding, floats are float64, strings use str8 from
/// 32 bytes.
///
/// ```
/// let v = serde_json::json!({"n": 5, "ratio": 0.5, "tags": ["a"]});
/// let bytes = atdata_codec::json_to_msgpack(&v).unwrap();
/// assert_eq!(atdata_codec::msgpack_to_json(&bytes).unwrap(), v);
/// ```
pub fn json_to_msgpack(value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode(&mut Encoder::new(&mut out), value)?;
    Ok(out)
}

fn encode(enc: &mut Encoder<'_>, value: &Value) -> Result<()> {
    match value {
        Value::Null => enc.nil(),
        Value::Bool(b) => enc.bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => enc.uint(u),
            (None, Some(i), _) => enc.int(i),
            (None, None, Some(f)) => enc.f64(f),
            _ => Err(Error::Msgpack(
                "a JSON number that is neither integer nor float",
            )),
        },
        Value::String(s) => enc.str(s),
        Value::Array(items) => {
            enc.array_len(items.len())?;
            items.iter().try_for_each(|v| encode(enc, v))
        }
        Value::Object(map) => {
            enc.map_len(map.len())?;
            map.iter().try_for_each(|(k, v)| {
                enc.str(k)?;
                encode(enc, v)
            })
        }
    }
}

/// Reads a msgpack value as JSON. Map keys must be strings; byte strings become base64 text
/// (standard alphabet, padded); a float that JSON cannot hold becomes the text `"NaN"`,
/// `"Infinity"` or `"-Infinity"` (so it is never confused with nil, which is `null`). Trailing
/// data is an error.
///
/// ```
/// assert_eq!(atdata_codec::msgpack_to_json(&[0x91, 0xa1, b'x']).unwrap(), serde_json::json!(["x"]));
/// assert!(atdata_codec::msgpack_to_json(&[0x91]).is_err()); // truncated
/// ```
pub fn msgpack_to_json(bytes: &[u8]) -> Result<Value> {
    let mut dec = Decoder::new(bytes);
    let value = decode(&mut dec, 0)?;
    dec.finish()?;
    Ok(value)
}

fn decode(dec: &mut Decoder<'_>, depth: usize) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(Error::Msgpack("nesting deeper than 128 levels"));
    }
    Ok(match dec.peek()? {
        Marker::Null => {
            dec.nil()?;
            Value::Null
        }
        Marker::True | Marker::False => Value::Bool(dec.bool()?),
        Marker::F32 | Marker::F64 => {
            let f = dec.float()?;
            match Number::from_f64(f) {
                Some(n) => Value::Number(n),
                None if f.is_nan() => Value::from("NaN"),
                None if f > 0.0 => Value::from("Infinity"),
                None => Value::from("-Infinity"),
            }
        }
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
            Value::String(dec.str()?.to_owned())
        }
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => Value::String(STANDARD.encode(dec.bin()?)),
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
            let len = dec.array_len()?;
            // Every item takes at least one byte: a length beyond what is left is corrupt.
            let mut items = Vec::with_capacity(len.min(dec.remaining()));
            for _ in 0..len {
                items.push(decode(dec, depth + 1)?);
            }
            Value::Array(items)
        }
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
            let len = dec.map_len()?;
            let mut map = Map::new();
            for _ in 0..len {
                let key = dec.str()?.to_owned();
                let value = decode(dec, depth + 1)?;
                map.insert(key, value);
            }
            Value::Object(map)
        }
        _ => match dec.int()? {
            Int::Signed(v) => Value::from(v),
            Int::Unsigned(v) => Value::from(v),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_golden_metadata_as_python_does() {
        // golden/redis_dump.json: the metadata of the golden-images entry.
        let v = serde_json::json!({"description": "five tiny images", "split": "train", "n": 5,
            "ratio": 0.5, "tags": ["golden", "images"], "nested": {"k": null}});
        let hex = "86ab6465736372697074696f6eb0666976652074696e7920696d61676573a573706c6974a5747261696ea16e05a5726174696fcb3fe0000000000000a47461677392a6676f6c64656ea6696d61676573a66e657374656481a16bc0";
        let bytes = json_to_msgpack(&v).unwrap();
        let got: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, hex);
        assert_eq!(msgpack_to_json(&bytes).unwrap(), v);
    }

    #[test]
    fn byte_strings_read_as_base64() {
        assert_eq!(
            msgpack_to_json(&[0xc4, 2, 0xff, 0x00]).unwrap(),
            Value::from("/wA=")
        );
    }

    #[test]
    fn hostile_input_is_an_error() {
        assert!(msgpack_to_json(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err()); // huge array, no items
        assert!(msgpack_to_json(&[0x81, 0x01, 0x01]).is_err()); // non-string key
        // NaN and infinities are text, never `null` (which is nil).
        assert_eq!(
            msgpack_to_json(&[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]).unwrap(),
            "NaN"
        );
        assert_eq!(
            msgpack_to_json(&[0xcb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0]).unwrap(),
            "-Infinity"
        );
        assert_eq!(msgpack_to_json(&[0xc0]).unwrap(), Value::Null);
        assert!(msgpack_to_json(&[0xc0, 0xc0]).is_err()); // trailing bytes
        assert!(msgpack_to_json(&[0x91; 200]).is_err()); // too deep
    }
}
