//! msgpack reading and writing, as msgpack-python packs Python values.
//!
//! Writing goes through `rmp::encode`, which picks the smallest integer and length encodings
//! as msgpack-python does. Reading is a borrowing cursor over the payload: strings and byte
//! strings are slices of the input, and every length is checked against the bytes left before
//! anything is allocated. A payload can also be decoded as it is read from a stream: the
//! cursor starts on its first bytes, and a large byte string can be read from the stream
//! straight to where it belongs ([`Decoder::streamed_bin`]).

use std::io::Read;

use rmp::Marker;

use crate::error::{Error, Result};
use crate::uninit::{FillUninit, UninitBuf};

/// Checks that a length fits msgpack's 32-bit length fields.
fn len32(what: &'static str, len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::TooLarge { what, len })
}

// Writes to a `Vec<u8>` cannot fail; the `map_err`s below only satisfy rmp's signatures.
const WRITE: Error = Error::Msgpack("write failed");

/// Appends msgpack values to a buffer.
#[derive(Debug)]
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Encoder<'a> {
        Encoder { out }
    }

    /// Writes a map header for `len` entries.
    pub fn map_len(&mut self, len: usize) -> Result<()> {
        rmp::encode::write_map_len(self.out, len32("map", len)?).map_err(|_| WRITE)?;
        Ok(())
    }

    /// Writes an array header for `len` items.
    pub fn array_len(&mut self, len: usize) -> Result<()> {
        rmp::encode::write_array_len(self.out, len32("list", len)?).map_err(|_| WRITE)?;
        Ok(())
    }

    /// Writes a string.
    pub fn str(&mut self, s: &str) -> Result<()> {
        rmp::encode::write_str_len(self.out, len32("string", s.len())?).map_err(|_| WRITE)?;
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    /// Writes a byte string (bin).
    pub fn bin(&mut self, b: &[u8]) -> Result<()> {
        self.bin_len(b.len())?;
        self.out.extend_from_slice(b);
        Ok(())
    }

    /// Writes a bin header; the caller appends exactly `len` bytes with [`raw`](Self::raw).
    pub fn bin_len(&mut self, len: usize) -> Result<()> {
        rmp::encode::write_bin_len(self.out, len32("byte string", len)?).map_err(|_| WRITE)?;
        Ok(())
    }

    /// The underlying buffer, for appending bytes announced by [`bin_len`](Self::bin_len).
    pub fn raw(&mut self) -> &mut Vec<u8> {
        self.out
    }

    /// Writes a signed integer in its smallest encoding.
    pub fn int(&mut self, v: i64) -> Result<()> {
        rmp::encode::write_sint(self.out, v).map_err(|_| WRITE)?;
        Ok(())
    }

    /// Writes an unsigned integer in its smallest encoding.
    pub fn uint(&mut self, v: u64) -> Result<()> {
        rmp::encode::write_uint(self.out, v).map_err(|_| WRITE)?;
        Ok(())
    }

    /// Writes a float64 (Python floats are always 64-bit).
    pub fn f64(&mut self, v: f64) -> Result<()> {
        rmp::encode::write_f64(self.out, v).map_err(|_| WRITE)
    }

    /// Writes a bool.
    pub fn bool(&mut self, v: bool) -> Result<()> {
        rmp::encode::write_bool(self.out, v).map_err(|_| WRITE)
    }

    /// Writes nil.
    pub fn nil(&mut self) -> Result<()> {
        rmp::encode::write_nil(self.out).map_err(|_| WRITE)
    }
}

/// An integer read from msgpack, signed or unsigned as encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int {
    /// A value encoded with a signed (or negative fixint) marker.
    Signed(i64),
    /// A value encoded with an unsigned (or positive fixint) marker.
    Unsigned(u64),
}

impl Int {
    /// The value as an `i128`, which holds every msgpack integer.
    pub fn get(self) -> i128 {
        match self {
            Int::Signed(v) => i128::from(v),
            Int::Unsigned(v) => i128::from(v),
        }
    }
}

/// The name of the msgpack kind a marker starts, for error messages.
pub(crate) fn kind_name(m: Marker) -> &'static str {
    match m {
        Marker::Null => "nil",
        Marker::True | Marker::False => "bool",
        Marker::FixPos(_)
        | Marker::FixNeg(_)
        | Marker::U8
        | Marker::U16
        | Marker::U32
        | Marker::U64
        | Marker::I8
        | Marker::I16
        | Marker::I32
        | Marker::I64 => "int",
        Marker::F32 | Marker::F64 => "float",
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => "str",
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => "bin",
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => "array",
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => "map",
        Marker::Reserved => "reserved byte 0xc1",
        _ => "ext",
    }
}

/// Reads msgpack values from a byte slice without copying strings or byte strings, or from a
/// payload as it streams in ([`Decoder::streaming`]).
pub struct Decoder<'a> {
    buf: &'a [u8],
    /// The payload's bytes after `buf`, when it is being read from a stream.
    rest: Option<Rest<'a>>,
}

/// The bytes of a payload still in the stream it is read from.
struct Rest<'a> {
    source: &'a mut dyn FillUninit,
    len: usize,
    /// Where they are read to once a value needs them in memory.
    spill: &'a mut Vec<u8>,
}

impl std::fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf`.
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder { buf, rest: None }
    }

    /// A decoder over a payload read from a stream: `head` holds its first bytes, and the
    /// `rest` bytes after them are read from `source` as they are needed, into `spill` when a
    /// value needs them in memory (at most once, and never more than the stream gives).
    pub fn streaming(
        head: &'a [u8],
        source: &'a mut dyn FillUninit,
        rest: usize,
        spill: &'a mut Vec<u8>,
    ) -> Decoder<'a> {
        let rest = (rest > 0).then_some(Rest {
            source,
            len: rest,
            spill,
        });
        Decoder { buf: head, rest }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() + self.rest.as_ref().map_or(0, |r| r.len)
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(Error::TrailingBytes { count }),
        }
    }

    /// The rest of the payload, in memory.
    pub fn into_bytes(mut self) -> Result<&'a [u8]> {
        self.spill()?;
        Ok(self.buf)
    }

    /// Reads the bytes still in the stream into memory, after those not read yet.
    fn spill(&mut self) -> Result<()> {
        let Some(Rest { source, len, spill }) = self.rest.take() else {
            return Ok(());
        };
        spill.clear();
        spill.extend_from_slice(self.buf);
        // `read_to_end` grows the buffer as bytes arrive, not from the claimed length.
        let read = source
            .take(len as u64)
            .read_to_end(spill)
            .map_err(Error::Read)?;
        if read < len {
            return Err(Error::Read(std::io::ErrorKind::UnexpectedEof.into()));
        }
        self.buf = spill.as_slice();
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            self.spill()?;
        }
        if self.buf.len() < n {
            return Err(Error::Msgpack("unexpected end of input"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// When the next value is a byte string that runs past the bytes in memory (in a payload
    /// being read from a stream), its bytes in memory and the rest to read; `None` otherwise,
    /// the value left to read as usual.
    pub fn streamed_bin(&mut self) -> Result<Option<StreamedBin<'_, 'a>>> {
        let Some(rest) = &self.rest else {
            return Ok(None);
        };
        let header = match self.buf.first().map(|&b| Marker::from_u8(b)) {
            Some(Marker::Bin8) => 2,
            Some(Marker::Bin16) => 3,
            Some(Marker::Bin32) => 5,
            _ => return Ok(None),
        };
        let Some(len_bytes) = self.buf.get(1..header) else {
            return Ok(None);
        };
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let in_memory = self.buf.len() - header;
        if len <= in_memory {
            return Ok(None);
        }
        if len - in_memory > rest.len {
            return Err(Error::Msgpack("unexpected end of input"));
        }
        let head = &self.buf[header..];
        self.buf = &[];
        Ok(Some(StreamedBin {
            head,
            len,
            missing: len - in_memory,
            decoder: self,
        }))
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// The next marker, without consuming it.
    pub fn peek(&mut self) -> Result<Marker> {
        if self.buf.is_empty() {
            self.spill()?;
        }
        // Not `ok_or`: the error would be built (and dropped) on every call.
        match self.buf.first() {
            Some(&b) => Ok(Marker::from_u8(b)),
            None => Err(Error::Msgpack("unexpected end of input")),
        }
    }

    fn marker(&mut self) -> Result<Marker> {
        let m = self.peek()?;
        self.buf = &self.buf[1..];
        Ok(m)
    }

    fn mismatch<T>(expected: &'static str, m: Marker) -> Result<T> {
        Err(Error::UnexpectedType {
            expected,
            found: kind_name(m),
        })
    }

    /// Consumes a nil if one is next, and says whether it did.
    pub fn nil(&mut self) -> Result<bool> {
        if self.peek()? == Marker::Null {
            self.buf = &self.buf[1..];
            return Ok(true);
        }
        Ok(false)
    }

    /// Reads a bool.
    pub fn bool(&mut self) -> Result<bool> {
        match self.marker()? {
            Marker::True => Ok(true),
            Marker::False => Ok(false),
            m => Self::mismatch("bool", m),
        }
    }

    fn int_after(&mut self, m: Marker) -> Result<Option<Int>> {
        Ok(Some(match m {
            Marker::FixPos(v) => Int::Unsigned(u64::from(v)),
            Marker::FixNeg(v) => Int::Signed(i64::from(v)),
            Marker::U8 => Int::Unsigned(u64::from(u8::from_be_bytes(self.be()?))),
            Marker::U16 => Int::Unsigned(u64::from(u16::from_be_bytes(self.be()?))),
            Marker::U32 => Int::Unsigned(u64::from(u32::from_be_bytes(self.be()?))),
            Marker::U64 => Int::Unsigned(u64::from_be_bytes(self.be()?)),
            Marker::I8 => Int::Signed(i64::from(i8::from_be_bytes(self.be()?))),
            Marker::I16 => Int::Signed(i64::from(i16::from_be_bytes(self.be()?))),
            Marker::I32 => Int::Signed(i64::from(i32::from_be_bytes(self.be()?))),
            Marker::I64 => Int::Signed(i64::from_be_bytes(self.be()?)),
            _ => return Ok(None),
        }))
    }

    /// Reads an integer of any width.
    pub fn int(&mut self) -> Result<Int> {
        let m = self.marker()?;
        match self.int_after(m)? {
            Some(i) => Ok(i),
            None => Self::mismatch("int", m),
        }
    }

    /// Reads a float of either width, or an integer (Python does not check that a float field
    /// holds a float).
    pub fn float(&mut self) -> Result<f64> {
        let m = self.marker()?;
        match m {
            Marker::F64 => Ok(f64::from_be_bytes(self.be()?)),
            Marker::F32 => Ok(f64::from(f32::from_be_bytes(self.be()?))),
            _ => match self.int_after(m)? {
                Some(i) => Ok(i.get() as f64),
                None => Self::mismatch("float", m),
            },
        }
    }

    fn len_after(&mut self, m: Marker, fix: Option<u8>) -> Result<usize> {
        Ok(match (m, fix) {
            (_, Some(n)) => usize::from(n),
            (Marker::Str8 | Marker::Bin8, _) => usize::from(u8::from_be_bytes(self.be()?)),
            (Marker::Str16 | Marker::Bin16 | Marker::Array16 | Marker::Map16, _) => {
                usize::from(u16::from_be_bytes(self.be()?))
            }
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }

    /// Reads a string, borrowed from the input.
    pub fn str(&mut self) -> Result<&'a str> {
        let bytes = self.str_bytes()?;
        std::str::from_utf8(bytes).map_err(|_| Error::Msgpack("string is not valid UTF-8"))
    }

    /// Reads a string's bytes, borrowed from the input, not checked to be UTF-8 (a map key,
    /// compared with field names that are).
    pub fn str_bytes(&mut self) -> Result<&'a [u8]> {
        let m = self.marker()?;
        let len = match m {
            Marker::FixStr(n) => self.len_after(m, Some(n))?,
            Marker::Str8 | Marker::Str16 | Marker::Str32 => self.len_after(m, None)?,
            _ => return Self::mismatch("str", m),
        };
        self.take(len)
    }

    /// Reads a byte string (bin), borrowed from the input.
    pub fn bin(&mut self) -> Result<&'a [u8]> {
        let m = self.marker()?;
        match m {
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let len = self.len_after(m, None)?;
                self.take(len)
            }
            _ => Self::mismatch("bin", m),
        }
    }

    /// Reads an array header. The length is checked against the bytes left (each item takes
    /// at least one), so it is safe to allocate from.
    pub fn array_len(&mut self) -> Result<usize> {
        let m = self.marker()?;
        let len = match m {
            Marker::FixArray(n) => self.len_after(m, Some(n))?,
            Marker::Array16 | Marker::Array32 => self.len_after(m, None)?,
            _ => return Self::mismatch("array", m),
        };
        if len > self.remaining() {
            return Err(Error::Msgpack("array longer than its payload"));
        }
        Ok(len)
    }

    /// Reads a map header. The entry count is checked against the bytes left.
    pub fn map_len(&mut self) -> Result<usize> {
        let m = self.marker()?;
        let len = match m {
            Marker::FixMap(n) => self.len_after(m, Some(n))?,
            Marker::Map16 | Marker::Map32 => self.len_after(m, None)?,
            _ => return Self::mismatch("map", m),
        };
        if len > self.remaining() / 2 {
            return Err(Error::Msgpack("map longer than its payload"));
        }
        Ok(len)
    }
}

/// A byte string being read from a stream ([`Decoder::streamed_bin`]): its first bytes are in
/// memory, and the rest are read straight into the caller's buffers. Unless all of it is read
/// (or it is taken whole, [`into_bytes`](Self::into_bytes)), decoding the payload further
/// fails.
pub struct StreamedBin<'d, 'a> {
    head: &'a [u8],
    len: usize,
    missing: usize,
    decoder: &'d mut Decoder<'a>,
}

impl<'a> StreamedBin<'_, 'a> {
    /// Its bytes in memory: the first ones.
    pub fn head(&self) -> &'a [u8] {
        self.head
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Fills the rest of `out` with its next bytes (at most those not read yet).
    pub fn fill(&mut self, out: &mut UninitBuf<'_>) -> Result<()> {
        let n = out.remaining();
        let Some(rest) = self.decoder.rest.as_mut().filter(|_| n <= self.missing) else {
            return Err(Error::Msgpack("read past the end of a byte string"));
        };
        rest.source.fill_uninit(out).map_err(Error::Read)?;
        rest.len -= n;
        self.missing -= n;
        Ok(())
    }

    /// All of it, in memory (read from the stream with the rest of the payload), unless some
    /// of it was [`read`](Self::read).
    pub fn into_bytes(mut self) -> Result<&'a [u8]> {
        if self.head.len() + self.missing != self.len {
            return Err(Error::Msgpack("byte string partly read"));
        }
        self.missing = 0;
        self.decoder.buf = self.head;
        self.decoder.take(self.len)
    }
}

impl Drop for StreamedBin<'_, '_> {
    fn drop(&mut self) {
        if self.missing > 0 {
            // Its unread bytes would be taken for the values after it.
            self.decoder.rest = None;
            self.decoder.buf = &[];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(f: impl FnOnce(&mut Encoder<'_>) -> Result<()>) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut Encoder::new(&mut out)).unwrap();
        out
    }

    #[test]
    fn integers_use_python_encodings() {
        for (v, hex) in [
            (0i64, "00"),
            (127, "7f"),
            (128, "cc80"),
            (65536, "ce00010000"),
            (-33, "d0df"),
            (-129, "d1ff7f"),
            (-1, "ff"),
        ] {
            let bytes = encoded(|e| e.int(v));
            assert_eq!(hex::encode(&bytes), hex, "{v}");
            assert_eq!(Decoder::new(&bytes).int().unwrap().get(), i128::from(v));
        }
        let bytes = encoded(|e| e.uint(u64::MAX));
        assert_eq!(hex::encode(&bytes), "cfffffffffffffffff");
    }

    #[test]
    fn truncated_input_is_an_error() {
        let bytes = encoded(|e| e.str("hello"));
        for cut in 0..bytes.len() {
            assert!(Decoder::new(&bytes[..cut]).str().is_err());
        }
        assert!(matches!(
            Decoder::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]).array_len(),
            Err(Error::Msgpack(_))
        ));
        assert!(matches!(
            Decoder::new(&[0xdf, 0xff, 0xff, 0xff, 0xff]).map_len(),
            Err(Error::Msgpack(_))
        ));
    }

    #[test]
    fn kinds_are_named_in_errors() {
        let err = Decoder::new(&[0xc1]).str().unwrap_err();
        assert_eq!(err.to_string(), "expected str, found reserved byte 0xc1");
        let err = Decoder::new(&[0xa1, b'x']).bin().unwrap_err();
        assert_eq!(err.to_string(), "expected bin, found str");
    }

    #[test]
    fn floats_accept_either_width_and_ints() {
        assert_eq!(
            Decoder::new(&[0xca, 0x3f, 0xc0, 0, 0]).float().unwrap(),
            1.5
        );
        assert_eq!(
            Decoder::new(&encoded(|e| e.f64(-2.25))).float().unwrap(),
            -2.25
        );
        assert_eq!(Decoder::new(&[0x05]).float().unwrap(), 5.0);
    }
}
