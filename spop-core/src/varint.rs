//! HAProxy's variable-length integer (SPOE.txt §3.1, "Data types"; docs/protocol.md §2).
//!
//! An unsigned 64-bit value in little-endian groups: 4 bits in the first byte, then 7 bits per byte,
//! each group offset so that every value has exactly one encoding. A first byte `< 240` is the whole
//! value; otherwise later bytes `>= 128` mean "more follows". The longest encoding (2^64 - 1) is
//! [`MAX_LEN`] bytes. HAProxy's own decoder does not bound the length or detect overflow; this one
//! rejects an 11th byte and any sum above `u64::MAX`.

use crate::error::DecodeError;

/// The longest encoding of a `u64`.
pub const MAX_LEN: usize = 10;

/// An encoded varint: up to [`MAX_LEN`] bytes on the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Varint {
    bytes: [u8; MAX_LEN],
    len: u8,
}

impl Varint {
    /// Encodes `value`.
    pub fn new(mut value: u64) -> Self {
        let mut bytes = [0u8; MAX_LEN];
        let mut len = 0u8;
        for slot in bytes.iter_mut() {
            len += 1;
            if len == 1 {
                if value < 240 {
                    *slot = value as u8;
                    break;
                }
                *slot = (value as u8) | 0xF0;
                value = (value - 240) >> 4;
            } else if value >= 128 {
                *slot = (value as u8) | 0x80;
                value = (value - 128) >> 7;
            } else {
                *slot = value as u8;
                break;
            }
        }
        Varint { bytes, len }
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// How many bytes [`Varint::new`] writes for `value`.
pub fn encoded_len(value: u64) -> usize {
    Varint::new(value).as_bytes().len()
}

/// Decodes a varint at the start of `buf`, returning the value and the number of bytes it used.
///
/// `Truncated` means `buf` ended inside the varint; within a frame whose length is known that is an
/// invalid frame, not a reason to wait for more bytes.
#[inline]
pub fn decode(buf: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut bytes = buf.iter();
    let first = *bytes.next().ok_or(DecodeError::Truncated)?;
    if first < 240 {
        return Ok((u64::from(first), 1));
    }
    // Summed in 128 bits: the tenth byte shifts by 60, so a wide accumulator sees every overflow.
    let mut value = u128::from(first);
    let mut shift = 4u32;
    for (index, &byte) in bytes.enumerate() {
        let len = index + 2;
        // A tenth byte that says "more follows" announces an 11th: no u64 is that long. Checked
        // before the sum, which would otherwise report every such varint as an overflow.
        if len >= MAX_LEN && byte >= 128 {
            return Err(DecodeError::VarintTooLong);
        }
        value += u128::from(byte) << shift;
        if value > u128::from(u64::MAX) {
            return Err(DecodeError::VarintOverflow);
        }
        if byte < 128 {
            return Ok((value as u64, len));
        }
        shift += 7;
    }
    Err(DecodeError::Truncated)
}
