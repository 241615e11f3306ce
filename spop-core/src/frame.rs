//! Frame layout (SPOE.txt §3.2 "Frames"; docs/protocol.md §1):
//!
//! ```text
//! FRAME := LENGTH:u32be TYPE:u8 FLAGS:u32be STREAM-ID:varint FRAME-ID:varint PAYLOAD
//! ```
//!
//! `LENGTH` counts everything after itself and must not exceed the negotiated max-frame-size.

use core::fmt;

use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, EncodeError};

/// Size of the LENGTH prefix.
pub const LENGTH_SIZE: usize = 4;

/// The smallest LENGTH that holds a header: type, flags and two one-byte varints.
pub const MIN_FRAME_LEN: u32 = 7;

/// The smallest max-frame-size the protocol allows (SPOE.txt §3.2; §2.2 `max-frame-size`).
pub const MIN_MAX_FRAME_SIZE: u32 = 256;

/// A frame's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameType {
    /// 0: a continuation fragment of a NOTIFY (HAProxy 2.x with fragmentation only).
    Unset,
    /// 1: HAProxy opens the handshake.
    HaproxyHello,
    /// 2: HAProxy closes the connection.
    HaproxyDisconnect,
    /// 3: HAProxy sends messages.
    Notify,
    /// 101: the agent's handshake reply.
    AgentHello,
    /// 102: the agent closes the connection.
    AgentDisconnect,
    /// 103: the agent's answer to a NOTIFY.
    Ack,
    /// Any other type byte; the spec lets a peer skip such frames.
    Unknown(u8),
}

impl From<u8> for FrameType {
    fn from(byte: u8) -> Self {
        match byte {
            0 => FrameType::Unset,
            1 => FrameType::HaproxyHello,
            2 => FrameType::HaproxyDisconnect,
            3 => FrameType::Notify,
            101 => FrameType::AgentHello,
            102 => FrameType::AgentDisconnect,
            103 => FrameType::Ack,
            other => FrameType::Unknown(other),
        }
    }
}

impl From<FrameType> for u8 {
    fn from(t: FrameType) -> u8 {
        match t {
            FrameType::Unset => 0,
            FrameType::HaproxyHello => 1,
            FrameType::HaproxyDisconnect => 2,
            FrameType::Notify => 3,
            FrameType::AgentHello => 101,
            FrameType::AgentDisconnect => 102,
            FrameType::Ack => 103,
            FrameType::Unknown(other) => other,
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameType::Unset => f.write_str("UNSET"),
            FrameType::HaproxyHello => f.write_str("HAPROXY-HELLO"),
            FrameType::HaproxyDisconnect => f.write_str("HAPROXY-DISCONNECT"),
            FrameType::Notify => f.write_str("NOTIFY"),
            FrameType::AgentHello => f.write_str("AGENT-HELLO"),
            FrameType::AgentDisconnect => f.write_str("AGENT-DISCONNECT"),
            FrameType::Ack => f.write_str("ACK"),
            FrameType::Unknown(t) => write!(f, "unknown type {t}"),
        }
    }
}

/// The FLAGS field. Bits 2..31 are reserved: kept as received, sent as zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Flags(pub u32);

impl Flags {
    /// Bit 0: the last (or only) fragment of a frame.
    pub const FIN: Flags = Flags(0x0000_0001);
    /// Bit 1: abort a fragmented frame.
    pub const ABORT: Flags = Flags(0x0000_0002);
    /// No flag.
    pub const NONE: Flags = Flags(0);

    /// Whether FIN is set.
    pub const fn is_fin(self) -> bool {
        self.0 & Self::FIN.0 != 0
    }

    /// Whether ABORT is set.
    pub const fn is_abort(self) -> bool {
        self.0 & Self::ABORT.0 != 0
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// A STREAM-ID: on HAProxy 2.x its global stream counter (0 is valid), on 3.x odd numbers per
/// connection. An ACK echoes the NOTIFY's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StreamId(pub u64);

/// A FRAME-ID within a stream. An ACK echoes the NOTIFY's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameId(pub u64);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for FrameId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The fixed part of every frame after LENGTH.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameHeader {
    /// The TYPE byte.
    pub frame_type: FrameType,
    /// FIN / ABORT.
    pub flags: Flags,
    /// STREAM-ID (0 on HELLO and DISCONNECT frames).
    pub stream_id: StreamId,
    /// FRAME-ID (0 on HELLO and DISCONNECT frames).
    pub frame_id: FrameId,
}

impl FrameHeader {
    /// A header with FIN set and both ids 0, as HELLO and DISCONNECT frames carry.
    pub const fn connection(frame_type: FrameType) -> Self {
        FrameHeader {
            frame_type,
            flags: Flags::FIN,
            stream_id: StreamId(0),
            frame_id: FrameId(0),
        }
    }

    /// Decodes the header at the start of `body`; returns it and the payload after it.
    #[inline(always)]
    fn decode(body: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        // Type, flags and two one-byte ids: one bounds check for the whole header.
        match body.split_first_chunk::<7>() {
            Some((&[t, f0, f1, f2, f3, s, i], payload)) if s < 240 && i < 240 => Ok((
                FrameHeader {
                    frame_type: FrameType::from(t),
                    flags: Flags(u32::from_be_bytes([f0, f1, f2, f3])),
                    stream_id: StreamId(u64::from(s)),
                    frame_id: FrameId(u64::from(i)),
                },
                payload,
            )),
            _ => FrameHeader::decode_long(body),
        }
    }

    /// Any other header (multi-byte ids, or too short): out of line.
    #[inline(never)]
    fn decode_long(body: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let mut r = Reader::new(body);
        let header = FrameHeader {
            frame_type: FrameType::from(r.u8()?),
            flags: Flags(r.u32_be()?),
            stream_id: StreamId(r.varint()?),
            frame_id: FrameId(r.varint()?),
        };
        Ok((header, r.rest()))
    }

    #[inline]
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(u8::from(self.frame_type))?;
        w.put(&self.flags.0.to_be_bytes())?;
        w.varint(self.stream_id.0)?;
        w.varint(self.frame_id.0)
    }
}

/// The outcome of looking for a frame at the start of a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// A whole frame, and how many bytes of the stream it took (LENGTH included).
    Complete(T, usize),
    /// The stream holds only part of a frame: read more. Not an error.
    Partial,
}

/// The LENGTH prefix of the next frame, once the stream holds its 4 bytes. Check it against the
/// limit before buffering anything (docs/field-notes.md 4).
#[inline]
pub fn peek_length(stream: &[u8]) -> Option<u32> {
    stream
        .first_chunk::<LENGTH_SIZE>()
        .map(|b| u32::from_be_bytes(*b))
}

/// The largest max-frame-size this crate works with: a frame's LENGTH plus its 4 length bytes
/// must fit in `usize` on every target, 32-bit microcontrollers included. HAProxy offers
/// `tune.bufsize - 4`, far below it.
pub const MAX_FRAME_SIZE_LIMIT: u32 = if (usize::MAX as u64) < u32::MAX as u64 {
    (usize::MAX - LENGTH_SIZE) as u32
} else {
    u32::MAX - LENGTH_SIZE as u32
};

/// Cuts the next frame off the start of a byte stream: its body (everything after LENGTH) and
/// how many bytes it takes, LENGTH included. LENGTH is checked against `max_len` (capped at
/// [`MAX_FRAME_SIZE_LIMIT`]) as soon as its 4 bytes are in, before anything more of the frame is
/// awaited. The one place where a stream is split into frames: [`Frame::decode`] and the engine
/// both use it.
#[inline(always)]
pub fn split(stream: &[u8], max_len: u32) -> Result<Parsed<&[u8]>, LengthError> {
    let Some(length) = peek_length(stream) else {
        return Ok(Parsed::Partial);
    };
    check_length(length, max_len.min(MAX_FRAME_SIZE_LIMIT))?;
    // No overflow: LENGTH is at most MAX_FRAME_SIZE_LIMIT.
    let total = LENGTH_SIZE + length as usize;
    Ok(match stream.get(LENGTH_SIZE..total) {
        Some(body) => Parsed::Complete(body, total),
        None => Parsed::Partial,
    })
}

/// A frame LENGTH that cannot be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LengthError {
    /// Above the limit.
    TooBig {
        /// LENGTH.
        length: u32,
        /// The limit.
        max: u32,
    },
    /// Below [`MIN_FRAME_LEN`].
    TooShort(u32),
}

/// Checks a LENGTH against the limit in force and the header's minimum size.
#[inline]
pub const fn check_length(length: u32, max: u32) -> Result<(), LengthError> {
    if length > max {
        Err(LengthError::TooBig { length, max })
    } else if length < MIN_FRAME_LEN {
        Err(LengthError::TooShort(length))
    } else {
        Ok(())
    }
}

/// A whole frame: its header and a borrowed payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Type, flags and ids.
    pub header: FrameHeader,
    /// Everything after FRAME-ID.
    pub payload: &'a [u8],
}

/// Why a frame could not be split off a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// LENGTH out of bounds.
    Length(LengthError),
    /// The header did not decode within LENGTH.
    Header(DecodeError),
}

impl<'a> Frame<'a> {
    /// Splits the next frame off `stream`, enforcing `max_len` on LENGTH before looking further.
    #[inline(always)]
    pub fn decode(stream: &'a [u8], max_len: u32) -> Result<Parsed<Frame<'a>>, FrameError> {
        match split(stream, max_len).map_err(FrameError::Length)? {
            Parsed::Complete(body, total) => {
                let frame = Frame::decode_body(body).map_err(FrameError::Header)?;
                Ok(Parsed::Complete(frame, total))
            }
            Parsed::Partial => Ok(Parsed::Partial),
        }
    }

    /// Decodes a frame from the bytes after LENGTH.
    #[inline(always)]
    pub fn decode_body(body: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
        let (header, payload) = FrameHeader::decode(body)?;
        Ok(Frame { header, payload })
    }

    /// Encodes this frame (any header, any payload bytes) into `out`; returns the bytes written.
    pub fn encode(&self, out: &mut [u8], max_len: u32) -> Result<usize, EncodeError> {
        let mut w = FrameWriter::begin(out, &self.header)?;
        w.payload().put(self.payload)?;
        w.finish(max_len)
    }
}

/// Writes one frame: reserves LENGTH, writes the header, lets the caller append the payload, then
/// writes LENGTH last, once the size is known and checked.
#[derive(Debug)]
pub struct FrameWriter<'a> {
    w: Writer<'a>,
}

impl<'a> FrameWriter<'a> {
    /// Starts a frame at the start of `out`.
    #[inline(always)]
    pub fn begin(out: &'a mut [u8], header: &FrameHeader) -> Result<Self, EncodeError> {
        let (stream_id, frame_id) = (header.stream_id.0, header.frame_id.0);
        let pos = match out.first_chunk_mut::<{ LENGTH_SIZE + 7 }>() {
            // The usual header: LENGTH placeholder, type, flags and two one-byte ids, in one
            // bounds check.
            Some(dst) if stream_id < 240 && frame_id < 240 => {
                let [f0, f1, f2, f3] = header.flags.0.to_be_bytes();
                *dst = [
                    0,
                    0,
                    0,
                    0,
                    u8::from(header.frame_type),
                    f0,
                    f1,
                    f2,
                    f3,
                    stream_id as u8,
                    frame_id as u8,
                ];
                LENGTH_SIZE + 7
            }
            _ => FrameWriter::begin_long(out, header)?,
        };
        Ok(FrameWriter {
            w: Writer::at(out, pos),
        })
    }

    /// Any other header (multi-byte ids, or a small buffer): out of line. Returns the position
    /// after the header.
    #[inline(never)]
    fn begin_long(out: &mut [u8], header: &FrameHeader) -> Result<usize, EncodeError> {
        let mut w = Writer::new(out);
        w.put(&[0; LENGTH_SIZE])?;
        header.encode(&mut w)?;
        Ok(w.position())
    }

    /// The payload cursor.
    #[inline(always)]
    pub fn payload(&mut self) -> &mut Writer<'a> {
        &mut self.w
    }

    /// The frame's LENGTH so far.
    #[inline(always)]
    pub fn length(&self) -> usize {
        self.w.position() - LENGTH_SIZE
    }

    /// Writes LENGTH and returns the whole frame's size, or refuses a frame above `max_len`.
    #[inline(always)]
    pub fn finish(mut self, max_len: u32) -> Result<usize, EncodeError> {
        let length = self.length();
        if length > max_len as usize {
            return Err(EncodeError::FrameTooBig { max: max_len });
        }
        let prefix = (length as u32).to_be_bytes();
        let dst = self
            .w
            .buffer_mut()
            .first_chunk_mut::<LENGTH_SIZE>()
            .ok_or(EncodeError::BufferTooSmall)?;
        *dst = prefix;
        Ok(self.w.position())
    }
}
