//! How each supported field type packs, unpacks, describes itself and batches.
//!
//! `#[packable]` expands to calls into these traits; users never name them, but the compiler
//! does when a field has an unsupported type, hence the `on_unimplemented` messages.

use ndarray::{Array, ArrayView, Dimension, IxDyn};

use crate::array::{payload_len, to_typed, write_array};
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::msgpack::{Decoder, Encoder};
use crate::schema::{FieldType, Primitive};

/// A type that can be a field of a `#[packable]` struct.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a #[packable] struct",
    label = "unsupported field type",
    note = "supported: bool, i8..i64, isize, u8..u64, usize, f32, f64, String, Vec<u8> (bytes), Vec<T> (lists), Option<T>, and ndarray arrays of a numeric or bool element"
)]
pub trait Field: Sized + Clone + std::fmt::Debug {
    /// Whether the schema marks the field optional.
    const OPTIONAL: bool = false;

    /// The field's type in a schema record.
    fn field_type() -> FieldType;

    /// Writes the value.
    fn encode(&self, enc: &mut Encoder<'_>) -> Result<()>;

    /// Reads a value.
    fn decode(dec: &mut Decoder<'_>) -> Result<Self>;

    /// The type of this field's column in a batch: arrays stack with a leading batch
    /// dimension, everything else is collected into a `Vec`.
    type Column: Clone + std::fmt::Debug;

    /// Builds the column from one value per sample (at least one).
    fn stack<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> Result<Self::Column>
    where
        Self: 'a;
}

/// A field type that can be an element of a `Vec<T>` list field: every field type except
/// `Option` and arrays (Python atdata cannot pack a list of arrays).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an element of a list field",
    note = "list elements may be bool, integers, floats, String, Vec<u8> or nested lists"
)]
pub trait ListItem: Field {}

/// A field type other than `Option`, so `Option<Option<T>>` is refused.
#[diagnostic::on_unimplemented(
    message = "`Option<{Self}>` cannot be a field of a #[packable] struct"
)]
pub trait Required: Field {}

/// The column of a field that batches as a `Vec` of its values.
macro_rules! collected_column {
    () => {
        type Column = Vec<Self>;

        fn stack<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> Result<Self::Column>
        where
            Self: 'a,
        {
            Ok(values.cloned().collect())
        }
    };
}

impl Field for bool {
    collected_column!();

    fn field_type() -> FieldType {
        FieldType::Primitive(Primitive::Bool)
    }

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<()> {
        enc.bool(*self)
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        dec.bool()
    }
}

macro_rules! int_field {
    ($write:ident as $wide:ty: $($ty:ty),*) => {$(
        impl Field for $ty {
            collected_column!();

            fn field_type() -> FieldType {
                FieldType::Primitive(Primitive::Int)
            }

            fn encode(&self, enc: &mut Encoder<'_>) -> Result<()> {
                enc.$write(<$wide>::from(*self))
            }

            fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
                let v = dec.int()?.get();
                <$ty>::try_from(v).map_err(|_| Error::IntegerOutOfRange { value: v, target: stringify!($ty) })
            }
        }
    )*};
}

int_field!(int as i64: i8, i16, i32, i64);
int_field!(uint as u64: u8, u16, u32, u64);

/// `usize` and `isize`: msgpack integers as wide as the value (Python's `int`), range-checked
/// when read on this platform.
macro_rules! size_field {
    ($write:ident as $wide:ty: $ty:ty) => {
        impl Field for $ty {
            collected_column!();

            fn field_type() -> FieldType {
                FieldType::Primitive(Primitive::Int)
            }

            fn encode(&self, enc: &mut Encoder<'_>) -> Result<()> {
                // Lossless: `usize` and `isize` are at most 64 bits on every Rust target.
                enc.$write(*self as $wide)
            }

            fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
                let v = dec.int()?.get();
                <$ty>::try_from(v).map_err(|_| Error::IntegerOutOfRange {
                    value: v,
                    target: stringify!($ty),
                })
            }
        }
    };
}

size_field!(uint as u64: usize);
size_field!(int as i64: isize);

impl Field for f64 {
    collected_column!();

    fn field_type() -> FieldType {
        FieldType::Primitive(Primitive::Float)
    }

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<()> {
        enc.f64(*self)
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        dec.float()
    }
}

/// Written as float64, as Python has no 32-bit float scalar; read from either width.
impl Field for f32 {
    collected_column!();

    fn field_type() -> FieldType {
        FieldType::Primitive(Primitive::Float)
    }

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<()> {
        enc.f64(f64::from(*self))
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        Ok(dec.float()? as f32)
    }
}

impl Field for String {
    collected_column!();

    fn field_type() -> FieldType {
        FieldType::Primitive(Primitive::Str)
    }

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<()> {
        enc.str(self)
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        dec.str().map(str::to_owned)
    }
}

/// `Vec<u8>` is a byte string (msgpack bin, Python `bytes`), not a list of integers.
impl Field for Vec<u8> {
    collected_column!();

    fn field_type() -> FieldType {
        FieldType::Primitive(Primitive::Bytes)
    }

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<()> {
        enc.bin(self)
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        dec.bin().map(<[u8]>::to_vec)
    }
}

impl<T: ListItem> Field for Vec<T> {
    collected_column!();

    fn field_type() -> FieldType {
        FieldType::Array {
            items: Box::new(T::field_type()),
        }
    }

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<()> {
        enc.array_len(self.len())?;
        self.iter()
            .enumerate()
            .try_for_each(|(i, item)| item.encode(enc).map_err(|e| e.in_item(i)))
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        let len = dec.array_len()?;
        (0..len)
            .map(|i| T::decode(dec).map_err(|e| e.in_item(i)))
            .collect()
    }
}

/// Optional fields (arrays included) batch as a list of optionals: any sample may lack one.
impl<T: Required> Field for Option<T> {
    const OPTIONAL: bool = true;

    collected_column!();

    fn field_type() -> FieldType {
        T::field_type()
    }

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<()> {
        match self {
            Some(v) => v.encode(enc),
            None => enc.nil(),
        }
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        if dec.nil()? {
            Ok(None)
        } else {
            T::decode(dec).map(Some)
        }
    }
}

/// Arrays are msgpack bin holding the compact NDArray payload.
impl<A: Element, D: Dimension> Field for Array<A, D> {
    fn field_type() -> FieldType {
        FieldType::NdArray {
            dtype: A::NAME.to_owned(),
        }
    }

    fn encode(&self, enc: &mut Encoder<'_>) -> Result<()> {
        enc.bin_len(payload_len::<A>(self.shape()))?;
        write_array(self, enc.raw())?;
        Ok(())
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<Self> {
        let bytes = dec.bin()?;
        Ok(to_typed(&crate::array::parse(bytes)?)?)
    }

    type Column = Array<A, D::Larger>;

    fn stack<'a>(values: impl ExactSizeIterator<Item = &'a Self>) -> Result<Self::Column>
    where
        Self: 'a,
    {
        let views: Vec<ArrayView<'_, A, D>> = values.map(|a| a.view()).collect();
        stack_views(&views)
    }
}

macro_rules! marker_impls {
    ($trait:ident: $($ty:ty),*) => {$( impl $trait for $ty {} )*};
}

marker_impls!(ListItem: bool, i8, i16, i32, i64, isize, u16, u32, u64, usize, f32, f64, String, Vec<u8>);
marker_impls!(Required: bool, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64, String, Vec<u8>);
impl<T: ListItem> ListItem for Vec<T> {}
impl<T: ListItem> Required for Vec<T> {}
impl<A: Element, D: Dimension> Required for Array<A, D> {}

/// Stacks same-shaped arrays along a new leading axis.
pub(crate) fn stack_views<A: Element, D: Dimension>(
    views: &[ArrayView<'_, A, D>],
) -> Result<Array<A, D::Larger>> {
    let first = views.first().ok_or(Error::EmptyBatch)?;
    if let Some((index, v)) = views
        .iter()
        .enumerate()
        .find(|(_, v)| v.shape() != first.shape())
    {
        return Err(Error::ShapeMismatch {
            index,
            expected: first.shape().to_vec(),
            found: v.shape().to_vec(),
        });
    }
    // One copy per sample, a memcpy when its elements are contiguous.
    let mut data = Vec::with_capacity(views.len() * first.len());
    for v in views {
        match v.as_slice() {
            Some(slice) => data.extend_from_slice(slice),
            None => data.extend(v.iter().copied()),
        }
    }
    let mut shape = Vec::with_capacity(first.ndim() + 1);
    shape.push(views.len());
    shape.extend_from_slice(first.shape());
    // The shapes agree and the data fills them, so this cannot fail; map it rather than panic.
    Array::from_shape_vec(IxDyn(&shape), data)
        .ok()
        .and_then(|a| a.into_dimensionality::<D::Larger>().ok())
        .ok_or(Error::ShapeMismatch {
            index: 0,
            expected: first.shape().to_vec(),
            found: first.shape().to_vec(),
        })
}
