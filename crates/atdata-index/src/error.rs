//! The errors of the index.

/// A `Result` whose error is the index crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with an index. Messages name what was asked for, and a Redis
/// server by host and database only (never a password).
///
/// ```
/// use atdata_index::Error;
///
/// let err = Error::NotFound { what: "entry", key: "bafyrei...".into() };
/// assert_eq!(err.to_string(), "entry not found: bafyrei...");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No entry, schema or label under that key.
    #[error("{what} not found: {key}")]
    NotFound {
        /// `entry`, `schema` or `label`.
        what: &'static str,
        /// The CID, name or reference asked for.
        key: String,
    },
    /// The Redis server failed or could not be reached.
    #[cfg(feature = "redis")]
    #[error("redis at {server}: {source}")]
    Redis {
        /// `host:port/db` (no credentials).
        server: String,
        /// What the client reported.
        #[source]
        source: redis::RedisError,
    },
    /// The SQLite file could not be opened, read or written.
    #[error("sqlite index {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// What SQLite reported.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value that does not decode (not written by atdata, or damaged).
    #[error("{key}: {reason}")]
    Corrupt {
        /// The key or row at fault.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A schema version already published with a different record (publishing the same
    /// record again is a no-op).
    #[error(
        "schema {schema_ref} is already published with a different record: publish another version, or replace it with `replace_schema`"
    )]
    SchemaConflict {
        /// The reference asked for.
        schema_ref: String,
    },
    /// An argument the index cannot use (a bad Redis URL, metadata that is not an object...).
    #[error("{0}")]
    Invalid(String),
    /// A schema reference, record or sample payload the codec rejects.
    #[error(transparent)]
    Codec(#[from] atdata_codec::Error),
    /// Writing shards through the data store failed (the entry was not written).
    #[error(transparent)]
    Store(Box<atdata_store::Error>),
    /// A blocking index task ended abnormally.
    #[error("index task failed: {0}")]
    Task(String),
}

impl From<atdata_store::Error> for Error {
    fn from(e: atdata_store::Error) -> Error {
        Error::Store(Box::new(e))
    }
}
