//! The work a store finishes after its caller has gone: aborting uploads that were never
//! committed, deleting the shards of a cancelled write, and the writer threads doing it.
//!
//! Each piece of work is tracked; [`DataStore::shutdown`](crate::DataStore::shutdown) waits for
//! all of it, bounded by [`SHUTDOWN_TIMEOUT`]. Work still pending when a program exits without
//! waiting is lost with the process: what it would have removed is left for `atdata gc`.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::task::{TaskTracker, task_tracker::TaskTrackerToken};

use crate::error::{Error, Result};

/// How long one cleanup task keeps retrying (an abort against a server that is down, say).
pub(crate) const CLEANUP_DEADLINE: Duration = Duration::from_secs(60);
/// How long `shutdown` waits for pending cleanup: the deadline of a task started just before.
pub(crate) const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(75);

/// The pending work of one store (shared by its clones).
#[derive(Debug, Clone, Default)]
pub(crate) struct Cleanup {
    tracker: TaskTracker,
}

/// Keeps [`DataStore::shutdown`](crate::DataStore::shutdown) waiting while it is held: taken by
/// a thread writing shards, so that a cancelled write's own cleanup is waited for too.
///
/// ```
/// use atdata_store::{DataStore, MemoryStore};
///
/// let store = MemoryStore::new().unwrap();
/// let guard = store.work_guard(); // shutdown() now waits until `guard` is dropped
/// drop(guard);
/// ```
#[derive(Debug, Default)]
pub struct WorkGuard {
    _token: Option<TaskTrackerToken>,
}

impl Cleanup {
    pub(crate) fn guard(&self) -> WorkGuard {
        WorkGuard {
            _token: Some(self.tracker.token()),
        }
    }

    /// Runs `work` on `handle`, tracked.
    pub(crate) fn spawn(&self, handle: &Handle, work: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn_on(work, handle);
    }

    /// Waits (on `handle`, which has a timer) until no work is pending, at most
    /// [`SHUTDOWN_TIMEOUT`].
    pub(crate) async fn wait(&self, handle: &Handle) -> Result<()> {
        let tracker = self.tracker.clone();
        let waited = handle
            .spawn(async move {
                tracker.close();
                let done = tokio::time::timeout(SHUTDOWN_TIMEOUT, tracker.wait()).await;
                tracker.reopen();
                done.map_err(|_| tracker.len())
            })
            .await
            .map_err(|e| Error::Runtime(e.to_string()))?;
        waited.map_err(|pending| Error::CleanupPending {
            pending,
            waited: SHUTDOWN_TIMEOUT,
        })
    }
}
