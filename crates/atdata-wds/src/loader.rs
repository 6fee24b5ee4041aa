//! `Dataset::loader`: one rank's batches of an epoch in the elastic order (`order.rs`), read
//! a block at a time by one thread per lane, with a resumable state.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

use atdata_codec::SampleType;
use serde::{Deserialize, Serialize};

use crate::access::compressed;
use crate::batches::{Building, KeyedRows, Row, Spares};
use crate::dataset::Dataset;
use crate::error::{Error, Result, panic_message};
use crate::opener::{LocalOpener, ShardOpener};
use crate::order::{Block, Order, OrderParams, fingerprint, permute};
use crate::writer::gzip_name;

/// Partitions when [`LoaderOptions::partitions`] is 0: world sizes 1, 2, 4 and 8 divide it.
pub const DEFAULT_PARTITIONS: usize = 8;
/// Samples per shuffle block when [`LoaderOptions::shuffle_block`] is 0.
pub const DEFAULT_SHUFFLE_BLOCK: usize = 1024;
/// The most partitions a loader takes: each of a rank's partitions has its own thread.
pub const MAX_PARTITIONS: usize = 1024;
/// The [`LoaderState`] format this library writes and reads.
const STATE_VERSION: u32 = 1;

/// What [`Dataset::loader`] reads: the global batch, the order (seed, epoch and the order
/// parameters), this process's rank, and a state to resume from. Zero means the default for
/// `world_size` (1), `partitions` and `shuffle_block`; `global_batch` must be set.
///
/// ```
/// let options = atdata_wds::LoaderOptions { global_batch: 64, seed: Some(7), ..Default::default() };
/// assert_eq!((options.rank, options.world_size, options.partitions), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoaderOptions {
    /// Samples per global batch, over all ranks; a multiple of the world size.
    pub global_batch: usize,
    /// The shuffle seed (the same on every rank); `None` reads in `ordered()`'s order.
    pub seed: Option<u64>,
    /// The epoch, which changes the shuffled order. Ignored when resuming: the state has it.
    pub epoch: u64,
    /// This process's rank, below `world_size`.
    pub rank: usize,
    /// Ranks reading the dataset together (0 means 1); it must divide `partitions`.
    pub world_size: usize,
    /// Where to continue: a [`Loader::state`] saved with a checkpoint.
    pub resume: Option<LoaderState>,
    /// Partitions of the sample space (0: [`DEFAULT_PARTITIONS`]; at most
    /// [`MAX_PARTITIONS`]); each rank reads `partitions / world_size` of them, on a thread
    /// each, so any world size that divides it reads the same order. Part of the order: keep
    /// it when the world size changes.
    pub partitions: usize,
    /// Samples per shuffle block (0: [`DEFAULT_SHUFFLE_BLOCK`]): each partition is permuted a
    /// block at a time, and a rank holds up to two decoded blocks per partition it reads.
    pub shuffle_block: usize,
    /// Leaves a last short batch out (otherwise it is kept when it has at least one sample
    /// per partition).
    pub drop_last: bool,
}

/// Where a [`Loader`] is in its epochs: the global batches yielded so far (not those read
/// ahead), with what fixes the order, so that [`LoaderOptions::resume`] continues with the
/// next batch on any fitting world size, and refuses a state from another dataset or order.
/// Serializable (JSON, msgpack, ...) to save beside a checkpoint.
///
/// ```
/// # use atdata_codec::Packable;
/// # use atdata_derive::packable;
/// # #[packable(crate = "atdata_codec")]
/// # struct Row { id: i64 }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let mut w = atdata_wds::TarWriter::create(dir.path().join("rows.tar"))?;
/// # for id in 0..32 { w.write(&Row { id }.as_wds(&format!("{id:06}")))?; }
/// # w.finish()?.close()?;
/// let ds = atdata_wds::Dataset::<Row>::new(dir.path().join("rows.tar"))?;
/// let options = atdata_wds::LoaderOptions { global_batch: 8, seed: Some(1), ..Default::default() };
/// let mut loader = ds.loader(options.clone())?;
/// loader.next().unwrap()?;
/// let state = loader.state();
/// assert_eq!((state.epoch(), state.batches()), (0, 1));
///
/// let resumed = ds.loader(atdata_wds::LoaderOptions { resume: Some(state), ..options })?;
/// assert_eq!(resumed.len(), 3);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    version: u32,
    fingerprint: String,
    seed: Option<u64>,
    epoch: u64,
    global_batch: usize,
    partitions: usize,
    shuffle_block: usize,
    drop_last: bool,
    batches: u64,
}

impl LoaderState {
    /// The epoch the batches were counted in.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Global batches of the epoch yielded so far.
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// The first field that differs from `other`'s, besides the position: its name, this
    /// state's value and `other`'s.
    fn mismatch(&self, other: &LoaderState) -> Option<(&'static str, String, String)> {
        const NAMES: [&str; 7] = [
            "format version",
            "dataset fingerprint",
            "seed",
            "global batch",
            "partitions",
            "shuffle block",
            "drop last",
        ];
        let shown = |s: &LoaderState| {
            [
                s.version.to_string(),
                s.fingerprint.clone(),
                format!("{:?}", s.seed),
                s.global_batch.to_string(),
                s.partitions.to_string(),
                s.shuffle_block.to_string(),
                s.drop_last.to_string(),
            ]
        };
        NAMES
            .into_iter()
            .zip(shown(self))
            .zip(shown(other))
            .find(|((_, a), b)| a != b)
            .map(|((name, a), b)| (name, a, b))
    }
}

/// One rank's batches of one epoch ([`Dataset::loader`]): an iterator of `T::Batch` with its
/// length known ([`ExactSizeIterator`]: the batches left) and its place ([`state`](Self::state)).
///
/// With a seed, each of the rank's partitions is read by its own thread (without one, a
/// thread reads the rank's slices), a block ahead of the batches; memory holds at most two
/// decoded blocks per thread and a read of up to 16 MiB.
/// A sample that does not decode makes its batch an error item (the batch is counted and the
/// loader goes on); a shard that cannot be read ends the loader after an error item, and
/// [`state`](Self::state) then resumes at that batch. Dropping the loader stops and joins its
/// threads.
///
/// ```
/// # use atdata_codec::Packable;
/// # use atdata_derive::packable;
/// # #[packable(crate = "atdata_codec")]
/// # struct Row { id: i64 }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let mut w = atdata_wds::TarWriter::create(dir.path().join("rows.tar"))?;
/// # for id in 0..64 { w.write(&Row { id }.as_wds(&format!("{id:06}")))?; }
/// # w.finish()?.close()?;
/// use atdata_wds::{Dataset, LoaderOptions};
/// let ds = Dataset::<Row>::new(dir.path().join("rows.tar"))?;
/// let options = |rank| LoaderOptions { global_batch: 16, seed: Some(7), rank, world_size: 2, ..Default::default() };
/// let (rank0, rank1) = (ds.loader(options(0))?, ds.loader(options(1))?);
/// assert_eq!((rank0.len(), rank1.len()), (4, 4));
/// let mut seen = Vec::new();
/// for (a, b) in rank0.zip(rank1) {
///     let (a, b) = (a?, b?);
///     assert_eq!((a.len(), b.len()), (8, 8)); // each rank's half of a global batch
///     seen.extend(a.id.iter().chain(&b.id).copied());
/// }
/// seen.sort();
/// assert_eq!(seen, (0..64).collect::<Vec<_>>());
/// # Ok(()) }
/// ```
pub struct Loader<T: SampleType, O = LocalOpener> {
    order: Arc<Order>,
    state: LoaderState,
    lanes: Vec<Lane<T>>,
    context: Arc<T::Context>,
    stopped: bool,
    /// What a large sample's decoding needs in memory whole (its fields after an array).
    spill: Vec<u8>,
    opener: PhantomData<fn() -> O>,
}

/// One partition of the rank: its reading thread and the block being taken from.
struct Lane<T> {
    lane: u64,
    current: std::vec::IntoIter<Result<(String, Row<T>)>>,
    blocks: Receiver<Result<KeyedRows<T>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl<T: SampleType, O: ShardOpener> Dataset<T, O> {
    /// This rank's batches of one epoch, in an order fixed by the dataset (its shard URLs and
    /// counts), `seed`, `epoch`, `global_batch` and the order parameters, whatever the world
    /// size: global batch `b` is the `b`-th run of `global_batch` samples of that order, and
    /// rank `r` of `R` gets its `r`-th slice of `global_batch / R` samples, read from the
    /// partitions it owns (about `1/R` of the bytes). Every rank yields the same number of
    /// batches. See `docs/datasets.md` ("The loader") for the order's definition.
    ///
    /// Needs uncompressed shards with sample counts (sidecars, or the counts an index
    /// recorded; missing sidecars are built from headers). Errors before any batch: a split
    /// dataset (the loader splits), `global_batch` 0 or not a multiple of the world size, a
    /// world size that does not divide `partitions`, a rank out of range
    /// ([`Error::BadLoaderOptions`]); a `resume` state of another dataset or order
    /// ([`Error::LoaderStateMismatch`]); a shard named as compressed ([`Error::NoRandomAccess`]).
    /// A state at the end of its epoch starts the next.
    pub fn loader(&self, options: LoaderOptions) -> Result<Loader<T, O>> {
        let bad = |reason: String| Err(Error::BadLoaderOptions { reason });
        if self.rank != (0, 1) || self.worker != (0, 1) {
            return bad("the dataset is already split: call loader() on the whole dataset, with rank and world_size".into());
        }
        let world = options.world_size.max(1);
        let partitions = or_default(options.partitions, DEFAULT_PARTITIONS);
        let shuffle_block = or_default(options.shuffle_block, DEFAULT_SHUFFLE_BLOCK);
        let b = options.global_batch;
        if b == 0 {
            return bad("global_batch is 0".into());
        }
        if partitions > MAX_PARTITIONS {
            return bad(format!("{partitions} partitions: at most {MAX_PARTITIONS}"));
        }
        if options.rank >= world {
            return bad(format!("rank {} of world size {world}", options.rank));
        }
        if !partitions.is_multiple_of(world) {
            return bad(format!(
                "world size {world} does not divide the {partitions} partitions"
            ));
        }
        if !b.is_multiple_of(world) {
            return bad(format!(
                "global batch {b} is not a multiple of world size {world}"
            ));
        }
        if let Some(shard) = self.shards.iter().find(|s| gzip_name(s)) {
            return Err(compressed(shard));
        }
        let counts = self.shard_counts()?;
        let mut state = LoaderState {
            version: STATE_VERSION,
            fingerprint: fingerprint(&self.shards, &counts),
            seed: options.seed,
            epoch: options.epoch,
            global_batch: b,
            partitions,
            shuffle_block,
            drop_last: options.drop_last,
            batches: 0,
        };
        let order_of = |epoch| {
            Order::new(
                &counts,
                OrderParams {
                    global_batch: b as u64,
                    partitions: partitions as u64,
                    lanes: if options.seed.is_some() {
                        partitions
                    } else {
                        world
                    } as u64,
                    shuffle_block: shuffle_block as u64,
                    drop_last: options.drop_last,
                    seed: options.seed,
                    epoch,
                },
            )
        };
        let order = match &options.resume {
            None => order_of(state.epoch),
            Some(saved) => {
                if let Some((field, saved_value, value)) = saved.mismatch(&state) {
                    return Err(Error::LoaderStateMismatch {
                        field,
                        state: saved_value,
                        loader: value,
                    });
                }
                let order = order_of(saved.epoch);
                let total = order.batches();
                if saved.batches > total {
                    return Err(Error::LoaderStateMismatch {
                        field: "batches",
                        state: saved.batches.to_string(),
                        loader: format!("at most {total}"),
                    });
                }
                if saved.batches < total {
                    (state.epoch, state.batches) = (saved.epoch, saved.batches);
                    order
                } else {
                    // At the end of its epoch: the next one, from its start.
                    state.epoch = saved
                        .epoch
                        .checked_add(1)
                        .ok_or(Error::LoaderStateMismatch {
                            field: "epoch",
                            state: saved.epoch.to_string(),
                            loader: "one with a next epoch".into(),
                        })?;
                    order_of(state.epoch)
                }
            }
        };
        let order = Arc::new(order);
        let per_rank = order.lanes() / world as u64;
        let first = options.rank as u64 * per_rank;
        let lanes = (first..first + per_rank)
            .map(|q| self.start_lane(&order, q, order.lane_position(q, state.batches)))
            .collect::<Result<_>>()?;
        Ok(Loader {
            order,
            state,
            lanes,
            context: self.context.clone(),
            stopped: false,
            spill: Vec::new(),
            opener: PhantomData,
        })
    }

    /// Starts lane `q`'s thread at its sample `from`.
    fn start_lane(&self, order: &Arc<Order>, q: u64, from: u64) -> Result<Lane<T>> {
        let (tx, rx) = sync_channel(0);
        let (dataset, order) = (self.clone(), order.clone());
        let thread = thread::Builder::new()
            .name("atdata-loader".into())
            .spawn(move || read_lane(&dataset, &order, q, from, &tx))
            .map_err(|e| Error::io("starting a loader thread", e))?;
        Ok(Lane {
            lane: q,
            current: Vec::new().into_iter(),
            blocks: rx,
            thread: Some(thread),
        })
    }
}

fn or_default(value: usize, default: usize) -> usize {
    if value == 0 { default } else { value }
}

/// Reads lane `q`'s blocks from its sample `from` on into `tx`, each permuted; stops after
/// an error or when the loader is gone.
fn read_lane<T: SampleType, O: ShardOpener>(
    dataset: &Dataset<T, O>,
    order: &Order,
    q: u64,
    from: u64,
    tx: &SyncSender<Result<KeyedRows<T>>>,
) {
    let block_len = order.block_len();
    let mut skip = (from % block_len) as usize;
    let mut buf = Vec::new();
    // The lane's reads, back from the payloads they were shared by, for its next reads.
    let spares = Arc::default();
    for i in from / block_len..order.lane_blocks(q) {
        let read = read_block(dataset, order.block(q, i), &mut buf, &spares).map(|mut decoded| {
            decoded.drain(..skip.min(decoded.len()));
            decoded
        });
        skip = 0;
        let failed = read.is_err();
        if tx.send(read).is_err() || failed {
            return;
        }
    }
}

/// A block's samples, read into `buf` piece by piece (large samples' payloads deferred, their
/// bytes then taken from `spares`), then permuted.
fn read_block<T: SampleType, O: ShardOpener>(
    dataset: &Dataset<T, O>,
    block: Block,
    buf: &mut Vec<u8>,
    spares: &Arc<Spares>,
) -> Result<KeyedRows<T>> {
    let mut decoded = Vec::new();
    for (k, samples) in block.pieces {
        decoded.extend(dataset.read_run(k, samples, buf, spares)?);
    }
    if let Some(mut rng) = block.shuffle {
        permute(&mut decoded, &mut rng);
    }
    Ok(decoded)
}

impl<T: SampleType> Lane<T> {
    /// The lane's next sample: `Err` when its block could not be read.
    fn next_sample(&mut self) -> Result<Result<(String, Row<T>)>> {
        loop {
            if let Some(sample) = self.current.next() {
                return Ok(sample);
            }
            match self.blocks.recv() {
                Ok(Ok(block)) => self.current = block.into_iter(),
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    let joined = self.thread.take().map_or(Ok(()), thread::JoinHandle::join);
                    let message = match joined {
                        Err(payload) => panic_message(&*payload),
                        Ok(()) => "the reading thread stopped early".into(),
                    };
                    return Err(Error::ReaderPanicked {
                        shard: format!("loader partition {}", self.lane),
                        message,
                    });
                }
            }
        }
    }
}

impl<T> Drop for Lane<T> {
    fn drop(&mut self) {
        // A closed queue makes the thread's next send fail, and it returns.
        drop(std::mem::replace(&mut self.blocks, sync_channel(0).1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<T: SampleType, O> Loader<T, O> {
    /// Where the loader is: the global batches yielded so far this epoch (an error item
    /// counts when its batch was read; a failed read does not, so resuming retries it).
    pub fn state(&self) -> LoaderState {
        self.state.clone()
    }

    /// The epoch being read.
    pub fn epoch(&self) -> u64 {
        self.state.epoch
    }
}

impl<T: SampleType, O> Iterator for Loader<T, O> {
    type Item = Result<T::Batch>;

    fn next(&mut self) -> Option<Result<T::Batch>> {
        let b = self.state.batches;
        if self.stopped || b >= self.order.batches() {
            return None;
        }
        let len: u64 = self.lanes.iter().map(|l| self.order.share(l.lane, b)).sum();
        let context = &*self.context;
        let mut batch = Building::new(context, usize::try_from(len).unwrap_or(usize::MAX));
        let mut bad = None;
        for lane in &mut self.lanes {
            for _ in 0..self.order.share(lane.lane, b) {
                match lane.next_sample() {
                    // Once the batch is an error, the rest is only drawn, not decoded.
                    Ok(Ok(_)) if bad.is_some() => {}
                    // A large sample left in its shard is read here, straight into the batch;
                    // a failed read stops the loader as a failed block read does.
                    Ok(Ok((key, Row::Located(located)))) => {
                        match batch.add_located(context, &key, &located, &mut self.spill) {
                            Ok(decoded) => bad = decoded.err(),
                            Err(e) => {
                                self.stopped = true;
                                return Some(Err(e));
                            }
                        }
                    }
                    Ok(Ok((key, row))) => bad = batch.add(context, &key, row).err(),
                    Ok(Err(e)) => {
                        bad.get_or_insert(e);
                    }
                    Err(e) => {
                        self.stopped = true;
                        return Some(Err(e));
                    }
                }
            }
        }
        self.state.batches += 1;
        if let Some(e) = bad {
            return Some(Err(e));
        }
        Some(batch.finish(context))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.stopped {
            0
        } else {
            self.order.batches() - self.state.batches
        };
        let left = usize::try_from(left).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl<T: SampleType, O> ExactSizeIterator for Loader<T, O> {}
