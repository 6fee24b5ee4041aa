//! How each supported field type packs, unpacks, describes itself and batches.
//!
//! `#[packable]` expands to calls into these traits; users never name them, but the compiler
//! does when a field has an unsupported type, hence the `on_unimplemented` messages.

use ndarray::{Array, ArrayView, Axis, Dimension, IxDyn};

use crate::array::{self, Layout, Parsed, check_element, payload_len, to_typed, write_array};
use crate::dtype::{ByteOrder, Element};
use crate::error::{Error, Result};
use crate::msgpack::{Decoder, Encoder, StreamedBin};
use crate::schema::{FieldType, Primitive};

/// A type that can be a field of a `#[packable]` struct.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a #[packable] struct",
    label = "unsupported field type",
    note = "supported: bool, i8..i64, isize, u8..u64, usize, f32, f64, String, Vec<u8> (bytes), Vec<T> (lists), Option<T>, and ndarray arrays of a numeric or bool element"
)]
pub trait Field: Sized + Clone + std::fmt::Debug + Send + 'static {
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

    /// Builds the column a value at a time, straight from payloads (what readers' batches
    /// use): an array's elements go from the payload to their place in the column.
    #[doc(hidden)]
    type Builder: ColumnBuilder<Self>;

    /// The value of row `i` of a column (`i` below its length).
    #[doc(hidden)]
    fn row(column: &Self::Column, i: usize) -> Self;
}

/// A field's column under construction, one row per decoded value.
#[doc(hidden)]
pub trait ColumnBuilder<F: Field>: Send + Sized + 'static {
    /// An empty column with room for `rows`.
    fn with_capacity(rows: usize) -> Self;

    /// Decodes one value onto the end.
    fn decode_into(&mut self, dec: &mut Decoder<'_>) -> Result<()>;

    /// Moves one decoded value onto the end.
    fn push(&mut self, value: F);

    /// Keeps the first `rows` rows.
    fn truncate(&mut self, rows: usize);

    /// Moves `other`'s rows onto the end.
    fn append(&mut self, other: Self);

    /// Splits off the rows from `at` on.
    fn split_off(&mut self, at: usize) -> Self;

    /// The column: an array's shapes must agree (otherwise [`Error::ShapeMismatch`] naming the
    /// first row that differs), and an empty column is [`Error::EmptyBatch`].
    fn finish(self) -> Result<F::Column>;
}

/// The builder of a field batched as a `Vec` of its values.
impl<F: Field<Column = Vec<F>>> ColumnBuilder<F> for Vec<F> {
    fn with_capacity(rows: usize) -> Self {
        Vec::with_capacity(rows)
    }

    fn decode_into(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        self.push(F::decode(dec)?);
        Ok(())
    }

    fn push(&mut self, value: F) {
        Vec::push(self, value);
    }

    fn truncate(&mut self, rows: usize) {
        Vec::truncate(self, rows);
    }

    fn append(&mut self, mut other: Self) {
        Vec::append(self, &mut other);
    }

    fn split_off(&mut self, at: usize) -> Self {
        Vec::split_off(self, at.min(self.len()))
    }

    fn finish(self) -> Result<Vec<F>> {
        Ok(self)
    }
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

        type Builder = Vec<Self>;

        fn row(column: &Vec<Self>, i: usize) -> Self {
            column[i].clone()
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
impl<A: Element, D: Dimension + 'static> Field for Array<A, D> {
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

    type Builder = ArrayColumn<A, D>;

    fn row(column: &Self::Column, i: usize) -> Self {
        let view = column.index_axis(Axis(0), i);
        // `D::Larger` has one axis more than `D`, so the row has `D`'s rank.
        let mut dim = D::zeros(D::NDIM.unwrap_or(view.ndim()));
        for (d, &n) in dim.slice_mut().iter_mut().zip(view.shape()) {
            *d = n;
        }
        filled(dim, view.iter())
    }
}

/// An array of shape `dim` holding `elements` in C order (never panics: missing elements stay
/// zero, extra ones are ignored).
fn filled<'a, A: Element, D: Dimension>(
    dim: D,
    elements: impl Iterator<Item = &'a A>,
) -> Array<A, D> {
    let mut out = Array::from_elem(dim, A::default());
    for (o, &v) in out.iter_mut().zip(elements) {
        *o = v;
    }
    out
}

/// An array field's column under construction: while every row has one shape, the elements
/// of all rows in one vector, in C order, ready to become the stacked array without a copy.
/// A row of another shape turns it into a list of arrays, so that the batch fails with
/// [`Error::ShapeMismatch`] as stacking the samples would.
#[doc(hidden)]
#[derive(Debug)]
pub enum ArrayColumn<A, D: Dimension> {
    /// Rows of one shape.
    Dense {
        /// The elements of every row.
        data: Vec<A>,
        /// The rows' shape (`None` while there is no row).
        shape: Option<D>,
        /// The number of rows.
        rows: usize,
        /// The rows to make room for when the first arrives.
        capacity: usize,
        /// The header of a payload laid out as these rows, if one was parsed.
        seen: Option<SeenHeader>,
    },
    /// Rows whose shapes differ.
    Ragged(Vec<Array<A, D>>),
}

/// A payload's header (its bytes up to the elements) and the payload's length, checked to lay
/// out a row of a column's shape: a payload of that length that starts with the same bytes is
/// laid out the same way (a layout is a function of these alone), so it is not parsed again.
/// Consecutive samples usually repeat their arrays' headers.
#[doc(hidden)]
#[derive(Debug)]
pub struct SeenHeader {
    header: Vec<u8>,
    len: usize,
    order: ByteOrder,
}

impl<A: Element, D: Dimension> ArrayColumn<A, D> {
    fn rows(&self) -> usize {
        match self {
            ArrayColumn::Dense { rows, .. } => *rows,
            ArrayColumn::Ragged(arrays) => arrays.len(),
        }
    }

    /// One row of another shape: every row becomes its own array.
    fn into_ragged(self) -> Vec<Array<A, D>> {
        match self {
            ArrayColumn::Ragged(arrays) => arrays,
            ArrayColumn::Dense {
                data, shape, rows, ..
            } => {
                let Some(shape) = shape else {
                    return Vec::new();
                };
                let size = shape.size();
                (0..rows)
                    .map(|r| filled(shape.clone(), data.iter().skip(r * size).take(size)))
                    .collect()
            }
        }
    }

    /// The shape of a row laid out as `layout`, checked to hold `A`s of rank `D`; `None` for
    /// Fortran order (such a row is reordered through an array).
    fn row_dim(layout: &Layout<'_>) -> Result<Option<D>> {
        check_element::<A, D>(layout)?;
        if layout.fortran_order {
            return Ok(None);
        }
        let ndim = layout.shape.ndim();
        D::from_dimension(&layout.shape).map(Some).ok_or_else(|| {
            Error::Array(crate::error::ArrayError::DimensionMismatch {
                expected: D::NDIM.unwrap_or(ndim),
                found: ndim,
            })
        })
    }

    /// Appends one parsed payload's elements, checked to be `A`s of rank `D`.
    fn push_parsed(&mut self, p: &Parsed<'_>) -> Result<()> {
        let dense = match Self::row_dim(&p.layout)? {
            Some(dim) => self.dense_row(&dim, true),
            None => None,
        };
        match dense {
            Some(data) => A::extend_from_bytes(data, p.data, p.layout.dtype.order),
            None => self.push_array(to_typed::<A, D>(p)?),
        }
        Ok(())
    }

    /// Appends an array whose bytes are being read from a stream: when its header is in
    /// memory and its row fits the column's dense rows, its elements are read from the stream
    /// straight into their place in the column; otherwise it is read whole, then appended
    /// (or refused) as any other. On an error the rows are as before.
    fn push_streamed(&mut self, mut bin: StreamedBin<'_, '_>) -> Result<()> {
        let head = bin.head();
        // A header that runs past the bytes in memory (or is malformed) is read whole, to
        // parse (or fail) as it would in memory.
        let Ok(layout) = array::layout(head, bin.len()) else {
            return self.push_parsed(&array::parse(bin.into_bytes()?)?);
        };
        let rows = self.rows();
        let dense = match Self::row_dim(&layout)? {
            // The first row's memory is its own until its bytes have arrived (then the
            // batch's room is made, below): a header alone never sizes an allocation.
            Some(dim) => self.dense_row(&dim, false),
            None => None,
        };
        let Some(data) = dense else {
            return self.push_parsed(&array::parse(bin.into_bytes()?)?);
        };
        let count = layout.shape.size();
        let read = A::read_elements(
            data,
            count,
            &head[layout.data_start..],
            layout.dtype.order,
            &mut |out| bin.fill(out),
        );
        match read {
            Ok(()) if rows == 0 => self.make_room(count),
            Ok(()) => {}
            Err(e) => {
                self.keep_rows(rows);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Keeps the first `keep` rows.
    fn keep_rows(&mut self, keep: usize) {
        match self {
            ArrayColumn::Dense {
                data,
                shape,
                rows,
                seen,
                ..
            } => {
                if keep < *rows {
                    data.truncate(keep * shape.as_ref().map_or(0, Dimension::size));
                    *rows = keep;
                    if keep == 0 {
                        *shape = None;
                        *seen = None;
                    }
                }
            }
            ArrayColumn::Ragged(arrays) => arrays.truncate(keep),
        }
    }

    /// Room for the rows still to come, of `size` elements each, once the first has come.
    fn make_room(&mut self, size: usize) {
        if let ArrayColumn::Dense { data, capacity, .. } = self {
            data.reserve(capacity.saturating_sub(1).saturating_mul(size));
        }
    }

    /// Counts one more row of shape `dim` and gives the elements to append it to, while the
    /// rows are dense and of that shape (`None` otherwise, counting nothing). For the first
    /// row, room is made for all the rows (`reserve`) or for none yet.
    fn dense_row(&mut self, dim: &D, reserve: bool) -> Option<&mut Vec<A>> {
        match self {
            ArrayColumn::Dense {
                data,
                shape,
                rows,
                capacity,
                ..
            } if shape.as_ref().is_none_or(|s| s == dim) => {
                if shape.is_none() {
                    if reserve {
                        data.reserve(capacity.saturating_mul(dim.size()));
                    }
                    *shape = Some(dim.clone());
                }
                *rows += 1;
                Some(data)
            }
            _ => None,
        }
    }

    /// Appends a payload whose header is the one [`remember`](Self::remember)ed (of the same
    /// length): its elements, with no parse; `false` (nothing done) for any other.
    fn push_seen(&mut self, bytes: &[u8]) -> bool {
        let ArrayColumn::Dense {
            data,
            rows,
            seen: Some(seen),
            ..
        } = self
        else {
            return false;
        };
        if bytes.len() != seen.len || !bytes.starts_with(&seen.header) {
            return false;
        }
        A::extend_from_bytes(data, &bytes[seen.header.len()..], seen.order);
        *rows += 1;
        true
    }

    /// Remembers the header of a payload just appended as a dense row (laid out as `layout`),
    /// for [`push_seen`](Self::push_seen).
    fn remember(&mut self, bytes: &[u8], layout: &Layout<'_>) {
        if let ArrayColumn::Dense { seen, .. } = self
            && !layout.fortran_order
        {
            // The old header's buffer is reused.
            let mut header = seen.take().map(|s| s.header).unwrap_or_default();
            header.clear();
            header.extend_from_slice(&bytes[..layout.data_start]);
            *seen = Some(SeenHeader {
                header,
                len: bytes.len(),
                order: layout.dtype.order,
            });
        }
    }

    fn push_array(&mut self, array: Array<A, D>) {
        if let Some(data) = self.dense_row(&array.raw_dim(), true) {
            match array.as_slice() {
                Some(elements) => data.extend_from_slice(elements),
                None => data.extend(array.iter().copied()),
            }
            return;
        }
        self.extend_ragged([array]);
    }

    /// Adds `more` rows as arrays of their own (the rows so far becoming arrays too).
    fn extend_ragged(&mut self, more: impl IntoIterator<Item = Array<A, D>>) {
        let mut arrays = std::mem::replace(self, ArrayColumn::Ragged(Vec::new())).into_ragged();
        arrays.extend(more);
        *self = ArrayColumn::Ragged(arrays);
    }
}

impl<A: Element, D: Dimension + 'static> ColumnBuilder<Array<A, D>> for ArrayColumn<A, D> {
    fn with_capacity(rows: usize) -> Self {
        ArrayColumn::Dense {
            data: Vec::new(),
            shape: None,
            rows: 0,
            capacity: rows,
            seen: None,
        }
    }

    fn decode_into(&mut self, dec: &mut Decoder<'_>) -> Result<()> {
        if let Some(bin) = dec.streamed_bin()? {
            return self.push_streamed(bin);
        }
        let bytes = dec.bin()?;
        if self.push_seen(bytes) {
            return Ok(());
        }
        let parsed = array::parse(bytes)?;
        self.push_parsed(&parsed)?;
        self.remember(bytes, &parsed.layout);
        Ok(())
    }

    fn push(&mut self, value: Array<A, D>) {
        self.push_array(value);
    }

    fn truncate(&mut self, keep: usize) {
        self.keep_rows(keep);
    }

    fn append(&mut self, other: Self) {
        match (&mut *self, other) {
            (_, other) if other.rows() == 0 => {}
            (this, other) if this.rows() == 0 => *this = other,
            (
                ArrayColumn::Dense {
                    data, shape, rows, ..
                },
                ArrayColumn::Dense {
                    data: more,
                    shape: other_shape,
                    rows: more_rows,
                    ..
                },
            ) if *shape == other_shape => {
                data.extend_from_slice(&more);
                *rows += more_rows;
            }
            (this, other) => this.extend_ragged(other.into_ragged()),
        }
    }

    fn split_off(&mut self, at: usize) -> Self {
        match self {
            ArrayColumn::Dense {
                data,
                shape,
                rows,
                capacity,
                seen,
            } => {
                let at = at.min(*rows);
                let size = shape.as_ref().map_or(0, Dimension::size);
                // The tail keeps room for `capacity` rows, as it is built on.
                let mut tail_data = Vec::with_capacity((*capacity).max(*rows - at) * size);
                tail_data.extend_from_slice(&data[at * size..]);
                data.truncate(at * size);
                let tail = ArrayColumn::Dense {
                    data: tail_data,
                    shape: shape.clone().filter(|_| *rows > at),
                    rows: *rows - at,
                    capacity: *capacity,
                    seen: None,
                };
                *rows = at;
                if at == 0 {
                    *shape = None;
                    *seen = None;
                }
                tail
            }
            ArrayColumn::Ragged(arrays) => {
                let at = at.min(arrays.len());
                ArrayColumn::Ragged(arrays.split_off(at))
            }
        }
    }

    fn finish(self) -> Result<Array<A, D::Larger>> {
        match self {
            ArrayColumn::Dense {
                data, shape, rows, ..
            } => {
                let shape = shape.ok_or(Error::EmptyBatch)?;
                let mut dims = Vec::with_capacity(shape.ndim() + 1);
                dims.push(rows);
                dims.extend_from_slice(shape.slice());
                larger::<A, D>(&dims, data, shape.slice())
            }
            ArrayColumn::Ragged(arrays) => {
                let views: Vec<ArrayView<'_, A, D>> = arrays.iter().map(|a| a.view()).collect();
                stack_views(&views)
            }
        }
    }
}

macro_rules! marker_impls {
    ($trait:ident: $($ty:ty),*) => {$( impl $trait for $ty {} )*};
}

marker_impls!(ListItem: bool, i8, i16, i32, i64, isize, u16, u32, u64, usize, f32, f64, String, Vec<u8>);
marker_impls!(Required: bool, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64, String, Vec<u8>);
impl<T: ListItem> ListItem for Vec<T> {}
impl<T: ListItem> Required for Vec<T> {}
impl<A: Element, D: Dimension + 'static> Required for Array<A, D> {}

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
    larger::<A, D>(&shape, data, first.shape())
}

/// The stacked array of `shape` (the row count, then the rows' `row` shape) holding `data`.
fn larger<A: Element, D: Dimension>(
    shape: &[usize],
    data: Vec<A>,
    row: &[usize],
) -> Result<Array<A, D::Larger>> {
    // The shapes agree and the data fills them, so this cannot fail; map it rather than panic.
    Array::from_shape_vec(IxDyn(shape), data)
        .ok()
        .and_then(|a| a.into_dimensionality::<D::Larger>().ok())
        .ok_or_else(|| Error::ShapeMismatch {
            index: 0,
            expected: row.to_vec(),
            found: row.to_vec(),
        })
}
