//! Reading and decoding shards on background threads, delivered in shard order.
//!
//! Up to `parallelism` shards (or pieces of a large shard, see [`Piece`]) are in flight at
//! once, each read and decoded by its own thread into its own queue of chunks. A chunk is what a [`Gather`] makes of samples: decoded items
//! (at most `CHUNK_SAMPLES`, closed at `CHUNK_BYTES` of member bytes), or the columns of a
//! batch, cut where the dataset's batches are cut: each shard's thread learns where its shard
//! starts from known counts, or from the thread before it (when that one ends), guessing it
//! meanwhile from the two shards before, so that most chunks are whole batches and only
//! batches spanning a shard boundary are joined from pieces. Shard threads share the process's
//! cores (`CORES`). The consumer drains the queues in shard order, so the output order depends
//! only on the shard list, never on thread timing. Each queue holds at most its share of
//! `AHEAD_BYTES` (and always one chunk, however large), so the shards behind the one being
//! drained decode ahead, in parallel, by up to a small shard: memory is bounded by
//! `AHEAD_BYTES` plus three chunks per shard in flight (one queued past the budget, one being
//! built, one being drained), whatever the parallelism. A shard's thread is joined when its
//! queue ends, so a thread that panicked (in the opener, the reader or the decoder) is an
//! error item naming the shard, never a silently short shard. Dropping the consumer stops the
//! threads at their next chunk. A [`Gather`] may have the consumer read the rest of a shard
//! itself (`hand_over`): the shard's thread then sends its reader down its queue, in order,
//! and ends; or it may read a whole shard some other way than by its reader (`runs`).

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;

use crate::error::{Error, Result, panic_message};
use crate::opener::ShardOpener;
use crate::reader::{Grouper, Sample};

/// Samples per chunk at most.
const CHUNK_SAMPLES: usize = 1024;
/// Member bytes per chunk before it is sent.
const CHUNK_BYTES: usize = 1 << 20;
/// Member bytes all shard threads may queue ahead of the consumer, together.
const AHEAD_BYTES: usize = 32 << 20;
/// What an error item counts for in a queue's budget (so errors are bounded too).
const ERROR_BYTES: usize = 1 << 10;

/// The cores shard threads read and decode on, shared by every pipeline of the process: a
/// thread holds one while it reads and decodes, and lets it go while it waits for room in its
/// queue or for the shard before it, so that datasets read at once share the cores instead of
/// oversubscribing them (and none waits on another's consumer).
struct Cores {
    limit: OnceLock<usize>,
    busy: Mutex<(usize, usize)>,
    freed: Condvar,
}

static CORES: Cores = Cores {
    limit: OnceLock::new(),
    busy: Mutex::new((0, 0)),
    freed: Condvar::new(),
};

impl Cores {
    fn limit(&self) -> usize {
        *self
            .limit
            .get_or_init(|| thread::available_parallelism().map_or(1, |n| n.get()))
    }

    fn lock(&self) -> MutexGuard<'_, (usize, usize)> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a free core and takes it.
    fn take(&'static self) -> Core {
        let limit = self.limit();
        let mut busy = self.lock();
        while busy.0 >= limit {
            busy = self.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        busy.0 += 1;
        busy.1 = busy.1.max(busy.0);
        Core(Some(self))
    }

    fn give_back(&self) {
        self.lock().0 -= 1;
        self.freed.notify_one();
    }

    /// The most cores ever taken at once.
    #[cfg(test)]
    fn peak(&self) -> usize {
        self.lock().1
    }
}

/// The cores shard threads decode on, at most.
pub(crate) fn cores() -> usize {
    CORES.limit()
}

/// A core taken from [`CORES`], given back when dropped.
struct Core(Option<&'static Cores>);

impl Core {
    /// Gives the core back while `wait` runs.
    fn release_while<R>(&mut self, wait: impl FnOnce() -> R) -> R {
        let cores = self.0.take();
        if let Some(cores) = cores {
            cores.give_back();
        }
        let out = wait();
        if let Some(cores) = cores {
            *self = cores.take();
        }
        out
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if let Some(cores) = self.0.take() {
            cores.give_back();
        }
    }
}

/// Turns one sample of a shard (borrowed from the reader's buffers) into an item: decodes it,
/// usually.
pub(crate) type MapFn<U> = Arc<dyn Fn(&str, Sample<'_>) -> Result<U> + Send + Sync>;

/// What a shard's thread gathers samples into.
pub(crate) trait Gather: Send + Sync + 'static {
    /// What the consumer receives.
    type Chunk: Send + 'static;

    /// An empty chunk.
    fn chunk(&self) -> Self::Chunk;

    /// Adds the sample `samples` last read (on an error the chunk is as before); it may move
    /// the sample's buffers out.
    fn push(&self, samples: &mut Grouper<'_>, chunk: &mut Self::Chunk) -> Result<()>;

    /// The samples in a chunk.
    fn rows(chunk: &Self::Chunk) -> usize;

    /// Splits off the samples from `at` on.
    fn split_off(chunk: &mut Self::Chunk, at: usize) -> Self::Chunk;

    /// Chunks are cut at the dataset's multiples of this many samples (those for which
    /// [`whole_batches`](Self::whole_batches) says so), or (`None`) by size.
    fn batch(&self) -> Option<usize>;

    /// Whether this chunk is cut at batches (or by size).
    fn whole_batches(chunk: &Self::Chunk) -> bool;

    /// The rest of the shard, after the samples in `chunk`, as a chunk for the consumer to
    /// read itself (for samples best decoded as they stream in, where their batch is built);
    /// or the reader back, the shard read here (the default).
    fn hand_over(
        &self,
        _chunk: &Self::Chunk,
        samples: ShardReader,
    ) -> Result<Self::Chunk, ShardReader> {
        Err(samples)
    }

    /// The whole shard's samples read some other way than by its reader (by its sidecar, say),
    /// when this gather can (for chunks cut by size, [`batch`](Self::batch) `None`); `None`
    /// (the default): the shard is read by its reader.
    fn runs(&self, _shard: &str) -> Option<Runs<Self::Chunk>> {
        None
    }
}

/// A shard's samples as [`Gather::runs`] reads them: chunks in order, each with the member
/// bytes it holds, errors in place (the shard ends after one that ends it).
pub(crate) type Runs<C> = Box<dyn Iterator<Item = Result<(C, usize)>>>;

/// A shard's reader, where a shard thread left it.
pub(crate) type ShardReader = Box<Grouper<'static>>;

/// Decoded items, by `MapFn`.
pub(crate) struct Items<U>(pub(crate) MapFn<U>);

impl<U: Send + 'static> Gather for Items<U> {
    type Chunk = Vec<U>;

    fn chunk(&self) -> Vec<U> {
        Vec::new()
    }

    fn push(&self, samples: &mut Grouper<'_>, chunk: &mut Vec<U>) -> Result<()> {
        chunk.push((self.0)(samples.shard(), samples.sample())?);
        Ok(())
    }

    fn rows(chunk: &Vec<U>) -> usize {
        chunk.len()
    }

    fn split_off(chunk: &mut Vec<U>, at: usize) -> Vec<U> {
        chunk.split_off(at.min(chunk.len()))
    }

    fn batch(&self) -> Option<usize> {
        None
    }

    fn whole_batches(_: &Vec<U>) -> bool {
        false
    }
}

/// Where a shard starts in the dataset's samples: set once by the thread of the shard before
/// (`None`: unknown, that thread failed to start or panicked).
struct Offset {
    value: Mutex<Option<Option<u64>>>,
    set: Condvar,
}

impl Offset {
    fn new(value: Option<Option<u64>>) -> Arc<Offset> {
        Arc::new(Offset {
            value: Mutex::new(value),
            set: Condvar::new(),
        })
    }

    fn set(&self, value: Option<u64>) {
        let mut slot = self.value.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(value);
            self.set.notify_all();
        }
    }

    /// The value, if set yet.
    fn peek(&self) -> Option<Option<u64>> {
        *self.value.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait(&self) -> Option<u64> {
        let mut slot = self.value.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(value) = *slot {
                return value;
            }
            slot = self.set.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A shard thread's place in the chain of offsets: where its shard starts, and where the next
/// one does, which it sets when dropped (with the thread, or unrun if it never started).
struct Place {
    start: Arc<Offset>,
    end: Arc<Offset>,
    /// The next shard's start, once this shard's start and length are known.
    next: Option<u64>,
    /// Where the two shards before this one start, to guess this one's start from while the
    /// shard before is still being read.
    before: Option<[Arc<Offset>; 2]>,
}

impl Place {
    /// This shard's start if the shard before it is as long as the one before that (as shards
    /// written with a sample limit are), once both those starts are known.
    fn guess(&self) -> Option<u64> {
        let [previous, earlier] = self.before.as_ref()?;
        let (previous, earlier) = (previous.peek()??, earlier.peek()??);
        previous.checked_add(previous.checked_sub(earlier)?)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.end.set(self.next);
    }
}

enum Msg<U> {
    /// Chunks (several small batches travel together) and the member bytes they were decoded
    /// from.
    Chunks(Vec<U>, usize),
    Failed(Error),
}

impl<U> Msg<U> {
    fn bytes(&self) -> usize {
        match self {
            Msg::Chunks(_, bytes) => *bytes,
            Msg::Failed(_) => ERROR_BYTES,
        }
    }
}

/// The bytes a queue holds, which its thread waits on.
struct Budget {
    limit: usize,
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget {
            limit,
            state: Mutex::new((0, false)),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (usize, bool)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `bytes` more fit (an empty queue takes anything) and counts them; `false`
    /// once the consumer is gone.
    fn reserve(&self, bytes: usize) -> bool {
        let mut state = self.lock();
        while !state.1 && state.0 > 0 && state.0 + bytes > self.limit {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.0 += bytes;
        !state.1
    }

    fn release(&self, bytes: usize) {
        self.lock().0 -= bytes;
        self.changed.notify_one();
    }

    fn close(&self) {
        self.lock().1 = true;
        self.changed.notify_all();
    }
}

/// A queue's sending end: sends once the budget allows.
struct Queue<U> {
    tx: Sender<Msg<U>>,
    budget: Arc<Budget>,
}

impl<U> Queue<U> {
    /// `false` when the consumer is gone.
    fn send(&self, msg: Msg<U>) -> bool {
        self.budget.reserve(msg.bytes()) && self.tx.send(msg).is_ok()
    }
}

/// Closes a queue's budget when the consumer drops it, waking its thread.
struct Closer(Arc<Budget>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close();
    }
}

enum Source<U> {
    Running {
        shard: String,
        queue: Receiver<Msg<U>>,
        budget: Closer,
        thread: Option<thread::JoinHandle<()>>,
    },
    /// The thread could not be started.
    NotStarted(Option<Error>),
}

/// What one thread reads: a shard, or a piece of one.
pub(crate) struct Unit {
    pub(crate) shard: String,
    /// Where it starts in the dataset's samples, when known before reading.
    pub(crate) start: Option<u64>,
    pub(crate) piece: Option<Piece>,
}

impl From<(String, Option<u64>)> for Unit {
    fn from((shard, start): (String, Option<u64>)) -> Unit {
        Unit {
            shard,
            start,
            piece: None,
        }
    }
}

/// A run of a shard's samples (placed by its sidecar), read by a thread of its own so that a
/// large shard is read on several cores. What the reader finds is checked against the
/// sidecar: the first sample's key, and (but for the shard's last piece, read to its end) that
/// the next piece's first sample follows its last.
#[derive(Clone)]
pub(crate) struct Piece {
    /// The byte where its first sample's headers begin.
    pub(crate) offset: u64,
    /// Its samples.
    pub(crate) samples: u64,
    /// Its first sample's key, as the sidecar gives it.
    pub(crate) first_key: String,
    /// The key of the sample after it, for all but the shard's last piece.
    pub(crate) next_key: Option<String>,
}

impl Piece {
    /// How the shard differs from the sidecar where this piece starts, its first sample
    /// keyed `key`.
    fn misplaced_start(&self, shard: &str, key: &str) -> Option<Error> {
        (key != self.first_key).then(|| Error::SidecarMismatch {
            shard: shard.to_owned(),
            reason: format!(
                "the sample at byte {} is `{key}`, the sidecar says `{}`",
                self.offset, self.first_key
            ),
        })
    }

    /// How the shard differs from the sidecar where this piece ends, after `read` samples,
    /// `next` the key of the sample that follows (`None`: the shard's end).
    fn misplaced_end(&self, shard: &str, read: u64, next: Option<&str>) -> Option<Error> {
        let expected = self.next_key.as_deref()?;
        if read == self.samples && next == Some(expected) {
            return None;
        }
        Some(Error::SidecarMismatch {
            shard: shard.to_owned(),
            reason: format!(
                "{read} samples from `{}` on, then {}; the sidecar says {} samples, then `{expected}`",
                self.first_key,
                next.map_or("the shard's end".into(), |k| format!("`{k}`")),
                self.samples
            ),
        })
    }
}

pub(crate) struct Pipeline<G: Gather> {
    /// Each shard or piece, and where it starts in the dataset when known before reading.
    shards: std::vec::IntoIter<Unit>,
    in_flight: VecDeque<Source<G::Chunk>>,
    opener: Arc<dyn ShardOpener>,
    gather: Arc<G>,
    parallelism: usize,
    max_member: u64,
    /// Where the next shard to start begins.
    next_start: Arc<Offset>,
    /// Where the last two shards started begin, the latest first.
    recent_starts: VecDeque<Arc<Offset>>,
    /// Chunks received and not yet handed on.
    received: std::vec::IntoIter<G::Chunk>,
}

impl<G: Gather> Pipeline<G> {
    pub(crate) fn new(
        shards: Vec<Unit>,
        opener: Arc<dyn ShardOpener>,
        gather: G,
        parallelism: usize,
        max_member: u64,
    ) -> Pipeline<G> {
        Pipeline {
            shards: shards.into_iter(),
            in_flight: VecDeque::new(),
            opener,
            gather: Arc::new(gather),
            parallelism: parallelism.max(1),
            max_member,
            next_start: Offset::new(Some(Some(0))),
            recent_starts: VecDeque::new(),
            received: Vec::new().into_iter(),
        }
    }

    fn fill(&mut self) {
        while self.in_flight.len() < self.parallelism {
            let Some(Unit {
                shard,
                start: known_start,
                piece,
            }) = self.shards.next()
            else {
                break;
            };
            let (tx, rx) = channel();
            let budget = Arc::new(Budget::new(
                (AHEAD_BYTES / self.parallelism).max(2 * CHUNK_BYTES),
            ));
            let queue = Queue {
                tx,
                budget: budget.clone(),
            };
            let (opener, gather) = (self.opener.clone(), self.gather.clone());
            let (name, max_member) = (shard.clone(), self.max_member);
            let end = Offset::new(None);
            let chained = std::mem::replace(&mut self.next_start, end.clone());
            let start = known_start.map_or(chained, |start| Offset::new(Some(Some(start))));
            let before = match (self.recent_starts.front(), self.recent_starts.back()) {
                (Some(previous), Some(earlier)) if self.recent_starts.len() == 2 => {
                    Some([previous.clone(), earlier.clone()])
                }
                _ => None,
            };
            self.recent_starts.push_front(start.clone());
            self.recent_starts.truncate(2);
            let mut place = Place {
                start,
                end,
                next: None,
                before,
            };
            let started = thread::Builder::new()
                .name("atdata-shard".into())
                .spawn(move || {
                    let shard = Shard {
                        name: &name,
                        opener: &*opener,
                        max_member,
                        piece,
                    };
                    read_shard(&shard, &*gather, &queue, &mut place);
                });
            self.in_flight.push_back(match started {
                Ok(thread) => Source::Running {
                    shard,
                    queue: rx,
                    budget: Closer(budget),
                    thread: Some(thread),
                },
                Err(e) => Source::NotStarted(Some(Error::io("starting a shard reader thread", e))),
            });
        }
    }
}

impl<G: Gather> Iterator for Pipeline<G> {
    type Item = Result<G::Chunk>;

    fn next(&mut self) -> Option<Result<G::Chunk>> {
        loop {
            if let Some(chunk) = self.received.next() {
                return Some(Ok(chunk));
            }
            self.fill();
            match self.in_flight.front_mut()? {
                Source::Running {
                    shard,
                    queue,
                    budget,
                    thread,
                } => match queue.recv() {
                    Ok(msg) => {
                        budget.0.release(msg.bytes());
                        match msg {
                            Msg::Chunks(chunks, _) => self.received = chunks.into_iter(),
                            Msg::Failed(e) => return Some(Err(e)),
                        }
                    }
                    Err(_) => {
                        // The queue ends when the thread does: join it, and report a panic.
                        let joined = thread.take().map_or(Ok(()), thread::JoinHandle::join);
                        let shard = std::mem::take(shard);
                        self.in_flight.pop_front();
                        if let Err(payload) = joined {
                            return Some(Err(Error::ReaderPanicked {
                                shard,
                                message: panic_message(&*payload),
                            }));
                        }
                    }
                },
                Source::NotStarted(error) => {
                    let error = error.take();
                    self.in_flight.pop_front();
                    if let Some(e) = error {
                        return Some(Err(e));
                    }
                }
            }
        }
    }
}

/// The shard a thread reads.
struct Shard<'a> {
    name: &'a str,
    opener: &'a dyn ShardOpener,
    max_member: u64,
    piece: Option<Piece>,
}

/// Reads one shard into `queue`. Errors are sent in place (a bad sample does not stop the
/// shard; a broken archive ends it, after its intact samples). Returns when done or when the
/// consumer is gone; `place.next` is then where the next shard starts, if known.
fn read_shard<G: Gather>(
    shard: &Shard<'_>,
    gather: &G,
    queue: &Queue<G::Chunk>,
    place: &mut Place,
) {
    let mut core = CORES.take();
    let whole = shard.piece.is_none() && gather.batch().is_none();
    if let Some(runs) = whole.then(|| gather.runs(shard.name)).flatten() {
        for run in runs {
            let msg = match run {
                Ok((chunk, bytes)) => Msg::Chunks(vec![chunk], bytes),
                Err(e) => Msg::Failed(e),
            };
            if !core.release_while(|| queue.send(msg)) {
                return;
            }
        }
        return;
    }
    let grouper = |input| Grouper::new(input, shard.name.to_owned(), shard.max_member);
    // A local file is read as one (into memory not yet initialised); where the opener gives
    // none, or fails to, its reader is opened (and reports the failure).
    let opened = match &shard.piece {
        Some(piece) => shard.opener.open_at(shard.name, piece.offset).map(grouper),
        None => match shard.opener.open_file(shard.name) {
            Ok(Some(file)) => Ok(Grouper::from_file(
                file,
                shard.name.to_owned(),
                shard.max_member,
            )),
            _ => shard.opener.open(shard.name).map(grouper),
        },
    };
    let mut samples = match opened {
        Ok(samples) => Box::new(samples),
        Err(e) => {
            // Nothing read: the next shard starts where this one does.
            core.release_while(|| {
                if gather.batch().is_some() {
                    place.next = place.start.wait();
                }
                queue.send(Msg::Failed(e))
            });
            return;
        }
    };
    let mut cut = Cut::new(gather.batch());
    let mut chunk = gather.chunk();
    let mut parcel = Parcel::new();
    let mut bytes = 0;
    // A piece ends after its samples (the shard's last piece, at the shard's end).
    let (mut read_so_far, mut failed, mut misplaced) = (0u64, false, None);
    loop {
        if let Some(piece) = &shard.piece
            && piece.next_key.is_some()
            && read_so_far == piece.samples
        {
            misplaced = piece.misplaced_end(shard.name, read_so_far, samples.next_key());
            break;
        }
        let Some(read) = samples.advance() else {
            if let Some(piece) = shard.piece.as_ref().filter(|_| !failed) {
                misplaced = piece.misplaced_end(shard.name, read_so_far, None);
            }
            break;
        };
        read_so_far += 1;
        if let (Ok(()), Some(piece), 1) = (&read, &shard.piece, read_so_far) {
            misplaced = piece.misplaced_start(shard.name, samples.sample().key);
            if misplaced.is_some() {
                break;
            }
        }
        failed |= read.is_err();
        let pushed = read.and_then(|()| {
            bytes += samples.sample().len();
            gather.push(&mut samples, &mut chunk)
        });
        if pushed.is_ok() && shard.piece.is_none() {
            match gather.hand_over(&chunk, samples) {
                // The consumer reads the rest (where the next shard starts is then not known
                // here).
                Ok(rest) => {
                    let rows = G::rows(&chunk);
                    parcel.add(chunk, rows, bytes, &mut core, queue);
                    parcel.add(rest, 0, 0, &mut core, queue);
                    parcel.send(&mut core, queue);
                    return;
                }
                Err(back) => samples = back,
            }
        }
        match pushed {
            Ok(()) => {
                if let Some(rows) =
                    cut.full(G::whole_batches(&chunk), G::rows(&chunk), bytes, place)
                {
                    // The bytes are shared out by samples (near enough for a budget).
                    let sent_bytes = bytes / G::rows(&chunk) * rows;
                    bytes -= sent_bytes;
                    cut.sent(rows);
                    let rest = if rows < G::rows(&chunk) {
                        G::split_off(&mut chunk, rows)
                    } else {
                        gather.chunk()
                    };
                    let full = std::mem::replace(&mut chunk, rest);
                    if !parcel.add(full, rows, sent_bytes, &mut core, queue) {
                        return;
                    }
                }
            }
            Err(e) => {
                let rows = G::rows(&chunk);
                if rows > 0 {
                    cut.sent(rows);
                    let part = std::mem::replace(&mut chunk, gather.chunk());
                    parcel.add(part, rows, std::mem::take(&mut bytes), &mut core, queue);
                }
                if !parcel.send(&mut core, queue)
                    || !core.release_while(|| queue.send(Msg::Failed(e)))
                {
                    return;
                }
            }
        }
    }
    let rows = G::rows(&chunk);
    if rows > 0 {
        parcel.add(chunk, rows, bytes, &mut core, queue);
    }
    if parcel.send(&mut core, queue)
        && let Some(e) = misplaced
    {
        core.release_while(|| queue.send(Msg::Failed(e)));
    }
    drop(core);
    cut.settle(place);
    cut.sent(rows);
    place.next = cut.start.map(|start| start + cut.rows);
}

/// Chunks a shard thread has cut and not yet sent: whole batches of small samples travel
/// together, up to a chunk's limits, so that the threads hand over work as seldom as before.
struct Parcel<C> {
    chunks: Vec<C>,
    rows: usize,
    bytes: usize,
}

impl<C> Parcel<C> {
    fn new() -> Parcel<C> {
        Parcel {
            chunks: Vec::new(),
            rows: 0,
            bytes: 0,
        }
    }

    /// Adds a chunk, sending the parcel once full; `false` when the consumer is gone.
    fn add(
        &mut self,
        chunk: C,
        rows: usize,
        bytes: usize,
        core: &mut Core,
        queue: &Queue<C>,
    ) -> bool {
        self.chunks.push(chunk);
        self.rows += rows;
        self.bytes += bytes;
        if self.rows >= CHUNK_SAMPLES || self.bytes >= CHUNK_BYTES {
            return self.send(core, queue);
        }
        true
    }

    /// Sends what it holds (giving `core` back meanwhile); `false` when the consumer is gone.
    fn send(&mut self, core: &mut Core, queue: &Queue<C>) -> bool {
        if self.chunks.is_empty() {
            return true;
        }
        let msg = Msg::Chunks(
            std::mem::take(&mut self.chunks),
            std::mem::take(&mut self.bytes),
        );
        self.rows = 0;
        core.release_while(|| queue.send(msg))
    }
}

/// Where a shard thread cuts its chunks.
struct Cut {
    batch: Option<usize>,
    /// The shard's start in the dataset, once known (`None` while not learnt yet, or unknown:
    /// then chunks are cut from the shard's own start).
    start: Option<u64>,
    /// Where the shard is guessed to start while that is not known.
    guess: Option<u64>,
    settled: bool,
    /// Samples sent so far.
    rows: u64,
}

impl Cut {
    fn new(batch: Option<usize>) -> Cut {
        Cut {
            batch,
            start: None,
            guess: None,
            settled: false,
            rows: 0,
        }
    }

    /// Learns where the shard starts (waiting for the shard before, the first time), when
    /// chunks are cut at batches.
    fn settle(&mut self, place: &Place) {
        if self.batch.is_some() && !self.settled {
            self.settled = true;
            self.start = place.start.wait();
        }
    }

    /// Learns where the shard starts if the shard before has ended (never waits, so that
    /// shards decode side by side; until then chunks are cut from the shard's own start).
    fn try_settle(&mut self, place: &Place) {
        if !self.settled
            && let Some(start) = place.start.peek()
        {
            self.settled = true;
            self.start = start;
        }
    }

    /// The rows to send of a chunk of `rows` rows and `bytes` member bytes (cut at batches,
    /// or by size), if it is full.
    fn full(
        &mut self,
        whole_batches: bool,
        rows: usize,
        bytes: usize,
        place: &Place,
    ) -> Option<usize> {
        let batch = match self.batch {
            Some(batch) if whole_batches => batch,
            _ => return (rows >= CHUNK_SAMPLES || bytes >= CHUNK_BYTES).then_some(rows),
        };
        if rows < batch {
            return None;
        }
        // A batch's worth gathered: cut it where the dataset's batch ends.
        self.try_settle(place);
        if !self.settled && self.guess.is_none() {
            self.guess = place.guess();
        }
        let at = self.start.or(self.guess).unwrap_or(0) + self.rows;
        let to_boundary = batch - (at % batch as u64) as usize;
        Some(to_boundary.min(rows))
    }

    fn sent(&mut self, rows: usize) {
        self.rows += rows as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opener::LocalOpener;
    use crate::writer::TarWriter;
    use atdata_codec::WdsSample;

    /// Keys, cut at batches of `0`.
    struct Keys(usize);

    impl Gather for Keys {
        type Chunk = Vec<String>;

        fn chunk(&self) -> Vec<String> {
            Vec::new()
        }

        fn push(&self, samples: &mut Grouper<'_>, chunk: &mut Vec<String>) -> Result<()> {
            chunk.push(samples.sample().key.to_owned());
            Ok(())
        }

        fn rows(chunk: &Vec<String>) -> usize {
            chunk.len()
        }

        fn split_off(chunk: &mut Vec<String>, at: usize) -> Vec<String> {
            chunk.split_off(at)
        }

        fn batch(&self) -> Option<usize> {
            Some(self.0)
        }

        fn whole_batches(_: &Vec<String>) -> bool {
            true
        }
    }

    /// Shards of `counts` samples; their URLs.
    fn shards(dir: &std::path::Path, counts: &[u64]) -> Vec<String> {
        let mut id = 0;
        counts
            .iter()
            .enumerate()
            .map(|(k, &count)| {
                let path = dir.join(format!("{k}.tar"));
                let mut w = TarWriter::create(&path).unwrap();
                for _ in 0..count {
                    w.write(&WdsSample::msgpack(format!("{id:06}"), vec![0x80]))
                        .unwrap();
                    id += 1;
                }
                w.finish().unwrap().close().unwrap();
                path.to_str().unwrap().to_owned()
            })
            .collect()
    }

    /// The chunks read: (first sample's place in the dataset, samples).
    fn chunks(
        shards: Vec<(String, Option<u64>)>,
        batch: usize,
        threads: usize,
    ) -> Vec<(u64, usize)> {
        let units = shards.into_iter().map(Unit::from).collect();
        let pipeline = Pipeline::new(units, Arc::new(LocalOpener), Keys(batch), threads, 1 << 20);
        let mut seen = Vec::new();
        let mut at = 0;
        for chunk in pipeline {
            let chunk = chunk.unwrap();
            let first: u64 = chunk[0].parse().unwrap();
            assert_eq!(first, at, "chunks in order, none lost");
            seen.push((at, chunk.len()));
            at += chunk.len() as u64;
        }
        seen
    }

    /// Whether a chunk is cut where batches are: it starts on a batch or at a shard's start,
    /// and ends on a batch or at a shard's end (`bounds`).
    fn aligned((start, len): (u64, usize), batch: u64, bounds: &[u64]) -> bool {
        let end = start + len as u64;
        (start.is_multiple_of(batch) || bounds.contains(&start))
            && (end.is_multiple_of(batch) || bounds.contains(&end))
    }

    #[test]
    fn chunks_are_cut_where_the_batches_are() {
        let dir = tempfile::tempdir().unwrap();
        let counts = [10u64, 10, 10, 10, 10, 10, 3];
        let urls = shards(dir.path(), &counts);
        // Where each shard starts, and the dataset's end.
        let bounds: Vec<u64> = std::iter::once(0)
            .chain(counts.iter().scan(0, |s, &n| {
                *s += n;
                Some(*s)
            }))
            .collect();
        for threads in [1, 2, 3] {
            // Starts known up front: every chunk is cut at a batch.
            let placed = urls
                .iter()
                .cloned()
                .zip(bounds.iter().map(|&b| Some(b)))
                .collect();
            let read = chunks(placed, 4, threads);
            assert!(
                read.iter().all(|&c| aligned(c, 4, &bounds)),
                "{threads} threads: {read:?}"
            );
            // Starts unknown: with up to two threads, each shard from the third on is guessed
            // from the two before it (equal shards), so its chunks are cut at batches too.
            let unplaced = urls.iter().map(|u| (u.clone(), None)).collect();
            let read = chunks(unplaced, 4, threads);
            assert_eq!(read.iter().map(|c| c.1).sum::<usize>(), 63);
            if threads <= 2 {
                let late: Vec<_> = read.iter().filter(|c| c.0 >= 20).copied().collect();
                assert!(
                    late.iter().all(|&c| aligned(c, 4, &bounds)),
                    "{threads} threads: {late:?}"
                );
            }
        }
    }

    #[test]
    fn datasets_read_at_once_share_the_cores() {
        let dir = tempfile::tempdir().unwrap();
        let urls = shards(dir.path(), &[300; 8]);
        // Four pipelines of four threads each, drained side by side.
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let urls = urls.clone();
                scope.spawn(move || {
                    let shards = urls.into_iter().map(|u| Unit::from((u, None))).collect();
                    let read: usize =
                        Pipeline::new(shards, Arc::new(LocalOpener), Keys(7), 4, 1 << 20)
                            .map(|chunk| chunk.unwrap().len())
                            .sum();
                    assert_eq!(read, 2400);
                });
            }
        });
        assert!(
            CORES.peak() <= CORES.limit(),
            "{} threads decoding on {} cores",
            CORES.peak(),
            CORES.limit()
        );
    }
}
