//! The errors of shard reading and writing.

use std::io;

/// A `Result` whose error is the shard crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing WebDataset shards.
///
/// Errors found in a shard name it and, where known, the member (`key.ext`) at fault.
///
/// ```
/// let err = atdata_wds::expand_urls("data-{000..002.tar").unwrap_err();
/// assert!(matches!(err, atdata_wds::Error::InvalidPattern { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The cache byte limit (`ATDATA_CACHE_LIMIT`) is not a byte count.
    #[error("cache limit {limit:?} is not a byte count (like 500M, 20G or 1T)")]
    BadCacheLimit {
        /// The value given.
        limit: String,
    },
    /// A shard (or a file to write) could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The shard URL or file path.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The archive ends in the middle of a member or without its end-of-archive marker.
    #[error("{shard}: truncated tar archive{}", member_suffix(.member))]
    Truncated {
        /// The shard.
        shard: String,
        /// The member being read when the data ran out, if any.
        member: Option<String>,
    },
    /// A tar header that cannot be valid.
    #[error("{shard}: corrupt tar header{}: {reason}", member_suffix(.member))]
    CorruptHeader {
        /// The shard.
        shard: String,
        /// The member whose header is bad, when its name could be read.
        member: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// Two members of one sample with the same extension (WebDataset forbids it).
    #[error("{shard}: sample `{key}` has two `{ext}` members")]
    DuplicateMember {
        /// The shard.
        shard: String,
        /// The sample key.
        key: String,
        /// The repeated extension.
        ext: String,
    },
    /// A sample without the member that holds its payload.
    #[error("{shard}: sample `{key}` has no `{ext}` member")]
    MissingMember {
        /// The shard.
        shard: String,
        /// The sample key.
        key: String,
        /// The extension looked for.
        ext: &'static str,
    },
    /// A sample whose payload does not decode.
    #[error("{shard}: sample `{key}`: {source}")]
    Decode {
        /// The shard.
        shard: String,
        /// The sample key.
        key: String,
        /// The codec's error.
        #[source]
        source: atdata_codec::Error,
    },
    /// A sample that cannot be packed (written by `ShardWriter::write_sample`).
    #[error("sample `{key}` cannot be packed: {source}")]
    Encode {
        /// The key it was to be written under.
        key: String,
        /// The codec's error.
        #[source]
        source: Box<atdata_codec::Error>,
    },
    /// Samples that cannot form a batch (array fields of different shapes, say).
    #[error("cannot batch samples: {0}")]
    Batch(#[source] atdata_codec::Error),
    /// A sample key or member name that cannot be written.
    #[error("invalid sample key `{key}`: {reason}")]
    InvalidKey {
        /// The key (or `key.ext`).
        key: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A URL or shard-name pattern that cannot be expanded.
    #[error("invalid pattern `{pattern}`: {reason}")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A URL whose scheme this opener cannot read.
    #[error(
        "cannot open `{url}`: unsupported scheme (this reader opens local paths and file:// URLs)"
    )]
    UnsupportedUrl {
        /// The URL.
        url: String,
    },
    /// A dataset path that is not UTF-8 (shard URLs are text).
    #[error("the path `{path}` is not UTF-8: shard URLs must be text")]
    NonUtf8Path {
        /// The path, with the bytes that are not UTF-8 replaced.
        path: String,
    },
    /// A batch size of zero.
    #[error("batch size must be at least 1")]
    ZeroBatchSize,
    /// A split that would leave some rank or worker without a shard.
    #[error(
        "cannot split {shards} shards over {ranks} ranks x {workers} workers: every worker needs at least one shard"
    )]
    TooFewShards {
        /// Shards in the dataset.
        shards: usize,
        /// Ranks (world size).
        ranks: usize,
        /// Workers per rank.
        workers: usize,
    },
    /// A rank or worker index outside its count.
    #[error("invalid split: index {index} is not below {count}")]
    InvalidSplit {
        /// The index given.
        index: usize,
        /// The count given.
        count: usize,
    },
    /// A thread reading a shard panicked (in the opener, the reader or the decoder): the
    /// shard's remaining samples are lost, and this error says so instead of a short epoch.
    #[error("{shard}: the thread reading it panicked: {message}")]
    ReaderPanicked {
        /// The shard being read.
        shard: String,
        /// The panic's message, when it had one.
        message: String,
    },
    /// A member larger than the reader accepts (`TarReader::with_max_member_bytes`,
    /// `Dataset::with_max_member_bytes`; 1 GiB by default), refused before it is read.
    #[error(
        "{shard}: member `{member}` claims {len} bytes, over the limit of {limit} (raise it with `with_max_member_bytes` or `--max-member-bytes`)"
    )]
    MemberOverLimit {
        /// The shard.
        shard: String,
        /// The member name.
        member: String,
        /// The size its header claims.
        len: u64,
        /// The limit in force.
        limit: u64,
    },
    /// A sidecar whose text is not the format, or could not describe a tar archive.
    #[error("{sidecar}: line {line}: not a sidecar (DALI webdataset index v1.2): {reason}")]
    BadSidecar {
        /// The sidecar's URL or path.
        sidecar: String,
        /// The line at fault (1 for the first).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A sidecar that does not describe its shard: a member past the shard's end, a header at
    /// an offset that is not the member it names, counts or sizes that differ from the
    /// entry's. The shard's samples are not read through it.
    #[error("{shard}: its sidecar does not match it: {reason} (rebuild it with `atdata sidecar`)")]
    SidecarMismatch {
        /// The shard.
        shard: String,
        /// What differs.
        reason: String,
    },
    /// A member name a sidecar line cannot hold, refused before it is written.
    #[error(
        "member `{name}` cannot be listed in a sidecar: {reason} (write without sidecars to keep the name)"
    )]
    SidecarName {
        /// The member name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Random access to a shard that cannot be read at an offset.
    #[error("{shard}: no random access: {reason}")]
    NoRandomAccess {
        /// The shard.
        shard: String,
        /// Why.
        reason: &'static str,
    },
    /// A sample index at or past the dataset's length.
    #[error("sample index {index} is out of range: the dataset has {len} samples")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The dataset's length.
        len: usize,
    },
    /// No sample under the key asked for.
    #[error("no sample has the key `{key}`")]
    KeyNotFound {
        /// The key.
        key: String,
    },
    /// A member larger than a tar header can describe without extensions (8 GiB).
    #[error("member `{member}` of {len} bytes is larger than a tar header allows (8 GiB)")]
    MemberTooLarge {
        /// The member name.
        member: String,
        /// Its size.
        len: u64,
    },
    /// [`LoaderOptions`](crate::LoaderOptions) that cannot make a loader.
    #[error("bad loader options: {reason}")]
    BadLoaderOptions {
        /// What is wrong.
        reason: String,
    },
    /// A [`LoaderState`](crate::LoaderState) to resume from that another dataset or order
    /// made: resuming from it would not continue that run.
    #[error(
        "the loader state does not fit this loader: its {field} is {state}, this loader's is {loader}"
    )]
    LoaderStateMismatch {
        /// What differs.
        field: &'static str,
        /// The state's value.
        state: String,
        /// This loader's.
        loader: String,
    },
}

fn member_suffix(member: &Option<String>) -> String {
    member
        .as_ref()
        .map(|m| format!(" at member `{m}`"))
        .unwrap_or_default()
}

/// The text of a panic's payload, for [`Error::ReaderPanicked`].
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

impl Error {
    pub(crate) fn io(path: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
