//! Batches: samples grouped `batch_size` at a time, with their keys.

use std::sync::Arc;

use atdata_codec::{BatchBuilder, SampleType};

use crate::dataset::{Samples, decode_member};
use crate::error::{Error, Result};
use crate::pipeline::{Gather, Pipeline};
use crate::reader::Sample;

/// Samples a batch of samples makes room for before they arrive (a huge batch size must not
/// allocate for samples that may never come).
const ROOM_AHEAD: usize = 4096;

/// An iterator of batches (`SampleBatch<T>`, or `DynamicBatch`), each with its samples' keys:
/// from a [`Dataset`](crate::Dataset)'s `ordered` and `shuffled`, or from any iterator of keyed
/// samples through [`BatchedExt::batched`]. The last batch may be short; an error item is
/// passed on in its place, and the samples gathered so far stay for the next batch.
pub struct Batches<T: SampleType, I = Samples<(String, T)>> {
    source: Source<T, I>,
    context: Arc<T::Context>,
    batch_size: usize,
}

enum Source<T: SampleType, I> {
    /// Decoded samples, stacked a batch at a time.
    Samples {
        samples: I,
        keys: Vec<String>,
        pending: Vec<T>,
    },
    /// Batches decoded straight into their columns on the shard threads, whole or in pieces
    /// (at shard boundaries), joined here.
    Columns {
        chunks: Pipeline<BatchColumns<T>>,
        pending: Option<Keyed<T>>,
    },
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
            source: Source::Samples {
                samples,
                keys: Vec::with_capacity(batch_size.min(ROOM_AHEAD)),
                pending: Vec::with_capacity(batch_size.min(ROOM_AHEAD)),
            },
            context,
            batch_size,
        })
    }
}

impl<T: SampleType, I> Batches<T, I> {
    /// Batches from chunks cut at multiples of `batch_size` (checked not to be 0 by
    /// [`BatchColumns::new`]).
    pub(crate) fn from_columns(
        chunks: Pipeline<BatchColumns<T>>,
        context: Arc<T::Context>,
        batch_size: usize,
    ) -> Batches<T, I> {
        Batches {
            source: Source::Columns {
                chunks,
                pending: None,
            },
            context,
            batch_size,
        }
    }
}

impl<T: SampleType, I: Iterator<Item = Result<(String, T)>>> Iterator for Batches<T, I> {
    type Item = Result<T::Batch>;

    fn next(&mut self) -> Option<Result<T::Batch>> {
        let (context, size) = (&*self.context, self.batch_size);
        match &mut self.source {
            Source::Samples {
                samples,
                keys,
                pending,
            } => loop {
                match samples.next() {
                    Some(Ok((key, sample))) => {
                        keys.push(key);
                        pending.push(sample);
                        if pending.len() == size {
                            return Some(emit(context, size, keys, pending));
                        }
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    None if pending.is_empty() => return None,
                    None => return Some(emit(context, size, keys, pending)),
                }
            },
            Source::Columns { chunks, pending } => loop {
                if let Some(mut full) = pending.take_if(|gathered| gathered.rows() >= size) {
                    if full.rows() > size {
                        *pending = Some(full.split_off(size));
                    }
                    return Some(full.finish(context));
                }
                match chunks.next() {
                    // A whole batch, as most chunks are: passed on without a copy.
                    Some(Ok(chunk)) if pending.is_none() && chunk.rows() == size => {
                        return Some(chunk.finish(context));
                    }
                    Some(Ok(mut chunk)) => match pending {
                        // Pieces of a batch across a shard boundary: the batch's share of the
                        // chunk joins it, the rest waits for the next.
                        Some(gathered) if gathered.rows() + chunk.rows() > size => {
                            let rest = chunk.split_off(size - gathered.rows());
                            gathered.append(context, chunk);
                            let full = std::mem::replace(gathered, rest);
                            return Some(full.finish(context));
                        }
                        Some(gathered) => gathered.append(context, chunk),
                        None => *pending = Some(chunk),
                    },
                    Some(Err(e)) => return Some(Err(e)),
                    None => return pending.take().map(|last| last.finish(context)),
                }
            },
        }
    }
}

/// The samples gathered so far as a batch.
fn emit<T: SampleType>(
    context: &T::Context,
    size: usize,
    keys: &mut Vec<String>,
    pending: &mut Vec<T>,
) -> Result<T::Batch> {
    let keys = std::mem::replace(keys, Vec::with_capacity(size.min(ROOM_AHEAD)));
    let samples = std::mem::replace(pending, Vec::with_capacity(size.min(ROOM_AHEAD)));
    T::batch(context, keys, samples).map_err(Error::Batch)
}

/// Member bytes of a batch up to which it is decoded straight into its columns on a shard
/// thread and cut whole. A batch of larger samples is decoded a sample at a time into chunks of
/// about a MiB and gathered into its columns by the consumer (one copy more): that keeps memory
/// bounded and, measured, is as fast, both being bound by writing fresh memory.
const COLUMN_BATCH_BYTES: usize = 4 << 20;

/// Samples decoded into the columns of batches of `batch` on the shard threads (or, for large
/// samples, decoded one at a time there).
pub(crate) struct BatchColumns<T: SampleType> {
    context: Arc<T::Context>,
    batch: usize,
}

impl<T: SampleType> BatchColumns<T> {
    pub(crate) fn new(context: Arc<T::Context>, batch: usize) -> Result<BatchColumns<T>> {
        if batch == 0 {
            return Err(Error::ZeroBatchSize);
        }
        Ok(BatchColumns { context, batch })
    }
}

/// Rows of batches and their keys: columns under construction, or decoded samples.
pub(crate) struct Keyed<T: SampleType> {
    keys: Vec<String>,
    rows: Rows<T>,
}

enum Rows<T: SampleType> {
    /// Nothing yet: the first sample decides.
    Empty,
    Columns(T::Builder),
    Samples(Vec<T>),
}

impl<T: SampleType> Keyed<T> {
    fn empty() -> Keyed<T> {
        Keyed {
            keys: Vec::new(),
            rows: Rows::Empty,
        }
    }

    fn rows(&self) -> usize {
        self.keys.len()
    }

    fn split_off(&mut self, at: usize) -> Keyed<T> {
        let keys = self.keys.split_off(at.min(self.keys.len()));
        let rows = match &mut self.rows {
            Rows::Empty => Rows::Empty,
            Rows::Columns(builder) => Rows::Columns(builder.split_off(at)),
            Rows::Samples(samples) => Rows::Samples(samples.split_off(at.min(samples.len()))),
        };
        Keyed { keys, rows }
    }

    /// Moves `other`'s rows onto the end of these columns (decoded samples are moved in
    /// field by field).
    fn append(&mut self, context: &T::Context, mut other: Keyed<T>) {
        if matches!(self.rows, Rows::Empty) {
            *self = other;
            return;
        }
        self.keys.append(&mut other.keys);
        match (&mut self.rows, other.rows) {
            (Rows::Columns(builder), Rows::Columns(more)) => builder.append(more),
            (Rows::Columns(builder), Rows::Samples(samples)) => {
                samples.into_iter().for_each(|s| builder.push(s));
            }
            (Rows::Samples(samples), Rows::Samples(mut more)) => samples.append(&mut more),
            (Rows::Samples(samples), Rows::Columns(more)) => {
                let mut builder = T::Builder::with_capacity(context, samples.len());
                std::mem::take(samples)
                    .into_iter()
                    .for_each(|s| builder.push(s));
                builder.append(more);
                self.rows = Rows::Columns(builder);
            }
            (_, Rows::Empty) | (Rows::Empty, _) => {}
        }
    }

    fn finish(self, context: &T::Context) -> Result<T::Batch> {
        match self.rows {
            Rows::Columns(builder) => builder.finish(context, self.keys),
            Rows::Samples(samples) => T::batch(context, self.keys, samples),
            Rows::Empty => T::Builder::with_capacity(context, 0).finish(context, self.keys),
        }
        .map_err(Error::Batch)
    }
}

impl<T: SampleType> Gather for BatchColumns<T> {
    type Chunk = Keyed<T>;

    fn chunk(&self) -> Keyed<T> {
        Keyed::empty()
    }

    fn push(&self, shard: &str, sample: Sample<'_>, chunk: &mut Keyed<T>) -> Result<()> {
        if matches!(chunk.rows, Rows::Empty) {
            chunk.rows = if sample.len().saturating_mul(self.batch) <= COLUMN_BATCH_BYTES {
                chunk.keys.reserve(self.batch);
                Rows::Columns(T::Builder::with_capacity(&self.context, self.batch))
            } else {
                Rows::Samples(Vec::new())
            };
        }
        let payload = sample.member("msgpack");
        match &mut chunk.rows {
            Rows::Columns(builder) => decode_member(shard, sample.key, payload, |payload| {
                builder.decode_into(&self.context, payload)
            })?,
            Rows::Samples(samples) => {
                samples.push(decode_member(shard, sample.key, payload, |payload| {
                    T::decode(&self.context, payload)
                })?)
            }
            Rows::Empty => {}
        }
        chunk.keys.push(sample.key.to_owned());
        Ok(())
    }

    fn rows(chunk: &Keyed<T>) -> usize {
        chunk.rows()
    }

    fn split_off(chunk: &mut Keyed<T>, at: usize) -> Keyed<T> {
        chunk.split_off(at)
    }

    fn batch(&self) -> Option<usize> {
        Some(self.batch)
    }

    fn whole_batches(chunk: &Keyed<T>) -> bool {
        matches!(chunk.rows, Rows::Columns(_))
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
