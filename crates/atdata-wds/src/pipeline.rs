//! Reading and decoding shards on background threads, delivered in shard order.
//!
//! Up to `parallelism` shards are in flight at once, each read and decoded by its own thread
//! into its own bounded queue of chunks. The consumer drains the queues in shard order, so the
//! output order depends only on the shard list, never on thread timing. The queues together
//! hold about `AHEAD_BYTES` (each at least two chunks), so the shards behind the one being
//! drained are decoded ahead, in parallel, by as much as a small shard: memory is bounded by
//! `parallelism × (depth + 1)` chunks of at most `CHUNK_SAMPLES` samples or about
//! `CHUNK_BYTES` bytes, whatever the parallelism. A shard's thread is joined when its queue ends, so a thread that
//! panicked (in the opener, the reader or the decoder) is an error item naming the shard,
//! never a silently short shard. Dropping the consumer stops the threads at their next send.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
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

/// Chunks each shard thread may queue ahead of the consumer.
fn queue_depth(parallelism: usize) -> usize {
    (AHEAD_BYTES / CHUNK_BYTES / parallelism).max(2)
}

/// Turns one sample of a shard (borrowed from the reader's buffers) into an item: decodes it,
/// usually.
pub(crate) type MapFn<U> = Arc<dyn Fn(&str, Sample<'_>) -> Result<U> + Send + Sync>;

enum Msg<U> {
    Chunk(Vec<U>),
    Failed(Error),
}

enum Source<U> {
    Running {
        shard: String,
        queue: Receiver<Msg<U>>,
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
            let (tx, rx) = sync_channel(queue_depth(self.parallelism));
            let (opener, map) = (self.opener.clone(), self.map.clone());
            let (name, max_member) = (shard.clone(), self.max_member);
            let started = thread::Builder::new()
                .name("atdata-shard".into())
                .spawn(move || read_shard(&name, &*opener, &*map, &tx, max_member));
            self.in_flight.push_back(match started {
                Ok(thread) => Source::Running {
                    shard,
                    queue: rx,
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
                    thread,
                } => match queue.recv() {
                    Ok(Msg::Chunk(items)) => self.buffer = items.into_iter(),
                    Ok(Msg::Failed(e)) => return Some(Err(e)),
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
    tx: &SyncSender<Msg<U>>,
    max_member: u64,
) {
    let input = match opener.open(shard) {
        Ok(input) => input,
        Err(e) => {
            let _ = tx.send(Msg::Failed(e));
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
                    bytes = 0;
                    if tx.send(Msg::Chunk(std::mem::take(&mut chunk))).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                if !chunk.is_empty() && tx.send(Msg::Chunk(std::mem::take(&mut chunk))).is_err() {
                    return;
                }
                bytes = 0;
                if tx.send(Msg::Failed(e)).is_err() {
                    return;
                }
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Msg::Chunk(chunk));
    }
}
