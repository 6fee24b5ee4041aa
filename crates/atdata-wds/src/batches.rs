//! Batches: samples grouped `batch_size` at a time, with their keys.

use std::sync::Arc;

use atdata_codec::SampleType;

use crate::dataset::Samples;
use crate::error::{Error, Result};

/// An iterator of batches (`SampleBatch<T>`, or `DynamicBatch`), each with its samples' keys:
/// from a [`Dataset`](crate::Dataset)'s `ordered` and `shuffled`, or from any iterator of keyed
/// samples through [`BatchedExt::batched`]. The last batch may be short; an error item is
/// passed on in its place, and the samples gathered so far stay for the next batch.
pub struct Batches<T: SampleType, I = Samples<(String, T)>> {
    samples: I,
    context: Arc<T::Context>,
    batch_size: usize,
    keys: Vec<String>,
    pending: Vec<T>,
}

impl<T: SampleType, I: Iterator<Item = Result<(String, T)>>> Batches<T, I> {
    pub(crate) fn new(
        samples: I,
        context: Arc<T::Context>,
        batch_size: usize,
    ) -> Result<Batches<T, I>> {
        if batch_size == 0 {
            return Err(Error::ZeroBatchSize);
        }
        Ok(Batches {
            samples,
            context,
            batch_size,
            keys: Vec::with_capacity(batch_size),
            pending: Vec::with_capacity(batch_size),
        })
    }

    fn emit(&mut self) -> Result<T::Batch> {
        let keys = std::mem::replace(&mut self.keys, Vec::with_capacity(self.batch_size));
        let samples = std::mem::replace(&mut self.pending, Vec::with_capacity(self.batch_size));
        T::batch(&self.context, keys, samples).map_err(Error::Batch)
    }
}

impl<T: SampleType, I: Iterator<Item = Result<(String, T)>>> Iterator for Batches<T, I> {
    type Item = Result<T::Batch>;

    fn next(&mut self) -> Option<Result<T::Batch>> {
        loop {
            match self.samples.next() {
                Some(Ok((key, sample))) => {
                    self.keys.push(key);
                    self.pending.push(sample);
                    if self.pending.len() == self.batch_size {
                        return Some(self.emit());
                    }
                }
                Some(Err(e)) => return Some(Err(e)),
                None if self.pending.is_empty() => return None,
                None => return Some(self.emit()),
            }
        }
    }
}

/// Batching for any iterator of keyed samples, so that `filter`, `map` or `take` can come
/// before it: `batched(n)` for typed samples, `batched_with(context, n)` for any sample type
/// (a `DynamicSample`'s context is its schema).
///
/// ```
/// use atdata_codec::Packable;
/// use atdata_wds::BatchedExt;
/// # use atdata_derive::packable;
/// # #[packable(crate = "atdata_codec")]
/// # struct Row { id: i64 }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("rows.tar");
/// let mut w = atdata_wds::TarWriter::create(&path)?;
/// for id in 0..10 {
///     w.write(&Row { id }.as_wds(&format!("{id:06}")))?;
/// }
/// w.finish()?.close()?;
///
/// let ds = atdata_wds::Dataset::<Row>::new(&path)?;
/// let even = ds.samples_with_keys()?.filter(|r| r.as_ref().map_or(true, |(_, row)| row.id % 2 == 0));
/// let first = even.batched(4)?.next().unwrap()?;
/// assert_eq!(first.id, [0, 2, 4, 6]);
/// assert_eq!(first.keys()[1], "000002");
///
/// let dynamic = atdata_wds::Dataset::<atdata_codec::DynamicSample>::with_schema(&path, Row::schema())?;
/// let batch = dynamic.samples_with_keys()?.take(3).batched_with(Row::schema(), 2)?.next().unwrap()?;
/// assert_eq!(batch.keys(), ["000000", "000001"]);
/// # Ok(()) }
/// ```
pub trait BatchedExt<T: SampleType>: Iterator<Item = Result<(String, T)>> + Sized {
    /// Batches of `batch_size` samples (0 is an error), decoded with `context`.
    fn batched_with(self, context: T::Context, batch_size: usize) -> Result<Batches<T, Self>> {
        Batches::new(self, Arc::new(context), batch_size)
    }

    /// Batches of `batch_size` typed samples (0 is an error).
    fn batched(self, batch_size: usize) -> Result<Batches<T, Self>>
    where
        T: SampleType<Context = ()>,
    {
        self.batched_with((), batch_size)
    }
}

impl<T: SampleType, I: Iterator<Item = Result<(String, T)>>> BatchedExt<T> for I {}
