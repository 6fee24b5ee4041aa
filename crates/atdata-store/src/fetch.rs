//! Reading objects as ranged GETs: a shard streams through a bounded window of concurrent
//! ranges, each retried with backoff when its body breaks off, so one slow or broken request
//! neither stalls the stream (the ranges after it are already on their way) nor restarts it.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use tokio::sync::mpsc::Sender;
use tokio_util::task::AbortOnDropHandle;

/// Bytes one streamed shard may have in flight and buffered ahead of its reader, unless set
/// with a store's `with_read_window`.
pub(crate) const DEFAULT_READ_WINDOW: u64 = 32 << 20;
/// The largest range one GET asks for.
const RANGE_BYTES: u64 = 8 << 20;
/// The smallest: a tiny window is not read in tiny requests.
const MIN_RANGE_BYTES: u64 = 64 << 10;
/// Times one range is asked for again, with backoff (0.5 s doubling to 8 s), after its body
/// broke off. A request that fails outright was already retried by object_store (a dead
/// server fails a read within its retry timeout, about 20 s); but once the server was
/// serving the object (its body broke off, or an earlier range of it came), an outright
/// failure (a restarted server refusing connections while it starts) is tried again too.
const RANGE_RETRIES: u32 = 5;

/// How an object is read: its window, cut into ranges of at most [`RANGE_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    bytes: u64,
}

impl Default for Window {
    fn default() -> Window {
        Window::new(DEFAULT_READ_WINDOW)
    }
}

impl Window {
    pub(crate) fn new(bytes: u64) -> Window {
        Window {
            bytes: bytes.max(MIN_RANGE_BYTES),
        }
    }

    fn range_bytes(self) -> u64 {
        self.bytes.min(RANGE_BYTES)
    }

    /// Ranges requested at once.
    fn ranges(self) -> usize {
        usize::try_from(self.bytes / self.range_bytes())
            .unwrap_or(usize::MAX)
            .max(1)
    }

    /// `range` cut into this window's requests.
    fn cut(self, range: Range<u64>) -> impl Iterator<Item = Range<u64>> {
        let step = self.range_bytes();
        (range.start..range.end)
            .step_by(usize::try_from(step).unwrap_or(usize::MAX))
            .map(move |start| start..range.end.min(start.saturating_add(step)))
    }
}

/// Whether retrying cannot help.
fn permanent(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
    )
}

/// Whether the store never answered `e`'s request (a connection error or a timeout): asking
/// it again at once would only wait as long again.
fn unanswered(e: &object_store::Error) -> bool {
    #[cfg(any(feature = "s3", feature = "http"))]
    {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if err.is::<object_store::client::HttpError>() {
                return true;
            }
            source = err.source();
        }
    }
    #[cfg(not(any(feature = "s3", feature = "http")))]
    let _ = e;
    false
}

/// A range's body in the pieces it arrived in: a streamed shard hands them to its reader as
/// they are (joining them would copy every byte once more).
pub(crate) type Body = Vec<Bytes>;

fn body_len(body: &Body) -> u64 {
    body.iter().map(|b| b.len() as u64).sum()
}

/// The body as one buffer: no copy when it arrived in one piece.
fn joined(mut body: Body) -> Bytes {
    if body.len() == 1 {
        return body.pop().unwrap_or_default();
    }
    let mut whole = BytesMut::with_capacity(usize::try_from(body_len(&body)).unwrap_or(0));
    for piece in body {
        whole.extend_from_slice(&piece);
    }
    whole.freeze()
}

/// One range of the object, retried with backoff (see [`RANGE_RETRIES`]); `served` says an
/// earlier range of it came. `Ok(None)` when the object ends before the range does.
async fn fetch_range(
    store: Arc<dyn ObjectStore>,
    path: Path,
    range: Range<u64>,
    served: bool,
) -> object_store::Result<Option<Body>> {
    let wanted = range.end - range.start;
    let mut broke_off = served;
    let mut retries = 0;
    loop {
        let options = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            ..Default::default()
        };
        let failure = match store.get_opts(&path, options).await {
            Ok(got) => match got.into_stream().try_collect::<Body>().await {
                Ok(body) if body_len(&body) == wanted => return Ok(Some(body)),
                Ok(_) => return Ok(None),
                Err(e) => {
                    broke_off = true;
                    e
                }
            },
            Err(e) if permanent(&e) || unanswered(&e) && !broke_off => return Err(e),
            Err(e) if !broke_off => {
                // A range past the end fails in several ways (a 416, a local length check);
                // the object's size, asked for only then, tells them apart from other failures.
                return match store.head(&path).await {
                    Ok(meta) if meta.size < range.end => Ok(None),
                    _ => Err(e),
                };
            }
            Err(e) => e,
        };
        if permanent(&failure) || retries == RANGE_RETRIES {
            return Err(failure);
        }
        retries += 1;
        tokio::time::sleep(Duration::from_millis(250 << retries)).await;
    }
}

/// The bytes `range` of the object, fetched as concurrent requests of the window's size
/// (one request when it fits one). `Ok(None)` when the object ends first.
pub(crate) async fn read_range(
    store: Arc<dyn ObjectStore>,
    path: Path,
    range: Range<u64>,
    window: Window,
) -> object_store::Result<Option<Bytes>> {
    if range.start >= range.end {
        return Ok(Some(Bytes::new())); // an empty range asks nothing of the server
    }
    if range.end - range.start <= window.range_bytes() {
        return Ok(fetch_range(store, path, range, false).await?.map(joined));
    }
    let mut parts = futures::stream::iter(window.cut(range))
        .map(|part| spawned(fetch_range(store.clone(), path.clone(), part, false)))
        .buffered(window.ranges());
    let mut whole = Body::new();
    while let Some(part) = parts.next().await {
        match part? {
            Some(body) => whole.extend(body),
            None => return Ok(None),
        }
    }
    Ok(Some(joined(whole)))
}

/// Streams the object at `path` into `tx` in order, with up to the window's ranges in flight;
/// a missing object or a range that keeps failing is sent as the last item. The first range
/// tells the object's size; the rest are requested as room frees up.
pub(crate) async fn stream(
    store: Arc<dyn ObjectStore>,
    path: Path,
    url: String,
    tx: Sender<io::Result<Body>>,
    window: Window,
) {
    let first = GetOptions {
        range: Some(GetRange::Bounded(0..window.range_bytes())),
        ..Default::default()
    };
    let (head, size) = match store.get_opts(&path, first).await {
        Ok(got) => {
            let size = got.meta.size;
            let range = got.range.clone();
            // The first body is read like any other range: retried if it breaks off.
            let body = match got.into_stream().try_collect::<Body>().await {
                Ok(body) if body_len(&body) == range.end - range.start => Ok(Some(body)),
                _ => fetch_range(store.clone(), path.clone(), range, true).await,
            };
            (body, size)
        }
        Err(e) if permanent(&e) || unanswered(&e) => (Err(e), 0),
        Err(e) => match store.head(&path).await {
            Ok(meta) if meta.size == 0 => return, // empty: no range to ask for
            _ => (Err(e), 0),
        },
    };
    let send = |part: object_store::Result<Option<Body>>| {
        part.and_then(|bytes| {
            bytes.ok_or_else(|| object_store::Error::Generic {
                store: "atdata",
                source: "the object became shorter while it was read".into(),
            })
        })
        .map_err(|e| crate::object::io_error(crate::error::Error::store(url.clone(), e)))
    };
    let head = send(head);
    let failed = head.is_err();
    if tx.send(head).await.is_err() || failed {
        return;
    }
    let rest = window.range_bytes().min(size)..size;
    let mut parts = futures::stream::iter(window.cut(rest))
        .map(|part| spawned(fetch_range(store.clone(), path.clone(), part, true)))
        .buffered(window.ranges());
    while let Some(part) = parts.next().await {
        let part = send(part);
        let failed = part.is_err();
        if tx.send(part).await.is_err() || failed {
            return; // the reader is gone, or has its error
        }
    }
}

/// `fetch` on its own task (ranges of one object download on every runtime thread), aborted
/// if the stream is dropped; a panic in it is an error, never a clean end.
async fn spawned(
    fetch: impl Future<Output = object_store::Result<Option<Body>>> + Send + 'static,
) -> object_store::Result<Option<Body>> {
    AbortOnDropHandle::new(tokio::spawn(fetch))
        .await
        .unwrap_or_else(|e| {
            Err(object_store::Error::Generic {
                store: "atdata",
                source: format!("a range download task failed: {e}").into(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cut_ranges_of_at_most_their_size() {
        let w = Window::new(20 << 20);
        assert_eq!(w.ranges(), 2);
        let cut: Vec<_> = w.cut(3..(17 << 20)).collect();
        assert_eq!(
            cut,
            [
                3..(8 << 20) + 3,
                (8 << 20) + 3..(16 << 20) + 3,
                (16 << 20) + 3..17 << 20
            ]
        );
        let small = Window::new(1);
        assert_eq!((small.range_bytes(), small.ranges()), (64 << 10, 1));
        assert_eq!(Window::default().ranges(), 4);
        assert_eq!(w.cut(5..5).count(), 0);
    }
}
