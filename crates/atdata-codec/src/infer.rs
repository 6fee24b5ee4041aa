//! A schema guessed from samples' payloads, for data that arrives without one.

use rmp::Marker;

use crate::array::ArrayPayload;
use crate::error::{Error, Result};
use crate::msgpack::Decoder;
use crate::schema::{FieldType, MAX_LIST_NESTING, Primitive, Schema, SchemaField};

/// What the samples so far say about a value's type.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// Only nil (or nothing) seen.
    Unknown,
    Primitive(Primitive),
    NdArray(String),
    List(Box<Shape>),
}

impl Shape {
    /// The type both shapes allow: unknown parts filled in, int widened to float.
    fn merge(self, other: Shape) -> Option<Shape> {
        const INT: Shape = Shape::Primitive(Primitive::Int);
        const FLOAT: Shape = Shape::Primitive(Primitive::Float);
        Some(match (self, other) {
            (Shape::Unknown, s) | (s, Shape::Unknown) => s,
            (a, b) if (a == INT && b == FLOAT) || (a == FLOAT && b == INT) => FLOAT,
            (Shape::List(a), Shape::List(b)) => Shape::List(Box::new(a.merge(*b)?)),
            (a, b) if a == b => a,
            _ => return None,
        })
    }

    /// The shape in words, for errors.
    fn describe(&self) -> String {
        match self {
            Shape::Unknown => "nil".into(),
            Shape::Primitive(p) => format!("{p:?}").to_lowercase(),
            Shape::NdArray(dtype) => format!("an ndarray of {dtype}"),
            Shape::List(items) => format!("a list of {}", items.describe()),
        }
    }

    fn field_type(self) -> Option<FieldType> {
        Some(match self {
            Shape::Unknown => return None,
            Shape::Primitive(p) => FieldType::Primitive(p),
            Shape::NdArray(dtype) => FieldType::NdArray { dtype },
            Shape::List(items) => FieldType::Array {
                items: Box::new(items.field_type()?),
            },
        })
    }
}

impl Schema {
    /// The schema `name` that the msgpack maps `payloads` (samples) follow, judged from all of
    /// them, as [`SchemaInference`] judges them.
    ///
    /// ```
    /// use atdata_codec::{FieldType, Primitive, Schema};
    ///
    /// // {"id": 7, "tags": []} and {"id": 8, "tags": ["a"]}
    /// let a = [0x82, 0xa2, b'i', b'd', 0x07, 0xa4, b't', b'a', b'g', b's', 0x90];
    /// let b = [0x82, 0xa2, b'i', b'd', 0x08, 0xa4, b't', b'a', b'g', b's', 0x91, 0xa1, b'a'];
    /// let schema = Schema::infer("Row", [&a[..], &b[..]]).unwrap();
    /// assert_eq!(schema.fields[0].field_type, FieldType::Primitive(Primitive::Int));
    /// assert!(Schema::infer("Row", [&a[..]]).is_err()); // an empty list alone says nothing
    /// ```
    pub fn infer<'p>(name: &str, payloads: impl IntoIterator<Item = &'p [u8]>) -> Result<Schema> {
        let mut inference = SchemaInference::default();
        for payload in payloads {
            inference.add(payload)?;
        }
        inference.finish(name)
    }
}

/// A schema inferred from samples one at a time, in memory that grows with the fields, not
/// the samples: strings, integers, floats (an int in one sample and a float in another is a
/// float), bools, byte strings (NDArray payloads as arrays of their dtype) and lists of those.
/// A field that is nil in any sample is optional. A field whose type no sample shows (only
/// nil, only empty lists), samples with different keys, repeated keys, nil list items, nested
/// maps and conflicting types are errors naming the field, from the [`add`](Self::add) of the
/// sample that shows them (or from [`finish`](Self::finish)).
///
/// ```
/// use atdata_codec::SchemaInference;
///
/// // {"note": "a"}, then {"note": nil}: the field becomes optional.
/// let mut inference = SchemaInference::default();
/// inference.add(&[0x81, 0xa4, b'n', b'o', b't', b'e', 0xa1, b'a']).unwrap();
/// inference.add(&[0x81, 0xa4, b'n', b'o', b't', b'e', 0xc0]).unwrap();
/// // {"note": 3} contradicts them.
/// let err = inference.add(&[0x81, 0xa4, b'n', b'o', b't', b'e', 0x03]).unwrap_err();
/// assert!(err.to_string().contains("`note`"), "{err}");
/// let schema = inference.finish("Row").unwrap();
/// assert!(schema.fields[0].optional);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SchemaInference {
    /// Each field's name, shape so far, and whether it was nil in some sample.
    fields: Option<Vec<(String, Shape, bool)>>,
}

impl SchemaInference {
    /// Takes one sample's payload into account. On an error the inference is unchanged.
    pub fn add(&mut self, payload: &[u8]) -> Result<()> {
        let sample = read_sample(payload)?;
        let Some(known) = self.fields.as_mut() else {
            self.fields = Some(sample);
            return Ok(());
        };
        let same_keys =
            known.len() == sample.len() && known.iter().zip(&sample).all(|(a, b)| a.0 == b.0);
        if !same_keys {
            let names = |fields: &[(String, Shape, bool)]| {
                fields
                    .iter()
                    .map(|f| f.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(Error::Uninferable(format!(
                "fields [{}], where the samples before have [{}]",
                names(&sample),
                names(known)
            )));
        }
        let mut merged = Vec::with_capacity(known.len());
        for (field, (_, shape, _)) in known.iter().zip(sample.iter()) {
            let shape = field.1.clone().merge(shape.clone()).ok_or_else(|| {
                Error::Uninferable(format!(
                    "field `{}` is {}, where the samples before have {}",
                    field.0,
                    shape.describe(),
                    field.1.describe()
                ))
            })?;
            merged.push(shape);
        }
        for ((field, (_, _, nil)), shape) in known.iter_mut().zip(sample).zip(merged) {
            field.1 = shape;
            field.2 |= nil;
        }
        Ok(())
    }

    /// The schema `name` of every sample added.
    pub fn finish(self, name: &str) -> Result<Schema> {
        let fields = self
            .fields
            .ok_or_else(|| Error::Uninferable("no sample".into()))?;
        let fields = fields
            .into_iter()
            .map(|(name, shape, optional)| {
                let field_type = shape.field_type().ok_or_else(|| {
                    Error::Uninferable(format!(
                        "no sample shows the type of field `{name}` (only nil or empty lists)"
                    ))
                })?;
                Ok(SchemaField {
                    name,
                    field_type,
                    optional,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Schema {
            name: name.to_owned(),
            fields,
            description: None,
        })
    }
}

/// Each field of one sample: its name, shape, and whether it is nil.
fn read_sample(payload: &[u8]) -> Result<Vec<(String, Shape, bool)>> {
    let mut dec = Decoder::new(payload);
    let len = dec.map_len()?;
    let mut fields = Vec::with_capacity(len.min(payload.len()));
    for _ in 0..len {
        let field = dec.str()?;
        if fields.iter().any(|(name, _, _)| name == field) {
            return Err(Error::DuplicateField {
                name: field.to_owned(),
            });
        }
        let shape = shape(&mut dec, 0).map_err(|e| e.in_field(field))?;
        // Only a nil value reads as `Unknown` at the top of a field.
        let nil = shape == Shape::Unknown;
        fields.push((field.to_owned(), shape, nil));
    }
    dec.finish()?;
    Ok(fields)
}

/// The shape of the next value, `depth` lists down (bounded: lists nest at most 32 deep).
fn shape(dec: &mut Decoder<'_>, depth: usize) -> Result<Shape> {
    Ok(match dec.peek()? {
        Marker::Null => {
            dec.nil()?;
            Shape::Unknown
        }
        Marker::True | Marker::False => {
            dec.bool()?;
            Shape::Primitive(Primitive::Bool)
        }
        Marker::F32 | Marker::F64 => {
            dec.float()?;
            Shape::Primitive(Primitive::Float)
        }
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
            dec.str()?;
            Shape::Primitive(Primitive::Str)
        }
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
            let bytes = dec.bin()?;
            match ArrayPayload::from_bytes(bytes.to_vec()).map(|a| a.dtype().name()) {
                Ok(Some(dtype)) => Shape::NdArray(dtype.to_owned()),
                _ => Shape::Primitive(Primitive::Bytes),
            }
        }
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
            if depth == MAX_LIST_NESTING {
                return Err(Error::Uninferable(format!(
                    "lists nested more than {MAX_LIST_NESTING} deep"
                )));
            }
            let mut items = Shape::Unknown;
            for i in 0..dec.array_len()? {
                if dec.peek()? == Marker::Null {
                    return Err(Error::Uninferable("a list holding nil".into()).in_item(i));
                }
                let item = shape(dec, depth + 1).map_err(|e| e.in_item(i))?;
                items = items.merge(item).ok_or_else(|| {
                    Error::Uninferable("a list whose items differ in type".into())
                })?;
            }
            Shape::List(Box::new(items))
        }
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
            return Err(Error::Uninferable(
                "a nested map (give a schema; maps are not a field type)".into(),
            ));
        }
        _ => {
            dec.int()?;
            Shape::Primitive(Primitive::Int)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::Encoder;

    fn payload(f: impl FnOnce(&mut Encoder<'_>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut Encoder::new(&mut out));
        out
    }

    #[test]
    fn lists_nested_past_the_limit_are_an_error_not_a_stack_overflow() {
        let nested = |levels: usize| {
            let mut p = vec![0x81, 0xa1, b'x'];
            p.extend(std::iter::repeat_n(0x91, levels));
            p.push(0x01);
            p
        };
        let deep = nested(5000);
        let err = Schema::infer("Deep", [&deep[..]]).unwrap_err();
        assert!(err.to_string().contains("32 deep"), "{err}");
        let ok = Schema::infer("Deep", [&nested(32)[..]]).unwrap();
        ok.validate().unwrap();
        let record = crate::SchemaRecord::new(ok, "1.0.0", "t");
        assert_eq!(
            crate::SchemaRecord::from_json(&record.to_json()).unwrap(),
            record
        );
    }

    #[test]
    fn arrays_lists_bytes_and_optionals_are_told_apart() {
        let array = crate::encode_array(&ndarray::array![1u8, 2]).unwrap();
        let first = payload(|e| {
            e.map_len(4).unwrap();
            e.str("mask").unwrap();
            e.bin(&array).unwrap();
            e.str("raw").unwrap();
            e.bin(b"\x00\x01").unwrap();
            e.str("scores").unwrap();
            e.array_len(2).unwrap();
            e.int(1).unwrap();
            e.f64(1.5).unwrap();
            e.str("note").unwrap();
            e.nil().unwrap();
        });
        let second = payload(|e| {
            e.map_len(4).unwrap();
            e.str("mask").unwrap();
            e.nil().unwrap();
            e.str("raw").unwrap();
            e.bin(b"").unwrap();
            e.str("scores").unwrap();
            e.array_len(0).unwrap();
            e.str("note").unwrap();
            e.str("hi").unwrap();
        });
        let schema = Schema::infer("S", [&first[..], &second[..]]).unwrap();
        let got: Vec<_> = schema
            .fields
            .iter()
            .map(|f| (f.field_type.clone(), f.optional))
            .collect();
        assert_eq!(
            got,
            [
                (
                    FieldType::NdArray {
                        dtype: "uint8".into()
                    },
                    true
                ),
                (FieldType::Primitive(Primitive::Bytes), false),
                (
                    FieldType::Array {
                        items: Box::new(FieldType::Primitive(Primitive::Float))
                    },
                    false
                ),
                (FieldType::Primitive(Primitive::Str), true),
            ]
        );
    }

    #[test]
    fn what_samples_do_not_tell_is_an_error_naming_the_field() {
        let nil_only = [0x81, 0xa1, b'x', 0xc0];
        let err = Schema::infer("S", [&nil_only[..]]).unwrap_err();
        assert!(err.to_string().contains("`x`"), "{err}");
        let text = [0x81, 0xa1, b'x', 0xa1, b'a'];
        let int = [0x81, 0xa1, b'x', 0x01];
        assert!(Schema::infer("S", [&text[..], &int[..]]).is_err());
        let other_key = [0x81, 0xa1, b'y', 0x01];
        assert!(Schema::infer("S", [&int[..], &other_key[..]]).is_err());
        assert!(Schema::infer("S", [&[0x91, 0x01][..]]).is_err()); // not a map
        assert!(Schema::infer("S", [&[0x81, 0xa1, b'x'][..]]).is_err()); // truncated
        assert!(Schema::infer("S", std::iter::empty::<&[u8]>()).is_err());
        let repeated = [0x82, 0xa1, b'x', 0x01, 0xa1, b'x', 0x02];
        assert!(Schema::infer("S", [&repeated[..]]).is_err());
        let nil_item = [0x81, 0xa1, b'x', 0x92, 0x01, 0xc0];
        assert!(Schema::infer("S", [&nil_item[..]]).is_err());
    }
}
