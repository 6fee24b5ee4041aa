//! The `Packable` sample trait, WebDataset samples and batches.

use std::ops::Deref;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::msgpack::Decoder;
use crate::schema::Schema;
use crate::uninit::FillUninit;

/// A typed sample: a struct whose fields pack into a msgpack map, byte-identical to Python
/// atdata's `@packable` dataclasses. Implement it with `#[packable]`.
///
/// ```
/// use atdata_codec::Packable;
/// # use atdata_derive::packable;
///
/// /// A labelled point.
/// #[packable(crate = "atdata_codec")]
/// #[derive(Debug, PartialEq)]
/// struct Point { x: f64, label: String }
///
/// let p = Point { x: 1.5, label: "a".into() };
/// let bytes = p.packed().unwrap();
/// assert_eq!(Point::from_bytes(&bytes).unwrap(), p);
/// assert_eq!(Point::schema().description.as_deref(), Some("A labelled point."));
/// ```
pub trait Packable: Sized {
    /// The columns of a batch of this type (generated as `{Name}Columns`).
    type Columns;

    /// The schema: name, fields in declaration order, description.
    fn schema() -> Schema;

    /// Appends the msgpack payload to `out`.
    fn pack_into(&self, out: &mut Vec<u8>) -> Result<()>;

    /// Decodes a msgpack payload. Unknown, missing or repeated keys, values of the wrong kind
    /// and malformed arrays are errors naming the field.
    fn from_bytes(bytes: &[u8]) -> Result<Self>;

    /// Stacks samples into batch columns; used by [`SampleBatch::from_samples`].
    #[doc(hidden)]
    fn stack(samples: &[Self]) -> Result<Self::Columns>;

    /// One column builder per field (a tuple), for decoding payloads straight into columns.
    #[doc(hidden)]
    type FieldBuilders: Send + 'static;

    /// Empty builders with room for `rows`.
    #[doc(hidden)]
    fn field_builders(rows: usize) -> Self::FieldBuilders;

    /// Decodes a payload onto the end of `builders`, which hold `rows` rows: on an error
    /// (as [`from_bytes`](Self::from_bytes) gives it) they are left holding `rows` rows.
    #[doc(hidden)]
    fn decode_into(
        payload: Decoder<'_>,
        builders: &mut Self::FieldBuilders,
        rows: usize,
    ) -> Result<()>;

    /// Moves a decoded sample's values onto the end of `builders`.
    #[doc(hidden)]
    fn push_row(builders: &mut Self::FieldBuilders, sample: Self);

    /// Moves `other`'s rows onto the end of `builders`.
    #[doc(hidden)]
    fn append_rows(builders: &mut Self::FieldBuilders, other: Self::FieldBuilders);

    /// Splits off the rows from `at` on.
    #[doc(hidden)]
    fn split_rows(builders: &mut Self::FieldBuilders, at: usize) -> Self::FieldBuilders;

    /// The columns (errors name the field).
    #[doc(hidden)]
    fn finish_columns(builders: Self::FieldBuilders) -> Result<Self::Columns>;

    /// Sample `i` of the columns (`i` below their length).
    #[doc(hidden)]
    fn row(columns: &Self::Columns, i: usize) -> Self;

    /// The msgpack payload. Fails only when a string, byte string, list or array is longer
    /// than msgpack's 4 GiB limit.
    fn packed(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.pack_into(&mut out)?;
        Ok(out)
    }

    /// The WebDataset sample: `key` and one member, `msgpack`, holding the payload.
    ///
    /// # Panics
    ///
    /// When a field is longer than msgpack's 4 GiB limit; use [`packed`](Self::packed) to get
    /// that as an error instead.
    fn as_wds(&self, key: &str) -> WdsSample {
        match self.packed() {
            Ok(payload) => WdsSample::msgpack(key, payload),
            Err(e) => panic!("sample `{key}` cannot be packed: {e}"),
        }
    }
}

/// One WebDataset sample: a key and its members (`extension`, bytes), in order.
///
/// In a tar shard each member is the file `{key}.{extension}`; atdata samples have one member,
/// `msgpack`.
///
/// ```
/// use atdata_codec::WdsSample;
///
/// let s = WdsSample::msgpack("000001", vec![0x80]);
/// assert_eq!(s.member("msgpack"), Some(&[0x80][..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WdsSample {
    /// The sample key (`__key__`): the member names up to their first `.`.
    pub key: String,
    /// `(extension, bytes)` pairs in tar order.
    pub members: Vec<(String, Vec<u8>)>,
}

impl WdsSample {
    /// A sample with a single `msgpack` member.
    pub fn msgpack(key: impl Into<String>, payload: Vec<u8>) -> WdsSample {
        WdsSample {
            key: key.into(),
            members: vec![("msgpack".to_owned(), payload)],
        }
    }

    /// The bytes of the member with extension `ext`.
    pub fn member(&self, ext: &str) -> Option<&[u8]> {
        self.members
            .iter()
            .find(|(e, _)| e == ext)
            .map(|(_, b)| b.as_slice())
    }
}

/// A batch of samples: array fields stacked along a new leading axis, every other field
/// collected into a `Vec` (optional fields as `Vec<Option<_>>`). It dereferences to the
/// generated `{Name}Columns`; the samples stay reachable through [`samples`](Self::samples).
///
/// A batch a dataset decodes straight into its columns makes its samples from the columns on
/// the first call to [`samples`](Self::samples) (a copy of every value, once); a batch stacked
/// from samples keeps them.
///
/// ```
/// use atdata_codec::{Packable, SampleBatch};
/// # use atdata_derive::packable;
/// use ndarray::Array1;
///
/// #[packable(crate = "atdata_codec")]
/// #[derive(Clone)]
/// struct Row { features: Array1<f32>, label: i64 }
///
/// let rows = vec![Row { features: Array1::zeros(4), label: 1 }, Row { features: Array1::ones(4), label: 2 }];
/// let batch = SampleBatch::from_samples(rows).unwrap();
/// assert_eq!(batch.features.shape(), &[2, 4]);
/// assert_eq!(batch.label, vec![1, 2]);
/// assert_eq!(batch.samples().len(), 2);
/// ```
pub struct SampleBatch<T: Packable> {
    columns: T::Columns,
    samples: OnceLock<Vec<T>>,
    keys: Keys,
    len: usize,
}

impl<T: Packable> SampleBatch<T> {
    /// Stacks `samples` into a batch. Fails on an empty list, or when an array field's shapes
    /// differ between samples (the error names the field).
    pub fn from_samples(samples: Vec<T>) -> Result<SampleBatch<T>> {
        if samples.is_empty() {
            return Err(Error::EmptyBatch);
        }
        Ok(SampleBatch {
            columns: T::stack(&samples)?,
            len: samples.len(),
            samples: OnceLock::from(samples),
            keys: Keys::new(),
        })
    }

    /// Stacks `samples` with their `__key__`s (one each: another count is
    /// [`Error::KeyCount`]), as a dataset's batches are built.
    ///
    /// ```
    /// # use atdata_derive::packable;
    /// # #[packable(crate = "atdata_codec")]
    /// # struct Row { id: i64 }
    /// let keys = ["a", "b"].into_iter().collect();
    /// let batch = atdata_codec::SampleBatch::from_keyed(keys, vec![Row { id: 1 }, Row { id: 2 }]).unwrap();
    /// assert_eq!(batch.keys(), ["a", "b"]);
    /// ```
    pub fn from_keyed(keys: Keys, samples: Vec<T>) -> Result<SampleBatch<T>> {
        check_keys(&keys, samples.len())?;
        Ok(SampleBatch {
            keys,
            ..SampleBatch::from_samples(samples)?
        })
    }

    /// The samples' `__key__`s, in batch order (empty for a batch made by
    /// [`from_samples`](Self::from_samples), which has none).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The stacked columns.
    pub fn columns(&self) -> &T::Columns {
        &self.columns
    }

    /// The samples, in batch order.
    pub fn samples(&self) -> &[T] {
        self.samples.get_or_init(|| self.rows())
    }

    /// The samples, giving up the columns.
    pub fn into_samples(mut self) -> Vec<T> {
        self.samples.take().unwrap_or_else(|| self.rows())
    }

    fn rows(&self) -> Vec<T> {
        (0..self.len).map(|i| T::row(&self.columns, i)).collect()
    }

    /// The number of samples (at least one).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a batch has at least one sample.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T: Packable> Deref for SampleBatch<T> {
    type Target = T::Columns;

    fn deref(&self) -> &T::Columns {
        &self.columns
    }
}

impl<T: Packable> std::fmt::Debug for SampleBatch<T>
where
    T::Columns: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleBatch")
            .field("keys", &self.keys)
            .field("columns", &self.columns)
            .finish()
    }
}

impl<T: Packable + Clone> Clone for SampleBatch<T>
where
    T::Columns: Clone,
{
    fn clone(&self) -> Self {
        SampleBatch {
            columns: self.columns.clone(),
            samples: self.samples.clone(),
            keys: self.keys.clone(),
            len: self.len,
        }
    }
}

/// `keys` has one key per sample, or none at all.
pub(crate) fn check_keys(keys: &Keys, samples: usize) -> Result<()> {
    if keys.len() == samples {
        Ok(())
    } else {
        Err(Error::KeyCount {
            keys: keys.len(),
            samples,
        })
    }
}

/// What a dataset can yield: any [`Packable`] type (decoded with no context), or
/// [`DynamicSample`](crate::DynamicSample) (decoded with its [`Schema`]).
///
/// Readers such as `atdata_wds::Dataset` decode and batch through this trait.
///
/// ```
/// use atdata_codec::{Packable, SampleType};
/// # use atdata_derive::packable;
///
/// #[packable(crate = "atdata_codec")]
/// struct Point { x: f64 }
///
/// let bytes = Point { x: 2.0 }.packed().unwrap();
/// let p = <Point as SampleType>::decode(&(), &bytes).unwrap();
/// let batch = <Point as SampleType>::batch(&(), ["k"].into_iter().collect(), vec![p]).unwrap();
/// assert_eq!(batch.x, vec![2.0]);
/// ```
pub trait SampleType: Sized + Send + 'static {
    /// What decoding needs besides the payload: `()` for `Packable` types, the schema for
    /// `DynamicSample`.
    type Context: Send + Sync + 'static;
    /// A batch of these samples.
    type Batch: Send + 'static;

    /// Decodes one msgpack payload.
    fn decode(context: &Self::Context, payload: &[u8]) -> Result<Self>;

    /// Groups samples (at least one) and their keys (one each) into a batch.
    fn batch(context: &Self::Context, keys: Keys, samples: Vec<Self>) -> Result<Self::Batch>;

    /// Decodes payloads straight into a batch (what readers' batches use).
    #[doc(hidden)]
    type Builder: BatchBuilder<Self>;

    /// The schema of these samples, as the index records it.
    /// (Named apart from [`Packable::schema`] so both traits can be in scope.)
    fn sample_schema(context: &Self::Context) -> Schema;

    /// The decoding context for samples recorded under `schema` (what opening an indexed
    /// dataset uses): nothing for a `Packable` type, the schema itself for `DynamicSample`.
    fn context_for(schema: Schema) -> Self::Context;
}

impl<T> SampleType for T
where
    T: Packable + Send + 'static,
    T::Columns: Send,
{
    type Context = ();
    type Batch = SampleBatch<T>;

    fn decode(_: &(), payload: &[u8]) -> Result<T> {
        T::from_bytes(payload)
    }

    fn batch(_: &(), keys: Keys, samples: Vec<T>) -> Result<SampleBatch<T>> {
        SampleBatch::from_keyed(keys, samples)
    }

    type Builder = Columns<T>;

    fn sample_schema(_: &()) -> Schema {
        <T as Packable>::schema()
    }

    fn context_for(_: Schema) {}
}

/// A batch under construction: payloads decoded onto the end, one row each. A reader cuts
/// and joins these at batch boundaries, then finishes each into a batch.
#[doc(hidden)]
pub trait BatchBuilder<T: SampleType>: Send + Sized + 'static {
    /// An empty batch with room for `rows`.
    fn with_capacity(context: &T::Context, rows: usize) -> Self;

    /// Decodes one payload onto the end; on an error the rows are as before.
    fn decode_into(&mut self, context: &T::Context, payload: &[u8]) -> Result<()>;

    /// Decodes one payload onto the end as it is read from a stream: `head` holds its first
    /// bytes, and `rest` more come from `source`; large arrays are read from there straight
    /// into their place in the batch (what must be in memory is read into `spill`). On an
    /// error the rows are as before, and the payload's bytes may be partly read. The default
    /// reads the payload whole, then decodes it.
    fn decode_streaming(
        &mut self,
        context: &T::Context,
        head: &[u8],
        source: &mut dyn FillUninit,
        rest: usize,
        spill: &mut Vec<u8>,
    ) -> Result<()> {
        let payload = Decoder::streaming(head, source, rest, spill).into_bytes()?;
        self.decode_into(context, payload)
    }

    /// Moves one decoded sample onto the end.
    fn push(&mut self, sample: T);

    /// The rows so far.
    fn rows(&self) -> usize;

    /// Moves `other`'s rows onto the end.
    fn append(&mut self, other: Self);

    /// Splits off the rows from `at` on.
    fn split_off(&mut self, at: usize) -> Self;

    /// The batch, with one key per row; fails as [`SampleType::batch`] would.
    fn finish(self, context: &T::Context, keys: Keys) -> Result<T::Batch>;
}

/// Samples decoded one at a time and batched at the end (the dynamic path).
impl<T: SampleType> BatchBuilder<T> for Vec<T> {
    fn with_capacity(_: &T::Context, rows: usize) -> Self {
        Vec::with_capacity(rows)
    }

    fn decode_into(&mut self, context: &T::Context, payload: &[u8]) -> Result<()> {
        self.push(T::decode(context, payload)?);
        Ok(())
    }

    fn push(&mut self, sample: T) {
        Vec::push(self, sample);
    }

    fn rows(&self) -> usize {
        self.len()
    }

    fn append(&mut self, mut other: Self) {
        Vec::append(self, &mut other);
    }

    fn split_off(&mut self, at: usize) -> Self {
        Vec::split_off(self, at.min(self.len()))
    }

    fn finish(self, context: &T::Context, keys: Keys) -> Result<T::Batch> {
        T::batch(context, keys, self)
    }
}

/// The columns of a batch of `T` under construction: array elements go from each payload to
/// their place in the stacked array.
#[doc(hidden)]
pub struct Columns<T: Packable> {
    fields: T::FieldBuilders,
    rows: usize,
}

impl<T> BatchBuilder<T> for Columns<T>
where
    T: Packable + SampleType<Context = (), Batch = SampleBatch<T>>,
{
    fn with_capacity(_: &(), rows: usize) -> Self {
        Columns {
            fields: T::field_builders(rows),
            rows: 0,
        }
    }

    fn decode_into(&mut self, _: &(), payload: &[u8]) -> Result<()> {
        T::decode_into(Decoder::new(payload), &mut self.fields, self.rows)?;
        self.rows += 1;
        Ok(())
    }

    fn decode_streaming(
        &mut self,
        _: &(),
        head: &[u8],
        source: &mut dyn FillUninit,
        rest: usize,
        spill: &mut Vec<u8>,
    ) -> Result<()> {
        let payload = Decoder::streaming(head, source, rest, spill);
        T::decode_into(payload, &mut self.fields, self.rows)?;
        self.rows += 1;
        Ok(())
    }

    fn push(&mut self, sample: T) {
        T::push_row(&mut self.fields, sample);
        self.rows += 1;
    }

    fn rows(&self) -> usize {
        self.rows
    }

    fn append(&mut self, other: Self) {
        T::append_rows(&mut self.fields, other.fields);
        self.rows += other.rows;
    }

    fn split_off(&mut self, at: usize) -> Self {
        let at = at.min(self.rows);
        let tail = Columns {
            fields: T::split_rows(&mut self.fields, at),
            rows: self.rows - at,
        };
        self.rows = at;
        tail
    }

    fn finish(self, _: &(), keys: Keys) -> Result<SampleBatch<T>> {
        if self.rows == 0 {
            return Err(Error::EmptyBatch);
        }
        check_keys(&keys, self.rows)?;
        Ok(SampleBatch {
            columns: T::finish_columns(self.fields)?,
            samples: OnceLock::new(),
            keys,
            len: self.rows,
        })
    }
}
