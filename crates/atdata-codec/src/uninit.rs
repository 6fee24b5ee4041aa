//! Reading into memory that is not initialised yet, so that an array's elements are copied
//! once, by the kernel, into their place in a batch, with no zeroing pass before.
//!
//! This is the workspace's one module with `unsafe` code (the workspace denies it; this module
//! allows it). Its soundness rests on one invariant of [`UninitBuf`]: `buf[..filled]` is
//! initialised. Every method that raises `filled` initialises those bytes first: `put` writes
//! them; `read_exact_from` zeroes them before the reader sees them; `read_with` counts only
//! the bytes a `&mut [u8]` handed back by its closure covers, checked to begin where the
//! unfilled memory does and to lie within it (safe code can only make such a reference to
//! initialised bytes). Nothing lowers `filled` or hands out the unfilled memory but `read_with`,
//! as `&mut [MaybeUninit<u8>]`, through which nothing can be read uninitialised.
#![allow(unsafe_code)]

use std::io::{self, Read};
use std::mem::MaybeUninit;

use crate::error::{Error, Result};

/// Memory not yet initialised, filled from its start by a [`FillUninit`] reader: what a
/// streamed array's elements are read into, in their place in the batch.
///
/// ```
/// use std::mem::MaybeUninit;
/// use atdata_codec::{FillUninit, UninitBuf};
///
/// let mut memory = [MaybeUninit::uninit(); 8];
/// let mut buf = UninitBuf::new(&mut memory);
/// buf.put(b"abc");
/// (&b"defgh"[..]).fill_uninit(&mut buf)?;
/// assert_eq!(buf.filled(), b"abcdefgh");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UninitBuf<'a> {
    buf: &'a mut [MaybeUninit<u8>],
    /// `buf[..filled]` is initialised.
    filled: usize,
}

impl<'a> UninitBuf<'a> {
    /// `buf`, nothing filled yet.
    pub fn new(buf: &'a mut [MaybeUninit<u8>]) -> UninitBuf<'a> {
        UninitBuf { buf, filled: 0 }
    }

    /// Bytes still to fill.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.filled
    }

    /// The bytes filled so far.
    pub fn filled(&self) -> &[u8] {
        let filled = &self.buf[..self.filled];
        // SAFETY: `buf[..filled]` is initialised (the type's invariant), and `MaybeUninit<u8>`
        // has `u8`'s size and alignment.
        unsafe { &*(filled as *const [MaybeUninit<u8>] as *const [u8]) }
    }

    /// Copies as many of `bytes` as fit; how many.
    pub fn put(&mut self, bytes: &[u8]) -> usize {
        let rest = &mut self.buf[self.filled..];
        let n = rest.len().min(bytes.len());
        rest[..n].write_copy_of_slice(&bytes[..n]);
        self.filled += n;
        n
    }

    /// Lets `read` fill the start of the memory not filled yet (a system call that reads into
    /// uninitialised memory, say): it returns the bytes it initialised, which must begin where
    /// that memory does. How many.
    pub fn read_with(
        &mut self,
        read: impl FnOnce(&mut [MaybeUninit<u8>]) -> io::Result<&mut [u8]>,
    ) -> io::Result<usize> {
        let rest = &mut self.buf[self.filled..];
        let (start, room) = (rest.as_ptr() as usize, rest.len());
        let read = read(rest)?;
        if read.as_ptr() as usize != start || read.len() > room {
            return Err(io::Error::other(
                "a read filled memory other than it was given",
            ));
        }
        self.filled += read.len();
        Ok(read.len())
    }

    /// Fills the rest from `reader`, which needs initialised memory: zeroes it, then reads.
    pub fn read_exact_from<R: Read + ?Sized>(&mut self, reader: &mut R) -> io::Result<()> {
        let rest = &mut self.buf[self.filled..];
        rest.fill(MaybeUninit::new(0));
        // SAFETY: every byte of `rest` was just written, and `MaybeUninit<u8>` has `u8`'s size
        // and alignment.
        let rest = unsafe { &mut *(rest as *mut [MaybeUninit<u8>] as *mut [u8]) };
        reader.read_exact(rest)?;
        self.filled = self.buf.len();
        Ok(())
    }
}

/// A reader that can read into memory not yet initialised ([`UninitBuf`]): where a payload
/// streams from ([`Decoder::streaming`](crate::__private::Decoder::streaming)). The default
/// zeroes the memory, then reads into it; readers of files read into it directly.
///
/// ```
/// use std::mem::MaybeUninit;
/// use atdata_codec::{FillUninit, UninitBuf};
///
/// let mut memory = [MaybeUninit::uninit(); 4];
/// let mut buf = UninitBuf::new(&mut memory);
/// assert!((&b"ab"[..]).fill_uninit(&mut buf).is_err(), "the stream ends first");
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait FillUninit: Read {
    /// Fills the rest of `buf`: an error (`UnexpectedEof` when the stream ends first) leaves
    /// what was filled unspecified.
    fn fill_uninit(&mut self, buf: &mut UninitBuf<'_>) -> io::Result<()> {
        buf.read_exact_from(self)
    }
}

impl FillUninit for &[u8] {}

impl<R: FillUninit + ?Sized> FillUninit for Box<R> {
    fn fill_uninit(&mut self, buf: &mut UninitBuf<'_>) -> io::Result<()> {
        (**self).fill_uninit(buf)
    }
}

impl<R: FillUninit + ?Sized> FillUninit for &mut R {
    fn fill_uninit(&mut self, buf: &mut UninitBuf<'_>) -> io::Result<()> {
        (**self).fill_uninit(buf)
    }
}

impl FillUninit for io::Empty {}

/// Appends `count` elements to `out`, their bytes filled by `fill` straight into its spare
/// capacity (no zeroing pass): all of them, or an error with `out` as before.
pub(crate) fn extend_pod<T: bytemuck::Pod>(
    out: &mut Vec<T>,
    count: usize,
    fill: impl FnOnce(&mut UninitBuf<'_>) -> Result<()>,
) -> Result<()> {
    let Some(bytes) = count.checked_mul(size_of::<T>()) else {
        return Err(Error::Msgpack("array larger than memory"));
    };
    out.reserve(count);
    let spare = &mut out.spare_capacity_mut()[..count];
    // SAFETY: `spare` is `count` elements of `out`'s allocation, borrowed exclusively; as bytes
    // of `MaybeUninit<u8>` (alignment 1, any content valid) they are exactly `bytes` long.
    let raw = unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast(), bytes) };
    let mut buf = UninitBuf::new(raw);
    fill(&mut buf)?;
    if buf.remaining() > 0 {
        return Err(Error::Read(io::ErrorKind::UnexpectedEof.into()));
    }
    // SAFETY: `reserve` made room for `count` more elements, and all their bytes are filled, so
    // initialised (`UninitBuf`'s invariant); any bytes are a valid `T` (`Pod`).
    unsafe { out.set_len(out.len() + count) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_filled_bytes_count() {
        let mut memory = [MaybeUninit::uninit(); 6];
        let mut buf = UninitBuf::new(&mut memory);
        assert_eq!(buf.put(b"ab"), 2);
        assert_eq!(
            buf.read_with(|rest| Ok(rest[..1].write_copy_of_slice(b"c")))
                .unwrap(),
            1
        );
        // Bytes written past the start, or a slice of other memory, are not counted.
        let past = buf.read_with(|rest| Ok(rest[1..2].write_copy_of_slice(b"x")));
        let elsewhere = buf.read_with(|_| Ok(&mut []));
        assert!(past.is_err() && elsewhere.is_err());
        assert_eq!(buf.filled(), b"abc");
        assert_eq!(buf.put(b"defgh"), 3);
        assert_eq!((buf.filled(), buf.remaining()), (&b"abcdef"[..], 0));
    }

    #[test]
    fn elements_fill_in_place_or_not_at_all() {
        let mut out = vec![1.0f32];
        extend_pod(&mut out, 2, |buf| {
            buf.put(&2.5f32.to_ne_bytes());
            (&3.5f32.to_ne_bytes()[..])
                .fill_uninit(buf)
                .map_err(Error::Read)
        })
        .unwrap();
        assert_eq!(out, [1.0, 2.5, 3.5]);
        let short = extend_pod(&mut out, 2, |buf| {
            buf.put(&[0; 5]);
            Ok(())
        });
        assert!(short.is_err());
        assert_eq!(out, [1.0, 2.5, 3.5], "as before");
    }
}
