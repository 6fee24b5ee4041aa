//! Schema records: a sample type's name, ordered fields and description, stored as JSON text
//! byte-identical to what Python atdata writes.

use std::io;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, Result};

/// A scalar field type, named as Python names it in schema records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    /// `str`: Rust `String`.
    Str,
    /// `int`: any Rust integer.
    Int,
    /// `float`: `f32` or `f64`.
    Float,
    /// `bool`.
    Bool,
    /// `bytes`: Rust `Vec<u8>`.
    Bytes,
}

impl Primitive {
    /// The name in schema records (`str`, `int`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Primitive::Str => "str",
            Primitive::Int => "int",
            Primitive::Float => "float",
            Primitive::Bool => "bool",
            Primitive::Bytes => "bytes",
        }
    }

    fn parse(s: &str) -> Option<Primitive> {
        Some(match s {
            "str" => Primitive::Str,
            "int" => Primitive::Int,
            "float" => Primitive::Float,
            "bool" => Primitive::Bool,
            "bytes" => Primitive::Bytes,
            _ => return None,
        })
    }
}

/// The type of a schema field (`fieldType` in the record).
///
/// ```
/// use atdata_codec::{FieldType, Primitive};
///
/// let t = FieldType::Array { items: Box::new(FieldType::Primitive(Primitive::Str)) };
/// assert_eq!(
///     serde_json::to_string(&t).unwrap(),
///     r#"{"$type":"local#array","items":{"$type":"local#primitive","primitive":"str"}}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldType {
    /// `local#primitive`.
    Primitive(Primitive),
    /// `local#ndarray` with the numpy element type name (`float32`, `uint8`...). Rust records
    /// carry the real dtype; Python's say `float32` for any bare `NDArray`.
    NdArray {
        /// numpy type name.
        dtype: String,
    },
    /// `local#array`: a list.
    Array {
        /// The element type.
        items: Box<FieldType>,
    },
    /// Formats Python atdata stores as opaque bytes (`structured`, `sparse`, `arrow_tensor`,
    /// `safetensors`, `dataframe`); read as byte strings.
    Binary {
        /// The kind after `#`.
        kind: String,
    },
    /// A kind this library does not know (such as `ref`), kept as its JSON.
    Other(Value),
}

/// Lists nest at most this deep in a schema: deeper records would pass serde_json's own
/// nesting limit (128) on the way in and fail on the way out.
pub(crate) const MAX_LIST_NESTING: usize = 32;

fn too_deep() -> Error {
    Error::UnsupportedFieldType(format!("lists nested more than {MAX_LIST_NESTING} deep"))
}

impl FieldType {
    /// How deep lists nest in this type (0 for a scalar).
    fn nesting(&self) -> usize {
        let mut depth = 0;
        let mut t = self;
        while let FieldType::Array { items } = t {
            depth += 1;
            t = items;
        }
        depth
    }

    fn from_json(v: &Value) -> Result<FieldType> {
        FieldType::from_json_at(v, 0)
    }

    fn from_json_at(v: &Value, depth: usize) -> Result<FieldType> {
        if depth > MAX_LIST_NESTING {
            return Err(too_deep());
        }
        let bad = |why: &str| Error::UnsupportedFieldType(format!("{why}: {v}"));
        let obj = v.as_object().ok_or_else(|| bad("not an object"))?;
        let type_name = obj
            .get("$type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no $type"))?;
        // `$type` may carry any prefix before `#` (atmosphere records use their own).
        let kind = type_name.rsplit_once('#').map_or(type_name, |(_, k)| k);
        Ok(match kind {
            "primitive" => {
                let p = obj
                    .get("primitive")
                    .and_then(Value::as_str)
                    .and_then(Primitive::parse);
                FieldType::Primitive(p.ok_or_else(|| bad("unknown primitive"))?)
            }
            "ndarray" => FieldType::NdArray {
                dtype: obj
                    .get("dtype")
                    .and_then(Value::as_str)
                    .unwrap_or("float32")
                    .to_owned(),
            },
            "array" => FieldType::Array {
                items: Box::new(FieldType::from_json_at(
                    obj.get("items").ok_or_else(|| bad("array without items"))?,
                    depth + 1,
                )?),
            },
            "structured" | "sparse" | "arrow_tensor" | "safetensors" | "dataframe" => {
                FieldType::Binary {
                    kind: kind.to_owned(),
                }
            }
            _ => FieldType::Other(v.clone()),
        })
    }
}

impl Serialize for FieldType {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            FieldType::Primitive(p) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("$type", "local#primitive")?;
                m.serialize_entry("primitive", p.as_str())?;
                m.end()
            }
            FieldType::NdArray { dtype } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("$type", "local#ndarray")?;
                m.serialize_entry("dtype", dtype)?;
                m.end()
            }
            FieldType::Array { items } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("$type", "local#array")?;
                m.serialize_entry("items", items)?;
                m.end()
            }
            FieldType::Binary { kind } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("$type", &format!("local#{kind}"))?;
                m.end()
            }
            FieldType::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for FieldType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        FieldType::from_json(&Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// One field of a schema, in declaration order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaField {
    /// The field's name (the msgpack map key).
    pub name: String,
    /// Its type.
    #[serde(rename = "fieldType")]
    pub field_type: FieldType,
    /// Whether it may be nil.
    #[serde(default)]
    pub optional: bool,
}

/// A sample type as the index describes it: name, ordered fields and description.
///
/// `#[packable]` types give theirs through `Packable::schema()`; a record read back from an
/// index gives one that [`DynamicSample`](crate::DynamicSample) decodes with.
///
/// ```
/// use atdata_codec::{FieldType, Primitive, Schema, SchemaField};
///
/// let schema = Schema {
///     name: "Point".into(),
///     fields: vec![SchemaField { name: "x".into(), field_type: FieldType::Primitive(Primitive::Float), optional: false }],
///     description: None,
/// };
/// assert_eq!(schema.field("x").unwrap().field_type, FieldType::Primitive(Primitive::Float));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// The sample type's name (no module path).
    pub name: String,
    /// The fields in declaration order, which is the msgpack map's key order.
    pub fields: Vec<SchemaField>,
    /// A description: the struct's doc comment for `#[packable]` types.
    pub description: Option<String>,
}

impl Schema {
    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&SchemaField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Checks that every reader can take this schema back: lists nest at most 32 deep (an
    /// index refuses to publish a schema that fails this).
    ///
    /// ```
    /// use atdata_codec::{FieldType, Primitive, Schema, SchemaField};
    ///
    /// let mut t = FieldType::Primitive(Primitive::Int);
    /// for _ in 0..40 {
    ///     t = FieldType::Array { items: Box::new(t) };
    /// }
    /// let field = SchemaField { name: "deep".into(), field_type: t, optional: false };
    /// let schema = Schema { name: "Deep".into(), fields: vec![field], description: None };
    /// assert!(schema.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        match self
            .fields
            .iter()
            .find(|f| f.field_type.nesting() > MAX_LIST_NESTING)
        {
            Some(f) => Err(too_deep().in_field(&f.name)),
            None => Ok(()),
        }
    }
}

/// A versioned schema record as stored in the index (`LocalSchema:{name}@{version}`).
///
/// [`to_json`](Self::to_json) gives the exact text Python's `json.dumps` stores: keys
/// `name, version, fields, description, createdAt`, separators `", "` and `": "`, and every
/// non-ASCII character escaped as `\uXXXX`.
///
/// ```
/// use atdata_codec::{Schema, SchemaRecord};
///
/// let schema = Schema { name: "Empty".into(), fields: vec![], description: Some("é".into()) };
/// let record = SchemaRecord::new(schema, "1.0.0", "2025-01-02T03:04:05+00:00");
/// let text = record.to_json();
/// assert_eq!(
///     text,
///     r#"{"name": "Empty", "version": "1.0.0", "fields": [], "description": "\u00e9", "createdAt": "2025-01-02T03:04:05+00:00"}"#
/// );
/// assert_eq!(SchemaRecord::from_json(&text).unwrap(), record);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaRecord {
    /// The schema.
    pub schema: Schema,
    /// Its version (`1.0.0`; not validated, as upstream).
    pub version: String,
    /// When it was published, as Python's `datetime.isoformat()` writes it.
    pub created_at: String,
}

#[derive(Serialize)]
struct RecordOut<'a> {
    name: &'a str,
    version: &'a str,
    fields: &'a [SchemaField],
    description: Option<&'a str>,
    #[serde(rename = "createdAt")]
    created_at: &'a str,
    #[serde(rename = "$ref", skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
}

#[derive(Deserialize)]
struct RecordIn {
    name: String,
    version: String,
    fields: Vec<SchemaField>,
    #[serde(default)]
    description: Option<String>,
    #[serde(rename = "createdAt", default)]
    created_at: String,
}

impl SchemaRecord {
    /// A record of `schema` at `version`, stamped `created_at`.
    pub fn new(
        schema: Schema,
        version: impl Into<String>,
        created_at: impl Into<String>,
    ) -> SchemaRecord {
        SchemaRecord {
            schema,
            version: version.into(),
            created_at: created_at.into(),
        }
    }

    /// The JSON text Python atdata stores for this record.
    pub fn to_json(&self) -> String {
        python_json(&self.out(None))
    }

    /// The record with its reference as `"$ref"` after the stored keys: what Python's
    /// `Index.get_schema` returns, in `json.dumps` form.
    ///
    /// ```
    /// use atdata_codec::{Schema, SchemaRecord};
    ///
    /// let schema = Schema { name: "E".into(), fields: vec![], description: None };
    /// let text = SchemaRecord::new(schema, "1.0.0", "t").to_json_with_ref("atdata://local/schema/E@1.0.0");
    /// assert!(text.ends_with(r#""createdAt": "t", "$ref": "atdata://local/schema/E@1.0.0"}"#));
    /// ```
    pub fn to_json_with_ref(&self, reference: &str) -> String {
        python_json(&self.out(Some(reference)))
    }

    fn out<'a>(&'a self, reference: Option<&'a str>) -> RecordOut<'a> {
        RecordOut {
            name: &self.schema.name,
            version: &self.version,
            fields: &self.schema.fields,
            description: self.schema.description.as_deref(),
            created_at: &self.created_at,
            reference,
        }
    }

    /// Parses a stored record (extra keys such as `$ref` are ignored).
    pub fn from_json(text: &str) -> Result<SchemaRecord> {
        let r: RecordIn = serde_json::from_str(text).map_err(Error::InvalidSchemaRecord)?;
        Ok(SchemaRecord {
            schema: Schema {
                name: r.name,
                fields: r.fields,
                description: r.description,
            },
            version: r.version,
            created_at: r.created_at,
        })
    }
}

/// Serializes `value` as Python's `json.dumps(value)` does with its defaults.
fn python_json<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Serializing plain records into a Vec cannot fail: no maps with non-string keys, no I/O.
    if value.serialize(&mut ser).is_err() {
        out.clear();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `json.dumps` defaults: `", "` and `": "` separators, `ensure_ascii=True`.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() && c != '\x7f' {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_python() {
        let s = python_json(&"a\"\\\n\t\x01\x7fé😀");
        assert_eq!(s, r#""a\"\\\n\t\u0001\u007f\u00e9\ud83d\ude00""#);
        assert_eq!(python_json(&vec![1, 2]), "[1, 2]");
    }

    #[test]
    fn reads_prefixed_and_unknown_kinds() {
        let text = r#"{"name": "X", "version": "2", "fields": [
            {"name": "a", "fieldType": {"$type": "science.alt.dataset.schema#ndarray", "dtype": "uint8", "shape": [2]}, "optional": true},
            {"name": "b", "fieldType": {"$type": "local#ref", "ref": "y"}, "optional": false},
            {"name": "c", "fieldType": {"$type": "local#sparse"}, "optional": false}
        ], "createdAt": "t", "$ref": "atdata://local/schema/X@2"}"#;
        let r = SchemaRecord::from_json(text).unwrap();
        assert_eq!(
            r.schema.fields[0].field_type,
            FieldType::NdArray {
                dtype: "uint8".into()
            }
        );
        assert!(matches!(r.schema.fields[1].field_type, FieldType::Other(_)));
        assert_eq!(
            r.schema.fields[2].field_type,
            FieldType::Binary {
                kind: "sparse".into()
            }
        );
        assert_eq!(r.schema.description, None);
    }

    #[test]
    fn malformed_records_are_typed_errors() {
        for text in [
            "",
            "{}",
            r#"{"name": "X", "version": "1", "fields": [{"name": "a", "fieldType": {"$type": "local#primitive", "primitive": "complex"}}]}"#,
        ] {
            assert!(
                matches!(
                    SchemaRecord::from_json(text),
                    Err(Error::InvalidSchemaRecord(_))
                ),
                "{text}"
            );
        }
    }
}
