//! Reading tar shards as a stream of WebDataset samples.
//!
//! [`Grouper`] does the work with buffers that are reused from sample to sample, so reading
//! allocates nothing per member once warm (allocation churn across threads was the main cost of
//! reading small samples). [`TarReader`] is its public, owning face.

use std::borrow::Cow;
use std::io::{self, BufRead, Read};

use atdata_codec::{FillUninit, UninitBuf, WdsSample};
use flate2::bufread::MultiGzDecoder;

use crate::error::{Error, Result};
use crate::read_ahead::{BYPASS, FileInput, Plain, ReadAhead};
use crate::sidecar::Sidecar;

const BLOCK: usize = 512;
/// A member's buffer grows by doubling from this much (never past its header's size), so a
/// header claiming a huge size never causes a huge allocation before the bytes arrive.
const TRUSTED_CAPACITY: u64 = 16 << 20;
/// The largest member read by default: 1 GiB (see [`TarReader::with_max_member_bytes`]).
pub const DEFAULT_MAX_MEMBER_BYTES: u64 = 1 << 30;
/// Bytes of a streamed member read into memory before it is given to its reader: what the
/// reader's buffer holds of it, up to the larger of these, but at least the smaller (enough
/// for a payload's small fields and an array's header), so that the rest (an array's
/// elements) is read from the input straight to its place.
const STREAM_HEAD_BYTES: std::ops::RangeInclusive<usize> = 512..=4096;
/// The largest PAX header or GNU long name accepted (they are read whole).
const MAX_HEADER_EXTENSION: u64 = 1 << 20;
/// Bytes read after the end-of-archive marker at most: past a record's padding (10 KiB for
/// GNU tar), whatever follows is left unread.
const TRAILER_BYTES: u64 = 1 << 20;

/// Reads a tar shard from any `Read` (a file, an HTTP or object-store body) and yields its
/// samples, grouping members by WebDataset's rule:
///
/// - a member `dir/base.ext.more` belongs to the sample keyed `dir/base` (up to the first `.` of
///   the last path component) under the extension `ext.more`, lowercased;
/// - only consecutive members form one sample; a key seen again later starts a new sample;
/// - a file named without an extension (`dir/base`, as some writers name a bare payload) is a
///   sample keyed by its name with one member under the empty extension, so that a typed read
///   reports it as missing its `msgpack` member instead of skipping it (webdataset skips such
///   files silently; Python atdata fails on them);
/// - top-level names like `__index__`, names starting with `.`, and non-file members are
///   skipped; PAX headers (`path`, `size`) and GNU long names are honoured.
///
/// A truncated archive (including one missing its end-of-archive marker), a corrupt header, or
/// a repeated extension within a sample is an error naming the shard and the member, yielded
/// after every intact sample before it. Gzip streams (`.tar.gz`, `.tgz`) are recognised by
/// their magic bytes.
///
/// ```
/// use atdata_codec::WdsSample;
/// use atdata_wds::{TarReader, TarWriter};
///
/// let mut w = TarWriter::new(Vec::new());
/// w.write(&WdsSample::msgpack("a", vec![1])).unwrap();
/// w.write(&WdsSample::msgpack("b", vec![2])).unwrap();
/// let bytes = w.finish().unwrap();
///
/// let keys: Vec<String> = TarReader::new(&bytes[..], "example.tar")
///     .map(|s| s.unwrap().key)
///     .collect();
/// assert_eq!(keys, ["a", "b"]);
/// ```
pub struct TarReader<'a> {
    grouper: Grouper<'a>,
}

impl<'a> TarReader<'a> {
    /// A reader over `input`; `shard` names it in errors.
    pub fn new(input: impl Read + Send + 'a, shard: impl Into<String>) -> TarReader<'a> {
        TarReader {
            grouper: Grouper::new(input, shard.into(), DEFAULT_MAX_MEMBER_BYTES),
        }
    }

    /// Refuses members larger than `max` bytes (default [`DEFAULT_MAX_MEMBER_BYTES`], 1 GiB)
    /// with [`Error::MemberOverLimit`], before reading them: a member is held in memory whole,
    /// so this bounds what one lying header can cost.
    ///
    /// ```
    /// use atdata_codec::WdsSample;
    /// use atdata_wds::{Error, TarReader, TarWriter};
    ///
    /// let mut w = TarWriter::new(Vec::new());
    /// w.write(&WdsSample::msgpack("a", vec![0; 100])).unwrap();
    /// let bytes = w.finish().unwrap();
    /// let mut reader = TarReader::new(&bytes[..], "s.tar").with_max_member_bytes(64);
    /// assert!(matches!(reader.next(), Some(Err(Error::MemberOverLimit { .. }))));
    /// ```
    pub fn with_max_member_bytes(mut self, max: u64) -> TarReader<'a> {
        self.grouper.members.max_member = max;
        self
    }
}

impl Iterator for TarReader<'_> {
    type Item = Result<WdsSample>;

    fn next(&mut self) -> Option<Result<WdsSample>> {
        // The sample's buffers are handed over, not copied.
        Some(self.grouper.advance()?.map(|()| self.grouper.take_sample()))
    }
}

/// What is given a member as it streams in ([`Grouper::advance_streaming`]): its sample's
/// key, its first bytes, a reader of the rest, and how many bytes the rest holds.
pub(crate) type StreamedMember<'r> = dyn FnMut(&str, &[u8], &mut dyn FillUninit, usize) + 'r;

/// What a [`Grouper`] reads an archive from: buffered, and able to fill memory not yet
/// initialised.
trait Stream: BufRead + FillUninit + Send {}

impl<S: BufRead + FillUninit + Send> Stream for S {}

/// A sample borrowed from a [`Grouper`]'s buffers.
#[derive(Clone, Copy)]
pub(crate) struct Sample<'s> {
    pub key: &'s str,
    pub members: &'s [(String, Vec<u8>)],
}

impl Sample<'_> {
    /// The bytes of the member with extension `ext`.
    pub fn member(&self, ext: &str) -> Option<&[u8]> {
        self.members
            .iter()
            .find(|(e, _)| e == ext)
            .map(|(_, d)| d.as_slice())
    }

    /// Payload bytes in all members.
    pub fn len(&self) -> usize {
        self.members.iter().map(|(_, d)| d.len()).sum()
    }

    pub fn to_owned_sample(self) -> WdsSample {
        WdsSample {
            key: self.key.to_owned(),
            members: self.members.to_vec(),
        }
    }
}

/// A member read ahead: it belongs to the next sample.
#[derive(Default)]
struct Member {
    /// The full name, as the archive gives it.
    name: String,
    key: String,
    ext: String,
    /// Where its data starts in the (uncompressed) archive.
    offset: u64,
    size: u64,
    data: Vec<u8>,
}

/// Groups a shard's members into samples, reusing its buffers from sample to sample.
pub(crate) struct Grouper<'a> {
    members: Members<Box<dyn Stream + 'a>>,
    key: String,
    /// `slots[..len]` hold the current sample's members; the rest keep their capacity.
    slots: Vec<(String, Vec<u8>)>,
    len: usize,
    /// The current sample's extensions, kept only once it has many members.
    seen: std::collections::HashSet<String>,
    next: Member,
    has_next: bool,
    /// Whether the next member's data is still to be read (streamed, see
    /// [`advance_streaming`](Self::advance_streaming)).
    pending: bool,
    error: Option<Error>,
    done: bool,
    /// Whether the input is a gzip stream.
    gzip: bool,
    /// The layout of every sample read, when recording.
    sidecar: Option<Sidecar>,
}

impl<'a> Grouper<'a> {
    pub fn new(input: impl Read + Send + 'a, shard: String, max_member: u64) -> Grouper<'a> {
        Grouper::over(Plain(input), shard, max_member)
    }

    /// A grouper over a shard that is a local file, from where it stands: large member data
    /// is read into memory not yet initialised ([`FillUninit`]), with no zeroing pass.
    pub fn from_file(file: std::fs::File, shard: String, max_member: u64) -> Grouper<'a> {
        Grouper::over(FileInput(file), shard, max_member)
    }

    fn over(input: impl FillUninit + Send + 'a, shard: String, max_member: u64) -> Grouper<'a> {
        let mut buffered = ReadAhead::new(input);
        // Sniff for gzip; an error here (a missing object, say) is reported as the first item.
        let (gzip, error) = match buffered.fill_buf() {
            Ok(head) => (head.starts_with(&[0x1f, 0x8b]), None),
            Err(e) => (false, Some(Error::io(shard.clone(), e))),
        };
        let stream: Box<dyn Stream + 'a> = if gzip {
            Box::new(ReadAhead::new(Plain(MultiGzDecoder::new(buffered))))
        } else {
            Box::new(buffered)
        };
        Grouper {
            members: Members::new(stream, shard, max_member),
            key: String::new(),
            slots: Vec::new(),
            len: 0,
            seen: std::collections::HashSet::new(),
            next: Member::default(),
            has_next: false,
            pending: false,
            done: error.is_some(),
            error,
            gzip,
            sidecar: None,
        }
    }

    /// Records where each sample's members lie, for [`into_sidecar`](Self::into_sidecar).
    pub fn recording(mut self) -> Grouper<'a> {
        self.sidecar = Some(Sidecar::default());
        self
    }

    /// Reads headers only, skipping member data: samples then have empty members (for
    /// building a sidecar, counting samples).
    pub fn headers_only(mut self) -> Grouper<'a> {
        self.members.read_data = false;
        self
    }

    /// Whether the shard is a gzip stream (a sidecar's offsets then mean nothing).
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// The layout recorded so far (empty unless [`recording`](Self::recording)).
    pub fn into_sidecar(self) -> Sidecar {
        self.sidecar.unwrap_or_default()
    }

    pub fn shard(&self) -> &str {
        &self.members.shard
    }

    /// The sample [`advance`](Self::advance) last read.
    pub fn sample(&self) -> Sample<'_> {
        Sample {
            key: &self.key,
            members: &self.slots[..self.len],
        }
    }

    /// The sample [`advance`](Self::advance) last read, its buffers moved out (the slots
    /// start empty again).
    pub fn take_sample(&mut self) -> WdsSample {
        WdsSample {
            key: self.key.clone(),
            members: self.slots[..self.len]
                .iter_mut()
                .map(|(ext, data)| (std::mem::take(ext), std::mem::take(data)))
                .collect(),
        }
    }

    /// The key of the sample after the one [`advance`](Self::advance) last read, when its
    /// first member is already read (`None` at the end).
    pub fn next_key(&self) -> Option<&str> {
        self.has_next.then_some(self.next.key.as_str())
    }

    /// The bytes of the current sample's member with extension `ext`, moved out for
    /// `replacement` (a buffer for a later member), or `None` when it has none.
    pub fn take_member(&mut self, ext: &str, replacement: Vec<u8>) -> Option<Vec<u8>> {
        self.slots[..self.len]
            .iter_mut()
            .find(|(e, _)| e == ext)
            .map(|(_, data)| std::mem::replace(data, replacement))
    }

    /// Whether the next member's extension is already in the current sample: a scan for the
    /// usual handful of members, a set once a sample has many (so 80,000 members cost
    /// 80,000 lookups, not 3.2 billion comparisons).
    fn repeats_extension(&mut self) -> bool {
        const SCAN: usize = 32;
        if self.len < SCAN {
            return self.slots[..self.len]
                .iter()
                .any(|(e, _)| *e == self.next.ext);
        }
        if self.seen.is_empty() {
            self.seen
                .extend(self.slots[..self.len].iter().map(|(e, _)| e.clone()));
        }
        !self.seen.insert(self.next.ext.clone())
    }

    /// Moves the next member into a slot of the current sample, keeping the slot's old buffers
    /// for the next read.
    fn take_next(&mut self) {
        if self.len == self.slots.len() {
            self.slots.push((String::new(), Vec::new()));
        }
        let slot = &mut self.slots[self.len];
        std::mem::swap(&mut slot.0, &mut self.next.ext);
        std::mem::swap(&mut slot.1, &mut self.next.data);
        if let Some(sidecar) = &mut self.sidecar {
            let next = &self.next;
            sidecar.push(
                &next.name,
                self.key.len(),
                next.offset,
                next.size,
                self.len == 0,
            );
        }
        self.len += 1;
        self.has_next = false;
    }

    /// Reads the next sample into the buffers; `None` at the end.
    pub fn advance(&mut self) -> Option<Result<()>> {
        self.read_sample(None)
    }

    /// Reads the next sample as [`advance`](Self::advance) does, but for its member with
    /// extension `ext` when that is its first (as the only member of atdata's samples is):
    /// that member is given to `read` as it streams in, before the sample's other members are
    /// read (the sample's key, the data's first bytes, a reader of the rest, and how many
    /// bytes that holds), and its slot is left empty. Any other `ext` member is read first,
    /// then given to `read` whole. The outcome is [`advance`](Self::advance)'s (a sample found
    /// not to be one, say with a second `ext` member, is its error), so a caller that keeps
    /// what `read` made of a member drops it again when the sample is an error.
    pub fn advance_streaming(
        &mut self,
        ext: &str,
        read: &mut StreamedMember<'_>,
    ) -> Option<Result<()>> {
        self.read_sample(Some((ext, read)))
    }

    /// The next member, its data read unless it is `streamed`'s extension and starts a
    /// sample (`starting`, or a key other than the current sample's): then it is `pending`.
    fn read_next(&mut self, streamed: Option<&str>, starting: bool) -> Result<bool> {
        if !self.members.next_header(&mut self.next)? {
            return Ok(false);
        }
        let starts = starting || self.next.key != self.key;
        self.pending = starts && streamed == Some(self.next.ext.as_str());
        if !self.pending {
            self.read_next_data()?;
        }
        Ok(true)
    }

    /// Reads (or, reading headers only, skips) the next member's data.
    fn read_next_data(&mut self) -> Result<()> {
        self.pending = false;
        let next = &mut self.next;
        if self.members.read_data {
            self.members.data(next.size, &mut next.data, &next.name)
        } else {
            next.data.clear();
            self.members.skip(next.size, &next.name)
        }
    }

    /// Gives the next member, whose data is still in the archive, to `read` as it streams in
    /// (its first bytes, read into its buffer: as many as are buffered, within
    /// `STREAM_HEAD_BYTES`), then skips what `read` left; the error reading it, if any.
    fn stream_next(&mut self, read: &mut StreamedMember<'_>) -> Result<()> {
        self.pending = false;
        let next = &mut self.next;
        let size = usize::try_from(next.size).map_err(|_| {
            self.members
                .over_limit(&next.name, next.size, usize::MAX as u64)
        })?;
        let buffered = self.members.input.fill_buf().map_or(0, <[u8]>::len);
        let head = size.min(buffered.clamp(*STREAM_HEAD_BYTES.start(), *STREAM_HEAD_BYTES.end()));
        let mut data = MemberData {
            size: next.size,
            left: next.size,
            members: &mut self.members,
            name: &next.name,
            failed: None,
        };
        next.data.resize(head, 0);
        if data.read_exact(&mut next.data).is_ok() {
            read(&self.key, &next.data, &mut data, size - head);
        }
        data.finish()
    }

    fn read_sample(
        &mut self,
        mut streamed: Option<(&str, &mut StreamedMember<'_>)>,
    ) -> Option<Result<()>> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        let ext = streamed.as_ref().map(|(ext, _)| *ext);
        if !self.has_next {
            match self.read_next(ext, true) {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        std::mem::swap(&mut self.key, &mut self.next.key);
        self.len = 0;
        self.seen.clear();
        let first = match &mut streamed {
            Some((ext, read)) if self.next.ext == *ext => {
                let read = match self.pending {
                    true => self.stream_next(*read),
                    false => {
                        read(&self.key, &self.next.data, &mut io::empty(), 0);
                        Ok(())
                    }
                };
                self.next.data.clear();
                read
            }
            _ if self.pending => self.read_next_data(),
            _ => Ok(()),
        };
        if let Err(e) = first {
            self.done = true;
            return Some(Err(e));
        }
        self.take_next();
        loop {
            match self.read_next(ext, false) {
                Ok(true) if self.next.key == self.key => {
                    if self.repeats_extension() {
                        self.done = true;
                        return Some(Err(Error::DuplicateMember {
                            shard: self.members.shard.clone(),
                            key: self.key.clone(),
                            ext: self.next.ext.clone(),
                        }));
                    }
                    if let Some((ext, read)) = &mut streamed
                        && self.next.ext == *ext
                    {
                        read(&self.key, &self.next.data, &mut io::empty(), 0);
                    }
                    self.take_next();
                }
                Ok(true) => {
                    self.has_next = true;
                    return Some(Ok(()));
                }
                Ok(false) => {
                    self.done = true;
                    return Some(Ok(()));
                }
                Err(e) => {
                    // Yield the sample read intact before the failure, then the error.
                    self.done = true;
                    self.error = Some(e);
                    return Some(Ok(()));
                }
            }
        }
    }
}

/// The data members of an archive, grouping rules not yet applied.
struct Members<R: BufRead> {
    input: R,
    shard: String,
    /// A name from a PAX `path` record or a GNU long-name member, for the next member.
    long_name: Option<String>,
    /// A size from a PAX `size` record, for the next member.
    pax_size: Option<u64>,
    /// The largest member read.
    max_member: u64,
    /// Whether member data is read (or skipped, for a header scan).
    read_data: bool,
    /// Bytes consumed so far.
    position: u64,
    /// The last PAX header's records (its buffer reused).
    records: Vec<u8>,
    /// The last header's path (its buffer reused).
    path: Vec<u8>,
}

impl<R: BufRead> Members<R> {
    fn new(input: R, shard: String, max_member: u64) -> Members<R> {
        Members {
            input,
            shard,
            long_name: None,
            pax_size: None,
            max_member,
            read_data: true,
            position: 0,
            records: Vec::new(),
            path: Vec::new(),
        }
    }

    fn over_limit(&self, member: &str, len: u64, limit: u64) -> Error {
        Error::MemberOverLimit {
            shard: self.shard.clone(),
            member: member.to_owned(),
            len,
            limit,
        }
    }

    fn truncated(&self, member: Option<&str>) -> Error {
        Error::Truncated {
            shard: self.shard.clone(),
            member: member.map(str::to_owned),
        }
    }

    fn corrupt(&self, member: Option<&str>, reason: impl Into<String>) -> Error {
        Error::CorruptHeader {
            shard: self.shard.clone(),
            member: member.map(str::to_owned),
            reason: reason.into(),
        }
    }

    fn io_error(&self, e: io::Error, member: &str) -> Error {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => self.truncated(Some(member)),
            _ => Error::io(self.shard.clone(), e),
        }
    }

    /// Reads the next header block, where it lies in the buffer when the buffer holds it whole
    /// (a copy otherwise): its facts, its path into `self.path`; `None` at the end-of-archive
    /// marker (the trailer read).
    fn header(&mut self) -> Result<Option<Header>> {
        let in_buffer = match self.input.fill_buf() {
            Ok(buffered) => buffered
                .first_chunk::<BLOCK>()
                .map(|block| Header::of(block, &mut self.path)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
            Err(e) => return Err(Error::io(self.shard.clone(), e)),
        };
        let header = match in_buffer {
            Some(header) => {
                self.input.consume(BLOCK);
                header
            }
            None => {
                let mut block = [0u8; BLOCK];
                let mut filled = 0;
                while filled < BLOCK {
                    match self.input.read(&mut block[filled..]) {
                        Ok(0) => return Err(self.truncated(None)),
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(Error::io(self.shard.clone(), e)),
                    }
                }
                Header::of(&block, &mut self.path)
            }
        };
        self.position += BLOCK as u64;
        let Some(header) = header else {
            self.read_trailer()?;
            return Ok(None);
        };
        Ok(Some(header))
    }

    /// Reads what follows the end-of-archive marker (its second block and the record's
    /// padding) to the end of the input, up to [`TRAILER_BYTES`], so that a reader that checks
    /// its input at the end (a cache copy's checksum) reports to this one; an error there is
    /// the shard's error.
    fn read_trailer(&mut self) -> Result<()> {
        let mut rest = [0u8; 8 * BLOCK];
        let mut left = TRAILER_BYTES;
        while left > 0 {
            match self.input.read(&mut rest) {
                Ok(0) => return Ok(()),
                Ok(n) => left = left.saturating_sub(n as u64),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(self.shard.clone(), e)),
            }
        }
        Ok(())
    }

    /// Reads `size` bytes of member data into `out` (replacing its contents), then the padding;
    /// errors name `member`.
    fn data(&mut self, size: u64, out: &mut Vec<u8>, member: &str) -> Result<()> {
        let size =
            usize::try_from(size).map_err(|_| self.over_limit(member, size, usize::MAX as u64))?;
        self.read_data(size, out)
            .map_err(|e| self.io_error(e, member))
    }

    /// [`data`](Self::data)'s read. The buffer grows by doubling as bytes arrive, never past
    /// `size`, so it ends `size` bytes long. Each piece is read with one call, so that large
    /// data goes from the input straight into `out` ([`ReadAhead`]); memory `out` held before
    /// is read into as it is, and only memory it never held is zeroed first.
    fn read_data(&mut self, size: usize, out: &mut Vec<u8>) -> io::Result<()> {
        // Small data and its padding, whole in the buffer (or whole once it is filled, as a
        // read of it would fill it): one copy out, and no read calls.
        if let Some(padded) = size.checked_next_multiple_of(BLOCK)
            && padded < BYPASS
        {
            match self.input.fill_buf() {
                Ok(buffered) if buffered.len() >= padded => {
                    out.clear();
                    out.extend_from_slice(&buffered[..size]);
                    self.input.consume(padded);
                    self.position += padded as u64;
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut done = 0;
        while done < size {
            let end = size.min(done.saturating_mul(2).max(TRUSTED_CAPACITY as usize));
            if out.len() < end {
                out.resize(end, 0);
            }
            self.input.read_exact(&mut out[done..end])?;
            done = end;
        }
        out.truncate(size);
        self.position += size as u64;
        self.pad(size as u64)
    }

    fn skip(&mut self, size: u64, member: &str) -> Result<()> {
        let skipped = io::copy(&mut (&mut self.input).take(size), &mut io::sink())
            .map_err(|e| self.io_error(e, member))?;
        if skipped < size {
            return Err(self.truncated(Some(member)));
        }
        self.position += size;
        self.skip_padding(size, member)
    }

    /// Skips the padding after `size` bytes of member data; errors name `member`.
    fn skip_padding(&mut self, size: u64, member: &str) -> Result<()> {
        self.pad(size).map_err(|e| self.io_error(e, member))
    }

    /// [`skip_padding`](Self::skip_padding)'s skip, in the buffer (not copied out).
    fn pad(&mut self, size: u64) -> io::Result<()> {
        let pad = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        let mut left = pad;
        while left > 0 {
            let n = match self.input.fill_buf() {
                Ok([]) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(buffered) => buffered.len().min(left),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.input.consume(n);
            left -= n;
        }
        self.position += pad as u64;
        Ok(())
    }

    /// The last header's path as errors show it (decoded only for them: a PAX header's name
    /// is read for nothing else).
    fn shown_path(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }

    /// Reads up to the next data member's data: its name, key, extension, offset and size
    /// into `out` (its data is left as it was); `false` at the end of the archive.
    fn next_header(&mut self, out: &mut Member) -> Result<bool> {
        loop {
            let Some(header) = self.header()? else {
                return Ok(false);
            };
            if !header.checksum_matches {
                return Err(self.corrupt(Some(&self.shown_path()), "checksum mismatch"));
            }
            if header.kind == b'x' {
                // PAX records, for the next member. Its buffer is kept for the next member's
                // (one per member in Python's shards).
                let size = match self.pax_size.take() {
                    Some(s) => s,
                    None => header
                        .size
                        .map_err(|e| self.corrupt(Some(&self.shown_path()), e))?,
                };
                if size > MAX_HEADER_EXTENSION {
                    return Err(self.over_limit(&self.shown_path(), size, MAX_HEADER_EXTENSION));
                }
                let mut records = std::mem::take(&mut self.records);
                let applied = match self.read_data(size as usize, &mut records) {
                    Ok(()) => self
                        .apply_pax(&records)
                        .map_err(|reason| self.corrupt(Some(&self.shown_path()), reason)),
                    Err(e) => Err(self.io_error(e, &self.shown_path())),
                };
                self.records = records;
                applied?;
                continue;
            }
            if self.member(header, out)? {
                return Ok(true);
            }
        }
    }

    /// Takes a header other than a PAX header: a data member's into `out` (`true`), or a GNU
    /// long name read, or another member skipped. Its name (the header's path, checked to be
    /// UTF-8, or the long name before it) becomes `out.name`, whose old buffer takes the next
    /// header's path: a name is neither copied nor allocated.
    fn member(&mut self, header: Header, out: &mut Member) -> Result<bool> {
        let name = match self.long_name.take() {
            Some(name) => name,
            None => match String::from_utf8(std::mem::take(&mut self.path)) {
                Ok(name) => name,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            },
        };
        let old = std::mem::replace(&mut out.name, name);
        if self.path.capacity() == 0 {
            self.path = old.into_bytes();
        }
        let name = out.name.as_str();
        let size = match self.pax_size.take() {
            Some(s) => s,
            None => header.size.map_err(|e| self.corrupt(Some(name), e))?,
        };
        match header.kind {
            b'L' => {
                if size > MAX_HEADER_EXTENSION {
                    return Err(self.over_limit(name, size, MAX_HEADER_EXTENSION));
                }
                let mut long = Vec::new();
                self.data(size, &mut long, name)?;
                let end = long.iter().position(|&b| b == 0).unwrap_or(long.len());
                self.long_name = Some(String::from_utf8_lossy(&long[..end]).into_owned());
            }
            b'0' | 0 | b'7' if split_name(name, &mut out.key, &mut out.ext) => {
                if size > self.max_member {
                    return Err(self.over_limit(name, size, self.max_member));
                }
                out.offset = self.position;
                out.size = size;
                return Ok(true);
            }
            _ => self.skip(size, name)?,
        }
        Ok(false)
    }

    /// Applies the `path` and `size` records of a PAX extended header to the next member; the
    /// error says what is malformed.
    fn apply_pax(&mut self, mut records: &[u8]) -> std::result::Result<(), &'static str> {
        while !records.is_empty() {
            // "<len> <key>=<value>\n", where <len> counts the whole record.
            let parsed = records.iter().position(|&b| b == b' ').and_then(|space| {
                let len = usize::try_from(unsigned(&records[..space], 10)?).ok()?;
                (len > space && len <= records.len()).then_some((space, len))
            });
            let Some((space, len)) = parsed else {
                return Err("malformed PAX record");
            };
            let record = &records[space + 1..len];
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            if let Some(eq) = record.iter().position(|&b| b == b'=') {
                // Only these two records are read (others, `mtime` say, are not decoded).
                let value = || String::from_utf8_lossy(&record[eq + 1..]);
                match &record[..eq] {
                    b"path" => self.long_name = Some(value().into_owned()),
                    b"size" => {
                        let size = value().parse().map_err(|_| "malformed PAX size")?;
                        self.pax_size = Some(size);
                    }
                    _ => {}
                }
            }
            records = &records[len..];
        }
        Ok(())
    }
}

/// What the reader needs of a header block, read in one pass where the block lies.
struct Header {
    /// The type flag (`0`, `x`, `L`, ...).
    kind: u8,
    /// The size field, or why it is not a number.
    size: std::result::Result<u64, String>,
    checksum_matches: bool,
}

impl Header {
    /// The facts of `block`, its path written into `path`; `None` for a block of zeros (the
    /// end-of-archive marker).
    fn of(block: &[u8; BLOCK], path: &mut Vec<u8>) -> Option<Header> {
        if block.iter().all(|&b| b == 0) {
            return None;
        }
        path.clear();
        path.extend_from_slice(&header_path(block));
        Some(Header {
            kind: block[156],
            size: header_size(block),
            checksum_matches: checksum_matches(block),
        })
    }
}

/// An unsigned number of `radix` (up to 10) digits, a `+` before them allowed (as
/// `str::parse` and `from_str_radix` allow it), or `None` (no digits, another byte, overflow).
fn unsigned(text: &[u8], radix: u8) -> Option<u64> {
    let digits = text.strip_prefix(b"+").unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.wrapping_sub(b'0');
        (digit < radix).then_some(())?;
        n.checked_mul(u64::from(radix))?
            .checked_add(u64::from(digit))
    })
}

/// A member's data read as a stream, from an archive whose reader stands at its start; what
/// goes wrong is kept, as the error reading it whole would have been.
struct MemberData<'m, R: BufRead> {
    members: &'m mut Members<R>,
    name: &'m str,
    size: u64,
    left: u64,
    failed: Option<Error>,
}

impl<R: BufRead> Read for MemberData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let error = match self.members.input.read(&mut buf[..want]) {
            Ok(0) => io::Error::from(io::ErrorKind::UnexpectedEof),
            Ok(n) => {
                self.left -= n as u64;
                self.members.position += n as u64;
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => e,
        };
        let kind = error.kind();
        self.failed
            .get_or_insert_with(|| self.members.io_error(error, self.name));
        Err(kind.into())
    }
}

impl<R: BufRead + FillUninit> FillUninit for MemberData<'_, R> {
    fn fill_uninit(&mut self, buf: &mut UninitBuf<'_>) -> io::Result<()> {
        let n = buf.remaining() as u64;
        if n > self.left {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let error = match self.members.input.fill_uninit(buf) {
            Ok(()) => {
                self.left -= n;
                self.members.position += n;
                return Ok(());
            }
            Err(e) => e,
        };
        // What was read of it is not known: the member (and the archive) ends here.
        self.left = 0;
        let kind = error.kind();
        self.failed
            .get_or_insert_with(|| self.members.io_error(error, self.name));
        Err(kind.into())
    }
}

impl<R: BufRead> MemberData<'_, R> {
    /// Skips what was not read, and the padding: the archive's reader then stands at the next
    /// header. The error reading the data, if there was one.
    fn finish(mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let left = self.left;
        let skipped = io::copy(&mut (&mut self).take(left), &mut io::sink());
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        skipped.map_err(|e| self.members.io_error(e, self.name))?;
        self.members.skip_padding(self.size, self.name)
    }
}

/// A header's path, as the `tar` crate reads it (`Header::path_bytes`): a ustar header's
/// prefix, `/` and name (each up to its first NUL), any other's name; without the crate's
/// passes over the block (a per-member cost).
pub(crate) fn header_path(block: &[u8; BLOCK]) -> Cow<'_, [u8]> {
    let name = until_nul(&block[..100]);
    let ustar = &block[257..265] == b"ustar\x0000";
    if !ustar || block[345] == 0 {
        return Cow::Borrowed(name);
    }
    let prefix = until_nul(&block[345..500]);
    let mut path = Vec::with_capacity(prefix.len() + 1 + name.len());
    path.extend_from_slice(prefix);
    path.push(b'/');
    path.extend_from_slice(name);
    Cow::Owned(path)
}

/// A header's size field, as the `tar` crate reads it (`Header::entry_size`): octal digits
/// (trimmed, up to the first NUL), or GNU's base-256 (the high bit set: the last 8 bytes, big
/// endian). The error says why it is not a number.
pub(crate) fn header_size(block: &[u8; BLOCK]) -> std::result::Result<u64, String> {
    let field = &block[124..136];
    if field[0] & 0x80 != 0 {
        return Ok(field[4..]
            .iter()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b)));
    }
    // The usual form, 11 octal digits and a NUL or a space, read in one pass without branches.
    let (usual, value) = field[..11].iter().fold((true, 0u64), |(usual, n), &b| {
        let digit = b.wrapping_sub(b'0');
        (usual & (digit < 8), (n << 3) | u64::from(digit & 7))
    });
    if usual && matches!(field[11], 0 | b' ') {
        return Ok(value);
    }
    // Trimmed as `str::trim` trims (Unicode whitespace, a vertical tab included), as the
    // crate does; a field that is not UTF-8 is not a number.
    let text = std::str::from_utf8(until_nul(field)).map(str::trim);
    let value = text.ok().and_then(|t| unsigned(t.as_bytes(), 8));
    value.ok_or_else(|| {
        format!(
            "numeric field was not a number: {} when getting size for {}",
            String::from_utf8_lossy(until_nul(field)),
            String::from_utf8_lossy(&header_path(block))
        )
    })
}

/// `bytes` up to its first NUL.
fn until_nul(bytes: &[u8]) -> &[u8] {
    memchr::memchr(0, bytes).map_or(bytes, |end| &bytes[..end])
}

/// Whether a header's stored checksum matches its bytes: the sum of all bytes with the checksum
/// field counted as spaces (some writers sum signed bytes; that is accepted too).
pub(crate) fn checksum_matches(block: &[u8; BLOCK]) -> bool {
    let stored = block[148..156]
        .iter()
        .filter(|b| b.is_ascii_digit())
        .fold(0u32, |acc, &b| {
            acc.wrapping_mul(8).wrapping_add(u32::from(b - b'0'))
        });
    let field: u32 = block[148..156].iter().map(|&b| u32::from(b)).sum();
    let unsigned = byte_sum(block) - field + 8 * 32;
    if stored == unsigned {
        return true;
    }
    let field: i32 = block[148..156].iter().map(|&b| i32::from(b as i8)).sum();
    let signed = block.iter().map(|&b| i32::from(b as i8)).sum::<i32>() - field + 8 * 32;
    stored as i32 == signed
}

/// The sum of a block's bytes, in runs of 64 whose sums fit a `u16` (so that it vectorises
/// into wide adds).
fn byte_sum(block: &[u8; BLOCK]) -> u32 {
    block
        .chunks_exact(64)
        .map(|run| u32::from(run.iter().map(|&b| u16::from(b)).sum::<u16>()))
        .sum()
}

/// Writes WebDataset's key and (lowercased) extension of a member name into `key` and `ext`;
/// `false` for names it skips.
fn split_name(name: &str, key: &mut String, ext: &mut String) -> bool {
    let (dir, base) = match memchr::memrchr(b'/', name.as_bytes()) {
        Some(i) => name.split_at(i + 1),
        None => ("", name),
    };
    if dir.is_empty() && base.len() >= 4 && base.starts_with("__") && base.ends_with("__") {
        return false;
    }
    if base.is_empty() || base.starts_with('.') {
        return false;
    }
    key.clear();
    let Some(dot) = memchr::memchr(b'.', base.as_bytes()) else {
        key.push_str(name);
        ext.clear();
        return true;
    };
    key.push_str(&name[..dir.len() + dot]);
    // The last member's extension, lowercased, is usually this one already.
    let given = &base[dot + 1..];
    if *ext != *given || !given.is_ascii() {
        ext.clear();
        push_lowercase(given, ext);
    }
    true
}

/// An extension as readers match it: lowercased.
pub(crate) fn lowercase_ext(ext: &str) -> String {
    let mut out = String::with_capacity(ext.len());
    push_lowercase(ext, &mut out);
    out
}

fn push_lowercase(ext: &str, out: &mut String) {
    if ext.is_ascii() {
        let start = out.len();
        out.push_str(ext);
        out[start..].make_ascii_lowercase();
    } else {
        out.push_str(&ext.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{Just, Strategy, any};

    proptest::proptest! {
        /// Our reading of a header's path and size is the `tar` crate's, on any block.
        #[test]
        fn header_fields_read_as_the_tar_crate_reads_them(
            name in proptest::collection::vec(proptest::prop_oneof![Just(0u8), Just(b'\\'), Just(b'/'), 32u8..127], 100),
            prefix in proptest::collection::vec(proptest::prop_oneof![Just(0u8), 32u8..127], 155),
            size in proptest::prop_oneof![
                // Octal as writers pad it (zeros, spaces, NUL), with a sign, or base-256.
                (any::<u64>(), 0usize..4).prop_map(|(n, style)| {
                    let n = n >> (n % 64);
                    let text = match style {
                        0 => format!("{:011o}\0", n % (1 << 33)),
                        1 => format!("  {:o} ", n % (1 << 30)),
                        2 => format!("+{:o}", n % (1 << 30)),
                        _ => format!("{:o}", n),
                    };
                    let mut field = text.into_bytes();
                    field.resize(12, 0);
                    field
                }),
                (any::<u64>(), any::<[u8; 4]>()).prop_map(|(n, high)| {
                    let mut field = high.to_vec();
                    field[0] |= 0x80;
                    field.extend_from_slice(&n.to_be_bytes());
                    field
                }),
                // Any bytes, whitespace that `str::trim` trims (a vertical tab, form feed) among them.
                proptest::collection::vec(proptest::prop_oneof![Just(0u8), Just(b' '), Just(b'\x0b'), Just(b'\x0c'), Just(b'+'), b'0'..=b'9', any::<u8>()], 12),
            ],
            ustar in any::<bool>(),
        ) {
            let mut block = [0u8; BLOCK];
            block[..100].copy_from_slice(&name);
            block[124..136].copy_from_slice(&size);
            block[345..500].copy_from_slice(&prefix);
            if ustar {
                block[257..265].copy_from_slice(b"ustar\x0000");
            }
            let header = tar::Header::from_byte_slice(&block);
            proptest::prop_assert_eq!(header_path(&block), header.path_bytes());
            let ours = header_size(&block);
            proptest::prop_assert_eq!(ours.as_ref().ok().copied(), header.entry_size().ok());
            if let (Err(ours), Err(theirs)) = (ours, header.entry_size()) {
                let theirs = theirs.to_string();
                proptest::prop_assert!(
                    theirs.contains("not a number") || theirs.contains("utf-8"),
                    "{theirs}"
                );
                proptest::prop_assert!(ours.contains("not a number"), "{ours}");
            }
        }
    }

    #[test]
    fn an_error_on_the_first_read_is_reported_not_taken_for_the_end() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::NotFound, "gone"))
            }
        }
        let items: Vec<_> = TarReader::new(Failing, "s.tar").collect();
        assert_eq!(items.len(), 1);
        assert!(
            matches!(&items[0], Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound),
            "{items:?}"
        );
    }

    #[test]
    fn a_header_claiming_the_largest_size_is_truncated_with_no_limit() {
        // Base-256 `u64::MAX`, with the member limit lifted: the read finds the bytes missing
        // (no overflow rounding the size up to its padding, no allocation from the claim).
        let mut block = [0u8; BLOCK];
        block[..10].copy_from_slice(b"a.msgpack\0");
        block[124] = 0x80;
        block[128..136].copy_from_slice(&u64::MAX.to_be_bytes());
        block[156] = b'0';
        block[148..156].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut shard = block.to_vec();
        shard.extend_from_slice(&[7; 100]);
        let items: Vec<_> = TarReader::new(&shard[..], "s.tar")
            .with_max_member_bytes(u64::MAX)
            .collect();
        assert!(
            matches!(&items[..], [Err(Error::Truncated { member: Some(m), .. })] if m == "a.msgpack"),
            "{items:?}"
        );
    }

    #[test]
    fn malformed_pax_records_are_errors() {
        for records in [
            &b"2 path=x\n"[..],
            b"999 path=x\n",
            b"x path=x\n",
            b"nospace",
            b"0 \n",
            b"- path=x\n",
        ] {
            let mut m = Members::new(&b""[..], "s.tar".into(), DEFAULT_MAX_MEMBER_BYTES);
            assert_eq!(
                m.apply_pax(records),
                Err("malformed PAX record"),
                "{records:?}"
            );
        }
        let mut m = Members::new(&b""[..], "s.tar".into(), DEFAULT_MAX_MEMBER_BYTES);
        m.apply_pax(b"12 path=abc\n9 size=7\n+12 size=12\n")
            .unwrap();
        assert_eq!(
            (m.long_name.as_deref(), m.pax_size),
            (Some("abc"), Some(12))
        );
    }

    #[test]
    fn names_split_as_webdataset_splits_them() {
        // One pair of buffers for all, as a reader reuses them from member to member.
        let (mut key, mut ext) = (String::new(), String::new());
        let mut s = |n: &str| split_name(n, &mut key, &mut ext).then(|| format!("{key}|{ext}"));
        assert_eq!(s("000001.msgpack").as_deref(), Some("000001|msgpack"));
        assert_eq!(s("000002.msgpack").as_deref(), Some("000002|msgpack"));
        assert_eq!(s("a/b/c.seg.PNG").as_deref(), Some("a/b/c|seg.png"));
        assert_eq!(s("a/b/d.seg.png").as_deref(), Some("a/b/d|seg.png"));
        assert_eq!(s("a/b/e.Seg.png").as_deref(), Some("a/b/e|seg.png"));
        assert_eq!(s("k.äb").as_deref(), Some("k|äb"));
        assert_eq!(s("a.b/c.txt").as_deref(), Some("a.b/c|txt"));
        assert_eq!(s("k.ÄB").as_deref(), Some("k|äb"));
        assert_eq!(s("__index__"), None);
        assert_eq!(s("noext").as_deref(), Some("noext|"));
        assert_eq!(s("dir/"), None);
        assert_eq!(s(".hidden"), None);
        assert_eq!(s("dir/__meta__.json").as_deref(), Some("dir/__meta__|json"));
    }
}
