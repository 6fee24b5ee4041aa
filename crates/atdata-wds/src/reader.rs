//! Reading tar shards as a stream of WebDataset samples.

use std::io::{self, BufRead, BufReader, Read};

use atdata_codec::WdsSample;
use flate2::bufread::MultiGzDecoder;

use crate::error::{Error, Result};

const BLOCK: usize = 512;
/// Members are read in pieces of at most this much until their size is confirmed, so a header
/// claiming a huge size never causes a huge allocation.
const TRUSTED_CAPACITY: u64 = 16 << 20;

/// Reads a tar shard from any `Read` (a file, an HTTP or object-store body) and yields its
/// samples, grouping members by WebDataset's rule:
///
/// - a member `dir/base.ext.more` belongs to the sample keyed `dir/base` (up to the first `.` of
///   the last path component) under the extension `ext.more`, lowercased;
/// - only consecutive members form one sample; a key seen again later starts a new sample;
/// - top-level names like `__index__`, names without an extension, and non-file members are
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
    members: Members<Box<dyn BufRead + Send + 'a>>,
    current: Option<WdsSample>,
    error: Option<Error>,
    done: bool,
}

impl<'a> TarReader<'a> {
    /// A reader over `input`; `shard` names it in errors.
    pub fn new(input: impl Read + Send + 'a, shard: impl Into<String>) -> TarReader<'a> {
        let mut buffered = BufReader::with_capacity(256 << 10, input);
        let gzip = buffered
            .fill_buf()
            .is_ok_and(|b| b.starts_with(&[0x1f, 0x8b]));
        let stream: Box<dyn BufRead + Send + 'a> = if gzip {
            Box::new(BufReader::with_capacity(
                256 << 10,
                MultiGzDecoder::new(buffered),
            ))
        } else {
            Box::new(buffered)
        };
        TarReader {
            members: Members::new(stream, shard.into()),
            current: None,
            error: None,
            done: false,
        }
    }
}

impl Iterator for TarReader<'_> {
    type Item = Result<WdsSample>;

    fn next(&mut self) -> Option<Result<WdsSample>> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        loop {
            match self.members.next() {
                None => {
                    self.done = true;
                    return self.current.take().map(Ok);
                }
                Some(Err(e)) => {
                    // Yield the sample read intact before the failure, then the error.
                    self.done = true;
                    return Some(match self.current.take() {
                        Some(sample) => {
                            self.error = Some(e);
                            Ok(sample)
                        }
                        None => Err(e),
                    });
                }
                Some(Ok((key, ext, data))) => match &mut self.current {
                    Some(sample) if sample.key == key => {
                        if sample.members.iter().any(|(e, _)| *e == ext) {
                            self.done = true;
                            self.current = None;
                            return Some(Err(Error::DuplicateMember {
                                shard: self.members.shard.clone(),
                                key,
                                ext,
                            }));
                        }
                        sample.members.push((ext, data));
                    }
                    _ => {
                        let next = WdsSample {
                            key,
                            members: vec![(ext, data)],
                        };
                        if let Some(finished) = self.current.replace(next) {
                            return Some(Ok(finished));
                        }
                    }
                },
            }
        }
    }
}

/// The data members of an archive: `(key, ext, bytes)`, grouping rules not yet applied.
struct Members<R: BufRead> {
    input: R,
    shard: String,
    finished: bool,
    /// A name from a PAX `path` record or a GNU long-name member, for the next member.
    long_name: Option<String>,
    /// A size from a PAX `size` record, for the next member.
    pax_size: Option<u64>,
}

impl<R: BufRead> Members<R> {
    fn new(input: R, shard: String) -> Members<R> {
        Members {
            input,
            shard,
            finished: false,
            long_name: None,
            pax_size: None,
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

    fn io_error(&self, e: io::Error, member: Option<&str>) -> Error {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => self.truncated(member),
            _ => Error::io(self.shard.clone(), e),
        }
    }

    /// Reads one header block; `None` at the end-of-archive marker.
    fn header(&mut self) -> Result<Option<[u8; BLOCK]>> {
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
        if block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        Ok(Some(block))
    }

    /// Reads `size` bytes of member data and the padding after them.
    fn data(&mut self, size: u64, member: &str) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(size.min(TRUSTED_CAPACITY) as usize);
        let read = (&mut self.input)
            .take(size)
            .read_to_end(&mut buf)
            .map_err(|e| self.io_error(e, Some(member)))?;
        if (read as u64) < size {
            return Err(self.truncated(Some(member)));
        }
        self.skip_padding(size, member)?;
        Ok(buf)
    }

    fn skip(&mut self, size: u64, member: &str) -> Result<()> {
        let skipped = io::copy(&mut (&mut self.input).take(size), &mut io::sink())
            .map_err(|e| self.io_error(e, Some(member)))?;
        if skipped < size {
            return Err(self.truncated(Some(member)));
        }
        self.skip_padding(size, member)
    }

    fn skip_padding(&mut self, size: u64, member: &str) -> Result<()> {
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        let mut zeros = [0u8; BLOCK];
        self.input
            .read_exact(&mut zeros[..pad as usize])
            .map_err(|e| self.io_error(e, Some(member)))
    }

    fn member(&mut self) -> Result<Option<(String, String, Vec<u8>)>> {
        loop {
            let Some(block) = self.header()? else {
                return Ok(None);
            };
            let header = tar::Header::from_byte_slice(&block);
            let raw_name = String::from_utf8_lossy(&header.path_bytes()).into_owned();
            let stored: u32 = block[148..156]
                .iter()
                .filter(|b| b.is_ascii_digit())
                .fold(0u32, |acc, &b| {
                    acc.wrapping_mul(8).wrapping_add(u32::from(b - b'0'))
                });
            let unsigned: u32 = block
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u32::from(b)
                    }
                })
                .sum();
            let signed: i32 = block
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        i32::from(b as i8)
                    }
                })
                .sum();
            if stored != unsigned && stored as i32 != signed {
                return Err(self.corrupt(Some(&raw_name), "checksum mismatch"));
            }
            let name = self.long_name.take().unwrap_or(raw_name);
            let size = match self.pax_size.take() {
                Some(s) => s,
                None => header
                    .entry_size()
                    .map_err(|e| self.corrupt(Some(&name), e.to_string()))?,
            };
            match block[156] {
                b'x' => {
                    let data = self.data(size, &name)?;
                    self.apply_pax(&data, &name)?;
                }
                b'g' => self.skip(size, &name)?,
                b'L' => {
                    let data = self.data(size, &name)?;
                    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                    self.long_name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
                }
                b'0' | 0 | b'7' => {
                    let keyed = split_name(&name);
                    let data = match keyed {
                        Some(_) => self.data(size, &name)?,
                        None => {
                            self.skip(size, &name)?;
                            continue;
                        }
                    };
                    if let Some((key, ext)) = keyed {
                        return Ok(Some((key, ext, data)));
                    }
                }
                _ => self.skip(size, &name)?,
            }
        }
    }

    /// Applies the `path` and `size` records of a PAX extended header to the next member.
    fn apply_pax(&mut self, mut records: &[u8], member: &str) -> Result<()> {
        while !records.is_empty() {
            // "<len> <key>=<value>\n", where <len> counts the whole record.
            let parsed = records.iter().position(|&b| b == b' ').and_then(|space| {
                let len = std::str::from_utf8(&records[..space])
                    .ok()?
                    .parse::<usize>()
                    .ok()?;
                (len > space && len <= records.len()).then_some((space, len))
            });
            let Some((space, len)) = parsed else {
                return Err(self.corrupt(Some(member), "malformed PAX record"));
            };
            let record = &records[space + 1..len];
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            if let Some(eq) = record.iter().position(|&b| b == b'=') {
                let value = String::from_utf8_lossy(&record[eq + 1..]);
                match &record[..eq] {
                    b"path" => self.long_name = Some(value.into_owned()),
                    b"size" => {
                        let size = value
                            .parse()
                            .map_err(|_| self.corrupt(Some(member), "malformed PAX size"))?;
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

impl<R: BufRead> Iterator for Members<R> {
    type Item = Result<(String, String, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let item = self.member().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.finished = true;
        }
        item
    }
}

/// WebDataset's key and extension of a member name, or `None` for names it skips.
fn split_name(name: &str) -> Option<(String, String)> {
    let (dir, base) = match name.rfind('/') {
        Some(i) => name.split_at(i + 1),
        None => ("", name),
    };
    if dir.is_empty() && base.len() >= 4 && base.starts_with("__") && base.ends_with("__") {
        return None;
    }
    let dot = base.find('.')?;
    if dot == 0 {
        return None;
    }
    Some((
        format!("{dir}{}", &base[..dot]),
        base[dot + 1..].to_lowercase(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_pax_records_are_errors() {
        for records in [
            &b"2 path=x\n"[..],
            b"999 path=x\n",
            b"x path=x\n",
            b"nospace",
            b"0 \n",
        ] {
            let mut m = Members::new(&b""[..], "s.tar".into());
            assert!(
                matches!(
                    m.apply_pax(records, "pax"),
                    Err(Error::CorruptHeader { .. })
                ),
                "{records:?}"
            );
        }
        let mut m = Members::new(&b""[..], "s.tar".into());
        m.apply_pax(b"12 path=abc\n9 size=7\n", "pax").unwrap();
        assert_eq!((m.long_name.as_deref(), m.pax_size), (Some("abc"), Some(7)));
    }

    #[test]
    fn names_split_as_webdataset_splits_them() {
        let s = |n: &str| split_name(n).map(|(k, e)| format!("{k}|{e}"));
        assert_eq!(s("000001.msgpack").as_deref(), Some("000001|msgpack"));
        assert_eq!(s("a/b/c.seg.PNG").as_deref(), Some("a/b/c|seg.png"));
        assert_eq!(s("a.b/c.txt").as_deref(), Some("a.b/c|txt"));
        assert_eq!(s("__index__"), None);
        assert_eq!(s("noext"), None);
        assert_eq!(s(".hidden"), None);
        assert_eq!(s("dir/__meta__.json").as_deref(), Some("dir/__meta__|json"));
    }
}
