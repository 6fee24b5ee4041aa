//! Random access and exact length: `Dataset::len`, `get`, `get_key`, through the shards'
//! sidecars (or the counts an index recorded).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use atdata_codec::{BatchBuilder, FillUninit, SampleType, UninitBuf};

use crate::batches::{DEFERRED_BYTES, Deferred, KeyedRows, Row, RowChunk, Spares};
use crate::dataset::{Dataset, decode_payload};
use crate::error::{Error, Result, panic_message};
use crate::opener::{ShardOpener, fill_from_file, read_exact_at};
use crate::pipeline::{Piece, Runs, Unit};
use crate::reader::{checksum_matches, header_path, header_size, lowercase_ext};
use crate::sidecar::{Entry, Sidecar, parse_head, scan, sidecar_url};
use crate::writer::gzip_name;

const BLOCK: u64 = 512;
/// The longest first line a sidecar can have (`v1.2 ` and a 20-digit count).
const HEAD_BYTES: u64 = 64;
/// The most bytes [`Dataset::read_run`] reads at once (more when one sample is larger): big
/// enough for ranged GETs at full speed, small enough to bound what a reading thread holds.
const RUN_BYTES: u64 = 16 << 20;
/// The fewest bytes of a shard a piece of it read on a thread of its own holds.
const PIECE_BYTES: u64 = 4 << 20;
/// Samples a shuffled read of a shard by its sidecar reads at a time
/// ([`Dataset::located_runs`]).
const LOCATED_RUN_SAMPLES: usize = 256;
/// Bytes of a [`Located`] sample's payload read with its header before it is decoded: enough
/// for its small fields and an array's header.
const LOCATED_HEAD_BYTES: usize = 4096;

/// A large sample of a shard that is a local file, left there until its batch is built: then
/// its payload is read by positioned reads of the file its partition opened, and decoded as it
/// streams in, its array elements going from the shard straight into the batch
/// ([`Located::read_into`]). The loader's partitions, and `shuffled`'s reads of shards by
/// their sidecars, hand these over instead of the payloads' bytes.
pub(crate) struct Located {
    file: Arc<File>,
    shard: Arc<str>,
    sidecar: Arc<Sidecar>,
    sample: usize,
}

impl Located {
    /// Reads the sample's payload into `builder` (`spill` holding what must be read whole),
    /// after its header is checked against the sidecar: an error when a read fails or the
    /// shard does not match its sidecar (as the read of a run would be), otherwise what the
    /// decoding gave (its errors naming the shard and key; the rows then as before).
    pub(crate) fn read_into<T: SampleType>(
        &self,
        context: &T::Context,
        builder: &mut T::Builder,
        spill: &mut Vec<u8>,
    ) -> Result<Result<()>> {
        let url = &*self.shard;
        let Some(entry) = self.sidecar.sample(self.sample).first() else {
            return Err(Error::SidecarMismatch {
                shard: url.to_owned(),
                reason: format!("it has no sample {}", self.sample),
            });
        };
        let head = usize::try_from(entry.size)
            .map_or(LOCATED_HEAD_BYTES, |size| size.min(LOCATED_HEAD_BYTES));
        let mut first = [0; BLOCK as usize + LOCATED_HEAD_BYTES];
        let first = &mut first[..BLOCK as usize + head];
        let failed = |e| past_end(url, entry.key(), entry.end(), e);
        read_exact_at(&self.file, first, entry.offset - BLOCK)
            .map_err(|e| failed(Error::io(url, e)))?;
        let Some((block, head)) = first.split_first_chunk::<{ BLOCK as usize }>() else {
            return Err(failed(Error::io(url, io::ErrorKind::UnexpectedEof.into())));
        };
        check_header(block, entry).map_err(|reason| Error::SidecarMismatch {
            shard: url.to_owned(),
            reason,
        })?;
        let mut rest = Positioned {
            file: &self.file,
            url,
            at: entry.offset + head.len() as u64,
            failed: None,
        };
        let left = entry.size as usize - head.len();
        let decoded = <T::Builder as BatchBuilder<T>>::decode_streaming(
            builder, context, head, &mut rest, left, spill,
        );
        if let Some(e) = rest.failed {
            return Err(failed(e));
        }
        Ok(decoded.map_err(|source| Error::Decode {
            shard: url.to_owned(),
            key: entry.key().to_owned(),
            source,
        }))
    }
}

/// A file read from an offset on, a positioned read at a time; a failed read is kept.
struct Positioned<'a> {
    file: &'a File,
    url: &'a str,
    at: u64,
    failed: Option<Error>,
}

impl Read for Positioned<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match read_exact_at(self.file, buf, self.at) {
            Ok(()) => {
                self.at += buf.len() as u64;
                Ok(buf.len())
            }
            Err(e) => {
                let kind = e.kind();
                self.failed.get_or_insert_with(|| Error::io(self.url, e));
                Err(kind.into())
            }
        }
    }
}

impl FillUninit for Positioned<'_> {
    fn fill_uninit(&mut self, buf: &mut UninitBuf<'_>) -> io::Result<()> {
        let n = buf.remaining() as u64;
        match fill_from_file(self.file, buf, Some(self.at)) {
            Ok(()) => {
                self.at += n;
                Ok(())
            }
            Err(e) => {
                let kind = e.kind();
                self.failed.get_or_insert_with(|| Error::io(self.url, e));
                Err(kind.into())
            }
        }
    }
}

/// What a failed read of sample `key` of shard `url` (ending at byte `end`) is: past the
/// shard's end, a shard that does not match its sidecar.
fn past_end(url: &str, key: &str, end: u64, e: Error) -> Error {
    match e {
        Error::Io { source, .. } if source.kind() == io::ErrorKind::UnexpectedEof => {
            Error::SidecarMismatch {
                shard: url.to_owned(),
                reason: format!("sample `{key}` ends at byte {end}, past the shard's end"),
            }
        }
        e => e,
    }
}

/// What is known of a shard without reading it (an index entry's `sample_counts` and
/// `shard_sizes`): with a count, [`Dataset::len`] reads nothing for the shard; both check its
/// sidecar when it is read.
///
/// ```
/// let facts = atdata_wds::ShardFacts { samples: Some(1_000), bytes: None };
/// assert_ne!(facts, atdata_wds::ShardFacts::default());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardFacts {
    /// Samples in the shard.
    pub samples: Option<u64>,
    /// The shard's size in bytes.
    pub bytes: Option<u64>,
}

/// What random access has learnt of a dataset's shards, shared by its clones and splits.
pub(crate) struct Access {
    facts: Vec<ShardFacts>,
    /// Counts read from sidecars' first lines.
    counts: Vec<OnceLock<u64>>,
    sidecars: Vec<OnceLock<Arc<Sidecar>>>,
    /// Per split (rank, ranks, worker, workers): its shards and their running sample counts.
    splits: Mutex<HashMap<[usize; 4], Arc<SplitIndex>>>,
}

impl Access {
    pub(crate) fn new(shards: &[String], facts: &HashMap<String, ShardFacts>) -> Access {
        Access {
            facts: shards
                .iter()
                .map(|s| facts.get(s).copied().unwrap_or_default())
                .collect(),
            counts: shards.iter().map(|_| OnceLock::new()).collect(),
            sidecars: shards.iter().map(|_| OnceLock::new()).collect(),
            splits: Mutex::new(HashMap::new()),
        }
    }

    /// Shard `k`'s sample count, if known without reading anything.
    pub(crate) fn known_count(&self, k: usize) -> Option<u64> {
        self.facts[k]
            .samples
            .or_else(|| self.counts[k].get().copied())
    }

    pub(crate) fn facts(&self, shards: &[String]) -> HashMap<String, ShardFacts> {
        shards
            .iter()
            .cloned()
            .zip(self.facts.iter().copied())
            .filter(|(_, f)| *f != ShardFacts::default())
            .collect()
    }
}

/// One split's shards (indices into the dataset's shard list) and where each one's samples
/// end in the split's order.
struct SplitIndex {
    shards: Vec<usize>,
    ends: Vec<u64>,
    /// Keys to (position in `shards`, sample in that shard), built on first use.
    keys: OnceLock<HashMap<Box<str>, (u32, u32)>>,
}

impl SplitIndex {
    fn len(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }
}

impl<T: SampleType, O: ShardOpener> Dataset<T, O> {
    /// The number of samples this dataset reads in an epoch (this rank's and worker's, when
    /// split), without decoding any: each shard's count from what an index recorded
    /// ([`with_shard_facts`](Self::with_shard_facts); `atdata::open_dataset` sets it), else from
    /// the first line of its sidecar, else by reading its headers once (no payload is decoded;
    /// a compressed shard is decompressed). Counts are kept for the dataset and its clones.
    ///
    /// ```
    /// # use atdata_codec::Packable;
    /// # use atdata_derive::packable;
    /// # #[packable(crate = "atdata_codec")]
    /// # struct Row { id: i64 }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let opts = atdata_wds::ShardOptions { maxcount: 4, ..Default::default() };
    /// let mut w = atdata_wds::ShardWriter::new(dir.path().join("rows-%02d.tar").to_str().unwrap(), opts)?;
    /// for id in 0..10 {
    ///     w.write_sample(&Row { id })?;
    /// }
    /// w.finish()?;
    /// let ds = atdata_wds::Dataset::<Row>::new(dir.path().join("rows-{00..02}.tar"))?;
    /// assert_eq!(ds.len()?, 10);
    /// assert_eq!(ds.get(9)?.id, 9);
    /// assert_eq!(ds.get_key("000004")?.id, 4);
    /// assert!(matches!(ds.get(10), Err(atdata_wds::Error::IndexOutOfRange { index: 10, len: 10 })));
    /// assert_eq!(ds.split(1, 2)?.len()?, 4); // rank 1 of 2 reads shard 1 (of 0, 1, 2)
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> Result<usize> {
        Ok(usize::try_from(self.split_index()?.len()).unwrap_or(usize::MAX))
    }

    /// Whether this dataset reads no sample (see [`len`](Self::len)).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Sample `index` of [`ordered`](Self::ordered)'s order (this split's), read with one
    /// positioned read of its bytes (one ranged GET from S3), located by the shard's sidecar.
    /// The first access to a shard reads its sidecar, or, when it has none, builds one from
    /// its headers and keeps it in memory; each read checks the tar header of every member
    /// against the sidecar, so a sidecar that lies is [`Error::SidecarMismatch`], never a
    /// wrong sample. Past the end is [`Error::IndexOutOfRange`]; a compressed shard is
    /// [`Error::NoRandomAccess`].
    pub fn get(&self, index: usize) -> Result<T> {
        let split = self.split_index()?;
        let len = split.len();
        if index as u64 >= len {
            return Err(Error::IndexOutOfRange {
                index,
                len: usize::try_from(len).unwrap_or(usize::MAX),
            });
        }
        let position = split.ends.partition_point(|&end| end <= index as u64);
        let before = position.checked_sub(1).map_or(0, |p| split.ends[p]);
        self.read_sample(split.shards[position], (index as u64 - before) as usize)
    }

    /// The first sample in [`ordered`](Self::ordered)'s order whose `__key__` is `key`. The
    /// first call reads every shard's sidecar (building those missing) into a map from key to
    /// place, kept for the dataset: about 60 bytes plus the key's length per sample. Then
    /// each call is a lookup and one read, as [`get`](Self::get). No such key is
    /// [`Error::KeyNotFound`].
    pub fn get_key(&self, key: &str) -> Result<T> {
        let split = self.split_index()?;
        let keys = match split.keys.get() {
            Some(keys) => keys,
            None => {
                let built = self.key_map(&split)?;
                split.keys.get_or_init(|| built)
            }
        };
        let &(position, sample) = keys.get(key).ok_or_else(|| Error::KeyNotFound {
            key: key.to_owned(),
        })?;
        self.read_sample(split.shards[position as usize], sample as usize)
    }

    /// This split's shards and counts, computed once.
    fn split_index(&self) -> Result<Arc<SplitIndex>> {
        let id = [self.rank.0, self.rank.1, self.worker.0, self.worker.1];
        let lock = || self.access.splits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(split) = lock().get(&id) {
            return Ok(split.clone());
        }
        let shards = self.assigned((0..self.shards.len()).collect());
        let counts = self.each(&shards, |k| self.count(k))?;
        let mut ends = Vec::with_capacity(counts.len());
        let mut total = 0u64;
        for count in counts {
            total = total.saturating_add(count);
            ends.push(total);
        }
        let split = Arc::new(SplitIndex {
            shards,
            ends,
            keys: OnceLock::new(),
        });
        Ok(lock().entry(id).or_insert(split).clone())
    }

    fn key_map(&self, split: &SplitIndex) -> Result<HashMap<Box<str>, (u32, u32)>> {
        let sidecars = self.each(&split.shards, |k| self.sidecar(k))?;
        let mut keys = HashMap::with_capacity(usize::try_from(split.len()).unwrap_or(0));
        for (position, sidecar) in sidecars.iter().enumerate() {
            for sample in 0..sidecar.len() {
                let key = sidecar.key(sample).unwrap_or_default();
                keys.entry(key.into())
                    .or_insert((position as u32, sample as u32));
            }
        }
        Ok(keys)
    }

    /// `f` of each shard, on up to `parallelism` threads (reading many small sidecars from a
    /// store is latency-bound), in order. Threads are joined; a panic is an error.
    fn each<U: Send>(
        &self,
        shards: &[usize],
        f: impl Fn(usize) -> Result<U> + Sync,
    ) -> Result<Vec<U>> {
        let threads = self.parallelism.min(shards.len());
        if threads <= 1 {
            return shards.iter().map(|&k| f(k)).collect();
        }
        let next = AtomicUsize::new(0);
        let results: Vec<Mutex<Option<Result<U>>>> =
            shards.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&k) = shards.get(i) else { break };
                            let result = f(k);
                            let failed = result.is_err();
                            *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                            if failed {
                                next.store(shards.len(), Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.join().map_err(|payload| Error::ReaderPanicked {
                    shard: self.url.clone(),
                    message: panic_message(&*payload),
                })?;
            }
            Ok(())
        })?;
        let mut out = Vec::with_capacity(shards.len());
        for (i, slot) in results.into_iter().enumerate() {
            match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
                Some(result) => out.push(result?),
                // Skipped after an earlier failure, which was returned above.
                None => {
                    return Err(Error::ReaderPanicked {
                        shard: self.shards[shards[i]].clone(),
                        message: "not counted".into(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The sample count of shard `k` (an index into the shard list).
    fn count(&self, k: usize) -> Result<u64> {
        let access = &self.access;
        if let Some(n) = access.facts[k].samples {
            return Ok(n);
        }
        if let Some(sidecar) = access.sidecars[k].get() {
            return Ok(sidecar.len() as u64);
        }
        if let Some(&n) = access.counts[k].get() {
            return Ok(n);
        }
        let url = &self.shards[k];
        let n = match sidecar_url(url) {
            Some(side) => match self.sidecar_head(&side)? {
                Some(n) => n,
                None => self.sidecar(k)?.len() as u64,
            },
            // A compressed shard: its samples counted by a header scan of the stream.
            None => {
                let (sidecar, _) = scan(self.opener.open(url)?, url, self.max_member)?;
                sidecar.len() as u64
            }
        };
        Ok(*access.counts[k].get_or_init(|| n))
    }

    /// The count on a sidecar's first line; `None` when there is no sidecar.
    fn sidecar_head(&self, url: &str) -> Result<Option<u64>> {
        let Some(mut input) = not_found_as_none(self.opener.open(url))? else {
            return Ok(None);
        };
        let mut head = Vec::with_capacity(HEAD_BYTES as usize);
        let read = (&mut input).take(HEAD_BYTES).read_to_end(&mut head);
        if not_found_as_none(read.map_err(|e| Error::io(url, e)))?.is_none() {
            return Ok(None);
        }
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        if line.len() == head.len() && head.len() as u64 == HEAD_BYTES {
            return Err(Error::BadSidecar {
                sidecar: url.to_owned(),
                line: 1,
                reason: "the first line is too long".into(),
            });
        }
        parse_head(line, url).map(Some)
    }

    /// The sidecar of shard `k`: read, or built from the shard's headers; checked against
    /// what is known of the shard; kept.
    fn sidecar(&self, k: usize) -> Result<Arc<Sidecar>> {
        if let Some(sidecar) = self.stored_sidecar(k)? {
            return Ok(sidecar);
        }
        let url = &self.shards[k];
        let (sidecar, gzip) = scan(self.opener.open(url)?, url, self.max_member)?;
        if gzip {
            return Err(compressed(url));
        }
        self.keep_sidecar(k, sidecar)
    }

    /// The sidecar of shard `k` if one is kept or stored beside it (never built), checked
    /// against what is known of the shard; kept.
    pub(crate) fn stored_sidecar(&self, k: usize) -> Result<Option<Arc<Sidecar>>> {
        if let Some(sidecar) = self.access.sidecars[k].get() {
            return Ok(Some(sidecar.clone()));
        }
        let url = &self.shards[k];
        if gzip_name(url) {
            return Err(compressed(url));
        }
        let stored = match sidecar_url(url) {
            Some(side) => self.read_sidecar(&side)?,
            None => None,
        };
        stored
            .map(|sidecar| self.keep_sidecar(k, sidecar))
            .transpose()
    }

    /// Keeps shard `k`'s sidecar once it agrees with what is known of the shard.
    fn keep_sidecar(&self, k: usize, sidecar: Sidecar) -> Result<Arc<Sidecar>> {
        let (access, url) = (&self.access, &self.shards[k]);
        let mismatch = |reason: String| Error::SidecarMismatch {
            shard: url.clone(),
            reason,
        };
        let listed = sidecar.len() as u64;
        let known = access.facts[k].samples.or(access.counts[k].get().copied());
        if let Some(known) = known.filter(|&n| n != listed) {
            return Err(mismatch(format!(
                "it lists {listed} samples, the shard has {known}"
            )));
        }
        if let Some(bytes) = access.facts[k].bytes.filter(|&b| sidecar.end() > b) {
            return Err(mismatch(format!(
                "a member ends at byte {}, past the shard's {bytes} bytes",
                sidecar.end()
            )));
        }
        Ok(access.sidecars[k].get_or_init(|| Arc::new(sidecar)).clone())
    }

    /// `shards` (each with where it starts, if known) as the units of work the pipeline's
    /// threads read: while there are fewer shards than `threads`, each local, uncompressed
    /// shard with a stored sidecar is cut into pieces of whole samples (about `threads /
    /// shards` of them, none under [`PIECE_BYTES`]), so that one large shard is read on
    /// several cores, in order. Anything else is read whole, as is a shard whose sidecar
    /// cannot be read or does not agree with what is known of it.
    pub(crate) fn units(&self, shards: Vec<(String, Option<u64>)>, threads: usize) -> Vec<Unit> {
        if shards.is_empty() || shards.len() >= threads {
            return shards.into_iter().map(Unit::from).collect();
        }
        let wanted = threads.div_ceil(shards.len()) as u64;
        let mut units = Vec::with_capacity(threads);
        for (url, start) in shards {
            let local = !url.contains("://") || url.starts_with("file://");
            let sidecar = self
                .shards
                .iter()
                .position(|s| *s == url)
                .filter(|_| local)
                .and_then(|k| self.stored_sidecar(k).ok().flatten());
            let samples = sidecar.as_ref().map_or(0, |s| s.len() as u64);
            let pieces = sidecar
                .as_ref()
                .map_or(1, |s| wanted.min(s.end() / PIECE_BYTES).min(samples));
            let Some(sidecar) = sidecar.filter(|_| pieces > 1) else {
                units.push(Unit::from((url, start)));
                continue;
            };
            // Piece `j` holds samples `j * samples / pieces` on; it begins where the sample
            // before it ends, padded to a block (so any PAX header of its first sample is in).
            let first = |j: u64| (j * samples / pieces) as usize;
            for j in 0..pieces {
                let (from, to) = (first(j), first(j + 1));
                let offset = match from {
                    0 => 0,
                    _ => sidecar
                        .span(from - 1)
                        .map_or(0, |span| span.end.next_multiple_of(BLOCK)),
                };
                units.push(Unit {
                    shard: url.clone(),
                    start: start.map(|s| s + from as u64),
                    piece: Some(Piece {
                        offset,
                        samples: (to - from) as u64,
                        first_key: sidecar.key(from).unwrap_or_default().to_owned(),
                        next_key: (j + 1 < pieces)
                            .then(|| sidecar.key(to).unwrap_or_default().to_owned()),
                    }),
                });
            }
        }
        units
    }

    /// The sidecar at `url`, parsed; `None` when there is none.
    fn read_sidecar(&self, url: &str) -> Result<Option<Sidecar>> {
        let Some(input) = not_found_as_none(self.opener.open(url))? else {
            return Ok(None);
        };
        // Bounded like a member: a sidecar is held whole.
        let mut text = Vec::new();
        let read = input.take(self.max_member + 1).read_to_end(&mut text);
        if not_found_as_none(read.map_err(|e| Error::io(url, e)))?.is_none() {
            return Ok(None);
        }
        if text.len() as u64 > self.max_member {
            return Err(Error::MemberOverLimit {
                shard: url.to_owned(),
                member: "the sidecar".into(),
                len: text.len() as u64,
                limit: self.max_member,
            });
        }
        Sidecar::parse(&text, url).map(Some)
    }

    /// Every shard's sample count, in the shard list's order (the whole dataset's, not a
    /// split's), as [`len`](Self::len) learns them.
    pub(crate) fn shard_counts(&self) -> Result<Vec<u64>> {
        let all: Vec<usize> = (0..self.shards.len()).collect();
        self.each(&all, |k| self.count(k))
    }

    /// Sample `sample` of shard `k`: one read of its span, every member's header checked
    /// against the sidecar, then decoded.
    fn read_sample(&self, k: usize, sample: usize) -> Result<T> {
        let sidecar = self.sidecar(k)?;
        let span = self.span(k, &sidecar, sample)?;
        let mut bytes = Vec::new();
        self.read_span(k, &sidecar, sample, span.clone(), &mut bytes)?;
        let payload = self.payload(k, &sidecar, sample, &bytes, span.start)?;
        self.decode_at(k, &sidecar, sample, payload.map(|r| &bytes[r]))
    }

    /// Samples `samples` of shard `k` with their keys, read into `buf` by positioned reads of
    /// whole samples up to [`RUN_BYTES`] each (one ranged GET each from a store), but for the
    /// large samples of a shard that is a local file, left there ([`Located`]). A sample that
    /// does not decode is an error in its place; a failed read, or a header that does not match
    /// the sidecar, is the error.
    pub(crate) fn read_run(
        &self,
        k: usize,
        samples: Range<usize>,
        buf: &mut Vec<u8>,
        spares: &Arc<Spares>,
    ) -> Result<KeyedRows<T>> {
        let sidecar = self.sidecar(k)?;
        let shard: Arc<str> = self.shards[k].as_str().into();
        let mut out = Vec::with_capacity(samples.len().min(sidecar.len()));
        // The large samples of a shard that is a local file are left there for their batch to
        // read (by the file opened here, once).
        let file = match samples.clone().any(|sample| locatable(&sidecar, sample)) {
            true => self.opener.open_file(&shard)?.map(Arc::new),
            false => None,
        };
        let located = |sample| file.is_some() && locatable(&sidecar, sample);
        let mut next = samples.start;
        while next < samples.end {
            let first = self.span(k, &sidecar, next)?;
            if let Some(file) = file.as_ref().filter(|_| located(next)) {
                let key = sidecar.key(next).unwrap_or_default().to_owned();
                let row = Row::Located(Located {
                    file: file.clone(),
                    shard: shard.clone(),
                    sidecar: sidecar.clone(),
                    sample: next,
                });
                out.push(Ok((key, row)));
                next += 1;
                continue;
            }
            let mut end = first.end;
            let mut last = next + 1;
            while last < samples.end && !located(last) {
                let span = self.span(k, &sidecar, last)?;
                if span.end - first.start > RUN_BYTES {
                    break;
                }
                end = span.end;
                last += 1;
            }
            let len = usize::try_from(end - first.start).unwrap_or(usize::MAX);
            if buf.capacity() < len {
                *buf = spares.take(len);
            }
            self.read_span(k, &sidecar, next, first.start..end, buf)?;
            let payloads = (next..last)
                .map(|sample| self.payload(k, &sidecar, sample, buf, first.start))
                .collect::<Result<Vec<_>>>()?;
            // Large payloads are decoded into their batch, from this read's bytes, then shared.
            let deferred = payloads
                .iter()
                .any(|p| p.as_ref().is_some_and(|r| r.len() >= DEFERRED_BYTES));
            let shared = deferred.then(|| Arc::new(std::mem::take(buf)));
            let bytes = shared.as_deref().unwrap_or(&*buf);
            for (sample, payload) in (next..last).zip(payloads) {
                let key = sidecar.key(sample).unwrap_or_default().to_owned();
                let row = match (payload, &shared) {
                    (Some(range), Some(shared)) if range.len() >= DEFERRED_BYTES => {
                        Ok(Row::Deferred(Deferred::new(
                            shard.clone(),
                            shared.clone(),
                            range,
                            spares.clone(),
                        )))
                    }
                    (payload, _) => self
                        .decode_at(k, &sidecar, sample, payload.map(|r| &bytes[r]))
                        .map(Row::Decoded),
                };
                out.push(row.map(|row| (key, row)));
            }
            next = last;
        }
        Ok(out)
    }

    /// Shard `k`'s samples in tar order, as [`read_run`](Self::read_run) reads them a run
    /// at a time (its large samples left in the shard, [`Located`]), then a check that no
    /// member follows the sidecar's last sample: when the shard is a local, uncompressed file
    /// with a stored sidecar whose first sample is large. `None` otherwise, or when the
    /// sidecar cannot be read (the shard is then read by its reader, which reports what is
    /// wrong). A shard that is not a local file is let go before its sidecar is looked for.
    pub(crate) fn located_runs(&self, k: usize) -> Option<Runs<RowChunk<T>>> {
        let file = self.opener.open_file(&self.shards[k]).ok().flatten()?;
        let sidecar = self.stored_sidecar(k).ok().flatten()?;
        if !locatable(&sidecar, 0) {
            return None;
        }
        Some(Box::new(LocatedRuns {
            dataset: self.clone(),
            k,
            sidecar,
            file: Some(file),
            next: 0,
            buf: Vec::new(),
            spares: Arc::default(),
            ready: VecDeque::new(),
        }))
    }

    /// Where sample `sample` of shard `k` lies, no longer than a member may be.
    fn span(&self, k: usize, sidecar: &Sidecar, sample: usize) -> Result<Range<u64>> {
        let url = &self.shards[k];
        let (Some(span), Some(key)) = (sidecar.span(sample), sidecar.key(sample)) else {
            return Err(Error::SidecarMismatch {
                shard: url.clone(),
                reason: format!("it has no sample {sample}"),
            });
        };
        if span.end - span.start > self.max_member {
            return Err(Error::MemberOverLimit {
                shard: url.clone(),
                member: key.to_owned(),
                len: span.end - span.start,
                limit: self.max_member,
            });
        }
        Ok(span)
    }

    /// The bytes of `range` of shard `k`, which starts with sample `first`, into `buf`.
    fn read_span(
        &self,
        k: usize,
        sidecar: &Sidecar,
        first: usize,
        range: Range<u64>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let url = &self.shards[k];
        self.opener
            .read_range_into(url, range.clone(), buf)
            .map_err(|e| past_end(url, sidecar.key(first).unwrap_or_default(), range.end, e))
    }

    /// Where sample `sample`'s `msgpack` member lies in `bytes` (read from byte `base` of shard
    /// `k`), after every member's header is checked against the sidecar; `None` when it has
    /// no such member.
    fn payload(
        &self,
        k: usize,
        sidecar: &Sidecar,
        sample: usize,
        bytes: &[u8],
        base: u64,
    ) -> Result<Option<Range<usize>>> {
        let mismatch = |reason: String| Error::SidecarMismatch {
            shard: self.shards[k].clone(),
            reason,
        };
        let mut payload = None;
        for entry in sidecar.sample(sample) {
            let at = (entry.offset - BLOCK - base) as usize;
            let block: &[u8; 512] = bytes
                .get(at..at + BLOCK as usize)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| mismatch("a header past the range read".into()))?;
            check_header(block, entry).map_err(&mismatch)?;
            let data = at + BLOCK as usize..at + BLOCK as usize + entry.size as usize;
            if data.end > bytes.len() {
                return Err(mismatch(format!(
                    "`{}` ends past the range read",
                    entry.name
                )));
            }
            if payload.is_none() && is_msgpack(entry.ext()) {
                payload = Some(data);
            }
        }
        Ok(payload)
    }

    fn decode_at(
        &self,
        k: usize,
        sidecar: &Sidecar,
        sample: usize,
        payload: Option<&[u8]>,
    ) -> Result<T> {
        let key = sidecar.key(sample).unwrap_or_default();
        decode_payload::<T>(&self.context, &self.shards[k], key, payload)
    }
}

/// Samples of a shard read a run at a time ([`Dataset::located_runs`]).
struct LocatedRuns<T: SampleType, O> {
    dataset: Dataset<T, O>,
    k: usize,
    sidecar: Arc<Sidecar>,
    /// The shard, for the check at its end (`None` once made).
    file: Option<File>,
    /// The first sample not yet read.
    next: usize,
    buf: Vec<u8>,
    spares: Arc<Spares>,
    /// What the last run gave and is not yet handed out.
    ready: VecDeque<Result<(RowChunk<T>, usize)>>,
}

impl<T: SampleType, O: ShardOpener> LocatedRuns<T, O> {
    /// Reads the next run into `ready`: its rows in chunks between its samples' errors, with
    /// the bytes its decoded rows were read from; `false` when the shard ends with it.
    fn read(&mut self) -> bool {
        let run = self.next..(self.next + LOCATED_RUN_SAMPLES).min(self.sidecar.len());
        self.next = run.end;
        let bytes = run
            .clone()
            .filter(|&sample| !locatable(&self.sidecar, sample))
            .filter_map(|sample| self.sidecar.span(sample))
            .map(|span| usize::try_from(span.end - span.start).unwrap_or(usize::MAX))
            .fold(0, usize::saturating_add);
        let rows = match self
            .dataset
            .read_run(self.k, run, &mut self.buf, &self.spares)
        {
            Ok(rows) => rows,
            Err(e) => {
                self.ready.push_back(Err(e));
                return false;
            }
        };
        let mut chunk = Vec::new();
        for row in rows {
            match row {
                Ok(row) => chunk.push(row),
                Err(e) => {
                    if !chunk.is_empty() {
                        self.ready.push_back(Ok((std::mem::take(&mut chunk), 0)));
                    }
                    self.ready.push_back(Err(e));
                }
            }
        }
        if !chunk.is_empty() {
            self.ready.push_back(Ok((chunk, 0)));
        }
        if let Some(Ok((_, counted))) = self.ready.iter_mut().find(|item| item.is_ok()) {
            *counted = bytes;
        }
        true
    }

    /// That the shard ends where its sidecar does: the block after its last sample is the
    /// end-of-archive marker, not another member's header.
    fn check_end(&self, file: &File) -> Result<()> {
        let url = &self.dataset.shards[self.k];
        let at = self.sidecar.end().next_multiple_of(BLOCK);
        let mut block = [0u8; BLOCK as usize];
        match read_exact_at(file, &mut block, at) {
            Ok(()) if block.iter().all(|&b| b == 0) => Ok(()),
            Ok(()) => Err(Error::SidecarMismatch {
                shard: url.clone(),
                reason: format!("a member at byte {at} follows the sidecar's last sample"),
            }),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Error::Truncated {
                shard: url.clone(),
                member: None,
            }),
            Err(e) => Err(Error::io(url, e)),
        }
    }
}

impl<T: SampleType, O: ShardOpener> Iterator for LocatedRuns<T, O> {
    type Item = Result<(RowChunk<T>, usize)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            let file = self.file.take()?;
            if self.next >= self.sidecar.len() {
                return self.check_end(&file).err().map(Err);
            }
            if self.read() {
                self.file = Some(file);
            }
        }
    }
}

/// Whether sample `sample` is one `msgpack` member of at least [`DEFERRED_BYTES`].
fn locatable(sidecar: &Sidecar, sample: usize) -> bool {
    match sidecar.sample(sample) {
        [entry] => entry.size >= DEFERRED_BYTES as u64 && is_msgpack(entry.ext()),
        _ => false,
    }
}

/// Whether the header block before a member's data is that member's.
fn check_header(block: &[u8; 512], entry: &Entry) -> Result<(), String> {
    let at = || format!("the header at byte {}", entry.offset - BLOCK);
    if !checksum_matches(block) {
        return Err(format!(
            "{} is not a valid tar header (`{}`)",
            at(),
            entry.name
        ));
    }
    let path = header_path(block);
    let name = entry.name.as_bytes();
    // A long name sits in a PAX or GNU record before the header, which holds its start.
    let named = *path == *name || (name.len() > 100 && path.len() >= 99 && name.starts_with(&path));
    if !named {
        return Err(format!(
            "{} names `{}`, not `{}`",
            at(),
            String::from_utf8_lossy(&path),
            entry.name
        ));
    }
    if !matches!(block[156], b'0' | 0 | b'7') {
        return Err(format!("{} is not a file (`{}`)", at(), entry.name));
    }
    match header_size(block) {
        Ok(size) if size == entry.size => Ok(()),
        Ok(size) => Err(format!(
            "`{}` has {size} bytes, the sidecar says {}",
            entry.name, entry.size
        )),
        Err(e) => Err(format!("{}: {e}", at())),
    }
}

/// Whether a member's extension is `msgpack` in any case (as the reader lowercases it),
/// without allocating for the usual ASCII one.
fn is_msgpack(ext: &str) -> bool {
    if ext.is_ascii() {
        ext.eq_ignore_ascii_case("msgpack")
    } else {
        lowercase_ext(ext) == "msgpack"
    }
}

pub(crate) fn compressed(url: &str) -> Error {
    Error::NoRandomAccess {
        shard: url.to_owned(),
        reason: "it is compressed: samples can only be read in order (decompress it to a .tar for random access)",
    }
}

/// `Ok(None)` for a missing object, the error for any other failure.
fn not_found_as_none<U>(result: Result<U>) -> Result<Option<U>> {
    match result {
        Ok(u) => Ok(Some(u)),
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
