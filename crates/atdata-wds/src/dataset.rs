//! `Dataset<T>`: typed samples and batches from a set of shards.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use atdata_codec::{DynamicSample, SampleType, Schema, WdsSample};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::access::{Access, ShardFacts};
use crate::batches::{BatchColumns, Batches, ShuffledRows};
use crate::error::{Error, Result};
use crate::opener::{LocalOpener, ShardOpener};
use crate::pipeline::{Gather, Items, MapFn, Pipeline};
use crate::reader::{DEFAULT_MAX_MEMBER_BYTES, Sample};
use crate::urls::expand_urls;

/// How [`Dataset::shuffled`] and [`Dataset::shuffled_samples`] shuffle: the shard order, then a
/// buffer of samples, both from seeded generators.
///
/// The order depends only on the seed, the epoch ([`Dataset::set_epoch`]), the split and the
/// shards: not on the number of threads or on timing.
///
/// ```
/// let opts = atdata_wds::ShuffleOptions::seeded(7);
/// assert_eq!((opts.seed, opts.buffer_samples), (7, 10_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShuffleOptions {
    /// The seed. Use the same seed on every rank, so ranks agree on each epoch's shard order.
    pub seed: u64,
    /// Samples held in the shuffle buffer (default 10,000, as Python atdata). It holds decoded
    /// samples: lower it for large samples.
    pub buffer_samples: usize,
}

impl ShuffleOptions {
    /// Options with `seed` and the default buffer.
    pub fn seeded(seed: u64) -> ShuffleOptions {
        ShuffleOptions {
            seed,
            buffer_samples: 10_000,
        }
    }
}

impl Default for ShuffleOptions {
    /// Seed 0.
    fn default() -> Self {
        ShuffleOptions::seeded(0)
    }
}

/// A WebDataset read as typed samples: a `#[packable]` type, or [`DynamicSample`] with a
/// schema.
///
/// - The URL is brace-expanded into shards ([`expand_urls`]); constructors do no I/O.
/// - [`samples`](Self::samples) and [`ordered`](Self::ordered) read shards in order and samples
///   in tar order; [`shuffled_samples`](Self::shuffled_samples) and
///   [`shuffled`](Self::shuffled) shuffle reproducibly ([`ShuffleOptions`]).
/// - [`split`](Self::split) and [`worker_split`](Self::worker_split) give each rank and worker
///   a disjoint share of the shards: together they read every sample once per epoch.
/// - [`loader`](Self::loader) is the distributed-training path: equal batches on every rank,
///   one order whatever the world size, and an exact mid-epoch resume.
/// - Shards are read and decoded on background threads, a few shards ahead, with bounded
///   queues: memory does not grow with the dataset. Iteration is a plain blocking `Iterator`,
///   usable from `main` or inside an async runtime.
/// - Errors are items: a bad sample or a broken shard yields an `Err` naming the shard (and the
///   sample or member) after everything intact before it, and iteration continues with what
///   follows.
///
/// Shards are opened through `O` ([`LocalOpener`] by default: local paths and `file://`).
///
/// ```
/// use atdata_codec::{Packable, SampleBatch};
/// # use atdata_derive::packable;
/// use atdata_wds::{Dataset, ShuffleOptions, TarWriter};
///
/// #[packable(crate = "atdata_codec")]
/// struct Row { id: i64 }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// for shard in 0..2 {
///     let mut w = TarWriter::create(dir.path().join(format!("rows-{shard}.tar")))?;
///     for i in 0..5 {
///         w.write(&Row { id: shard * 5 + i }.as_wds(&format!("{shard}-{i}")))?;
///     }
///     w.finish()?.close()?;
/// }
/// let ds = Dataset::<Row>::new(dir.path().join("rows-{0..1}.tar").to_str().unwrap())?;
/// let batches: Vec<SampleBatch<Row>> = ds.ordered(4)?.collect::<Result<_, _>>()?;
/// assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), [4, 4, 2]);
/// assert_eq!(batches[1].id, [4, 5, 6, 7]);
///
/// let shuffled: Vec<i64> = ds.shuffled_samples(ShuffleOptions::seeded(7))?.map(|r| r.map(|r| r.id)).collect::<Result<_, _>>()?;
/// let again: Vec<i64> = ds.shuffled_samples(ShuffleOptions::seeded(7))?.map(|r| r.map(|r| r.id)).collect::<Result<_, _>>()?;
/// assert_eq!(shuffled, again);
/// # Ok(())
/// # }
/// ```
pub struct Dataset<T: SampleType, O = LocalOpener> {
    pub(crate) url: String,
    pub(crate) shards: Vec<String>,
    pub(crate) opener: Arc<O>,
    pub(crate) context: Arc<T::Context>,
    pub(crate) rank: (usize, usize),
    pub(crate) worker: (usize, usize),
    epoch: u64,
    pub(crate) parallelism: usize,
    pub(crate) max_member: u64,
    /// Counts and sidecars learnt for random access, shared by clones and splits.
    pub(crate) access: Arc<Access>,
}

impl<T: SampleType, O> Clone for Dataset<T, O> {
    fn clone(&self) -> Self {
        Dataset {
            url: self.url.clone(),
            shards: self.shards.clone(),
            opener: self.opener.clone(),
            context: self.context.clone(),
            rank: self.rank,
            worker: self.worker,
            epoch: self.epoch,
            parallelism: self.parallelism,
            max_member: self.max_member,
            access: self.access.clone(),
        }
    }
}

impl<T: SampleType, O> std::fmt::Debug for Dataset<T, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("url", &self.url)
            .field("shards", &self.shards.len())
            .field("rank", &self.rank)
            .field("worker", &self.worker)
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// A path or URL as text: shard URLs are UTF-8 (an index stores them as strings).
fn utf8(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| Error::NonUtf8Path {
        path: path.to_string_lossy().into_owned(),
    })
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
}

impl<T: SampleType<Context = ()>, O: ShardOpener + Default> Dataset<T, O> {
    /// The dataset at `url`: a path (`&str`, `String`, `&Path`, `PathBuf`), `file://` URL or
    /// any URL the opener reads, with brace patterns (`data-{000000..000009}.tar`). Fails only
    /// on a malformed pattern, or a path that is not UTF-8 ([`Error::NonUtf8Path`]).
    pub fn new(url: impl AsRef<Path>) -> Result<Dataset<T, O>> {
        Dataset::build(utf8(url.as_ref())?, (), O::default())
    }
}

impl<O: ShardOpener + Default> Dataset<DynamicSample, O> {
    /// The dataset at `url`, decoded by `schema` (a record read back from an index, say).
    pub fn with_schema(url: impl AsRef<Path>, schema: Schema) -> Result<Dataset<DynamicSample, O>> {
        Dataset::build(utf8(url.as_ref())?, schema, O::default())
    }
}

impl<T: SampleType, O: ShardOpener> Dataset<T, O> {
    /// The dataset at `url` decoded with `context` (what [`SampleType::context_for`] gives
    /// for a stored schema), reading through `opener`.
    pub fn with_context(
        url: impl AsRef<Path>,
        context: T::Context,
        opener: O,
    ) -> Result<Dataset<T, O>> {
        Dataset::build(utf8(url.as_ref())?, context, opener)
    }

    fn build(url: &str, context: T::Context, opener: O) -> Result<Dataset<T, O>> {
        let shards = expand_urls(url)?;
        Ok(Dataset {
            url: url.to_owned(),
            access: Arc::new(Access::new(&shards, &HashMap::new())),
            shards,
            opener: Arc::new(opener),
            context: Arc::new(context),
            rank: (0, 1),
            worker: (0, 1),
            epoch: 0,
            parallelism: default_parallelism(),
            max_member: DEFAULT_MAX_MEMBER_BYTES,
        })
    }

    /// The same dataset, opening shards with `opener` (a store's, for `s3://` URLs).
    pub fn with_opener<O2: ShardOpener>(self, opener: O2) -> Dataset<T, O2> {
        Dataset {
            url: self.url,
            shards: self.shards,
            opener: Arc::new(opener),
            context: self.context,
            rank: self.rank,
            worker: self.worker,
            epoch: self.epoch,
            parallelism: self.parallelism,
            max_member: self.max_member,
            access: self.access,
        }
    }

    /// The same sample type, decoding context and opener, reading `url` instead (a copy the
    /// dataset was written to, say). Fails only on a malformed pattern.
    pub fn with_url(&self, url: impl AsRef<Path>) -> Result<Dataset<T, O>> {
        let url = utf8(url.as_ref())?;
        let shards = expand_urls(url)?;
        Ok(Dataset {
            url: url.to_owned(),
            access: Arc::new(Access::new(&shards, &HashMap::new())),
            shards,
            ..self.clone()
        })
    }

    /// The same dataset, told what is known of its shards by URL (an index entry's sample
    /// counts and sizes; URLs not among its shards are ignored): [`len`](Self::len) then
    /// reads nothing for a counted shard, and a sidecar that disagrees is an error. Replaces
    /// facts given before; what was learnt from sidecars is read again.
    ///
    /// ```
    /// use atdata_wds::{Dataset, ShardFacts};
    /// # use atdata_derive::packable;
    /// # #[packable(crate = "atdata_codec")]
    /// # struct Row { id: i64 }
    /// let ds = Dataset::<Row>::new("a-{0..1}.tar")?
    ///     .with_shard_facts([("a-0.tar".to_owned(), ShardFacts { samples: Some(3), bytes: None }),
    ///                        ("a-1.tar".to_owned(), ShardFacts { samples: Some(4), bytes: None })]);
    /// assert_eq!(ds.len()?, 7); // no file is read
    /// # Ok::<(), atdata_wds::Error>(())
    /// ```
    pub fn with_shard_facts(
        mut self,
        facts: impl IntoIterator<Item = (String, ShardFacts)>,
    ) -> Dataset<T, O> {
        let facts: HashMap<String, ShardFacts> = facts.into_iter().collect();
        self.access = Arc::new(Access::new(&self.shards, &facts));
        self
    }

    /// What [`with_shard_facts`](Self::with_shard_facts) set, by URL.
    pub fn shard_facts(&self) -> HashMap<String, ShardFacts> {
        self.access.facts(&self.shards)
    }

    /// The URL as given (what an index stores).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The shard URLs this dataset reads in order: the expanded URL, restricted to this rank's
    /// and worker's share when split.
    pub fn shard_list(&self) -> Vec<String> {
        self.assigned(self.shards.clone())
    }

    /// The decoding context: `()` for typed samples, the schema for `DynamicSample`.
    pub fn context(&self) -> &T::Context {
        &self.context
    }

    /// The opener shards are read through.
    pub fn opener(&self) -> &O {
        &self.opener
    }

    /// This dataset restricted to rank `rank` of `world_size`: shard `i` of each epoch's shard
    /// order goes to rank `i % world_size` (combined with any worker split). Fails when a rank
    /// or worker would get no shard.
    pub fn split(&self, rank: usize, world_size: usize) -> Result<Dataset<T, O>> {
        let mut ds = self.clone();
        ds.rank = (rank, world_size);
        ds.check_split()?;
        Ok(ds)
    }

    /// This dataset restricted to data-loader worker `worker` of `num_workers`, within the rank.
    pub fn worker_split(&self, worker: usize, num_workers: usize) -> Result<Dataset<T, O>> {
        let mut ds = self.clone();
        ds.worker = (worker, num_workers);
        ds.check_split()?;
        Ok(ds)
    }

    fn check_split(&self) -> Result<()> {
        for (index, count) in [self.rank, self.worker] {
            if index >= count {
                return Err(Error::InvalidSplit { index, count });
            }
        }
        if self.shards.len() < self.rank.1 * self.worker.1 {
            return Err(Error::TooFewShards {
                shards: self.shards.len(),
                ranks: self.rank.1,
                workers: self.worker.1,
            });
        }
        Ok(())
    }

    /// Sets the epoch, which changes the shuffled order (ordered reads are unaffected).
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// Shards read and decoded at once, each on its own thread (default: the number of cores,
    /// between 2 and 8). The output order does not depend on it. The threads of every dataset
    /// in the process share its cores: at most one per core reads and decodes at a time.
    pub fn with_parallelism(mut self, shards: usize) -> Dataset<T, O> {
        self.parallelism = shards.max(1);
        self
    }

    /// Refuses shard members larger than `max` bytes (default 1 GiB) with an error naming the
    /// shard and member, before reading them: a member is held in memory whole, so this bounds
    /// what a lying or hostile header can cost (see [`crate::TarReader::with_max_member_bytes`]).
    pub fn with_max_member_bytes(mut self, max: u64) -> Dataset<T, O> {
        self.max_member = max;
        self
    }

    /// Selects this rank's and worker's shards from an epoch's shard order.
    pub(crate) fn assigned<U>(&self, order: Vec<U>) -> Vec<U> {
        let slots = self.rank.1 * self.worker.1;
        let slot = self.rank.0 * self.worker.1 + self.worker.0;
        order
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % slots == slot)
            .map(|(_, s)| s)
            .collect()
    }

    /// A generator for `stream` of this epoch and split, from `seed`.
    fn rng(&self, seed: u64, stream: u64, per_split: bool) -> ChaCha8Rng {
        let split = if per_split {
            (self.rank.0 * self.worker.1 + self.worker.0) as u64
        } else {
            0
        };
        let mut bytes = [0u8; 32];
        for (i, v) in [seed, self.epoch, stream, split].iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        ChaCha8Rng::from_seed(bytes)
    }

    /// Reads `shards` (each with where it starts, if known) through `gather`.
    fn pipeline<G: Gather>(&self, shards: Vec<(String, Option<u64>)>, gather: G) -> Pipeline<G> {
        let opener: Arc<dyn ShardOpener> = self.opener.clone();
        let threads = self.parallelism.min(crate::pipeline::cores());
        let units = self.units(shards, threads);
        Pipeline::new(units, opener, gather, self.parallelism, self.max_member)
    }

    /// This split's shards in order, each with where it starts in the split's samples while
    /// the counts before it are known without reading (from shard facts, or sidecars read
    /// already).
    fn shards_with_starts(&self) -> Vec<(String, Option<u64>)> {
        let mut start = Some(0u64);
        self.assigned((0..self.shards.len()).collect())
            .into_iter()
            .map(|k| {
                let here = start;
                start = start.zip(self.access.known_count(k)).map(|(s, n)| s + n);
                (self.shards[k].clone(), here)
            })
            .collect()
    }

    pub(crate) fn decoder(&self) -> MapFn<T> {
        let context = self.context.clone();
        Arc::new(move |shard: &str, sample: Sample<'_>| {
            decode_payload::<T>(&context, shard, sample.key, sample.member("msgpack"))
        })
    }

    fn keyed_decoder(&self) -> MapFn<(String, T)> {
        let decode = self.decoder();
        Arc::new(move |shard: &str, sample: Sample<'_>| {
            Ok((sample.key.to_owned(), decode(shard, sample)?))
        })
    }

    fn shuffled_shards(&self, seed: u64) -> Vec<String> {
        let mut order = self.shards.clone();
        let mut rng = self.rng(seed, 0, false);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        self.assigned(order)
    }

    /// Samples in order: shards in expansion order, samples in tar order. (`Result` for the
    /// API's shape: building the iterator does not fail; errors are its items. `for s in
    /// ds.samples()` without `?` loops over the `Result`, which rustc's
    /// `for_loops_over_fallibles` lint warns about.)
    #[must_use = "the samples are read only when the iterator is used (and it is inside the Result)"]
    pub fn samples(&self) -> Result<Samples<T>> {
        Ok(self.in_order(self.decoder()))
    }

    /// Samples in order with their `__key__`, as webdataset gives them.
    ///
    /// ```
    /// use atdata_codec::Packable;
    /// # use atdata_derive::packable;
    /// # #[packable(crate = "atdata_codec")]
    /// # struct Row { id: i64 }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("rows.tar");
    /// let mut w = atdata_wds::TarWriter::create(&path)?;
    /// w.write(&Row { id: 7 }.as_wds("row-7"))?;
    /// w.finish()?.close()?;
    /// let ds = atdata_wds::Dataset::<Row>::new(&path)?;
    /// let (key, row) = ds.samples_with_keys()?.next().unwrap()?;
    /// assert_eq!((key.as_str(), row.id), ("row-7", 7));
    /// # Ok(()) }
    /// ```
    #[must_use = "the samples are read only when the iterator is used (and it is inside the Result)"]
    pub fn samples_with_keys(&self) -> Result<Samples<(String, T)>> {
        Ok(self.in_order(self.keyed_decoder()))
    }

    /// Samples shuffled: each epoch's shard order, then a buffer of `buffer_samples`.
    #[must_use = "the samples are read only when the iterator is used (and it is inside the Result)"]
    pub fn shuffled_samples(&self, options: ShuffleOptions) -> Result<Samples<T>> {
        Ok(self.shuffled_by(options, Items(self.decoder())))
    }

    /// Every shard's samples in order, mapped by `map`.
    fn in_order<U: Send + 'static>(&self, map: MapFn<U>) -> Samples<U> {
        Samples::new(self.pipeline(unplaced(self.shard_list()), Items(map)), None)
    }

    /// This epoch's shard order, samples mapped by `map`, then the shuffle buffer.
    fn shuffled_by<G: Gather<Chunk = Vec<U>>, U: Send + 'static>(
        &self,
        options: ShuffleOptions,
        gather: G,
    ) -> Samples<U> {
        let pipeline = self.pipeline(unplaced(self.shuffled_shards(options.seed)), gather);
        let buffer = Shuffle::new(self.rng(options.seed, 1, true), options.buffer_samples);
        Samples::new(pipeline, Some(buffer))
    }

    /// Batches of `batch_size` samples in order, with their keys
    /// ([`SampleBatch::keys`](atdata_codec::SampleBatch::keys)); the last may be short, and
    /// batches span shard boundaries. A batch size of 0 is an error.
    #[must_use = "the batches are read only when the iterator is used (and it is inside the Result)"]
    pub fn ordered(&self, batch_size: usize) -> Result<Batches<T>> {
        let gather = BatchColumns::<T>::new(self.context.clone(), batch_size)?;
        let chunks = self.pipeline(self.shards_with_starts(), gather);
        Ok(Batches::from_columns(
            chunks,
            self.context.clone(),
            batch_size,
        ))
    }

    /// Batches of shuffled samples.
    #[must_use = "the batches are read only when the iterator is used (and it is inside the Result)"]
    pub fn shuffled(&self, batch_size: usize, options: ShuffleOptions) -> Result<Batches<T>> {
        let dataset = self.clone();
        // The pipeline names a shard by its URL; random access, by its place in the list.
        let position: HashMap<String, usize> = self.shards.iter().cloned().zip(0..).collect();
        let locate =
            Box::new(move |shard: &str| position.get(shard).and_then(|&k| dataset.located_runs(k)));
        let gather = ShuffledRows::<T>::new(self.context.clone(), locate);
        Batches::from_rows(
            self.shuffled_by(options, gather),
            self.context.clone(),
            batch_size,
        )
    }

    /// The raw samples, in order: each key and its members, undecoded (to copy a dataset and
    /// keep its keys, say).
    pub fn raw_samples(&self) -> Result<Samples<WdsSample>> {
        let identity: MapFn<WdsSample> =
            Arc::new(|_: &str, sample: Sample<'_>| Ok(sample.to_owned_sample()));
        Ok(self.in_order(identity))
    }

    /// The raw samples, in order, each first checked to decode as `T` (on the reading
    /// threads): one that does not is an error naming the shard, the key and the field, in its
    /// place. What an index insert copies, so that no entry indexes samples its schema cannot
    /// read.
    pub fn checked_raw_samples(&self) -> Result<Samples<WdsSample>> {
        let decode = self.decoder();
        let checked: MapFn<WdsSample> = Arc::new(move |shard: &str, sample: Sample<'_>| {
            decode(shard, sample)?;
            Ok(sample.to_owned_sample())
        });
        Ok(self.in_order(checked))
    }
}

/// Shards read without cutting at batches: where each starts does not matter.
fn unplaced(shards: Vec<String>) -> Vec<(String, Option<u64>)> {
    shards.into_iter().map(|s| (s, None)).collect()
}

/// A sample decoded from its `msgpack` member (`None`: it has none).
pub(crate) fn decode_payload<T: SampleType>(
    context: &T::Context,
    shard: &str,
    key: &str,
    payload: Option<&[u8]>,
) -> Result<T> {
    decode_member(shard, key, payload, |payload| T::decode(context, payload))
}

/// What `decode` makes of a sample's `msgpack` member (`None`: it has none), its errors
/// naming the shard and key.
pub(crate) fn decode_member<R>(
    shard: &str,
    key: &str,
    payload: Option<&[u8]>,
    decode: impl FnOnce(&[u8]) -> atdata_codec::Result<R>,
) -> Result<R> {
    let payload = payload.ok_or_else(|| Error::MissingMember {
        shard: shard.to_owned(),
        key: key.to_owned(),
        ext: "msgpack",
    })?;
    decode(payload).map_err(|source| Error::Decode {
        shard: shard.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// A seeded shuffle buffer.
struct Shuffle<U> {
    rng: ChaCha8Rng,
    buffer: Vec<U>,
    capacity: usize,
    draining: bool,
}

impl<U> Shuffle<U> {
    fn new(rng: ChaCha8Rng, capacity: usize) -> Shuffle<U> {
        Shuffle {
            rng,
            buffer: Vec::new(),
            capacity: capacity.max(1),
            draining: false,
        }
    }

    fn take(&mut self) -> Option<U> {
        if self.buffer.is_empty() {
            return None;
        }
        let k = self.rng.random_range(0..self.buffer.len());
        Some(self.buffer.swap_remove(k))
    }
}

/// An iterator of samples from a [`Dataset`], each `Ok` or an error in place.
pub struct Samples<U: Send + 'static> {
    read: Reading<U>,
    shuffle: Option<Shuffle<U>>,
}

impl<U: Send + 'static> Samples<U> {
    fn new<G: Gather<Chunk = Vec<U>>>(
        pipeline: Pipeline<G>,
        shuffle: Option<Shuffle<U>>,
    ) -> Samples<U> {
        Samples {
            read: Reading {
                pipeline: Box::new(pipeline),
                chunk: Vec::new().into_iter(),
            },
            shuffle,
        }
    }
}

/// The samples read, in shard order, a chunk at a time.
struct Reading<U: Send + 'static> {
    pipeline: Box<dyn Iterator<Item = Result<Vec<U>>> + Send>,
    chunk: std::vec::IntoIter<U>,
}

impl<U: Send + 'static> Iterator for Reading<U> {
    type Item = Result<U>;

    fn next(&mut self) -> Option<Result<U>> {
        loop {
            if let Some(item) = self.chunk.next() {
                return Some(Ok(item));
            }
            match self.pipeline.next()? {
                Ok(chunk) => self.chunk = chunk.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<U: Send + 'static> Iterator for Samples<U> {
    type Item = Result<U>;

    fn next(&mut self) -> Option<Result<U>> {
        let Some(shuffle) = &mut self.shuffle else {
            return self.read.next();
        };
        while !shuffle.draining && shuffle.buffer.len() < shuffle.capacity {
            match self.read.next() {
                Some(Ok(item)) => shuffle.buffer.push(item),
                Some(Err(e)) => return Some(Err(e)),
                None => shuffle.draining = true,
            }
        }
        shuffle.take().map(Ok)
    }
}
