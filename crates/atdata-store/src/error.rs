//! The errors of data stores.

/// A `Result` whose error is the store crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong storing or reading shards. Messages name the URL or file at
/// fault and never contain a secret.
///
/// ```
/// let err = atdata_store::Credentials::from_map([("AWS_ACCESS_KEY_ID", "k")]).unwrap_err();
/// assert_eq!(err.to_string(), "credentials: AWS_SECRET_ACCESS_KEY is missing");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Credentials that are incomplete or unreadable.
    #[error("credentials: {0}")]
    Credentials(String),
    /// The object does not exist.
    #[error("{url}: not found")]
    NotFound {
        /// The object's URL.
        url: String,
    },
    /// A URL that does not belong to this store.
    #[error("`{url}` is not in this store (expected {expected})")]
    ForeignUrl {
        /// The URL given.
        url: String,
        /// What this store's URLs start with.
        expected: String,
    },
    /// The object store failed (unreachable server, denied request...).
    #[error("{url}: {source}")]
    Store {
        /// The object's URL (or the store's).
        url: String,
        /// The object_store error.
        #[source]
        source: object_store::Error,
    },
    /// Writing or reading shards failed.
    #[error(transparent)]
    Shards(#[from] atdata_wds::Error),
    /// Uploads were completed but a later one failed; the completed ones were deleted (best
    /// effort) and are named here so nothing is left unaccounted for.
    #[error("upload failed after completing {completed:?} (deleted: {deleted}): {source}")]
    PartialCommit {
        /// URLs that had been completed.
        completed: Vec<String>,
        /// Whether deleting them succeeded.
        deleted: bool,
        /// The failure.
        #[source]
        source: Box<Error>,
    },
    /// The caller stopped waiting for a write (its future was dropped): the write stopped, and
    /// what it had stored is being removed.
    #[error("the write was cancelled")]
    Cancelled,
    /// [`DataStore::shutdown`](crate::DataStore::shutdown) gave up waiting for background
    /// cleanup; what it leaves behind is what `atdata gc` finds.
    #[error(
        "cleanup still pending after {waited:?}: {pending} task(s) aborting uploads or deleting shards; `atdata gc` removes what they leave"
    )]
    CleanupPending {
        /// Tasks still running.
        pending: usize,
        /// How long shutdown waited.
        waited: std::time::Duration,
    },
    /// The store cannot do this (listing uploads on a store that has none to list, say).
    #[error("{0}")]
    Unsupported(String),
    /// The store's I/O runtime could not be started or was shut down.
    #[error("store runtime: {0}")]
    Runtime(String),
    /// A local file or folder could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn store(url: impl Into<String>, source: object_store::Error) -> Error {
        let url = url.into();
        match source {
            object_store::Error::NotFound { .. } => Error::NotFound { url },
            source => Error::Store { url, source },
        }
    }
}
