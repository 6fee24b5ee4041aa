//! A local cache of remote shards, shared by processes and users on one machine.
//!
//! Layout under the cache directory: `shards/{sha256}.tar` (a shard, named by the checksum
//! its index entry records) and `shards/{sha256}.idx` (its sidecar), `tmp/` (copies being
//! written), `lock` (held while evicting). A copy is written to `tmp/` while it is read
//! through, hashed, synced and renamed into `shards/` only when its hash matches, so every
//! file under `shards/` is a whole, checked copy; readers open it without a lock. Eviction
//! (least recently used first, by modification time, which a hit refreshes) deletes only
//! files named as cache copies under `shards/`, never a shard's source. On Unix a copy
//! evicted while another process reads it stays readable to that process.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::opener::{ShardOpener, read_exact_at};
use crate::sidecar::sidecar_url;

/// The environment variable naming the cache directory; unset, nothing is cached.
pub const CACHE_DIR_VAR: &str = "ATDATA_CACHE_DIR";
/// The environment variable holding the cache's byte limit: a number of bytes, or with a
/// binary unit (`500M`, `20G`, `1T`, also written `20GiB`); unset, 10 GiB.
pub const CACHE_LIMIT_VAR: &str = "ATDATA_CACHE_LIMIT";
/// The byte limit when [`CACHE_LIMIT_VAR`] is unset.
pub const DEFAULT_CACHE_LIMIT: u64 = 10 << 30;
/// A copy left in `tmp/` this long is a crashed writer's: the next eviction removes it.
const STALE_COPY: Duration = Duration::from_secs(3600);
/// Bytes a reader dropped before the end still reads to complete its copy (a tar's end
/// padding); a reader dropped earlier than that discards the copy.
const DRAIN_ON_DROP: u64 = 1 << 20;

/// A directory of checked copies of remote shards, within a byte limit.
///
/// ```
/// use atdata_wds::ShardCache;
///
/// let dir = tempfile::tempdir()?;
/// let cache = ShardCache::new(dir.path(), 1 << 30)?;
/// assert!(cache.list()?.is_empty());
/// assert_eq!(cache.clear()?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ShardCache {
    dir: PathBuf,
    limit: u64,
}

/// One copy in a [`ShardCache`], as [`ShardCache::list`] gives it.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let cache = atdata_wds::ShardCache::new(dir.path(), 1 << 30)?;
/// for copy in cache.list()? {
///     println!("{} {} bytes", copy.name, copy.bytes);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCopy {
    /// `{sha256}.tar` for a shard, `{sha256}.idx` for its sidecar.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// When it was last written or read.
    pub last_used: SystemTime,
}

impl ShardCache {
    /// A cache in `dir` (created if missing) holding at most `limit` bytes of copies.
    pub fn new(dir: impl AsRef<Path>, limit: u64) -> Result<ShardCache> {
        let cache = ShardCache {
            dir: dir.as_ref().to_owned(),
            limit,
        };
        for sub in [cache.shards(), cache.tmp()] {
            fs::create_dir_all(&sub).map_err(|e| Error::io(sub.display().to_string(), e))?;
        }
        Ok(cache)
    }

    /// The cache [`CACHE_DIR_VAR`] and [`CACHE_LIMIT_VAR`] name, or `None` when the directory
    /// variable is unset or empty.
    ///
    /// ```
    /// // SAFETY: no other thread of this doctest reads the environment.
    /// unsafe { std::env::remove_var(atdata_wds::CACHE_DIR_VAR) };
    /// assert!(atdata_wds::ShardCache::from_env()?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_env() -> Result<Option<ShardCache>> {
        match std::env::var_os(CACHE_DIR_VAR).filter(|d| !d.is_empty()) {
            Some(dir) => ShardCache::open(dir).map(Some),
            None => Ok(None),
        }
    }

    /// The cache in `dir` (created if missing) with the limit [`CACHE_LIMIT_VAR`] sets
    /// (default [`DEFAULT_CACHE_LIMIT`]).
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// // SAFETY: no other thread of this doctest reads the environment.
    /// unsafe { std::env::set_var(atdata_wds::CACHE_LIMIT_VAR, "20G") };
    /// assert_eq!(atdata_wds::ShardCache::open(dir.path())?.limit(), 20 << 30);
    /// unsafe { std::env::set_var(atdata_wds::CACHE_LIMIT_VAR, "lots") };
    /// assert!(atdata_wds::ShardCache::open(dir.path()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<ShardCache> {
        let limit = match std::env::var(CACHE_LIMIT_VAR) {
            Ok(limit) => parse_limit(&limit).ok_or(Error::BadCacheLimit { limit })?,
            Err(_) => DEFAULT_CACHE_LIMIT,
        };
        ShardCache::new(dir, limit)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The byte limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The copies held, least recently used first.
    pub fn list(&self) -> Result<Vec<CachedCopy>> {
        let shards = self.shards();
        let entries = match fs::read_dir(&shards) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(shards.display().to_string(), e)),
        };
        let mut copies: Vec<CachedCopy> = entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                let meta = entry.metadata().ok()?;
                (copy_name(&name) && meta.is_file()).then(|| CachedCopy {
                    name,
                    bytes: meta.len(),
                    last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                })
            })
            .collect();
        copies.sort_by(|a, b| (a.last_used, &a.name).cmp(&(b.last_used, &b.name)));
        Ok(copies)
    }

    /// Deletes every copy (and copies being written); returns the bytes freed. Copies other
    /// users own and this user may not delete are left.
    pub fn clear(&self) -> Result<u64> {
        let _lock = self.lock();
        self.remove_stale_copies(Duration::ZERO);
        Ok(self
            .list()?
            .iter()
            .filter(|copy| fs::remove_file(self.shards().join(&copy.name)).is_ok())
            .map(|copy| copy.bytes)
            .sum())
    }

    fn shards(&self) -> PathBuf {
        self.dir.join("shards")
    }

    fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// The eviction lock: held while the cache is counted and trimmed, so that two processes
    /// never both delete for the same room. `None` when it cannot be taken (another user's
    /// read-only lock file): eviction then runs unlocked, which can only delete more.
    fn lock(&self) -> Option<File> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("lock"))
            .ok()?;
        file.lock().ok()?;
        Some(file)
    }

    /// Removes copies in `tmp/` older than `age`.
    fn remove_stale_copies(&self, age: Duration) {
        let Ok(entries) = fs::read_dir(self.tmp()) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let modified = entry.metadata().and_then(|m| m.modified());
            if modified.is_ok_and(|m| now.duration_since(m).unwrap_or_default() >= age) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Moves the finished copy `temp` (`bytes` long) in as `name`, first deleting least
    /// recently used copies until it fits the limit; a copy larger than the limit is dropped.
    fn admit(&self, temp: &Path, name: &str, bytes: u64) -> io::Result<()> {
        if bytes > self.limit {
            return fs::remove_file(temp);
        }
        let _lock = self.lock();
        self.remove_stale_copies(STALE_COPY);
        let copies = self.list().map_err(io::Error::other)?;
        // A copy of the same name (another process's, just kept) is replaced, not added to.
        let mut held: u64 = copies
            .iter()
            .filter(|c| c.name != name)
            .map(|c| c.bytes)
            .sum();
        for copy in copies.iter().filter(|c| c.name != name) {
            if held + bytes <= self.limit {
                break;
            }
            if fs::remove_file(self.shards().join(&copy.name)).is_ok() {
                held -= copy.bytes;
            }
        }
        fs::rename(temp, self.shards().join(name))
    }

    /// The copy `name`, opened and marked used, if the cache holds it.
    fn open_copy(&self, name: &str) -> Option<File> {
        let file = File::open(self.shards().join(name)).ok()?;
        // Refreshes the copy's place in the eviction order; another user's copy keeps its own.
        let _ = file.set_modified(SystemTime::now());
        Some(file)
    }

    /// A file in `tmp/` to write a copy of `name` into.
    fn begin(&self, name: &str) -> io::Result<(File, PathBuf)> {
        static WRITERS: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let writer = WRITERS.fetch_add(1, Ordering::Relaxed);
        let unique = format!("{name}.{}.{writer}.{nanos}", std::process::id());
        let path = self.tmp().join(unique);
        Ok((File::create_new(&path)?, path))
    }
}

/// Whether `name` is one the cache writes: `{64 hex digits}.tar` or `.idx`.
fn copy_name(name: &str) -> bool {
    let Some((sum, ext)) = name.split_once('.') else {
        return false;
    };
    checksum(sum) && matches!(ext, "tar" | "idx")
}

/// Whether `sum` is a SHA-256 in hex, the only form a cache file is ever named by.
fn checksum(sum: &str) -> bool {
    sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A byte count with an optional binary unit.
fn parse_limit(limit: &str) -> Option<u64> {
    let limit = limit.trim();
    let digits = limit
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(limit.len());
    let (number, unit) = limit.split_at(digits);
    let shift = match unit.trim().trim_end_matches("iB").trim_end_matches('B') {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// A [`ShardOpener`] that reads shards through a [`ShardCache`]: a shard whose checksum it
/// knows (and that shard's sidecar) is read from the cache when a checked copy is there, and
/// otherwise read through `inner` while a copy is written, hashed and, if it matches, kept.
/// Shards without a checksum are read from `inner` uncached. A cache that cannot be written
/// (a full disk, another user's directory) never fails a read: the shard is read uncached.
///
/// Streamed reads fill the cache; ranged reads ([`Dataset::get`](crate::Dataset::get), the
/// loader) use a copy when one is there and read `inner` otherwise. A first read streamed
/// through the cache ends with an error if the shard does not match its checksum.
///
/// ```
/// use atdata_wds::{CachedOpener, LocalOpener, ShardCache, ShardOpener};
/// use std::io::Read;
///
/// let dir = tempfile::tempdir()?;
/// let shard = dir.path().join("a.tar");
/// std::fs::write(&shard, b"shard bytes")?;
/// let sum = "f1b5a5c1e1d5f8f0b7d46a2a0d3c6b1b6b9c3f4a0d0d8c1e5a5b2f7c9e4d3a21"; // not its hash
/// let url = shard.to_str().unwrap().to_owned();
/// let cache = ShardCache::new(dir.path().join("cache"), 1 << 20)?;
/// let opener = CachedOpener::new(LocalOpener, cache.clone(), [(url.clone(), sum.to_owned())]);
/// let mut read = Vec::new();
/// let err = opener.open(&url)?.read_to_end(&mut read).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidData); // and nothing was kept
/// assert!(cache.list()?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CachedOpener<O> {
    inner: O,
    cache: ShardCache,
    /// Cache file names by URL: `{sum}.tar` for a shard, `{sum}.idx` for its sidecar; only
    /// shard checksums (checked) ever name a copy.
    names: Arc<HashMap<String, CopyOf>>,
}

/// What a URL's copy is called, and the hash it must have.
#[derive(Debug)]
struct CopyOf {
    name: String,
    sha256: Option<String>,
}

impl<O: ShardOpener> CachedOpener<O> {
    /// Reads through `cache` the shards `checksums` names (URL, SHA-256 in hex, as an index
    /// entry's `checksums` records them), and their sidecars.
    pub fn new(
        inner: O,
        cache: ShardCache,
        checksums: impl IntoIterator<Item = (String, String)>,
    ) -> CachedOpener<O> {
        let mut names = HashMap::new();
        for (url, sum) in checksums {
            let sum = sum.to_ascii_lowercase();
            if !checksum(&sum) {
                continue;
            }
            if let Some(sidecar) = sidecar_url(&url) {
                let name = format!("{sum}.idx");
                names.insert(sidecar, CopyOf { name, sha256: None });
            }
            let name = format!("{sum}.tar");
            names.insert(
                url,
                CopyOf {
                    name,
                    sha256: Some(sum),
                },
            );
        }
        CachedOpener {
            inner,
            cache,
            names: Arc::new(names),
        }
    }

    /// The opener read through on a miss.
    pub fn inner(&self) -> &O {
        &self.inner
    }
}

impl<O: ShardOpener> ShardOpener for CachedOpener<O> {
    fn open(&self, url: &str) -> Result<Box<dyn Read + Send>> {
        let Some(copy) = self.names.get(url) else {
            return self.inner.open(url);
        };
        if let Some(file) = self.cache.open_copy(&copy.name) {
            return Ok(Box::new(file));
        }
        let source = self.inner.open(url)?;
        match self.cache.begin(&copy.name) {
            Ok((file, temp)) => Ok(Box::new(Filling {
                source,
                copy: Some(Writing {
                    file,
                    temp,
                    bytes: 0,
                    hasher: copy.sha256.as_ref().map(|_| Sha256::new()),
                }),
                expected: copy.sha256.clone(),
                name: copy.name.clone(),
                url: url.to_owned(),
                cache: self.cache.clone(),
            })),
            Err(_) => Ok(source), // an unwritable cache reads uncached
        }
    }

    fn read_range(&self, url: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_range_into(url, range, &mut buf)?;
        Ok(buf)
    }

    fn read_range_into(&self, url: &str, range: Range<u64>, buf: &mut Vec<u8>) -> Result<()> {
        let copy = self.names.get(url);
        let Some(file) = copy.and_then(|copy| self.cache.open_copy(&copy.name)) else {
            return self.inner.read_range_into(url, range, buf);
        };
        let len = crate::opener::range_len(url, &range)?;
        buf.resize(len, 0);
        read_exact_at(&file, buf, range.start).map_err(|e| Error::io(url, e))
    }

    /// A cached shard's copy; `None` for one not cached yet, which is read (checked against
    /// its checksum, and kept) through [`open`](ShardOpener::open).
    fn open_file(&self, url: &str) -> Result<Option<File>> {
        match self.names.get(url) {
            Some(copy) => Ok(self.cache.open_copy(&copy.name)),
            None => self.inner.open_file(url),
        }
    }
}

/// A copy being written while its shard is read.
struct Writing {
    file: File,
    temp: PathBuf,
    bytes: u64,
    hasher: Option<Sha256>,
}

/// A shard read from its source while a copy is written into the cache.
struct Filling {
    source: Box<dyn Read + Send>,
    /// `None` once kept, discarded, or given up on (a failed write).
    copy: Option<Writing>,
    expected: Option<String>,
    name: String,
    url: String,
    cache: ShardCache,
}

impl Filling {
    /// Checks and keeps the whole copy; a shard that does not match its checksum is an error.
    fn finish(&mut self) -> io::Result<()> {
        let Some(mut copy) = self.copy.take() else {
            return Ok(());
        };
        let actual = copy.hasher.take().map(|h| hex::encode(h.finalize()));
        if actual != self.expected {
            let _ = fs::remove_file(&copy.temp);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} does not match its checksum: expected {}, read {}",
                    self.url,
                    self.expected.as_deref().unwrap_or("none"),
                    actual.as_deref().unwrap_or("none"),
                ),
            ));
        }
        let kept = copy
            .file
            .sync_all()
            .and_then(|()| self.cache.admit(&copy.temp, &self.name, copy.bytes));
        if kept.is_err() {
            let _ = fs::remove_file(&copy.temp);
        }
        Ok(())
    }

    fn discard(&mut self) {
        if let Some(copy) = self.copy.take() {
            let _ = fs::remove_file(copy.temp);
        }
    }
}

impl Read for Filling {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.source.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.discard();
                return Err(e);
            }
        };
        if n == 0 {
            self.finish()?;
            return Ok(0);
        }
        if let Some(copy) = &mut self.copy {
            if copy.file.write_all(&buf[..n]).is_err() {
                self.discard(); // a full disk: the read goes on, uncached
            } else {
                copy.bytes += n as u64;
                if let Some(hasher) = &mut copy.hasher {
                    hasher.update(&buf[..n]);
                }
            }
        }
        Ok(n)
    }
}

impl Drop for Filling {
    /// A reader dropped before the end (a tar reader reads the trailer to the end of a
    /// shard, so this is a reader given up on) completes the copy only if at most 1 MiB is
    /// left; otherwise it discards it.
    fn drop(&mut self) {
        if self.copy.is_none() {
            return;
        }
        let mut rest = [0; 64 << 10];
        let mut left = DRAIN_ON_DROP;
        while left > 0 {
            match self.read(&mut rest) {
                Ok(0) => return, // finished: kept or discarded
                Ok(n) => left = left.saturating_sub(n as u64),
                Err(_) => break,
            }
        }
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_binary_units() {
        assert_eq!(parse_limit("1024"), Some(1024));
        assert_eq!(parse_limit("20G"), Some(20 << 30));
        assert_eq!(parse_limit("20GiB"), Some(20 << 30));
        assert_eq!(parse_limit(" 3 m "), Some(3 << 20));
        assert_eq!(parse_limit("1T"), Some(1 << 40));
        assert_eq!(parse_limit("5X"), None);
        assert_eq!(parse_limit("G"), None);
        assert_eq!(parse_limit("99999999999999999T"), None);
    }

    #[test]
    fn only_checksum_names_are_cache_copies() {
        let sum = "a".repeat(64);
        assert!(copy_name(&format!("{sum}.tar")));
        assert!(copy_name(&format!("{sum}.idx")));
        assert!(!copy_name(&format!("{sum}.tar.gz")));
        assert!(!copy_name("data-000000.tar"));
        assert!(!copy_name(&format!("{}.tar", "a".repeat(63))));
        assert!(!copy_name(&format!("../{}.tar", "a".repeat(61))));
    }
}
