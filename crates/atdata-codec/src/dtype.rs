//! numpy dtype strings and the Rust element types that map to them.

use std::fmt;

use half::f16;
use num_complex::{Complex32, Complex64};

use crate::error::{ArrayError, Result};
use crate::uninit::{UninitBuf, extend_pod};

/// The byte order named by a dtype string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// `<`, or `|` / `=` / no prefix on this (little-endian) machine.
    Little,
    /// `>`.
    Big,
}

/// A numpy dtype as an NDArray payload names it (`dtype.str`: `<f4`, `|u1`, `>i2`, `<U5`, `<M8[ns]`...).
///
/// Parsing checks the form and computes the item size, so a payload's length can be checked
/// against its shape before anything is allocated. Typed arrays support the numeric kinds and
/// bool; the other kinds (strings, datetimes, void) are carried as opaque bytes by
/// [`ArrayPayload`](crate::ArrayPayload).
///
/// ```
/// use atdata_codec::{ByteOrder, DType};
///
/// let dt = DType::parse(">i2").unwrap();
/// assert_eq!((dt.kind(), dt.itemsize(), dt.byte_order()), ('i', 2, ByteOrder::Big));
/// assert_eq!(dt.name(), Some("int16"));
/// assert_eq!(DType::parse("<U5").unwrap().itemsize(), 20);
/// assert!(DType::parse("<x4").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DType {
    text: String,
    info: DTypeInfo,
}

/// What a dtype string means, parsed without allocating (the decoding hot path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DTypeInfo {
    pub kind: char,
    pub itemsize: usize,
    pub order: ByteOrder,
}

impl DTypeInfo {
    pub fn parse(text: &str) -> Result<DTypeInfo, ArrayError> {
        let invalid = || ArrayError::InvalidDtype(text.to_owned());
        let bytes = text.as_bytes();
        let (order, rest) = match bytes.first() {
            Some(b'<') | Some(b'|') | Some(b'=') => (ByteOrder::Little, &text[1..]),
            Some(b'>') => (ByteOrder::Big, &text[1..]),
            _ => (ByteOrder::Little, text),
        };
        let mut chars = rest.chars();
        let kind = chars.next().ok_or_else(invalid)?;
        let rest = chars.as_str();
        let (digits, unit) = match rest.find('[') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let count: usize = digits.parse().map_err(|_| invalid())?;
        let itemsize = match kind {
            'b' if count == 1 => 1,
            'i' | 'u' if matches!(count, 1 | 2 | 4 | 8) => count,
            'f' if matches!(count, 2 | 4 | 8 | 12 | 16) => count,
            'c' if matches!(count, 8 | 16 | 24 | 32) => count,
            'M' | 'm' if count == 8 => count,
            'S' | 'V' if count > 0 => count,
            'U' if count > 0 => count.checked_mul(4).ok_or_else(invalid)?,
            'O' => return Err(ArrayError::UnsupportedDtype(text.to_owned())),
            _ => return Err(invalid()),
        };
        match (kind, unit) {
            ('M' | 'm', None) => {}
            ('M' | 'm', Some(u)) => {
                let inner = u.strip_prefix('[').and_then(|u| u.strip_suffix(']'));
                if !inner
                    .is_some_and(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_alphanumeric()))
                {
                    return Err(invalid());
                }
            }
            (_, Some(_)) => return Err(invalid()),
            (_, None) => {}
        }
        Ok(DTypeInfo {
            kind,
            itemsize,
            order,
        })
    }
}

impl DType {
    /// Parses a numpy `dtype.str`. Object dtypes (`|O`) are refused: they hold pointers, not data.
    pub fn parse(text: &str) -> Result<DType, ArrayError> {
        Ok(DType {
            info: DTypeInfo::parse(text)?,
            text: text.to_owned(),
        })
    }

    pub(crate) fn info(&self) -> DTypeInfo {
        self.info
    }

    pub(crate) fn from_parts(text: &str, info: DTypeInfo) -> DType {
        DType {
            text: text.to_owned(),
            info,
        }
    }

    /// The dtype string exactly as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The numpy kind character: `b`, `i`, `u`, `f`, `c`, `U`, `S`, `V`, `M` or `m`.
    pub fn kind(&self) -> char {
        self.info.kind
    }

    /// Bytes per element.
    pub fn itemsize(&self) -> usize {
        self.info.itemsize
    }

    /// The byte order of the element bytes.
    pub fn byte_order(&self) -> ByteOrder {
        self.info.order
    }

    /// The numpy type name (`float32`, `uint8`, `bool`...) for the kinds typed arrays support.
    pub fn name(&self) -> Option<&'static str> {
        Some(match (self.info.kind, self.info.itemsize) {
            ('b', 1) => "bool",
            ('i', 1) => "int8",
            ('i', 2) => "int16",
            ('i', 4) => "int32",
            ('i', 8) => "int64",
            ('u', 1) => "uint8",
            ('u', 2) => "uint16",
            ('u', 4) => "uint32",
            ('u', 8) => "uint64",
            ('f', 2) => "float16",
            ('f', 4) => "float32",
            ('f', 8) => "float64",
            ('c', 8) => "complex64",
            ('c', 16) => "complex128",
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that can be the element of an array field: the numeric types, `bool`,
/// [`half::f16`] and the complex types of `num_complex`.
///
/// Sealed: the set of dtypes is fixed by the wire format.
///
/// ```
/// use atdata_codec::Element;
///
/// assert_eq!(<f32 as Element>::DTYPE, "<f4");
/// assert_eq!(<u8 as Element>::NAME, "uint8");
/// ```
pub trait Element:
    Copy + Default + Send + Sync + fmt::Debug + PartialEq + 'static + sealed::Sealed
{
    /// The little-endian dtype string this type is written with (`<f4`, `|u1`, `|b1`...).
    const DTYPE: &'static str;
    /// The numpy type name used in schema records (`float32`, `uint8`, `bool`...).
    const NAME: &'static str;
    /// The numpy kind character.
    const KIND: char;

    /// Appends the elements encoded by `bytes` (whose length is a multiple of the item size).
    #[doc(hidden)]
    fn extend_from_bytes(out: &mut Vec<Self>, bytes: &[u8], order: ByteOrder);

    /// Appends the little-endian bytes of `values`.
    #[doc(hidden)]
    fn extend_bytes(out: &mut Vec<u8>, values: &[Self]);

    /// Appends `count` elements encoded by `head` and then by the bytes `fill` fills in (it
    /// fills all of the memory it is given, or fails; numeric elements: straight into the
    /// vector's memory, not zeroed first); on an error the vector is as before. The default
    /// decodes them a chunk at a time.
    #[doc(hidden)]
    fn read_elements(
        out: &mut Vec<Self>,
        count: usize,
        head: &[u8],
        order: ByteOrder,
        fill: &mut dyn FnMut(&mut UninitBuf<'_>) -> Result<()>,
    ) -> Result<()> {
        let size = std::mem::size_of::<Self>();
        let at = out.len();
        let head = &head[..head.len().min(count * size)];
        Self::extend_from_bytes(out, head, order);
        let mut chunk = [std::mem::MaybeUninit::uninit(); 4096];
        let step = chunk.len() / size * size;
        let mut left = count * size - head.len();
        while left > 0 {
            let n = left.min(step);
            let mut buf = UninitBuf::new(&mut chunk[..n]);
            if let Err(e) = fill(&mut buf) {
                out.truncate(at);
                return Err(e);
            }
            Self::extend_from_bytes(out, buf.filled(), order);
            left -= n;
        }
        Ok(())
    }
}

/// Elements read from a stream are given memory in steps doubling from this many bytes, so
/// that a header claiming a huge array costs memory only as its bytes arrive.
const READ_STEP_BYTES: usize = 16 << 20;

/// The native byte order.
const NATIVE: ByteOrder = if cfg!(target_endian = "little") {
    ByteOrder::Little
} else {
    ByteOrder::Big
};

macro_rules! pod_element {
    ($ty:ty, $dtype:literal, $name:literal, $kind:literal, $swap_unit:expr) => {
        impl sealed::Sealed for $ty {}
        impl Element for $ty {
            const DTYPE: &'static str = $dtype;
            const NAME: &'static str = $name;
            const KIND: char = $kind;

            fn extend_from_bytes(out: &mut Vec<Self>, bytes: &[u8], order: ByteOrder) {
                let items = bytes.chunks_exact(std::mem::size_of::<$ty>());
                // One pass, straight into the vector's spare capacity (no zero-fill first).
                if order == NATIVE || $swap_unit == 1 {
                    out.extend(items.map(bytemuck::pod_read_unaligned::<$ty>));
                } else {
                    out.extend(items.map(|item| {
                        let mut value = bytemuck::pod_read_unaligned::<$ty>(item);
                        for unit in bytemuck::bytes_of_mut(&mut value).chunks_exact_mut($swap_unit)
                        {
                            unit.reverse();
                        }
                        value
                    }));
                }
            }

            fn extend_bytes(out: &mut Vec<u8>, values: &[Self]) {
                let src: &[u8] = bytemuck::cast_slice(values);
                if cfg!(target_endian = "little") || $swap_unit == 1 {
                    out.extend_from_slice(src);
                } else {
                    let start = out.len();
                    out.extend_from_slice(src);
                    for unit in out[start..].chunks_exact_mut($swap_unit) {
                        unit.reverse();
                    }
                }
            }

            fn read_elements(
                out: &mut Vec<Self>,
                count: usize,
                head: &[u8],
                order: ByteOrder,
                fill: &mut dyn FnMut(&mut UninitBuf<'_>) -> Result<()>,
            ) -> Result<()> {
                const SIZE: usize = std::mem::size_of::<$ty>();
                let at = out.len();
                let mut filled = 0;
                while filled < count {
                    let end = count.min((filled * 2).max(READ_STEP_BYTES / SIZE));
                    let (start, stop) = (filled * SIZE, end * SIZE);
                    let from_head = &head[head.len().min(start)..head.len().min(stop)];
                    let read = extend_pod(out, end - filled, |buf| {
                        buf.put(from_head);
                        match buf.remaining() {
                            0 => Ok(()),
                            _ => fill(buf),
                        }
                    });
                    if let Err(e) = read {
                        out.truncate(at);
                        return Err(e);
                    }
                    filled = end;
                }
                if order != NATIVE && $swap_unit > 1 {
                    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out[at..]);
                    for unit in bytes.chunks_exact_mut($swap_unit) {
                        unit.reverse();
                    }
                }
                Ok(())
            }
        }
    };
}

pod_element!(u8, "|u1", "uint8", 'u', 1);
pod_element!(i8, "|i1", "int8", 'i', 1);
pod_element!(u16, "<u2", "uint16", 'u', 2);
pod_element!(i16, "<i2", "int16", 'i', 2);
pod_element!(u32, "<u4", "uint32", 'u', 4);
pod_element!(i32, "<i4", "int32", 'i', 4);
pod_element!(u64, "<u8", "uint64", 'u', 8);
pod_element!(i64, "<i8", "int64", 'i', 8);
pod_element!(f16, "<f2", "float16", 'f', 2);
pod_element!(f32, "<f4", "float32", 'f', 4);
pod_element!(f64, "<f8", "float64", 'f', 8);
pod_element!(Complex32, "<c8", "complex64", 'c', 4);
pod_element!(Complex64, "<c16", "complex128", 'c', 8);

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: &'static str = "|b1";
    const NAME: &'static str = "bool";
    const KIND: char = 'b';

    /// Any non-zero byte is `true`, as numpy reads it.
    fn extend_from_bytes(out: &mut Vec<Self>, bytes: &[u8], _order: ByteOrder) {
        out.extend(bytes.iter().map(|&b| b != 0));
    }

    fn extend_bytes(out: &mut Vec<u8>, values: &[Self]) {
        out.extend(values.iter().map(|&b| u8::from(b)));
    }
}

/// Whether the payload dtype `dt` holds elements of type `A` (in either byte order).
pub(crate) fn matches_element<A: Element>(dt: &DTypeInfo) -> bool {
    dt.kind == A::KIND && dt.itemsize == std::mem::size_of::<A>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_numpy_form() {
        for (text, kind, size) in [
            ("|b1", 'b', 1),
            ("<i8", 'i', 8),
            ("=u4", 'u', 4),
            ("f8", 'f', 8),
            (">c16", 'c', 16),
            ("|S3", 'S', 3),
            ("|V8", 'V', 8),
            ("<M8[ns]", 'M', 8),
            ("<m8", 'm', 8),
        ] {
            let dt = DType::parse(text).unwrap();
            assert_eq!((dt.kind(), dt.itemsize(), dt.as_str()), (kind, size, text));
        }
    }

    #[test]
    fn rejects_malformed_dtypes() {
        for text in [
            "",
            "<",
            "<f",
            "<f3",
            "<i16",
            "|b2",
            "<U0",
            "<f4[ns]",
            "<M8[",
            "<M8[]",
            "<q4",
            "<U99999999999999999999",
        ] {
            assert!(
                matches!(DType::parse(text), Err(ArrayError::InvalidDtype(_))),
                "{text}"
            );
        }
        assert!(matches!(
            DType::parse("|O"),
            Err(ArrayError::InvalidDtype(_))
        ));
        assert!(matches!(
            DType::parse("|O8"),
            Err(ArrayError::UnsupportedDtype(_))
        ));
    }

    #[test]
    fn element_types_match_their_dtype() {
        assert!(matches_element::<f32>(&DTypeInfo::parse(">f4").unwrap()));
        assert!(!matches_element::<f32>(&DTypeInfo::parse("<f8").unwrap()));
        assert!(matches_element::<Complex64>(
            &DTypeInfo::parse("<c16").unwrap()
        ));
        assert!(!matches_element::<i32>(&DTypeInfo::parse("<u4").unwrap()));
    }

    #[test]
    fn big_endian_complex_swaps_each_component() {
        let bytes = [0x3f, 0x80, 0, 0, 0x40, 0, 0, 0];
        let mut out = Vec::new();
        Complex32::extend_from_bytes(&mut out, &bytes, ByteOrder::Big);
        assert_eq!(out, vec![Complex32::new(1.0, 2.0)]);
    }
}
