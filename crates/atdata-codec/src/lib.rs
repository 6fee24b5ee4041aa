//! The sample codec of [atdata](https://docs.rs/atdata): typed samples packed as msgpack,
//! byte-identical to Python atdata.
//!
//! - [`Packable`]: a typed sample, implemented with `#[packable]` (crate `atdata-derive`).
//! - [`SampleBatch`]: samples stacked into columns, arrays with a leading batch dimension, with
//!   their [`Keys`].
//! - [`encode_array`] / [`decode_array`] / [`ArrayPayload`]: the NDArray payload format.
//! - [`Schema`], [`SchemaRecord`], [`SchemaRef`]: schema records as the index stores them.
//! - [`DynamicSample`]: a sample typed at run time by a schema.
//! - [`entry_cid`] / [`cid_of`]: content identifiers, as Python computes them.
//! - [`json_to_msgpack`] / [`msgpack_to_json`]: JSON values packed as Python packs them.
//!
//! This crate does no I/O. Most users depend on the facade crate `atdata` instead.
//!
//! ```
//! use atdata_codec::Packable;
//! # use atdata_derive::packable;
//! use ndarray::Array1;
//!
//! #[packable(crate = "atdata_codec")]
//! struct TrainingSample {
//!     features: Array1<f32>,
//!     label: i64,
//!     note: Option<String>,
//! }
//!
//! let s = TrainingSample { features: Array1::zeros(3), label: 7, note: None };
//! let back = TrainingSample::from_bytes(&s.packed().unwrap()).unwrap();
//! assert_eq!(back.label, 7);
//! assert!(TrainingSample::from_bytes(b"\x80").is_err()); // missing fields
//! ```

#![deny(missing_docs)]

mod array;
mod cid;
mod dtype;
mod dynamic;
mod error;
mod field;
mod infer;
mod json;
mod keys;
mod msgpack;
mod sample;
mod schema;
mod schema_ref;
mod uninit;

pub use ::cid::Cid;

pub use crate::array::{ArrayPayload, decode_array, encode_array};
pub use crate::cid::{cid_of, entry_cid};
pub use crate::dtype::{ByteOrder, DType, Element};
pub use crate::dynamic::{Column, DynamicBatch, DynamicSample, Value};
pub use crate::error::{ArrayError, Error, Result};
pub use crate::field::{Field, ListItem, Required};
pub use crate::infer::SchemaInference;
pub use crate::json::{json_to_msgpack, msgpack_to_json};
pub use crate::keys::{Keys, KeysIter};
pub use crate::sample::{BatchBuilder, Packable, SampleBatch, SampleType, WdsSample};
pub use crate::schema::{FieldType, Primitive, Schema, SchemaField, SchemaRecord};
pub use crate::schema_ref::{SchemaRef, SchemaRefForm};
pub use crate::uninit::{FillUninit, UninitBuf};

/// What `#[packable]` expands to. Not public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::error::{Error, Result};
    pub use crate::field::{ColumnBuilder, Field, ListItem, Required};
    pub use crate::msgpack::{Decoder, Encoder};
    pub use crate::sample::Packable;
    pub use crate::schema::{Schema, SchemaField};

    /// The error for a key (its bytes) the sample type does not declare: not UTF-8, or not
    /// a field's name.
    pub fn unknown_key(sample: &str, key: &[u8]) -> Error {
        match std::str::from_utf8(key) {
            Ok(name) => Error::UnknownField {
                sample: sample.to_owned(),
                name: name.to_owned(),
            },
            Err(_) => Error::Msgpack("string is not valid UTF-8"),
        }
    }

    /// The error for a key the payload lacks.
    pub fn missing_field(sample: &str, name: &str) -> Error {
        Error::MissingField {
            sample: sample.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The error for a key the payload repeats.
    pub fn duplicate_field(name: &str) -> Error {
        Error::DuplicateField {
            name: name.to_owned(),
        }
    }
}
