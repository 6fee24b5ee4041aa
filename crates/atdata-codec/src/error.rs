//! The codec's error types.

/// A `Result` whose error is the codec's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while packing, unpacking or describing a sample.
///
/// Errors found inside a field are wrapped in [`Error::Field`] (and list items in
/// [`Error::Item`]), so the message names where the problem is:
///
/// ```
/// use atdata_codec::Error;
///
/// let inner = Error::UnexpectedType { expected: "str", found: "int" };
/// let err = inner.in_field("label");
/// assert_eq!(err.to_string(), "field `label`: expected str, found int");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A problem inside the named field.
    #[error("field `{field}`: {source}")]
    Field {
        /// The field's name.
        field: String,
        /// What went wrong there.
        #[source]
        source: Box<Error>,
    },
    /// A problem inside one element of a list.
    #[error("item {index}: {source}")]
    Item {
        /// The element's position in the list.
        index: usize,
        /// What went wrong there.
        #[source]
        source: Box<Error>,
    },
    /// The bytes are not well-formed msgpack.
    #[error("invalid msgpack: {0}")]
    Msgpack(&'static str),
    /// A msgpack value of the wrong kind.
    #[error("expected {expected}, found {found}")]
    UnexpectedType {
        /// The kind the field needs.
        expected: &'static str,
        /// The kind the payload holds.
        found: &'static str,
    },
    /// The payload has a key that the sample type does not declare.
    #[error("unknown field `{name}` for {sample}")]
    UnknownField {
        /// The sample type.
        sample: String,
        /// The unexpected key.
        name: String,
    },
    /// The payload lacks a key that the sample type declares.
    #[error("missing field `{name}` for {sample}")]
    MissingField {
        /// The sample type.
        sample: String,
        /// The missing key.
        name: String,
    },
    /// The payload repeats a key.
    #[error("duplicate field `{name}`")]
    DuplicateField {
        /// The repeated key.
        name: String,
    },
    /// An integer that does not fit the field's Rust type.
    #[error("integer {value} does not fit in {target}")]
    IntegerOutOfRange {
        /// The value found.
        value: i128,
        /// The Rust type of the field.
        target: &'static str,
    },
    /// The payload could not be read from the stream it was being decoded from.
    #[error("reading the payload: {0}")]
    Read(#[source] std::io::Error),
    /// Bytes left over after the sample's map.
    #[error("{count} trailing bytes after the sample")]
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
    /// A string, byte string, list or map longer than msgpack can encode (2^32 - 1).
    #[error("{what} of length {len} is longer than msgpack allows (4294967295)")]
    TooLarge {
        /// What was too long.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// An NDArray payload that cannot be decoded or encoded.
    #[error(transparent)]
    Array(#[from] ArrayError),
    /// Array fields of one batch that cannot be stacked.
    #[error("cannot stack arrays: sample {index} has shape {found:?}, sample 0 has {expected:?}")]
    ShapeMismatch {
        /// The position of the first sample that differs.
        index: usize,
        /// The shape of sample 0.
        expected: Vec<usize>,
        /// The shape of the sample that differs.
        found: Vec<usize>,
    },
    /// Array fields of one dynamic batch whose dtypes differ.
    #[error("cannot stack arrays: sample {index} has dtype `{found}`, sample 0 has `{expected}`")]
    DtypeMismatch {
        /// The position of the first sample that differs.
        index: usize,
        /// The dtype of sample 0.
        expected: String,
        /// The dtype of the sample that differs.
        found: String,
    },
    /// A batch given another number of keys than samples.
    #[error("a batch of {samples} sample(s) given {keys} key(s)")]
    KeyCount {
        /// Keys given.
        keys: usize,
        /// Samples given.
        samples: usize,
    },
    /// A batch was asked for with no samples.
    #[error("a batch needs at least one sample")]
    EmptyBatch,
    /// A schema reference in none of the accepted forms.
    #[error("invalid schema reference `{reference}`: {reason}")]
    InvalidSchemaRef {
        /// The reference as given.
        reference: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A schema record whose JSON does not have the expected shape.
    #[error("invalid schema record: {0}")]
    InvalidSchemaRecord(#[source] serde_json::Error),
    /// A schema field type this library cannot decode.
    #[error("unsupported schema field type `{0}`")]
    UnsupportedFieldType(String),
    /// Samples that do not tell a field's type (see `Schema::infer`).
    #[error("cannot infer a schema: {0}")]
    Uninferable(String),
    /// A value that DAG-CBOR cannot encode, so no CID can be computed for it.
    #[error("cannot compute a CID: {0}")]
    Cid(String),
}

impl Error {
    /// Wraps this error as having happened inside the field `name`.
    pub fn in_field(self, name: &str) -> Error {
        Error::Field {
            field: name.to_owned(),
            source: Box::new(self),
        }
    }

    pub(crate) fn in_item(self, index: usize) -> Error {
        Error::Item {
            index,
            source: Box::new(self),
        }
    }
}

/// A problem with an NDArray payload (the compact format or a legacy `.npy` file).
///
/// ```
/// use atdata_codec::{decode_array, ArrayError};
/// use ndarray::Array1;
///
/// let err = decode_array::<f32, ndarray::Ix1>(&[3]).unwrap_err();
/// assert!(matches!(err, ArrayError::TooShort { len: 1, need: 2, .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArrayError {
    /// The payload ends before its header does.
    #[error("array payload too short ({len} bytes): need at least {need}{part}")]
    TooShort {
        /// The payload's length.
        len: usize,
        /// The length the header requires so far.
        need: usize,
        /// Which part of the header was cut off (" for header", " for shape"), or "".
        part: &'static str,
    },
    /// A dtype string that is not a numpy `dtype.str`.
    #[error("invalid dtype `{0}`")]
    InvalidDtype(String),
    /// A valid dtype that cannot be used here (object or structured dtypes, or a typed field).
    #[error("unsupported dtype `{0}`")]
    UnsupportedDtype(String),
    /// The payload's dtype differs from the Rust element type.
    #[error("dtype `{found}` does not match the field's element type {expected}")]
    DtypeMismatch {
        /// The dtype the Rust type needs (numpy name).
        expected: &'static str,
        /// The dtype in the payload.
        found: String,
    },
    /// The payload's number of dimensions differs from the static dimension of the field.
    #[error("array has {found} dimensions, the field has {expected}")]
    DimensionMismatch {
        /// The field's number of dimensions.
        expected: usize,
        /// The payload's.
        found: usize,
    },
    /// A negative entry in the shape.
    #[error("negative dimension {0} in shape")]
    NegativeDimension(i64),
    /// A shape whose byte size does not fit in memory addresses.
    #[error("shape {0:?} is too large")]
    ShapeOverflow(Vec<i64>),
    /// The element bytes do not match the shape.
    #[error("shape {shape:?} of dtype `{dtype}` needs {expected} data bytes, found {found}")]
    LengthMismatch {
        /// The shape from the header.
        shape: Vec<usize>,
        /// The dtype from the header.
        dtype: String,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// More dimensions than the compact format's one-byte count allows.
    #[error("array has {0} dimensions; the format allows at most 255")]
    TooManyDimensions(usize),
    /// A legacy `.npy` payload that cannot be parsed.
    #[error("invalid .npy payload: {0}")]
    InvalidNpy(&'static str),
}
