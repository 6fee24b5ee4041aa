//! Samples typed at run time by a schema record.

use crate::array::ArrayPayload;
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::msgpack::{Decoder, Encoder, Int, kind_name};
use crate::sample::SampleType;
use crate::schema::{FieldType, Primitive, Schema};

/// A field value of a [`DynamicSample`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// nil (`None`).
    Nil,
    /// A bool.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    /// A float (written back as float64, as Python writes every float).
    Float(f64),
    /// A string.
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// An NDArray payload, kept with its own dtype, byte order and format.
    Array(ArrayPayload),
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one that fits in `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(v) => Some(v),
            Value::UInt(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The number as a float, if this is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(v) => Some(v),
            Value::Int(v) => Some(v as f64),
            Value::UInt(v) => Some(v as f64),
            _ => None,
        }
    }

    /// The bool, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The bytes, if this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The array payload, if this is an array.
    pub fn as_array(&self) -> Option<&ArrayPayload> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    fn decode(dec: &mut Decoder<'_>, ty: &FieldType, optional: bool) -> Result<Value> {
        if dec.nil()? {
            return if optional {
                Ok(Value::Nil)
            } else {
                Err(Error::UnexpectedType {
                    expected: "a value (the field is not optional)",
                    found: "nil",
                })
            };
        }
        let int = |i: Int| match i {
            Int::Signed(v) => Value::Int(v),
            Int::Unsigned(v) => i64::try_from(v).map_or(Value::UInt(v), Value::Int),
        };
        Ok(match ty {
            FieldType::Primitive(Primitive::Str) => Value::Str(dec.str()?.to_owned()),
            FieldType::Primitive(Primitive::Int) => int(dec.int()?),
            FieldType::Primitive(Primitive::Bool) => Value::Bool(dec.bool()?),
            FieldType::Primitive(Primitive::Bytes) | FieldType::Binary { .. } => {
                Value::Bytes(dec.bin()?.to_vec())
            }
            // Python does not check that a float field holds a float: keep ints as ints so
            // they re-pack to the same bytes.
            FieldType::Primitive(Primitive::Float) => match kind_name(dec.peek()?) {
                "int" => int(dec.int()?),
                _ => Value::Float(dec.float()?),
            },
            FieldType::NdArray { .. } => {
                Value::Array(ArrayPayload::from_bytes(dec.bin()?.to_vec())?)
            }
            FieldType::Array { items } => {
                let len = dec.array_len()?;
                let values = (0..len)
                    .map(|i| Value::decode(dec, items, false).map_err(|e| e.in_item(i)))
                    .collect::<Result<_>>()?;
                Value::List(values)
            }
            FieldType::Other(v) => return Err(Error::UnsupportedFieldType(v.to_string())),
        })
    }

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<()> {
        match self {
            Value::Nil => enc.nil(),
            Value::Bool(b) => enc.bool(*b),
            Value::Int(v) => enc.int(*v),
            Value::UInt(v) => enc.uint(*v),
            Value::Float(v) => enc.f64(*v),
            Value::Str(s) => enc.str(s),
            Value::Bytes(b) => enc.bin(b),
            Value::Array(a) => enc.bin(a.as_bytes()),
            Value::List(items) => {
                enc.array_len(items.len())?;
                items.iter().try_for_each(|v| v.encode(enc))
            }
        }
    }
}

/// A sample whose type is known only at run time, from a [`Schema`] (a record read from an
/// index, say). It is not a [`Packable`](crate::Packable): its schema is a value.
///
/// Decoding checks every value against the schema (kind, optionality, array payloads); fields
/// keep the payload's key order and array payloads their own bytes, so re-packing a payload
/// written by Python gives the same bytes.
///
/// ```
/// use atdata_codec::{DynamicSample, FieldType, Primitive, Schema, SchemaField};
///
/// let schema = Schema {
///     name: "Point".into(),
///     fields: vec![SchemaField { name: "x".into(), field_type: FieldType::Primitive(Primitive::Float), optional: false }],
///     description: None,
/// };
/// let payload = [0x81, 0xa1, b'x', 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]; // {"x": 1.5}
/// let s = DynamicSample::from_bytes(&schema, &payload).unwrap();
/// assert_eq!(s.get("x").and_then(|v| v.as_f64()), Some(1.5));
/// assert_eq!(s.packed().unwrap(), payload);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicSample {
    fields: Vec<(String, Value)>,
}

impl DynamicSample {
    /// Decodes a payload by `schema`: unknown, missing or repeated keys and values of the wrong
    /// kind are errors naming the field.
    pub fn from_bytes(schema: &Schema, bytes: &[u8]) -> Result<DynamicSample> {
        let mut dec = Decoder::new(bytes);
        let len = dec.map_len()?;
        let mut seen = vec![false; schema.fields.len()];
        let mut fields = Vec::with_capacity(len);
        for _ in 0..len {
            let key = dec.str()?;
            let index = schema
                .fields
                .iter()
                .position(|f| f.name == key)
                .ok_or_else(|| Error::UnknownField {
                    sample: schema.name.clone(),
                    name: key.to_owned(),
                })?;
            if std::mem::replace(&mut seen[index], true) {
                return Err(Error::DuplicateField {
                    name: key.to_owned(),
                });
            }
            let field = &schema.fields[index];
            let value = Value::decode(&mut dec, &field.field_type, field.optional)
                .map_err(|e| e.in_field(key))?;
            fields.push((key.to_owned(), value));
        }
        dec.finish()?;
        if let Some(missing) = schema.fields.iter().zip(&seen).find(|(_, seen)| !**seen) {
            return Err(Error::MissingField {
                sample: schema.name.clone(),
                name: missing.0.name.clone(),
            });
        }
        Ok(DynamicSample { fields })
    }

    /// The msgpack payload: the fields in their order, each value as decoded.
    pub fn packed(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut enc = Encoder::new(&mut out);
        enc.map_len(self.fields.len())?;
        for (name, value) in &self.fields {
            enc.str(name)?;
            value.encode(&mut enc).map_err(|e| e.in_field(name))?;
        }
        Ok(out)
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The fields and values, in payload order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v))
    }
}

/// One column of a [`DynamicBatch`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Column {
    /// A required array field: every sample's array stacked along a new leading axis (one
    /// payload, in the samples' shared dtype and byte order, C order).
    Array(ArrayPayload),
    /// Any other field: one value per sample (`Value::Nil` where an optional field is absent).
    Values(Vec<Value>),
}

/// A batch of [`DynamicSample`]s, column by field name.
///
/// Required array fields stack when every sample's dtype and shape agree (otherwise building
/// the batch fails naming the field); optional arrays and other fields are lists of values, as
/// for typed batches.
///
/// ```
/// use atdata_codec::{Column, DynamicBatch, DynamicSample, FieldType, Schema, SchemaField};
///
/// let schema = Schema {
///     name: "V".into(),
///     fields: vec![SchemaField { name: "v".into(), field_type: FieldType::NdArray { dtype: "uint8".into() }, optional: false }],
///     description: None,
/// };
/// // {"v": <|u1 array [7]>}
/// let payload = b"\x81\xa1v\xc4\x0e\x03|u1\x01\x01\0\0\0\0\0\0\0\x07";
/// let s = DynamicSample::from_bytes(&schema, payload).unwrap();
/// let batch = DynamicBatch::from_samples(&schema, vec![s.clone(), s]).unwrap();
/// let Some(Column::Array(a)) = batch.column("v") else { panic!() };
/// assert_eq!(a.shape(), &[2, 1]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicBatch {
    columns: Vec<(String, Column)>,
    samples: Vec<DynamicSample>,
    keys: Keys,
}

impl DynamicBatch {
    /// Builds the columns of `samples` (at least one) by `schema`.
    pub fn from_samples(schema: &Schema, samples: Vec<DynamicSample>) -> Result<DynamicBatch> {
        if samples.is_empty() {
            return Err(Error::EmptyBatch);
        }
        let columns = schema
            .fields
            .iter()
            .map(|f| {
                let values = samples
                    .iter()
                    .map(|s| s.get(&f.name).cloned().unwrap_or(Value::Nil));
                let column = match (&f.field_type, f.optional) {
                    (FieldType::NdArray { .. }, false) => {
                        stack_payloads(samples.iter().map(|s| s.get(&f.name)))
                            .map(Column::Array)
                            .map_err(|e| e.in_field(&f.name))?
                    }
                    _ => Column::Values(values.collect()),
                };
                Ok((f.name.clone(), column))
            })
            .collect::<Result<_>>()?;
        Ok(DynamicBatch {
            columns,
            samples,
            keys: Keys::new(),
        })
    }

    /// Builds the columns of `samples` by `schema`, with their `__key__`s (one each).
    pub fn from_keyed(
        schema: &Schema,
        keys: Keys,
        samples: Vec<DynamicSample>,
    ) -> Result<DynamicBatch> {
        crate::sample::check_keys(&keys, samples.len())?;
        Ok(DynamicBatch {
            keys,
            ..DynamicBatch::from_samples(schema, samples)?
        })
    }

    /// The samples' `__key__`s, in batch order (empty for a batch made by
    /// [`from_samples`](Self::from_samples)).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The column of field `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// The columns in schema order.
    pub fn columns(&self) -> impl Iterator<Item = (&str, &Column)> {
        self.columns.iter().map(|(n, c)| (n.as_str(), c))
    }

    /// The samples, in batch order.
    pub fn samples(&self) -> &[DynamicSample] {
        &self.samples
    }

    /// The number of samples (at least one).
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Always `false`: a batch has at least one sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// Stacks array payloads of one dtype and shape into one C-order payload.
fn stack_payloads<'a>(values: impl Iterator<Item = Option<&'a Value>>) -> Result<ArrayPayload> {
    let arrays: Vec<&ArrayPayload> = values
        .map(|v| match v {
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(Error::UnexpectedType {
                expected: "array",
                found: value_kind(other),
            }),
            None => Err(Error::UnexpectedType {
                expected: "array",
                found: "nothing",
            }),
        })
        .collect::<Result<_>>()?;
    let first = arrays.first().ok_or(Error::EmptyBatch)?;
    for (index, a) in arrays.iter().enumerate() {
        if a.dtype() != first.dtype() {
            return Err(Error::DtypeMismatch {
                index,
                expected: first.dtype().as_str().to_owned(),
                found: a.dtype().as_str().to_owned(),
            });
        }
        if a.shape() != first.shape() {
            return Err(Error::ShapeMismatch {
                index,
                expected: first.shape().to_vec(),
                found: a.shape().to_vec(),
            });
        }
    }
    let mut shape = vec![arrays.len()];
    shape.extend_from_slice(first.shape());
    let data_len: usize = arrays.iter().map(|a| a.data().len()).sum();
    let mut out = crate::array::compact_header(first.dtype().as_str(), &shape)?;
    out.reserve(data_len);
    for a in &arrays {
        a.extend_c_order(&mut out);
    }
    Ok(ArrayPayload::from_bytes(out)?)
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::UInt(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bin",
        Value::List(_) => "array",
        Value::Array(_) => "ndarray",
    }
}

impl SampleType for DynamicSample {
    type Context = Schema;
    type Batch = DynamicBatch;

    fn decode(schema: &Schema, payload: &[u8]) -> Result<DynamicSample> {
        DynamicSample::from_bytes(schema, payload)
    }

    fn batch(schema: &Schema, keys: Keys, samples: Vec<DynamicSample>) -> Result<DynamicBatch> {
        DynamicBatch::from_keyed(schema, keys, samples)
    }

    type Builder = Vec<DynamicSample>;

    fn sample_schema(schema: &Schema) -> Schema {
        schema.clone()
    }

    fn context_for(schema: Schema) -> Schema {
        schema
    }
}
