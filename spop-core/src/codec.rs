//! Bounded cursors over byte slices: every read and write checks its bounds and reports an error,
//! so no input and no buffer size can make the codec panic.

use crate::data::TypedData;
use crate::error::{DecodeError, EncodeError};
use crate::varint::{self, Varint};

/// A cursor over a length-delimited region (a frame payload, a value).
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start.
    #[inline(always)]
    pub const fn new(buf: &'a [u8]) -> Self {
        Reader { rest: buf }
    }

    /// Whether every byte has been read.
    #[inline(always)]
    pub const fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The bytes not read yet.
    #[inline(always)]
    pub const fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Reads `n` bytes.
    #[inline(always)]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or(DecodeError::Truncated)?;
        self.rest = tail;
        Ok(head)
    }

    /// Reads a fixed-size array.
    #[inline(always)]
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.rest = tail;
        Ok(*head)
    }

    /// Reads one byte.
    #[inline(always)]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&byte, tail) = self.rest.split_first().ok_or(DecodeError::Truncated)?;
        self.rest = tail;
        Ok(byte)
    }

    /// Reads a big-endian `u32`.
    #[inline(always)]
    pub fn u32_be(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    /// Reads a varint.
    #[inline(always)]
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        match self.rest.split_first() {
            Some((&first, tail)) if first < 240 => {
                self.rest = tail;
                Ok(u64::from(first))
            }
            _ => {
                let (value, rest) = varint_long(self.rest)?;
                self.rest = rest;
                Ok(value)
            }
        }
    }

    /// Reads a bare string: a varint length, then that many bytes (no type byte).
    #[inline(always)]
    pub fn string(&mut self) -> Result<&'a [u8], DecodeError> {
        match self.rest.split_first() {
            // A length under 240 is its own one-byte varint.
            Some((&first, tail)) if first < 240 => {
                match tail.split_at_checked(usize::from(first)) {
                    Some((head, rest)) => {
                        self.rest = rest;
                        Ok(head)
                    }
                    None => {
                        self.rest = tail;
                        Err(DecodeError::Truncated)
                    }
                }
            }
            _ => {
                let (len, rest) = varint_long(self.rest)?;
                self.rest = rest;
                let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
                self.take(len)
            }
        }
    }

    /// Steps over a typed value (for validation passes). It goes through [`TypedData::decode`], so
    /// a value skipped here is exactly a value that decodes: one table of type ids and one set of
    /// range checks; what is built is dropped unused and optimised away.
    #[inline(always)]
    pub fn skip_typed(&mut self) -> Result<(), DecodeError> {
        TypedData::decode(self).map(drop)
    }

    /// Reads a typed value.
    #[inline(always)]
    pub fn typed(&mut self) -> Result<TypedData<'a>, DecodeError> {
        TypedData::decode(self)
    }
}

/// A varint of two bytes or more (or none at all) and what follows it. Out of line, and taking
/// the slice by value rather than the reader, so that inlined readers stay in registers.
#[inline(never)]
fn varint_long(buf: &[u8]) -> Result<(u64, &[u8]), DecodeError> {
    let (value, len) = varint::decode(buf)?;
    Ok((value, buf.get(len..).unwrap_or_default()))
}

/// A cursor writing into a caller's buffer, never past its end.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// Writes into `buf` from its start.
    #[inline(always)]
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// A writer whose first `pos` bytes are already written (`pos <= buf.len()`).
    #[inline(always)]
    pub(crate) fn at(buf: &'a mut [u8], pos: usize) -> Self {
        debug_assert!(pos <= buf.len());
        Writer { buf, pos }
    }

    /// Bytes written so far.
    #[inline(always)]
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Forgets everything written after `pos` (used to roll back a value that did not fit).
    #[inline(always)]
    pub fn truncate(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }

    /// The whole underlying buffer.
    #[inline]
    pub fn buffer_mut(&mut self) -> &mut [u8] {
        self.buf
    }

    /// Appends bytes.
    #[inline(always)]
    pub fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(EncodeError::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall)?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    /// Appends one byte.
    #[inline(always)]
    pub fn u8(&mut self, byte: u8) -> Result<(), EncodeError> {
        let slot = self
            .buf
            .get_mut(self.pos)
            .ok_or(EncodeError::BufferTooSmall)?;
        *slot = byte;
        self.pos += 1;
        Ok(())
    }

    /// Appends a varint.
    #[inline(always)]
    pub fn varint(&mut self, value: u64) -> Result<(), EncodeError> {
        // Ids, lengths and small values are one byte: skip building the 10-byte form.
        if value < 240 {
            return self.u8(value as u8);
        }
        self.varint_long(value)
    }

    /// Two bytes or more: out of line.
    #[inline(never)]
    fn varint_long(&mut self, value: u64) -> Result<(), EncodeError> {
        self.put(Varint::new(value).as_bytes())
    }

    /// Appends a bare string: varint length, bytes.
    #[inline(always)]
    pub fn string(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.varint(bytes.len() as u64)?;
        self.put(bytes)
    }

    /// Appends a typed value.
    #[inline(always)]
    pub fn typed(&mut self, value: &TypedData<'_>) -> Result<(), EncodeError> {
        value.encode(self)
    }
}
