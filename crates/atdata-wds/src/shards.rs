//! Writing a dataset as numbered shards that roll over at a sample count or byte size.

use std::io::Write;
use std::path::PathBuf;

use atdata_codec::WdsSample;

use crate::error::{Error, Result};
use crate::sidecar::{Sidecar, sidecar_url};
use crate::writer::{ShardFile, TarWriter, validate_key};

/// How [`ShardWriter`] cuts shards. The defaults are WebDataset's.
///
/// ```
/// let opts = atdata_wds::ShardOptions { maxcount: 10_000, ..Default::default() };
/// assert_eq!(opts.maxsize, 3_000_000_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOptions {
    /// Samples per shard at most (default 100,000).
    pub maxcount: usize,
    /// Payload bytes per shard before rolling over (default 3e9). As in WebDataset, the check
    /// is made before each write, so a shard may exceed it by one sample.
    pub maxsize: u64,
    /// The tar members' mtime in seconds since the epoch; `None` means now.
    pub mtime: Option<u64>,
}

impl Default for ShardOptions {
    fn default() -> Self {
        ShardOptions {
            maxcount: 100_000,
            maxsize: 3_000_000_000,
            mtime: None,
        }
    }
}

/// Where [`ShardWriter`] puts its shards: it asks for a sink per shard and hands it back when
/// the shard is complete. [`FileSinks`] writes files; a data store can stream each shard into
/// an upload instead.
pub trait SinkFactory {
    /// What a shard is written to.
    type Sink: Write;
    /// What a completed shard is reported as (a path, a URL...).
    type Shard;

    /// A sink for shard number `index` (0, 1, 2...).
    fn create(&mut self, index: usize) -> Result<Self::Sink>;

    /// Completes shard `index`, whose tar bytes (`samples` samples) have all been written to
    /// `sink`; `sidecar` is its layout, to store beside it, unless the writer's sidecars are
    /// off.
    fn close(
        &mut self,
        index: usize,
        sink: Self::Sink,
        samples: usize,
        sidecar: Option<Sidecar>,
    ) -> Result<Self::Shard>;
}

/// Shard files named by a printf-style pattern: `out/data-%06d.tar` gives `out/data-000000.tar`,
/// `out/data-000001.tar`... (`%d` and `%0Nd` are accepted; `%%` is a literal `%`). Parent
/// folders are created; names ending in `.gz` or `.tgz` are gzip-compressed. Each
/// uncompressed shard gets its sidecar beside it (`out/data-000012.idx`), written atomically
/// once the shard is complete.
///
/// ```
/// let sinks = atdata_wds::FileSinks::new("out/data-%06d.tar").unwrap();
/// assert_eq!(sinks.path(12), std::path::PathBuf::from("out/data-000012.tar"));
/// assert!(atdata_wds::FileSinks::new("out/data.tar").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct FileSinks {
    before: String,
    width: usize,
    after: String,
}

impl FileSinks {
    /// Parses the pattern, which must hold exactly one `%d` or `%0Nd`.
    pub fn new(pattern: &str) -> Result<FileSinks> {
        let invalid = |reason: &str| Error::InvalidPattern {
            pattern: pattern.to_owned(),
            reason: reason.to_owned(),
        };
        let (mut before, mut after) = (String::new(), String::new());
        let mut width = None;
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let out = if width.is_some() {
                &mut after
            } else {
                &mut before
            };
            if c != '%' {
                out.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                out.push('%');
                continue;
            }
            let mut spec = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                spec.push(d);
                chars.next();
            }
            if chars.next() != Some('d')
                || (!spec.is_empty() && !spec.starts_with('0') && spec != "0")
            {
                return Err(invalid("only %d and %0Nd are supported"));
            }
            if width.is_some() {
                return Err(invalid("more than one shard number"));
            }
            width = Some(spec.parse::<usize>().unwrap_or(0));
        }
        let width = width.ok_or_else(|| invalid("needs a shard number such as %06d"))?;
        Ok(FileSinks {
            before,
            width,
            after,
        })
    }

    /// The path of shard `index`.
    pub fn path(&self, index: usize) -> PathBuf {
        PathBuf::from(format!(
            "{}{index:0w$}{}",
            self.before,
            self.after,
            w = self.width
        ))
    }
}

impl SinkFactory for FileSinks {
    type Sink = ShardFile;
    type Shard = PathBuf;

    fn create(&mut self, index: usize) -> Result<ShardFile> {
        ShardFile::create(&self.path(index))
    }

    fn close(
        &mut self,
        index: usize,
        sink: ShardFile,
        _samples: usize,
        sidecar: Option<Sidecar>,
    ) -> Result<PathBuf> {
        sink.close()?;
        let path = self.path(index);
        let beside = path.to_str().and_then(sidecar_url);
        if let (Some(sidecar), Some(beside)) = (sidecar, beside) {
            sidecar.write_file(beside)?;
        }
        Ok(path)
    }
}

/// Writes samples across numbered shards, starting a new shard before a write once the current
/// one holds `maxcount` samples or `maxsize` payload bytes (WebDataset's rule). Shards are
/// opened only when a sample needs one, so there is never a trailing empty shard, and no shard
/// at all for no samples. Each shard's [`Sidecar`] is recorded as it is written and handed to
/// the sinks with it (files get `<stem>.idx` beside them), unless
/// [`with_sidecars(false)`](Self::with_sidecars).
///
/// ```
/// use atdata_codec::WdsSample;
/// use atdata_wds::{ShardOptions, ShardWriter};
///
/// let dir = tempfile::tempdir().unwrap();
/// let pattern = dir.path().join("part-%03d.tar");
/// let mut w = ShardWriter::new(pattern.to_str().unwrap(), ShardOptions { maxcount: 2, ..Default::default() }).unwrap();
/// for i in 0..5 {
///     w.write(&WdsSample::msgpack(format!("{i:04}"), vec![0x80])).unwrap();
/// }
/// let paths = w.finish().unwrap();
/// assert_eq!(paths.len(), 3);
/// assert!(paths[2].ends_with("part-002.tar"));
/// ```
pub struct ShardWriter<S: SinkFactory = FileSinks> {
    sinks: S,
    options: ShardOptions,
    current: Option<TarWriter<S::Sink>>,
    index: usize,
    count: usize,
    size: u64,
    shards: Vec<S::Shard>,
    /// Samples written so far, across shards: the counter of generated keys.
    written: u64,
    key_prefix: String,
    sidecars: bool,
}

impl ShardWriter<FileSinks> {
    /// Shards written to files named by `pattern` (see [`FileSinks`]).
    pub fn new(pattern: &str, options: ShardOptions) -> Result<ShardWriter<FileSinks>> {
        Ok(ShardWriter::with_sinks(FileSinks::new(pattern)?, options))
    }
}

impl<S: SinkFactory> ShardWriter<S> {
    /// Shards written to the sinks `sinks` makes.
    pub fn with_sinks(sinks: S, options: ShardOptions) -> ShardWriter<S> {
        ShardWriter {
            sinks,
            options,
            current: None,
            index: 0,
            count: 0,
            size: 0,
            shards: Vec::new(),
            written: 0,
            key_prefix: String::new(),
            sidecars: true,
        }
    }

    /// Whether each shard gets its sidecar (default `true`). With sidecars, a key holding
    /// whitespace is refused ([`Error::SidecarName`]): the sidecar's lines could not hold it.
    pub fn with_sidecars(mut self, on: bool) -> ShardWriter<S> {
        self.sidecars = on;
        self
    }

    /// Generated keys start with `prefix` (see [`write_sample`](Self::write_sample)).
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> ShardWriter<S> {
        self.key_prefix = prefix.into();
        self
    }

    /// Packs `sample` and appends it under a generated key: the key prefix (empty unless
    /// [`with_key_prefix`](Self::with_key_prefix)) then the number of samples this writer
    /// has written before it, zero-padded to six digits (`000000`, `000001`, ...,
    /// `1000000`), counted across shards. The same samples written again give the same keys
    /// and, with a fixed `mtime`, the same bytes; the keys are the ones
    /// `write(&s.as_wds(&format!("{i:06}")))` gives.
    ///
    /// ```
    /// use atdata_codec::Packable;
    /// # use atdata_derive::packable;
    /// # #[packable(crate = "atdata_codec")]
    /// # struct Row { id: i64 }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let pattern = dir.path().join("rows-%03d.tar");
    /// let opts = atdata_wds::ShardOptions { maxcount: 2, mtime: Some(0), ..Default::default() };
    /// let mut w = atdata_wds::ShardWriter::new(pattern.to_str().unwrap(), opts)?.with_key_prefix("rows-");
    /// for id in 0..3 {
    ///     w.write_sample(&Row { id })?;
    /// }
    /// w.finish()?;
    /// let ds = atdata_wds::Dataset::<Row>::new(dir.path().join("rows-{000..001}.tar"))?;
    /// let keys: Vec<String> = ds.samples_with_keys()?.map(|r| r.map(|(k, _)| k)).collect::<Result<_, _>>()?;
    /// assert_eq!(keys, ["rows-000000", "rows-000001", "rows-000002"]);
    /// # Ok(()) }
    /// ```
    pub fn write_sample<T: atdata_codec::Packable>(&mut self, sample: &T) -> Result<()> {
        let key = format!("{}{:06}", self.key_prefix, self.written);
        let payload = sample.packed().map_err(|source| Error::Encode {
            key: key.clone(),
            source: Box::new(source),
        })?;
        self.write(&WdsSample::msgpack(key, payload))
    }

    /// Appends a sample, rolling over to a new shard first if the current one is full.
    pub fn write(&mut self, sample: &WdsSample) -> Result<()> {
        validate_key(&sample.key)?;
        if self.current.is_some()
            && (self.count >= self.options.maxcount || self.size >= self.options.maxsize)
        {
            self.close_current()?;
        }
        let writer = match &mut self.current {
            Some(w) => w,
            None => {
                let sink = self.sinks.create(self.index)?;
                let mut w = TarWriter::new(sink).with_sidecar(self.sidecars);
                if let Some(mtime) = self.options.mtime {
                    w = w.mtime(mtime);
                }
                self.count = 0;
                self.size = 0;
                self.current.insert(w)
            }
        };
        writer.write(sample)?;
        self.count += 1;
        self.written += 1;
        self.size += sample
            .members
            .iter()
            .map(|(_, d)| d.len() as u64)
            .sum::<u64>();
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some(w) = self.current.take() {
            let (sink, sidecar) = w.finish_with_sidecar()?;
            self.shards
                .push(self.sinks.close(self.index, sink, self.count, sidecar)?);
            self.index += 1;
        }
        Ok(())
    }

    /// Completes the last shard and returns every shard written, in order.
    pub fn finish(mut self) -> Result<Vec<S::Shard>> {
        self.close_current()?;
        Ok(self.shards)
    }
}
