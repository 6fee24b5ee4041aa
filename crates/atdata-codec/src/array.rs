//! The NDArray payload: atdata's compact format, and legacy `.npy` files on read.
//!
//! Compact layout: `u8 L`, `L` ASCII bytes of the numpy dtype string, `u8 ndim`, `ndim`
//! little-endian `i64` dimensions, then the elements in C order in the dtype's byte order.
//! Every length is checked against the bytes actually present before anything is allocated.

use ndarray::{Array, ArrayBase, Data, Dimension, IxDyn, ShapeBuilder};

use crate::dtype::{DType, DTypeInfo, Element, matches_element};
use crate::error::ArrayError;

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// What a payload's header says, checked against the payload's length, and where its elements
/// start.
#[derive(Debug)]
pub(crate) struct Layout<'a> {
    pub dtype_text: &'a str,
    pub dtype: DTypeInfo,
    pub shape: IxDyn,
    pub fortran_order: bool,
    pub data_start: usize,
}

/// The parsed, validated header of a payload and the element bytes it describes.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub layout: Layout<'a>,
    pub data: &'a [u8],
}

/// Parses either payload format. On success `data.len()` equals the shape's element count
/// times the dtype's item size exactly. Allocates nothing for arrays of up to 4 dimensions.
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed<'_>, ArrayError> {
    let layout = layout(bytes, bytes.len())?;
    let data = &bytes[layout.data_start..];
    Ok(Parsed { layout, data })
}

/// Parses the header at the start of `bytes`, the first bytes of a payload `len` bytes long
/// (or all of them), and checks that the elements it describes fill the rest exactly. A
/// header that runs past `bytes` is an error, as for a payload that short.
pub(crate) fn layout(bytes: &[u8], len: usize) -> Result<Layout<'_>, ArrayError> {
    if bytes.starts_with(NPY_MAGIC) {
        parse_npy(bytes, len)
    } else {
        parse_compact(bytes, len)
    }
}

fn parse_compact(bytes: &[u8], payload_len: usize) -> Result<Layout<'_>, ArrayError> {
    let len = bytes.len();
    if len < 2 {
        return Err(ArrayError::TooShort {
            len,
            need: 2,
            part: "",
        });
    }
    let dtype_len = usize::from(bytes[0]);
    let header = 2 + dtype_len;
    if len < header {
        return Err(ArrayError::TooShort {
            len,
            need: header,
            part: " for header",
        });
    }
    let dtype_bytes = &bytes[1..1 + dtype_len];
    let dtype_text = std::str::from_utf8(dtype_bytes)
        .map_err(|_| ArrayError::InvalidDtype(String::from_utf8_lossy(dtype_bytes).into_owned()))?;
    let ndim = usize::from(bytes[1 + dtype_len]);
    let data_start = header + 8 * ndim;
    if len < data_start {
        return Err(ArrayError::TooShort {
            len,
            need: data_start,
            part: " for shape",
        });
    }
    let dtype = DTypeInfo::parse(dtype_text)?;
    let dims = bytes[header..data_start]
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
    let shape = checked_shape(ndim, dims)?;
    check_length(dtype_text, dtype, shape, false, data_start, payload_len)
}

/// Converts header dimensions to a shape, refusing negative ones. No allocation up to 4 dims.
fn checked_shape(ndim: usize, dims: impl Iterator<Item = i64>) -> Result<IxDyn, ArrayError> {
    let mut shape = IxDyn::zeros(ndim);
    for (slot, d) in shape.slice_mut().iter_mut().zip(dims) {
        *slot = usize::try_from(d).map_err(|_| ArrayError::NegativeDimension(d))?;
    }
    Ok(shape)
}

/// Checks the element bytes (from `data_start` to `len`) against the shape, refusing shapes
/// whose size overflows.
fn check_length(
    dtype_text: &str,
    dtype: DTypeInfo,
    shape: IxDyn,
    fortran_order: bool,
    data_start: usize,
    len: usize,
) -> Result<Layout<'_>, ArrayError> {
    let found = len.saturating_sub(data_start);
    let expected = shape
        .slice()
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.itemsize))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| {
            ArrayError::ShapeOverflow(shape.slice().iter().map(|&d| d as i64).collect())
        })?;
    if found != expected {
        return Err(ArrayError::LengthMismatch {
            dtype: dtype_text.to_owned(),
            shape: shape.slice().to_vec(),
            expected,
            found,
        });
    }
    Ok(Layout {
        dtype_text,
        dtype,
        shape,
        fortran_order,
        data_start,
    })
}

/// Parses a `.npy` file (format versions 1 to 3) as `np.save` writes it.
fn parse_npy(bytes: &[u8], len: usize) -> Result<Layout<'_>, ArrayError> {
    let too_short = || ArrayError::InvalidNpy("file ends inside its header");
    let major = *bytes.get(6).ok_or_else(too_short)?;
    let (header_len, header_start): (usize, usize) = match major {
        1 => {
            let b = bytes.get(8..10).ok_or_else(too_short)?;
            (usize::from(u16::from_le_bytes([b[0], b[1]])), 10)
        }
        2 | 3 => {
            let b = bytes.get(8..12).ok_or_else(too_short)?;
            let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (
                usize::try_from(n).map_err(|_| ArrayError::InvalidNpy("header too long"))?,
                12,
            )
        }
        _ => return Err(ArrayError::InvalidNpy("unknown format version")),
    };
    let header_end = header_start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(too_short)?;
    let header = std::str::from_utf8(&bytes[header_start..header_end])
        .map_err(|_| ArrayError::InvalidNpy("header is not text"))?;
    let dict = npy_header::parse(header)?;
    let dtype = DTypeInfo::parse(dict.descr)?;
    let shape = checked_shape(dict.shape.len(), dict.shape.into_iter())?;
    check_length(
        dict.descr,
        dtype,
        shape,
        dict.fortran_order,
        header_end,
        len,
    )
}

/// A minimal reader for the Python dict literal in a `.npy` header:
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
mod npy_header {
    use crate::error::ArrayError;

    pub(super) struct Header<'a> {
        pub descr: &'a str,
        pub fortran_order: bool,
        pub shape: Vec<i64>,
    }

    enum Literal<'a> {
        Str(&'a str),
        Bool(bool),
        Tuple(Vec<i64>),
    }

    struct Cursor<'a>(&'a str);

    impl<'a> Cursor<'a> {
        fn skip_ws(&mut self) {
            self.0 = self.0.trim_start();
        }

        fn eat(&mut self, c: char) -> bool {
            self.skip_ws();
            match self.0.strip_prefix(c) {
                Some(rest) => {
                    self.0 = rest;
                    true
                }
                None => false,
            }
        }

        fn expect(&mut self, c: char) -> Result<(), ArrayError> {
            if self.eat(c) {
                Ok(())
            } else {
                Err(ArrayError::InvalidNpy("malformed header dictionary"))
            }
        }

        fn string(&mut self) -> Result<&'a str, ArrayError> {
            self.skip_ws();
            let quote = self.0.chars().next().filter(|&q| q == '\'' || q == '"');
            let quote = quote.ok_or(ArrayError::InvalidNpy("expected a quoted string"))?;
            let rest = &self.0[1..];
            let end = rest
                .find(quote)
                .ok_or(ArrayError::InvalidNpy("unterminated string"))?;
            self.0 = &rest[end + 1..];
            Ok(&rest[..end])
        }

        fn literal(&mut self) -> Result<Literal<'a>, ArrayError> {
            self.skip_ws();
            if let Some(rest) = self.0.strip_prefix("True") {
                self.0 = rest;
                return Ok(Literal::Bool(true));
            }
            if let Some(rest) = self.0.strip_prefix("False") {
                self.0 = rest;
                return Ok(Literal::Bool(false));
            }
            if self.eat('(') {
                let mut dims = Vec::new();
                while !self.eat(')') {
                    self.skip_ws();
                    let end = self
                        .0
                        .find(|c: char| !c.is_ascii_digit() && c != '-')
                        .unwrap_or(self.0.len());
                    let dim = self.0[..end]
                        .parse()
                        .map_err(|_| ArrayError::InvalidNpy("malformed shape"))?;
                    dims.push(dim);
                    self.0 = &self.0[end..];
                    if !self.eat(',') {
                        self.expect(')')?;
                        break;
                    }
                }
                return Ok(Literal::Tuple(dims));
            }
            if self.0.starts_with('[') {
                return Err(ArrayError::UnsupportedDtype("structured .npy array".into()));
            }
            self.string().map(Literal::Str)
        }
    }

    pub(super) fn parse(text: &str) -> Result<Header<'_>, ArrayError> {
        let mut cur = Cursor(text);
        let (mut descr, mut fortran_order, mut shape) = (None, None, None);
        cur.expect('{')?;
        while !cur.eat('}') {
            let key = cur.string()?;
            cur.expect(':')?;
            match (key, cur.literal()?) {
                ("descr", Literal::Str(s)) => descr = Some(s),
                ("fortran_order", Literal::Bool(b)) => fortran_order = Some(b),
                ("shape", Literal::Tuple(t)) => shape = Some(t),
                _ => return Err(ArrayError::InvalidNpy("unexpected key or value in header")),
            }
            if !cur.eat(',') {
                cur.expect('}')?;
                break;
            }
        }
        match (descr, fortran_order, shape) {
            (Some(descr), Some(fortran_order), Some(shape)) => Ok(Header {
                descr,
                fortran_order,
                shape,
            }),
            _ => Err(ArrayError::InvalidNpy(
                "header lacks descr, fortran_order or shape",
            )),
        }
    }
}

/// Decodes an NDArray payload (compact, or a legacy `.npy` file) into a typed array.
///
/// The payload's dtype must hold `A` (either byte order; big-endian data is converted), and
/// its number of dimensions must match `D` (any, for `IxDyn`).
///
/// ```
/// use atdata_codec::{decode_array, encode_array};
/// use ndarray::{array, Ix2};
///
/// let a = array![[1.0f32, 2.0], [3.0, 4.0]];
/// let bytes = encode_array(&a).unwrap();
/// assert_eq!(decode_array::<f32, Ix2>(&bytes).unwrap(), a);
/// ```
pub fn decode_array<A: Element, D: Dimension>(bytes: &[u8]) -> Result<Array<A, D>, ArrayError> {
    to_typed(&parse(bytes)?)
}

/// `p` holds `A`s of `D`'s rank.
pub(crate) fn check_element<A: Element, D: Dimension>(p: &Layout<'_>) -> Result<(), ArrayError> {
    if !matches_element::<A>(&p.dtype) {
        return Err(ArrayError::DtypeMismatch {
            expected: A::NAME,
            found: p.dtype_text.to_owned(),
        });
    }
    let ndim = p.shape.ndim();
    if let Some(expected) = D::NDIM
        && expected != ndim
    {
        return Err(ArrayError::DimensionMismatch {
            expected,
            found: ndim,
        });
    }
    Ok(())
}

pub(crate) fn to_typed<A: Element, D: Dimension>(
    parsed: &Parsed<'_>,
) -> Result<Array<A, D>, ArrayError> {
    let (p, data) = (&parsed.layout, parsed.data);
    check_element::<A, D>(p)?;
    let ndim = p.shape.ndim();
    let mut values = Vec::with_capacity(data.len() / p.dtype.itemsize.max(1));
    A::extend_from_bytes(&mut values, data, p.dtype.order);
    let array = if p.fortran_order {
        Array::from_shape_vec(p.shape.clone().f(), values)
            .map(|a| a.as_standard_layout().into_owned())
    } else {
        Array::from_shape_vec(p.shape.clone(), values)
    };
    // The length was checked against the shape in `parse`, and the rank against `D` above;
    // should either still fail, the error says which (not a mismatch of equal ranks).
    let array = array.map_err(|_| ArrayError::LengthMismatch {
        dtype: p.dtype_text.to_owned(),
        shape: p.shape.slice().to_vec(),
        expected: p.shape.size().saturating_mul(std::mem::size_of::<A>()),
        found: data.len(),
    })?;
    array
        .into_dimensionality::<D>()
        .map_err(|_| ArrayError::DimensionMismatch {
            expected: D::NDIM.unwrap_or(ndim),
            found: ndim,
        })
}

/// A compact header for `dtype` and `shape`, ready for the element bytes.
pub(crate) fn compact_header(dtype: &str, shape: &[usize]) -> Result<Vec<u8>, ArrayError> {
    let mut out = Vec::with_capacity(2 + dtype.len() + 8 * shape.len());
    push_header(dtype, shape, &mut out)?;
    Ok(out)
}

/// Appends the compact header for `dtype` and `shape` to `out`.
fn push_header(dtype: &str, shape: &[usize], out: &mut Vec<u8>) -> Result<(), ArrayError> {
    let dtype_len =
        u8::try_from(dtype.len()).map_err(|_| ArrayError::InvalidDtype(dtype.to_owned()))?;
    let ndim = u8::try_from(shape.len()).map_err(|_| ArrayError::TooManyDimensions(shape.len()))?;
    out.push(dtype_len);
    out.extend_from_slice(dtype.as_bytes());
    out.push(ndim);
    for &d in shape {
        out.extend_from_slice(&(d as i64).to_le_bytes());
    }
    Ok(())
}

/// The byte length of the compact payload for an array of `A` with this shape.
pub(crate) fn payload_len<A: Element>(shape: &[usize]) -> usize {
    2 + A::DTYPE.len()
        + 8 * shape.len()
        + shape.iter().product::<usize>() * std::mem::size_of::<A>()
}

/// Appends the compact payload of `array` (little-endian, C order) to `out`.
pub(crate) fn write_array<A: Element, S: Data<Elem = A>, D: Dimension>(
    array: &ArrayBase<S, D>,
    out: &mut Vec<u8>,
) -> Result<(), ArrayError> {
    push_header(A::DTYPE, array.shape(), out)?;
    match array.as_slice() {
        Some(slice) => A::extend_bytes(out, slice),
        None => {
            let values: Vec<A> = array.iter().copied().collect();
            A::extend_bytes(out, &values);
        }
    }
    Ok(())
}

/// Encodes an array in the compact NDArray format, as Python atdata's `array_to_bytes` does
/// (little-endian dtype, C order whatever the memory layout).
///
/// Fails only for arrays of more than 255 dimensions.
///
/// ```
/// use atdata_codec::encode_array;
///
/// let bytes = encode_array(&ndarray::arr1(&[1u8, 2])).unwrap();
/// assert_eq!(bytes, b"\x03|u1\x01\x02\0\0\0\0\0\0\0\x01\x02");
/// ```
pub fn encode_array<A: Element, S: Data<Elem = A>, D: Dimension>(
    array: &ArrayBase<S, D>,
) -> Result<Vec<u8>, ArrayError> {
    let mut out = Vec::with_capacity(payload_len::<A>(array.shape()));
    write_array(array, &mut out)?;
    Ok(out)
}

/// An NDArray payload kept as it was received: its own dtype, byte order and format.
///
/// This is how [`DynamicSample`](crate::DynamicSample) holds array fields, so re-packing gives
/// the same bytes. The header is validated on construction; [`to_array`](Self::to_array) gives
/// a typed array.
///
/// ```
/// use atdata_codec::{ArrayPayload, encode_array};
/// use ndarray::{arr1, Ix1};
///
/// let p = ArrayPayload::from_bytes(encode_array(&arr1(&[1.5f64, 2.5])).unwrap()).unwrap();
/// assert_eq!((p.dtype().as_str(), p.shape()), ("<f8", &[2][..]));
/// assert_eq!(p.to_array::<f64, Ix1>().unwrap(), arr1(&[1.5, 2.5]));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayPayload {
    bytes: Vec<u8>,
    dtype: DType,
    shape: Vec<usize>,
    fortran_order: bool,
    data_start: usize,
}

impl ArrayPayload {
    /// Validates a payload (compact or `.npy`) and keeps its bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<ArrayPayload, ArrayError> {
        let parsed = layout(&bytes, bytes.len())?;
        let data_start = parsed.data_start;
        let dtype = DType::from_parts(parsed.dtype_text, parsed.dtype);
        let (shape, fortran_order) = (parsed.shape.slice().to_vec(), parsed.fortran_order);
        Ok(ArrayPayload {
            bytes,
            dtype,
            shape,
            fortran_order,
            data_start,
        })
    }

    /// Encodes a typed array in the compact format.
    pub fn from_array<A: Element, S: Data<Elem = A>, D: Dimension>(
        array: &ArrayBase<S, D>,
    ) -> Result<ArrayPayload, ArrayError> {
        ArrayPayload::from_bytes(encode_array(array)?)
    }

    /// The dtype named by the payload.
    pub fn dtype(&self) -> &DType {
        &self.dtype
    }

    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Whether the elements are in Fortran order (only legacy `.npy` payloads can be).
    pub fn is_fortran_order(&self) -> bool {
        self.fortran_order
    }

    /// The element bytes, in the payload's byte order and memory order.
    pub fn data(&self) -> &[u8] {
        &self.bytes[self.data_start..]
    }

    /// The whole payload, exactly as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decodes into a typed array (converting big-endian data and Fortran order).
    pub fn to_array<A: Element, D: Dimension>(&self) -> Result<Array<A, D>, ArrayError> {
        to_typed(&Parsed {
            layout: Layout {
                dtype_text: self.dtype.as_str(),
                dtype: self.dtype.info(),
                shape: IxDyn(&self.shape),
                fortran_order: self.fortran_order,
                data_start: self.data_start,
            },
            data: self.data(),
        })
    }

    /// Appends the element bytes in C order (reordering a Fortran-order `.npy` payload).
    pub(crate) fn extend_c_order(&self, out: &mut Vec<u8>) {
        if !self.fortran_order || self.shape.len() < 2 {
            out.extend_from_slice(self.data());
            return;
        }
        // View the bytes as the array's shape plus a trailing axis of item bytes, with
        // Fortran strides over the array's axes; iterating it gives C order.
        let item = self.dtype.itemsize();
        let mut shape = self.shape.clone();
        shape.push(item);
        let mut strides = Vec::with_capacity(shape.len());
        let mut stride = item;
        for &d in &self.shape {
            strides.push(stride);
            stride *= d;
        }
        strides.push(1);
        match ndarray::ArrayView::from_shape(IxDyn(&shape).strides(IxDyn(&strides)), self.data()) {
            Ok(view) => out.extend(view.iter().copied()),
            Err(_) => out.extend_from_slice(self.data()),
        }
    }

    /// Whether the payload is a legacy `.npy` file.
    pub fn is_npy(&self) -> bool {
        self.bytes.starts_with(NPY_MAGIC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Ix0, Ix1, Ix2, IxDyn, arr2};

    fn compact(dtype: &str, dims: &[i64], data: &[u8]) -> Vec<u8> {
        let mut v = vec![dtype.len() as u8];
        v.extend_from_slice(dtype.as_bytes());
        v.push(dims.len() as u8);
        for d in dims {
            v.extend_from_slice(&d.to_le_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn huge_header_fails_before_allocating() {
        let p = compact("<f4", &[1 << 30, 1 << 30], &[0; 16]);
        assert!(matches!(
            decode_array::<f32, Ix2>(&p),
            Err(ArrayError::LengthMismatch { .. })
        ));
        let p = compact("<f8", &[i64::MAX, i64::MAX], &[]);
        assert!(matches!(
            decode_array::<f64, Ix2>(&p),
            Err(ArrayError::ShapeOverflow(_))
        ));
        let p = compact("<f8", &[1 << 60], &[]);
        assert!(matches!(
            decode_array::<f64, Ix1>(&p),
            Err(ArrayError::ShapeOverflow(_) | ArrayError::LengthMismatch { .. })
        ));
        let p = compact("<f8", &[-1], &[]);
        assert!(matches!(
            decode_array::<f64, Ix1>(&p),
            Err(ArrayError::NegativeDimension(-1))
        ));
    }

    #[test]
    fn dtype_and_rank_must_match_the_field() {
        let p = encode_array(&arr2(&[[1i32, 2]])).unwrap();
        assert!(matches!(
            decode_array::<f32, Ix2>(&p),
            Err(ArrayError::DtypeMismatch {
                expected: "float32",
                ..
            })
        ));
        assert!(matches!(
            decode_array::<i32, Ix1>(&p),
            Err(ArrayError::DimensionMismatch {
                expected: 1,
                found: 2
            })
        ));
        assert_eq!(decode_array::<i32, IxDyn>(&p).unwrap().shape(), &[1, 2]);
    }

    #[test]
    fn zero_dimensional_and_empty_arrays() {
        let a = ndarray::arr0(7i8);
        let p = encode_array(&a).unwrap();
        assert_eq!(p, b"\x03|i1\x00\x07");
        assert_eq!(decode_array::<i8, Ix0>(&p).unwrap(), a);
        let e = Array::<f32, Ix2>::zeros((0, 5));
        assert_eq!(
            decode_array::<f32, Ix2>(&encode_array(&e).unwrap()).unwrap(),
            e
        );
    }

    #[test]
    fn non_contiguous_views_are_written_in_c_order() {
        let a = arr2(&[[1u16, 2, 3], [4, 5, 6]]);
        let t = a.t();
        let decoded = decode_array::<u16, Ix2>(&encode_array(&t).unwrap()).unwrap();
        assert_eq!(decoded, t);
    }

    #[test]
    fn fortran_order_npy_is_reordered() {
        let header = "{'descr': '<i2', 'fortran_order': True, 'shape': (2, 3), }";
        let mut p = b"\x93NUMPY\x01\x00".to_vec();
        p.extend_from_slice(&(header.len() as u16).to_le_bytes());
        p.extend_from_slice(header.as_bytes());
        for v in [1i16, 4, 2, 5, 3, 6] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(
            decode_array::<i16, Ix2>(&p).unwrap(),
            arr2(&[[1, 2, 3], [4, 5, 6]])
        );
        let payload = ArrayPayload::from_bytes(p).unwrap();
        assert!(payload.is_npy() && payload.is_fortran_order());
    }

    #[test]
    fn malformed_npy_headers_are_errors() {
        for header in [
            "{'descr': '<i2', 'shape': (2,), }",
            "{'descr': '<i2', 'fortran_order': Maybe, 'shape': (2,), }",
            "{'descr': [('a', '<i2')], 'fortran_order': False, 'shape': (2,), }",
            "{'descr': '<i2', 'fortran_order': False, 'shape': (x,), }",
            "{'descr': '<i2",
        ] {
            let mut p = b"\x93NUMPY\x01\x00".to_vec();
            p.extend_from_slice(&(header.len() as u16).to_le_bytes());
            p.extend_from_slice(header.as_bytes());
            assert!(decode_array::<i16, Ix1>(&p).is_err(), "{header}");
        }
        assert!(matches!(
            decode_array::<i16, Ix1>(b"\x93NUMPY\x01\x00\xff\xff{"),
            Err(ArrayError::InvalidNpy(_))
        ));
        assert!(matches!(
            decode_array::<i16, Ix1>(b"\x93NUMPY\x09\x00"),
            Err(ArrayError::InvalidNpy(_))
        ));
    }
}
