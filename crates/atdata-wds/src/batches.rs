//! Batches: samples grouped `batch_size` at a time, with their keys.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use atdata_codec::{BatchBuilder, Keys, SampleType};

use crate::access::Located;
use crate::dataset::{Samples, decode_member};
use crate::error::{Error, Result};
use crate::pipeline::{Gather, Pipeline, Runs, ShardReader};
use crate::reader::Grouper;

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
        keys: Keys,
        pending: Vec<T>,
    },
    /// Batches decoded straight into their columns on the shard threads, whole or in pieces
    /// (at shard boundaries), joined here; or large samples' payloads, decoded here into the
    /// batch being built; or, for shards of large samples, the shard itself, read here with
    /// each payload decoded into the batch as it streams in.
    Columns {
        chunks: Box<Pipeline<BatchColumns<T>>>,
        pending: Option<Building<T>>,
        deferred: VecDeque<(String, Deferred)>,
        streamed: Option<Streamed>,
    },
    /// Shuffled rows (decoded samples, large samples' payloads, or where they lie), built into each batch's
    /// columns as they are drawn.
    Rows {
        rows: Box<Samples<(String, Row<T>)>>,
        pending: Option<Building<T>>,
    },
}

impl<T: SampleType, I: Iterator<Item = Result<(String, T)>>> Batches<T, I> {
    pub(crate) fn new(
        samples: I,
        context: Arc<T::Context>,
        batch_size: usize,
    ) -> Result<Batches<T, I>> {
        let source = Source::Samples {
            samples,
            keys: Keys::with_capacity(batch_size.min(ROOM_AHEAD), 0),
            pending: Vec::with_capacity(batch_size.min(ROOM_AHEAD)),
        };
        Batches::checked(source, context, batch_size)
    }
}

impl<T: SampleType, I> Batches<T, I> {
    /// Batches from `source` (a batch size of 0 is an error).
    fn checked(
        source: Source<T, I>,
        context: Arc<T::Context>,
        batch_size: usize,
    ) -> Result<Batches<T, I>> {
        if batch_size == 0 {
            return Err(Error::ZeroBatchSize);
        }
        Ok(Batches {
            source,
            context,
            batch_size,
        })
    }

    /// Batches from chunks cut at multiples of `batch_size` (checked not to be 0 by
    /// [`BatchColumns::new`]).
    pub(crate) fn from_columns(
        chunks: Pipeline<BatchColumns<T>>,
        context: Arc<T::Context>,
        batch_size: usize,
    ) -> Batches<T, I> {
        Batches {
            source: Source::Columns {
                chunks: Box::new(chunks),
                pending: None,
                deferred: VecDeque::new(),
                streamed: None,
            },
            context,
            batch_size,
        }
    }

    /// Batches of `rows` as they come (a batch size of 0 is an error).
    pub(crate) fn from_rows(
        rows: Samples<(String, Row<T>)>,
        context: Arc<T::Context>,
        batch_size: usize,
    ) -> Result<Batches<T, I>> {
        let source = Source::Rows {
            rows: Box::new(rows),
            pending: None,
        };
        Batches::checked(source, context, batch_size)
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
                        keys.push(&key);
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
            Source::Columns {
                chunks,
                pending,
                deferred,
                streamed,
            } => loop {
                if let Some(mut full) = pending.take_if(|gathered| gathered.rows() >= size) {
                    if full.rows() > size {
                        *pending = Some(full.split_off(size));
                    }
                    return Some(full.finish(context));
                }
                if let Some((key, payload)) = deferred.pop_front() {
                    let building = pending.get_or_insert_with(|| Building::new(context, size));
                    if let Err(e) = building.add(context, &key, Row::Deferred(payload)) {
                        return Some(Err(e));
                    }
                    continue;
                }
                if let Some(shard) = streamed {
                    let building = pending.get_or_insert_with(|| Building::new(context, size));
                    match building.add_streamed(context, shard) {
                        Some(Ok(())) => {}
                        Some(Err(e)) => return Some(Err(e)),
                        None => {
                            *streamed = None;
                            pending.take_if(|building| building.rows() == 0);
                        }
                    }
                    continue;
                }
                let Keyed { keys, rows } = match chunks.next() {
                    Some(Ok(chunk)) => chunk,
                    Some(Err(e)) => return Some(Err(e)),
                    None => return pending.take().map(|last| last.finish(context)),
                };
                let mut chunk = match rows {
                    Rows::Columns(builder) => Building { keys, builder },
                    // Large samples' payloads, decoded one at a time above.
                    Rows::Deferred(payloads) => {
                        deferred.extend(keys.iter().map(str::to_owned).zip(payloads));
                        continue;
                    }
                    Rows::Streamed(samples) => {
                        *streamed = Some(Streamed {
                            samples,
                            spill: Vec::new(),
                        });
                        continue;
                    }
                    Rows::Empty => continue,
                };
                match pending {
                    // A whole batch, as most chunks are: passed on without a copy.
                    None if chunk.rows() == size => return Some(chunk.finish(context)),
                    None => *pending = Some(chunk),
                    // Pieces of a batch across a shard boundary: the batch's share of the chunk
                    // joins it, the rest waits for the next.
                    Some(gathered) if gathered.rows() + chunk.rows() > size => {
                        let rest = chunk.split_off(size - gathered.rows());
                        gathered.append(chunk);
                        let full = std::mem::replace(gathered, rest);
                        return Some(full.finish(context));
                    }
                    Some(gathered) => gathered.append(chunk),
                }
            },
            Source::Rows { rows, pending } => loop {
                match rows.next() {
                    Some(Ok((key, row))) => {
                        let building = pending.get_or_insert_with(|| Building::new(context, size));
                        if let Err(e) = building.add(context, &key, row) {
                            return Some(Err(e));
                        }
                        if building.rows() == size {
                            return pending.take().map(|full| full.finish(context));
                        }
                    }
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
    keys: &mut Keys,
    pending: &mut Vec<T>,
) -> Result<T::Batch> {
    let keys = std::mem::replace(keys, Keys::with_capacity(size.min(ROOM_AHEAD), 0));
    let samples = std::mem::replace(pending, Vec::with_capacity(size.min(ROOM_AHEAD)));
    T::batch(context, keys, samples).map_err(Error::Batch)
}

/// Member bytes of a batch up to which it is decoded straight into its columns on a shard
/// thread and cut whole. A batch of larger samples travels as the samples' payloads, in chunks
/// of about a MiB, and is decoded into its columns by the consumer: that keeps memory bounded,
/// and each array is still copied once after the read, from the payload into the batch.
const COLUMN_BATCH_BYTES: usize = 4 << 20;

/// Payload bytes from which a shuffled or loaded sample is [`Deferred`], not decoded on its
/// reading thread: a sample that large costs its copies, one fewer when its payload is decoded
/// straight into the batch; a small one costs its decoding, best spread over the threads.
pub(crate) const DEFERRED_BYTES: usize = 64 << 10;

/// A sample's `msgpack` payload, left undecoded until its batch is built, so that its arrays
/// are copied from the bytes read straight into the batch's columns (decoding the sample first
/// and stacking the samples copies them twice). The bytes may be shared with other samples'
/// (a loader's ranged read); the last payload of them to go gives them to its [`Spares`].
pub(crate) struct Deferred {
    shard: Arc<str>,
    bytes: Arc<Vec<u8>>,
    range: Range<usize>,
    spares: Arc<Spares>,
}

impl Deferred {
    /// `range` of `bytes`, read from `shard`.
    pub(crate) fn new(
        shard: Arc<str>,
        bytes: Arc<Vec<u8>>,
        range: Range<usize>,
        spares: Arc<Spares>,
    ) -> Deferred {
        Deferred {
            shard,
            bytes,
            range,
            spares,
        }
    }

    /// A whole member's bytes.
    fn whole(shard: &str, bytes: Vec<u8>, spares: &Arc<Spares>) -> Deferred {
        let range = 0..bytes.len();
        Deferred::new(shard.into(), Arc::new(bytes), range, spares.clone())
    }

    fn payload(&self) -> &[u8] {
        self.bytes.get(self.range.clone()).unwrap_or_default()
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        if let Ok(bytes) = Arc::try_unwrap(bytes) {
            self.spares.give(bytes);
        }
    }
}

/// Spare capacity, in bytes, a [`Spares`] keeps.
const SPARE_BYTES: usize = 32 << 20;

/// Buffers of deferred payloads that have been decoded, for the reading threads to read the
/// next payloads into: fresh memory costs the kernel a zeroed page per 4 KiB it hands out,
/// more than copying the payload does (measured: a quarter of a shuffled image read). It
/// keeps at most [`SPARE_BYTES`] of them.
#[derive(Default)]
pub(crate) struct Spares(Mutex<(VecDeque<Vec<u8>>, usize)>);

impl Spares {
    /// A spare buffer with room for `len` bytes and at most a quarter more (so that a small
    /// read does not keep a large buffer), its bytes stale (readers overwrite them; memory already
    /// written to costs no zeroing), or a new empty one. When none fits, the
    /// oldest spare is freed, so that the spares follow the sizes being read.
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let mut spares = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (buffers, kept) = &mut *spares;
        let fits = buffers
            .iter()
            .position(|b| (len..=len.saturating_add(len / 4)).contains(&b.capacity()));
        let taken = match fits {
            Some(at) => buffers.swap_remove_back(at).unwrap_or_default(),
            None => {
                let oldest = buffers.pop_front().unwrap_or_default();
                *kept -= oldest.capacity();
                return Vec::new();
            }
        };
        *kept -= taken.capacity();
        taken
    }

    fn give(&self, bytes: Vec<u8>) {
        let mut spares = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (buffers, kept) = &mut *spares;
        if *kept + bytes.capacity() <= SPARE_BYTES {
            *kept += bytes.capacity();
            buffers.push_back(bytes);
        }
    }
}

/// A block of samples on their way into batches, each with its key or the error in its place.
pub(crate) type KeyedRows<T> = Vec<Result<(String, Row<T>)>>;

/// A sample on its way into a batch: decoded, its payload [`Deferred`], or (a large sample
/// of a local shard, from the loader or `shuffled`) [`Located`] in its shard.
pub(crate) enum Row<T> {
    Decoded(T),
    Deferred(Deferred),
    Located(Located),
}

/// Shuffled samples with their keys, as [`Row`]s: small ones decoded on the shard threads,
/// large ones deferred; or, for a shard `locate` reads, as it gives them (large samples of a
/// local shard [`Located`]).
pub(crate) struct ShuffledRows<T: SampleType> {
    context: Arc<T::Context>,
    spares: Arc<Spares>,
    locate: Locate<T>,
}

/// Rows with their keys, as [`ShuffledRows`] gathers them.
pub(crate) type RowChunk<T> = Vec<(String, Row<T>)>;

/// Reads a shard's rows by its sidecar, when it can ([`Gather::runs`]).
pub(crate) type Locate<T> = Box<dyn Fn(&str) -> Option<Runs<RowChunk<T>>> + Send + Sync>;

impl<T: SampleType> ShuffledRows<T> {
    pub(crate) fn new(context: Arc<T::Context>, locate: Locate<T>) -> ShuffledRows<T> {
        ShuffledRows {
            context,
            spares: Arc::default(),
            locate,
        }
    }
}

impl<T: SampleType> Gather for ShuffledRows<T> {
    type Chunk = RowChunk<T>;

    fn chunk(&self) -> Self::Chunk {
        Vec::new()
    }

    fn push(&self, samples: &mut Grouper<'_>, chunk: &mut Self::Chunk) -> Result<()> {
        let sample = samples.sample();
        let key = sample.key.to_owned();
        let row = match sample.member("msgpack") {
            Some(payload) if payload.len() >= DEFERRED_BYTES => {
                // The next payload is likely as large as this one.
                let spare = self.spares.take(payload.len());
                let bytes = samples.take_member("msgpack", spare).unwrap_or_default();
                Row::Deferred(Deferred::whole(samples.shard(), bytes, &self.spares))
            }
            payload => Row::Decoded(decode_member(samples.shard(), &key, payload, |p| {
                T::decode(&self.context, p)
            })?),
        };
        chunk.push((key, row));
        Ok(())
    }

    fn rows(chunk: &Self::Chunk) -> usize {
        chunk.len()
    }

    fn split_off(chunk: &mut Self::Chunk, at: usize) -> Self::Chunk {
        chunk.split_off(at.min(chunk.len()))
    }

    fn batch(&self) -> Option<usize> {
        None
    }

    fn whole_batches(_: &Self::Chunk) -> bool {
        false
    }

    fn runs(&self, shard: &str) -> Option<Runs<Self::Chunk>> {
        (self.locate)(shard)
    }
}

/// Samples decoded into the columns of batches of `batch` on the shard threads (or, for large
/// samples, their payloads deferred).
pub(crate) struct BatchColumns<T: SampleType> {
    context: Arc<T::Context>,
    batch: usize,
    spares: Arc<Spares>,
}

impl<T: SampleType> BatchColumns<T> {
    pub(crate) fn new(context: Arc<T::Context>, batch: usize) -> Result<BatchColumns<T>> {
        if batch == 0 {
            return Err(Error::ZeroBatchSize);
        }
        Ok(BatchColumns {
            context,
            batch,
            spares: Arc::default(),
        })
    }
}

/// Rows of batches and their keys: columns under construction, or deferred payloads.
pub(crate) struct Keyed<T: SampleType> {
    keys: Keys,
    rows: Rows<T>,
}

enum Rows<T: SampleType> {
    /// Nothing yet: the first sample decides.
    Empty,
    Columns(T::Builder),
    Deferred(Vec<Deferred>),
    /// The rest of a shard of large samples, for the consumer to read (no rows yet).
    Streamed(ShardReader),
}

/// A shard read by the consumer: its reader, and memory for what a payload's decoding needs
/// whole.
struct Streamed {
    samples: ShardReader,
    spill: Vec<u8>,
}

impl<T: SampleType> Keyed<T> {
    fn empty() -> Keyed<T> {
        Keyed {
            keys: Keys::new(),
            rows: Rows::Empty,
        }
    }

    fn rows(&self) -> usize {
        self.keys.len()
    }

    fn split_off(&mut self, at: usize) -> Keyed<T> {
        let keys = self.keys.split_off(at);
        let rows = match &mut self.rows {
            Rows::Empty => Rows::Empty,
            Rows::Columns(builder) => Rows::Columns(builder.split_off(at)),
            Rows::Deferred(payloads) => Rows::Deferred(payloads.split_off(at.min(payloads.len()))),
            Rows::Streamed(_) => Rows::Empty,
        };
        Keyed { keys, rows }
    }
}

/// A batch being built where it is handed out: whole columns joined, rows added one at a time.
pub(crate) struct Building<T: SampleType> {
    keys: Keys,
    builder: T::Builder,
}

impl<T: SampleType> Building<T> {
    /// Empty columns for a batch of `size`.
    pub(crate) fn new(context: &T::Context, size: usize) -> Building<T> {
        let room = size.min(ROOM_AHEAD);
        Building {
            keys: Keys::with_capacity(room, 0),
            builder: T::Builder::with_capacity(context, room),
        }
    }

    /// Adds a row: a deferred payload is decoded into the columns, a located one read into
    /// them. On an error (naming the shard and key) the rows are as before.
    pub(crate) fn add(&mut self, context: &T::Context, key: &str, row: Row<T>) -> Result<()> {
        match row {
            Row::Decoded(sample) => self.builder.push(sample),
            Row::Deferred(payload) => {
                decode_member(&payload.shard, key, Some(payload.payload()), |bytes| {
                    self.builder.decode_into(context, bytes)
                })?
            }
            Row::Located(located) => {
                return self.add_located(context, key, &located, &mut Vec::new())?;
            }
        }
        self.keys.push(key);
        Ok(())
    }

    /// Reads a located row into the columns (`spill` holding what must be read whole): an
    /// error when the read fails, otherwise the decoding's outcome (on an error the rows are
    /// as before).
    pub(crate) fn add_located(
        &mut self,
        context: &T::Context,
        key: &str,
        located: &Located,
        spill: &mut Vec<u8>,
    ) -> Result<Result<()>> {
        let decoded = located.read_into::<T>(context, &mut self.builder, spill)?;
        Ok(decoded.map(|()| self.keys.push(key)))
    }

    /// Reads the next sample of a shard read here, its payload decoded into the columns as it
    /// streams in (array elements from the shard to their place in the batch); `None` at the
    /// shard's end. Errors are the per-sample path's, in its order (naming the shard and key),
    /// the rows then as before.
    fn add_streamed(&mut self, context: &T::Context, shard: &mut Streamed) -> Option<Result<()>> {
        let rows = self.rows();
        let Streamed { samples, spill } = shard;
        let mut decoded = None;
        let read = samples.advance_streaming("msgpack", &mut |_, head, rest, len| {
            decoded = Some(
                self.builder
                    .decode_streaming(context, head, rest, len, spill),
            );
        });
        if let Err(e) = read? {
            // A sample found not to be one after its payload was decoded.
            drop(self.builder.split_off(rows));
            return Some(Err(e));
        }
        let key = samples.sample().key;
        Some(match decoded {
            Some(Ok(())) => {
                self.keys.push(key);
                Ok(())
            }
            Some(Err(source)) => Err(Error::Decode {
                shard: samples.shard().to_owned(),
                key: key.to_owned(),
                source,
            }),
            None => decode_member(samples.shard(), key, None, |_| Ok(())),
        })
    }

    fn rows(&self) -> usize {
        self.keys.len()
    }

    fn split_off(&mut self, at: usize) -> Building<T> {
        Building {
            keys: self.keys.split_off(at),
            builder: self.builder.split_off(at),
        }
    }

    /// Moves `other`'s rows onto the end of these.
    fn append(&mut self, other: Building<T>) {
        self.keys.append(other.keys);
        self.builder.append(other.builder);
    }

    pub(crate) fn finish(self, context: &T::Context) -> Result<T::Batch> {
        self.builder
            .finish(context, self.keys)
            .map_err(Error::Batch)
    }
}

impl<T: SampleType> Gather for BatchColumns<T> {
    type Chunk = Keyed<T>;

    fn chunk(&self) -> Keyed<T> {
        Keyed::empty()
    }

    fn push(&self, samples: &mut Grouper<'_>, chunk: &mut Keyed<T>) -> Result<()> {
        let sample = samples.sample();
        if matches!(chunk.rows, Rows::Empty) {
            let large = sample
                .member("msgpack")
                .is_some_and(|p| p.len() >= DEFERRED_BYTES);
            chunk.rows = if !large && sample.len().saturating_mul(self.batch) <= COLUMN_BATCH_BYTES
            {
                // Keys of a shard are usually as long as each other.
                chunk
                    .keys
                    .reserve(self.batch, self.batch * sample.key.len());
                Rows::Columns(T::Builder::with_capacity(&self.context, self.batch))
            } else {
                Rows::Deferred(Vec::new())
            };
        }
        match &mut chunk.rows {
            Rows::Columns(builder) => {
                decode_member(
                    samples.shard(),
                    sample.key,
                    sample.member("msgpack"),
                    |payload| builder.decode_into(&self.context, payload),
                )?;
                chunk.keys.push(sample.key);
            }
            Rows::Deferred(payloads) => {
                let Some(len) = sample.member("msgpack").map(<[u8]>::len) else {
                    return decode_member(samples.shard(), sample.key, None, |_| Ok(()));
                };
                chunk.keys.push(sample.key);
                let spare = self.spares.take(len);
                let bytes = samples.take_member("msgpack", spare).unwrap_or_default();
                payloads.push(Deferred::whole(samples.shard(), bytes, &self.spares));
            }
            Rows::Empty | Rows::Streamed(_) => chunk.keys.push(sample.key),
        }
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

    /// A shard whose first sample is large is read by the consumer.
    fn hand_over(&self, chunk: &Keyed<T>, samples: ShardReader) -> Result<Keyed<T>, ShardReader> {
        match &chunk.rows {
            Rows::Deferred(payloads)
                if payloads.iter().any(|p| p.payload().len() >= DEFERRED_BYTES) =>
            {
                Ok(Keyed {
                    keys: Keys::new(),
                    rows: Rows::Streamed(samples),
                })
            }
            _ => Err(samples),
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
/// assert_eq!(&first.keys()[1], "000002");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::TarWriter;
    use atdata_codec::Packable;
    use atdata_derive::packable;

    #[packable(crate = "atdata_codec")]
    struct Blob {
        bytes: Vec<u8>,
    }

    #[test]
    fn spares_are_handed_out_by_size_and_kept_within_their_bound() {
        let spares = Spares::default();
        let mut used = vec![1u8; 1000];
        used.shrink_to_fit();
        spares.give(used);
        // Too small a request for it (it would keep 1000 bytes for 400): none, and the spare is
        // freed, so that the spares follow the sizes read.
        assert_eq!(spares.take(400).capacity(), 0);
        assert_eq!(spares.0.lock().unwrap().1, 0);
        spares.give(Vec::with_capacity(1000));
        let taken = spares.take(800);
        assert_eq!(taken.capacity(), 1000);
        assert_eq!(
            spares.take(800).capacity(),
            0,
            "each spare is handed out once"
        );
        // Their bytes, together, stay within the bound.
        for _ in 0..3 {
            spares.give(Vec::with_capacity(SPARE_BYTES / 2));
        }
        let (buffers, kept) = &*spares.0.lock().unwrap();
        assert_eq!((buffers.len(), *kept), (2, SPARE_BYTES));
    }

    #[test]
    fn large_payloads_are_deferred_and_small_ones_decoded() {
        let mut w = TarWriter::new(Vec::new());
        for (key, len) in [
            ("small", 100),
            ("below", DEFERRED_BYTES - 100),
            ("large", DEFERRED_BYTES),
        ] {
            w.write(
                &Blob {
                    bytes: vec![7; len],
                }
                .as_wds(key),
            )
            .unwrap();
        }
        let shard = w.finish().unwrap();
        let mut samples = Grouper::new(&shard[..], "s.tar".into(), u64::MAX);
        let gather = ShuffledRows::<Blob>::new(Arc::new(()), Box::new(|_| None));
        let mut rows = Vec::new();
        while let Some(read) = samples.advance() {
            read.unwrap();
            gather.push(&mut samples, &mut rows).unwrap();
        }
        // A payload is its field's bytes and a dozen of msgpack's.
        let kinds: Vec<(&str, bool)> = rows
            .iter()
            .map(|(key, row)| (key.as_str(), matches!(row, Row::Deferred(_))))
            .collect();
        assert_eq!(kinds, [("small", false), ("below", false), ("large", true)]);
        let mut batch = Building::<Blob>::new(&(), 3);
        for (key, row) in rows {
            batch.add(&(), &key, row).unwrap();
        }
        let batch = batch.finish(&()).unwrap();
        assert_eq!(batch.keys(), ["small", "below", "large"]);
        assert_eq!(batch.bytes[2].len(), DEFERRED_BYTES);
    }
}
