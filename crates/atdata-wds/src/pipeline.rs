//! Reading and decoding shards on background threads, delivered in shard order.
//!
//! Up to `parallelism` shards are in flight at once, each read and decoded by its own thread
//! into its own queue of chunks (at most `CHUNK_SAMPLES` samples, closed at `CHUNK_BYTES` of
//! member bytes). The consumer drains the queues in shard order, so the output order depends
//! only on the shard list, never on thread timing. Each queue holds at most its share of
//! `AHEAD_BYTES` (and always one chunk, however large), so the shards behind the one being
//! drained decode ahead, in parallel, by up to a small shard: memory is bounded by
//! `AHEAD_BYTES` plus three chunks per shard in flight (one queued past the budget, one being
//! built, one being drained), whatever the parallelism. A shard's thread is joined when its
//! queue ends, so a thread that panicked (in the opener, the reader or the decoder) is an
//! error item naming the shard, never a silently short shard. Dropping the consumer stops the
//! threads at their next chunk.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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

/// Turns one sample of a shard (borrowed from the reader's buffers) into an item: decodes it,
/// usually.
pub(crate) type MapFn<U> = Arc<dyn Fn(&str, Sample<'_>) -> Result<U> + Send + Sync>;

enum Msg<U> {
    /// Items and the member bytes they were decoded from.
    Chunk(Vec<U>, usize),
    Failed(Error),
}

impl<U> Msg<U> {
    fn bytes(&self) -> usize {
        match self {
            Msg::Chunk(_, bytes) => *bytes,
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

pub(crate) struct Pipeline<U> {
    shards: std::vec::IntoIter<String>,
    in_flight: VecDeque<Source<U>>,
    buffer: std::vec::IntoIter<U>,
    opener: Arc<dyn ShardOpener>,
    map: MapFn<U>,
    parallelism: usize,
    max_member: u64,
}

impl<U: Send + 'static> Pipeline<U> {
    pub(crate) fn new(
        shards: Vec<String>,
        opener: Arc<dyn ShardOpener>,
        map: MapFn<U>,
        parallelism: usize,
        max_member: u64,
    ) -> Pipeline<U> {
        Pipeline {
            shards: shards.into_iter(),
            in_flight: VecDeque::new(),
            buffer: Vec::new().into_iter(),
            opener,
            map,
            parallelism: parallelism.max(1),
            max_member,
        }
    }

    fn fill(&mut self) {
        while self.in_flight.len() < self.parallelism {
            let Some(shard) = self.shards.next() else {
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
            let (opener, map) = (self.opener.clone(), self.map.clone());
            let (name, max_member) = (shard.clone(), self.max_member);
            let started = thread::Builder::new()
                .name("atdata-shard".into())
                .spawn(move || read_shard(&name, &*opener, &*map, &queue, max_member));
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

impl<U: Send + 'static> Iterator for Pipeline<U> {
    type Item = Result<U>;

    fn next(&mut self) -> Option<Result<U>> {
        loop {
            if let Some(item) = self.buffer.next() {
                return Some(Ok(item));
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
                            Msg::Chunk(items, _) => self.buffer = items.into_iter(),
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

/// Reads one shard into `tx`. Errors are sent in place (a bad sample does not stop the shard;
/// a broken archive ends it, after its intact samples). Returns when done or when the consumer
/// is gone.
fn read_shard<U>(
    shard: &str,
    opener: &dyn ShardOpener,
    map: &(dyn Fn(&str, Sample<'_>) -> Result<U> + Send + Sync),
    queue: &Queue<U>,
    max_member: u64,
) {
    let input = match opener.open(shard) {
        Ok(input) => input,
        Err(e) => {
            queue.send(Msg::Failed(e));
            return;
        }
    };
    let mut chunk = Vec::new();
    let mut bytes = 0;
    let mut samples = Grouper::new(input, shard.to_owned(), max_member);
    while let Some(read) = samples.advance() {
        let item = read.and_then(|()| {
            let sample = samples.sample();
            bytes += sample.len();
            map(samples.shard(), sample)
        });
        match item {
            Ok(item) => {
                chunk.push(item);
                if chunk.len() >= CHUNK_SAMPLES || bytes >= CHUNK_BYTES {
                    let full = Msg::Chunk(std::mem::take(&mut chunk), std::mem::take(&mut bytes));
                    if !queue.send(full) {
                        return;
                    }
                }
            }
            Err(e) => {
                if !chunk.is_empty() {
                    let part = Msg::Chunk(std::mem::take(&mut chunk), std::mem::take(&mut bytes));
                    if !queue.send(part) {
                        return;
                    }
                }
                if !queue.send(Msg::Failed(e)) {
                    return;
                }
            }
        }
    }
    if !chunk.is_empty() {
        queue.send(Msg::Chunk(chunk, bytes));
    }
}
