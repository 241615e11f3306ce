//! Typed data (SPOE.txt §3.1 "Data types"; docs/protocol.md §3): a type byte
//! `(flags << 4) | type`, then the value. Strings and binaries are bytes, never checked for UTF-8:
//! HAProxy passes header bytes raw.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};

/// The type ids of typed data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum DataType {
    /// 0
    Null = 0,
    /// 1; the value is flag bit 0 of the type byte.
    Bool = 1,
    /// 2
    Int32 = 2,
    /// 3
    Uint32 = 3,
    /// 4
    Int64 = 4,
    /// 5
    Uint64 = 5,
    /// 6
    Ipv4 = 6,
    /// 7
    Ipv6 = 7,
    /// 8
    String = 8,
    /// 9
    Binary = 9,
}

/// The flags nibble of a true BOOL.
const BOOL_TRUE: u8 = 0x10;

/// One typed value, borrowing strings and binaries from the frame.
// `repr(C, u8)` puts every payload at offset 8, so an IPv6 address is two aligned words that
// share their bytes with the other variants' fields: copies of it are not split into odd pieces
// that straddle earlier stores (same size as the default layout: 24 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C, u8)]
pub enum TypedData<'a> {
    /// No value. In a SET-VAR it leaves the variable unset; in a NOTIFY it means the sample fetch
    /// failed (an absent header, an unset variable).
    Null,
    /// A boolean: true when the flags nibble of the type byte is exactly 1, as HAProxy reads it
    /// (`0x11` is true; `0x01`, and also `0x31`, are false).
    Bool(bool),
    /// A 32-bit signed integer, sent sign-extended to 64 bits: HAProxy decodes every integer type
    /// into one signed 64-bit sample (its `spoe_decode_data`; docs/protocol.md §3), so -5 sent as
    /// its 32-bit pattern would be stored as 4294967291. A wider value is refused when decoding.
    Int32(i32),
    /// A 32-bit unsigned integer (HAProxy's `max-frame-size` and `status-code`); a wider value is
    /// refused when decoding.
    Uint32(u32),
    /// A 64-bit signed integer, as the varint of its two's complement; every integer HAProxy
    /// sends in a NOTIFY is of this type.
    Int64(i64),
    /// A 64-bit unsigned integer.
    Uint64(u64),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address.
    Ipv6(Ipv6Addr),
    /// A string: bytes of any value.
    String(&'a [u8]),
    /// Binary data.
    Binary(&'a [u8]),
}

impl<'a> TypedData<'a> {
    /// This value's type id.
    pub const fn data_type(&self) -> DataType {
        match self {
            TypedData::Null => DataType::Null,
            TypedData::Bool(_) => DataType::Bool,
            TypedData::Int32(_) => DataType::Int32,
            TypedData::Uint32(_) => DataType::Uint32,
            TypedData::Int64(_) => DataType::Int64,
            TypedData::Uint64(_) => DataType::Uint64,
            TypedData::Ipv4(_) => DataType::Ipv4,
            TypedData::Ipv6(_) => DataType::Ipv6,
            TypedData::String(_) => DataType::String,
            TypedData::Binary(_) => DataType::Binary,
        }
    }

    /// The value of any of the four integer types as `u64` (negative numbers as their two's
    /// complement), the way HAProxy reads integer-valued KV items.
    pub const fn as_u64(&self) -> Option<u64> {
        match *self {
            TypedData::Int32(v) => Some(v as i64 as u64),
            TypedData::Uint32(v) => Some(v as u64),
            TypedData::Int64(v) => Some(v as u64),
            TypedData::Uint64(v) => Some(v),
            _ => None,
        }
    }

    /// The bytes of a string or binary.
    pub const fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            TypedData::String(b) | TypedData::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// Decodes one typed value.
    #[inline(always)]
    pub fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let type_byte = r.u8()?;
        Ok(match type_byte & 0x0F {
            0 => TypedData::Null,
            1 => TypedData::Bool(type_byte & 0xF0 == BOOL_TRUE),
            2 => TypedData::Int32(
                i32::try_from(r.varint()? as i64)
                    .map_err(|_| DecodeError::IntegerOutOfRange(DataType::Int32))?,
            ),
            3 => TypedData::Uint32(
                u32::try_from(r.varint()?)
                    .map_err(|_| DecodeError::IntegerOutOfRange(DataType::Uint32))?,
            ),
            4 => TypedData::Int64(r.varint()? as i64),
            5 => TypedData::Uint64(r.varint()?),
            6 => TypedData::Ipv4(Ipv4Addr::from(r.array::<4>()?)),
            // Through `u128`: the 16 bytes move as two words, not as odd-sized pieces.
            7 => TypedData::Ipv6(Ipv6Addr::from(u128::from_be_bytes(r.array::<16>()?))),
            8 => TypedData::String(r.string()?),
            9 => TypedData::Binary(r.string()?),
            reserved => return Err(DecodeError::ReservedType(reserved)),
        })
    }

    /// Encodes this value (flags are zero except BOOL's value bit).
    #[inline(always)]
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let start = w.position();
        let result = self.encode_unchecked(w);
        if result.is_err() {
            w.truncate(start);
        }
        result
    }

    #[inline(always)]
    fn encode_unchecked(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match *self {
            TypedData::Null => w.u8(DataType::Null as u8),
            TypedData::Bool(v) => w.u8(DataType::Bool as u8 | if v { BOOL_TRUE } else { 0 }),
            TypedData::Int32(v) => {
                w.u8(DataType::Int32 as u8)?;
                w.varint(i64::from(v) as u64)
            }
            TypedData::Uint32(v) => {
                w.u8(DataType::Uint32 as u8)?;
                w.varint(u64::from(v))
            }
            TypedData::Int64(v) => {
                w.u8(DataType::Int64 as u8)?;
                w.varint(v as u64)
            }
            TypedData::Uint64(v) => {
                w.u8(DataType::Uint64 as u8)?;
                w.varint(v)
            }
            TypedData::Ipv4(addr) => {
                w.u8(DataType::Ipv4 as u8)?;
                w.put(&addr.octets())
            }
            TypedData::Ipv6(addr) => {
                w.u8(DataType::Ipv6 as u8)?;
                w.put(&addr.octets())
            }
            TypedData::String(bytes) => {
                w.u8(DataType::String as u8)?;
                w.string(bytes)
            }
            TypedData::Binary(bytes) => {
                w.u8(DataType::Binary as u8)?;
                w.string(bytes)
            }
        }
    }
}

impl fmt::Display for TypedData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedData::Null => f.write_str("null"),
            TypedData::Bool(v) => write!(f, "bool({v})"),
            TypedData::Int32(v) => write!(f, "int32({v})"),
            TypedData::Uint32(v) => write!(f, "uint32({v})"),
            TypedData::Int64(v) => write!(f, "int64({v})"),
            TypedData::Uint64(v) => write!(f, "uint64({v})"),
            TypedData::Ipv4(v) => write!(f, "ipv4({v})"),
            TypedData::Ipv6(v) => write!(f, "ipv6({v})"),
            TypedData::String(v) => write!(f, "string(\"{}\")", Bytes(v)),
            TypedData::Binary(v) => write!(f, "binary({} bytes)", v.len()),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for TypedData<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            TypedData::Null => defmt::write!(f, "null"),
            TypedData::Bool(v) => defmt::write!(f, "bool({})", v),
            TypedData::Int32(v) => defmt::write!(f, "int32({})", v),
            TypedData::Uint32(v) => defmt::write!(f, "uint32({})", v),
            TypedData::Int64(v) => defmt::write!(f, "int64({})", v),
            TypedData::Uint64(v) => defmt::write!(f, "uint64({})", v),
            TypedData::Ipv4(v) => defmt::write!(f, "ipv4({})", v.octets()),
            TypedData::Ipv6(v) => defmt::write!(f, "ipv6({})", v.octets()),
            TypedData::String(v) => defmt::write!(f, "string({=[u8]:a})", v),
            TypedData::Binary(v) => defmt::write!(f, "binary({=[u8]:x})", v),
        }
    }
}

/// Shows protocol bytes (names, strings) readably: printable ASCII as is, anything else escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes<'a>(pub &'a [u8]);

impl fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                fmt::Write::write_char(f, char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Bytes<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=[u8]:a}", self.0)
    }
}
