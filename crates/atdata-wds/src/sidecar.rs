//! Sidecar indexes: where each sample's members lie in a shard, in the text format of NVIDIA
//! DALI's webdataset index (`tools/wds2idx.py`, version 1.2).
//!
//! ```text
//! v1.2 2
//! msgpack 512 83 000000.msgpack
//! msgpack 1536 83 000001.msgpack json 2560 17 000001.json
//! ```
//!
//! The first line is the version and the number of samples; then one line per sample, in
//! archive order, listing each member as `ext offset size name`: its extension (the name
//! after the first `.` of its last path component), the offset of its data in the archive,
//! its size in bytes and its full name.

use std::io::{Read, Write};
use std::ops::Range;
use std::path::Path;

use crate::error::{Error, Result};
use crate::reader::Grouper;
use crate::writer::gzip_name;

/// The version a sidecar's first line names.
const VERSION: &str = "v1.2";
const BLOCK: u64 = 512;
/// The bytes the line format separates fields with (C's `isspace`, which DALI parses by).
const SEPARATORS: &[u8] = b" \t\n\r\x0b\x0c";

/// One member of a sidecar: its full name, where its key ends in it, its data's offset and
/// its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: String,
    key_len: usize,
    pub offset: u64,
    pub size: u64,
}

impl Entry {
    /// The sample key the member belongs to.
    pub fn key(&self) -> &str {
        &self.name[..self.key_len]
    }

    /// The extension as the name spells it (empty for a bare key).
    pub fn ext(&self) -> &str {
        self.name.get(self.key_len + 1..).unwrap_or("")
    }

    /// Where the member's data ends.
    pub fn end(&self) -> u64 {
        self.offset + self.size
    }
}

/// Where every sample's members lie in one tar shard: what [`Dataset::get`] reads a sample
/// by, with one positioned read. Written beside the shard as `<stem>.idx` (see
/// [`sidecar_url`]) by [`TarWriter::create`], [`ShardWriter`] and a store's `write_shards`,
/// in DALI's webdataset index format v1.2, so DALI reads it too (`index_paths`), and every
/// tar reader ignores it.
///
/// [`Dataset::get`]: crate::Dataset::get
/// [`TarWriter::create`]: crate::TarWriter::create
/// [`ShardWriter`]: crate::ShardWriter
///
/// ```
/// use atdata_codec::WdsSample;
/// use atdata_wds::{Sidecar, TarWriter};
///
/// let mut w = TarWriter::new(Vec::new()).with_sidecar(true);
/// w.write(&WdsSample::msgpack("a", vec![1, 2, 3]))?;
/// let (tar, sidecar) = w.finish_with_sidecar()?;
/// let sidecar = sidecar.unwrap();
/// assert_eq!(sidecar.to_text()?, "v1.2 1\nmsgpack 512 3 a.msgpack\n");
///
/// // The same layout, found by reading the shard's headers.
/// assert_eq!(Sidecar::build(&tar[..], "a.tar")?, sidecar);
/// assert_eq!(Sidecar::parse(sidecar.to_text()?.as_bytes(), "a.idx")?, sidecar);
/// # Ok::<(), atdata_wds::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sidecar {
    entries: Vec<Entry>,
    /// Sample `i` is `entries[starts[i]..starts[i + 1]]` (the last runs to the end).
    starts: Vec<usize>,
}

impl Sidecar {
    /// Samples listed.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether no sample is listed.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The key of sample `index`.
    pub fn key(&self, index: usize) -> Option<&str> {
        self.sample(index).first().map(Entry::key)
    }

    /// The members of sample `index` (empty past the end).
    pub(crate) fn sample(&self, index: usize) -> &[Entry] {
        let Some(&start) = self.starts.get(index) else {
            return &[];
        };
        let end = self
            .starts
            .get(index + 1)
            .copied()
            .unwrap_or(self.entries.len());
        &self.entries[start..end]
    }

    /// The bytes sample `index` spans: from its first member's header to its last member's
    /// data end.
    pub(crate) fn span(&self, index: usize) -> Option<Range<u64>> {
        let members = self.sample(index);
        Some(members.first()?.offset - BLOCK..members.last()?.end())
    }

    /// Appends a member; `new_sample` starts the next sample with it.
    pub(crate) fn push(
        &mut self,
        name: &str,
        key_len: usize,
        offset: u64,
        size: u64,
        new_sample: bool,
    ) {
        if new_sample || self.starts.is_empty() {
            self.starts.push(self.entries.len());
        }
        self.entries.push(Entry {
            name: name.to_owned(),
            key_len,
            offset,
            size,
        });
    }

    /// The largest offset any member's data ends at.
    pub(crate) fn end(&self) -> u64 {
        self.entries.last().map_or(0, Entry::end)
    }

    /// Builds the sidecar of a tar shard by reading its headers (member data is skipped, never
    /// decoded), with the grouping rules [`TarReader`](crate::TarReader) applies. A gzip
    /// stream is an error ([`Error::NoRandomAccess`]): offsets into it would mean nothing.
    /// So is a shard that cannot be read to its end.
    pub fn build(input: impl Read + Send, shard: &str) -> Result<Sidecar> {
        let (sidecar, gzip) = scan(input, shard, u64::MAX)?;
        if gzip {
            return Err(Error::NoRandomAccess {
                shard: shard.to_owned(),
                reason: "it is compressed",
            });
        }
        Ok(sidecar)
    }

    /// Parses a sidecar's text: DALI's webdataset index v1.2, a first line `v1.2 <samples>`,
    /// then one line per sample in archive order listing each member as
    /// `ext offset size name` (its extension, the offset of its data, its size, its full
    /// name). Anything that is not the format, or that could not describe a
    /// tar archive (an offset that is not past a header block, members out of order or
    /// overlapping, a count that differs from the lines, an extension that is not the
    /// name's), is [`Error::BadSidecar`] naming `source`. The count on the first line is
    /// checked, never trusted for an allocation.
    pub fn parse(text: &[u8], source: &str) -> Result<Sidecar> {
        let bad = |line: usize, reason: String| Error::BadSidecar {
            sidecar: source.to_owned(),
            line,
            reason,
        };
        let mut lines = text.split(|&b| b == b'\n');
        let count = parse_head(lines.next().unwrap_or_default(), source)?;
        let mut sidecar = Sidecar::default();
        let mut previous_end = 0u64;
        for (n, line) in lines.enumerate() {
            let line_no = n + 2;
            let mut fields = fields(line).peekable();
            if fields.peek().is_none() {
                continue; // the final newline, or a blank line
            }
            if sidecar.len() as u64 == count {
                return Err(bad(
                    line_no,
                    format!("more samples than the {count} announced"),
                ));
            }
            let mut key: Option<&str> = None;
            let mut first = true;
            while let Some(ext) = fields.next() {
                let mut field = |what: &str| {
                    fields
                        .next()
                        .ok_or_else(|| bad(line_no, format!("a member without its {what}")))
                };
                let (offset, size, name) = (field("offset")?, field("size")?, field("name")?);
                let number = |bytes: &[u8], what: &str| {
                    std::str::from_utf8(bytes)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| bad(line_no, format!("the {what} is not a number")))
                };
                let (offset, size) = (number(offset, "offset")?, number(size, "size")?);
                let name = std::str::from_utf8(name)
                    .map_err(|_| bad(line_no, "a member name that is not UTF-8".into()))?;
                let key_len = key_len(name)
                    .ok_or_else(|| bad(line_no, format!("`{name}` has no extension")))?;
                if name.as_bytes()[key_len + 1..] != *ext {
                    return Err(bad(
                        line_no,
                        format!(
                            "the extension `{}` is not that of `{name}`",
                            String::from_utf8_lossy(ext)
                        ),
                    ));
                }
                let member_key = &name[..key_len];
                if *key.get_or_insert(member_key) != member_key {
                    return Err(bad(
                        line_no,
                        format!(
                            "`{name}` is not of the line's sample `{}`",
                            key.unwrap_or("")
                        ),
                    ));
                }
                if first
                    && let Some(last) = sidecar.entries.last()
                    && last.key() == member_key
                {
                    return Err(bad(
                        line_no,
                        format!("sample `{member_key}` continues the line before it"),
                    ));
                }
                if offset % BLOCK != 0 || offset < previous_end + BLOCK {
                    return Err(bad(
                        line_no,
                        format!(
                            "`{name}` at offset {offset} is not past the header after the member before it"
                        ),
                    ));
                }
                let end = offset
                    .checked_add(size)
                    .ok_or_else(|| bad(line_no, format!("`{name}` ends past 2^64")))?;
                previous_end = end.div_ceil(BLOCK) * BLOCK;
                sidecar.push(name, key_len, offset, size, first);
                first = false;
            }
        }
        if sidecar.len() as u64 != count {
            return Err(bad(
                1,
                format!("{count} samples announced, {} listed", sidecar.len()),
            ));
        }
        Ok(sidecar)
    }

    /// The sidecar's text (see [`Sidecar::parse`] for the format). A member name or extension the line
    /// format cannot hold (one with whitespace, a name without an extension) is
    /// [`Error::SidecarName`]: never a line that would be read back wrong.
    pub fn to_text(&self) -> Result<String> {
        let mut text = format!("{VERSION} {}\n", self.len());
        for i in 0..self.len() {
            for (j, entry) in self.sample(i).iter().enumerate() {
                check_name(&entry.name)?;
                if j > 0 {
                    text.push(' ');
                }
                text.push_str(&format!(
                    "{} {} {} {}",
                    entry.ext(),
                    entry.offset,
                    entry.size,
                    entry.name
                ));
            }
            text.push('\n');
        }
        Ok(text)
    }

    /// Writes the text to `path` atomically: a temporary file beside it, renamed over it once
    /// complete, so a reader never sees half a sidecar.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let shown = || path.display().to_string();
        let text = self.to_text()?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(shown(), e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.as_file().sync_data())
            .map_err(|e| Error::io(shown(), e))?;
        file.persist(path)
            .map_err(|e| Error::io(shown(), e.error))?;
        Ok(())
    }
}

/// The count a sidecar's first line (`v1.2 <count>`) announces.
pub(crate) fn parse_head(line: &[u8], source: &str) -> Result<u64> {
    let bad = |reason: String| Error::BadSidecar {
        sidecar: source.to_owned(),
        line: 1,
        reason,
    };
    let mut head = fields(line);
    if head.next() != Some(VERSION.as_bytes()) {
        return Err(bad(format!("the first line must start with `{VERSION}`")));
    }
    let count = head
        .next()
        .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
        .ok_or_else(|| bad("the first line must give the number of samples".into()))?;
    if head.next().is_some() {
        return Err(bad("the first line has more than two fields".into()));
    }
    Ok(count)
}

/// Refuses a member name the line format cannot hold.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let reason = if name.bytes().any(|b| SEPARATORS.contains(&b)) {
        "it holds whitespace, which separates a sidecar's fields"
    } else if key_len(name).is_none() {
        "it has no extension"
    } else {
        return Ok(());
    };
    Err(Error::SidecarName {
        name: name.to_owned(),
        reason,
    })
}

/// Where the key ends in a member name: at the first `.` of its last path component.
fn key_len(name: &str) -> Option<usize> {
    let base = name.rfind('/').map_or(0, |i| i + 1);
    let dot = name[base..].find('.')?;
    (dot > 0).then_some(base + dot)
}

fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| SEPARATORS.contains(b))
        .filter(|f| !f.is_empty())
}

/// The sidecar URL of a shard: `<stem>.idx` beside it, the stem being the name up to the
/// first `.` of its last path component (`data-000000.tar` → `data-000000.idx`), as DALI
/// names it. `None` for a compressed shard (`.gz`, `.tgz`), which cannot be read at an
/// offset, and for a name without a `.`.
///
/// ```
/// assert_eq!(atdata_wds::sidecar_url("s3://b/p/data-000001.tar").as_deref(), Some("s3://b/p/data-000001.idx"));
/// assert_eq!(atdata_wds::sidecar_url("data-000001.tar.gz"), None);
/// ```
pub fn sidecar_url(shard: &str) -> Option<String> {
    if gzip_name(shard) {
        return None;
    }
    let stem = shard_stem(shard);
    (stem.len() < shard.len()).then(|| format!("{stem}.idx"))
}

/// A shard URL up to the first `.` of its file name: what a shard and its sibling files
/// (its `.idx` sidecar) share.
///
/// ```
/// assert_eq!(atdata_wds::shard_stem("s3://b/p/data--x--000001.tar"), "s3://b/p/data--x--000001");
/// assert_eq!(atdata_wds::shard_stem("dir.v2/a.tar.gz"), "dir.v2/a");
/// ```
pub fn shard_stem(url: &str) -> &str {
    let name_at = url.rfind('/').map_or(0, |i| i + 1);
    match url[name_at..].find('.') {
        Some(dot) => &url[..name_at + dot],
        None => url,
    }
}

/// Reads a shard's headers into a sidecar (`u64::MAX` lifts the member-size limit: nothing is
/// held); also says whether the shard was a gzip stream.
pub(crate) fn scan(
    input: impl Read + Send,
    shard: &str,
    max_member: u64,
) -> Result<(Sidecar, bool)> {
    let mut grouper = Grouper::new(input, shard.to_owned(), max_member)
        .headers_only()
        .recording();
    while let Some(read) = grouper.advance() {
        read?;
    }
    let gzip = grouper.is_gzip();
    Ok((grouper.into_sidecar(), gzip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Sidecar> {
        Sidecar::parse(text.as_bytes(), "t.idx")
    }

    #[test]
    fn parses_what_dali_writes_and_writes_it_back_the_same() {
        let text = "v1.2 2\nmsgpack 512 83 a/000000.msgpack\ncls 1536 1 a/000001.cls JPG 2560 9 a/000001.JPG\n";
        let sidecar = parse(text).unwrap();
        assert_eq!(sidecar.len(), 2);
        assert_eq!(sidecar.key(1), Some("a/000001"));
        assert_eq!(sidecar.sample(1)[1].ext(), "JPG");
        assert_eq!(sidecar.span(1), Some(1024..2569));
        assert_eq!(sidecar.to_text().unwrap(), text);
    }

    #[test]
    fn malformed_or_impossible_sidecars_are_errors() {
        for (text, says) in [
            ("", "must start with"),
            ("v1.1 1\nmsgpack 512 1 a.msgpack\n", "must start with"),
            ("v1.2\n", "number of samples"),
            ("v1.2 x\n", "number of samples"),
            ("v1.2 1 2\n", "more than two"),
            (
                "v1.2 2\nmsgpack 512 1 a.msgpack\n",
                "2 samples announced, 1 listed",
            ),
            ("v1.2 0\nmsgpack 512 1 a.msgpack\n", "more samples than"),
            ("v1.2 1\nmsgpack 512 1\n", "without its name"),
            ("v1.2 1\nmsgpack x 1 a.msgpack\n", "offset is not a number"),
            ("v1.2 1\nmsgpack 512 -1 a.msgpack\n", "size is not a number"),
            ("v1.2 1\nmsgpack 100 1 a.msgpack\n", "not past the header"),
            ("v1.2 1\nmsgpack 0 1 a.msgpack\n", "not past the header"),
            ("v1.2 1\njson 512 1 a.msgpack\n", "not that of"),
            ("v1.2 1\nmsgpack 512 1 a\n", "no extension"),
            (
                "v1.2 1\nmsgpack 512 1 a.msgpack json 1536 1 b.json\n",
                "not of the line's sample",
            ),
            (
                "v1.2 2\nmsgpack 512 1 a.msgpack\njson 1536 1 a.json\n",
                "continues the line",
            ),
            (
                "v1.2 2\nmsgpack 1536 1 a.msgpack\nmsgpack 512 1 b.msgpack\n",
                "not past the header",
            ),
            (
                "v1.2 2\nmsgpack 512 600 a.msgpack\nmsgpack 1024 1 b.msgpack\n",
                "not past the header",
            ),
            (
                "v1.2 1\nmsgpack 18446744073709551104 1000 a.msgpack\n",
                "past 2^64",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                matches!(&err, Error::BadSidecar { .. }) && err.to_string().contains(says),
                "{text:?}: {err}"
            );
        }
        // A huge announced count allocates nothing: it is only compared.
        assert!(parse("v1.2 18446744073709551615\n").is_err());
    }

    #[test]
    fn names_the_line_format_cannot_hold_are_refused_when_writing() {
        for name in ["a b.msgpack", "a.ms\tgpack", "a\n.msgpack", "bare"] {
            let mut sidecar = Sidecar::default();
            sidecar.push(name, name.find('.').unwrap_or(name.len()), 512, 1, true);
            let err = sidecar.to_text().unwrap_err();
            assert!(matches!(err, Error::SidecarName { .. }), "{name:?}: {err}");
        }
    }

    #[test]
    fn stems_and_sidecar_urls() {
        assert_eq!(shard_stem("a/b.c/d.tar"), "a/b.c/d");
        assert_eq!(shard_stem("noext"), "noext");
        assert_eq!(sidecar_url("a/b.c/d.tar").as_deref(), Some("a/b.c/d.idx"));
        assert_eq!(sidecar_url("a/noext"), None);
        assert_eq!(sidecar_url("a.tgz"), None);
    }
}
