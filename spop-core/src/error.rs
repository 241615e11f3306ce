//! What can go wrong, as enums that say so and map to the protocol's status codes.

use core::fmt;

use crate::data::DataType;
use crate::frame::FrameType;
use crate::status::Status;

/// A fault in bytes whose extent is known (a complete frame or a value inside one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DecodeError {
    /// The bytes ended inside a value.
    Truncated,
    /// A varint with an 11th byte.
    VarintTooLong,
    /// A varint whose value exceeds `u64::MAX`.
    VarintOverflow,
    /// A typed-data type id 10..=15, reserved by the spec: its length is unknowable.
    ReservedType(u8),
    /// An action type other than SET-VAR and UNSET-VAR, whose arguments cannot be skipped.
    UnknownAction(u8),
    /// An action whose NB-ARGS does not match its type.
    ActionArgs {
        /// The action type byte.
        action: u8,
        /// The NB-ARGS it carried.
        nb_args: u8,
    },
    /// A frame whose LENGTH cannot hold the fixed header (type, flags, two varints): under 7.
    FrameTooShort(u32),
    /// An INT32 or UINT32 whose varint does not fit its type: refused rather than wrapped.
    IntegerOutOfRange(DataType),
}

impl DecodeError {
    /// Every decode fault is an invalid frame.
    pub const fn status(self) -> Status {
        Status::Invalid
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("value truncated"),
            DecodeError::VarintTooLong => f.write_str("varint longer than 10 bytes"),
            DecodeError::VarintOverflow => f.write_str("varint overflows 64 bits"),
            DecodeError::ReservedType(t) => write!(f, "reserved data type {t}"),
            DecodeError::UnknownAction(t) => write!(f, "unknown action type {t}"),
            DecodeError::ActionArgs { action, nb_args } => {
                write!(f, "action type {action} with {nb_args} args")
            }
            DecodeError::FrameTooShort(len) => {
                write!(f, "frame length {len} below the 7-byte header")
            }
            DecodeError::IntegerOutOfRange(t) => write!(f, "{t:?} value out of range"),
        }
    }
}

/// Encoding did not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EncodeError {
    /// The caller's buffer is too small for the frame.
    BufferTooSmall,
    /// The frame would exceed the negotiated max-frame-size.
    FrameTooBig {
        /// The negotiated max-frame-size (LENGTH limit, the 4 length bytes excluded).
        max: u32,
    },
    /// A message with more than 255 arguments: NB-ARGS is one byte.
    TooManyArgs(usize),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall => f.write_str("output buffer too small"),
            EncodeError::TooManyArgs(n) => write!(f, "{n} arguments, NB-ARGS holds at most 255"),
            EncodeError::FrameTooBig { max } => {
                write!(f, "frame would exceed max-frame-size {max}")
            }
        }
    }
}

/// A protocol fault on a connection. The engine answers each with an AGENT-DISCONNECT carrying
/// [`Error::status`] and closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// A frame LENGTH above the negotiated max-frame-size (or the agent's cap before HELLO).
    FrameTooBig {
        /// The LENGTH field.
        length: u32,
        /// The limit in force.
        max: u32,
    },
    /// A complete frame that does not decode.
    Malformed {
        /// The frame's type, when the header decoded that far.
        frame: FrameType,
        /// What was wrong.
        cause: DecodeError,
    },
    /// A frame that is not allowed in this state: NOTIFY before HELLO, a second HELLO, a frame type
    /// only an agent sends.
    UnexpectedFrame {
        /// The frame's type.
        frame: FrameType,
        /// Whether the handshake was done.
        after_hello: bool,
    },
    /// HAPROXY-HELLO without `supported-versions`.
    MissingVersion,
    /// HAPROXY-HELLO without `max-frame-size`.
    MissingMaxFrameSize,
    /// HAPROXY-HELLO offering no 2.x version.
    UnsupportedVersion,
    /// HAProxy's max-frame-size is below the protocol minimum of 256.
    MaxFrameSizeTooSmall {
        /// What HAProxy offered.
        offered: u64,
    },
    /// A frame without FIN while fragmentation was not negotiated.
    FragmentationNotSupported {
        /// The frame's type.
        frame: FrameType,
    },
    /// A fragment that does not continue the fragmented NOTIFY in progress.
    InterlacedFrames,
    /// The fragments of one NOTIFY outgrew the reassembly buffer.
    ReassemblyOverflow {
        /// The reassembly buffer's capacity in bytes.
        capacity: usize,
    },
    /// The runtime's output buffer cannot hold even the reply's header.
    OutputTooSmall,
    /// The peer did not complete a frame or the handshake in time (reported by the runtime).
    Timeout,
}

impl Error {
    /// The AGENT-DISCONNECT status this fault is answered with.
    pub const fn status(self) -> Status {
        match self {
            Error::FrameTooBig { .. } => Status::TooBig,
            Error::Malformed { .. } | Error::UnexpectedFrame { .. } => Status::Invalid,
            Error::MissingVersion => Status::NoVersion,
            Error::MissingMaxFrameSize => Status::NoFrameSize,
            Error::UnsupportedVersion => Status::BadVersion,
            Error::MaxFrameSizeTooSmall { .. } => Status::BadFrameSize,
            Error::FragmentationNotSupported { .. } => Status::FragmentationNotSupported,
            Error::InterlacedFrames => Status::InterlacedFrames,
            Error::ReassemblyOverflow { .. } | Error::OutputTooSmall => Status::ResourceAllocation,
            Error::Timeout => Status::Timeout,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::FrameTooBig { length, max } => {
                write!(f, "frame length {length} exceeds max-frame-size {max}")?;
                match Foreign::of(*length) {
                    Some(foreign) => write!(f, " ({foreign})"),
                    None => Ok(()),
                }
            }
            Error::Malformed { frame, cause } => write!(f, "malformed {frame} frame: {cause}"),
            Error::UnexpectedFrame {
                frame,
                after_hello: false,
            } => {
                write!(f, "{frame} frame before HAPROXY-HELLO")
            }
            Error::UnexpectedFrame {
                frame,
                after_hello: true,
            } => {
                write!(f, "unexpected {frame} frame after the handshake")
            }
            Error::MissingVersion => f.write_str("HAPROXY-HELLO without supported-versions"),
            Error::MissingMaxFrameSize => f.write_str("HAPROXY-HELLO without max-frame-size"),
            Error::UnsupportedVersion => f.write_str("no supported version offered (need 2.x)"),
            Error::MaxFrameSizeTooSmall { offered } => {
                write!(f, "max-frame-size {offered} below the minimum 256")
            }
            Error::FragmentationNotSupported { frame } => {
                write!(
                    f,
                    "{frame} frame without FIN but fragmentation was not negotiated"
                )
            }
            Error::InterlacedFrames => f.write_str("fragment does not continue the pending NOTIFY"),
            Error::ReassemblyOverflow { capacity } => {
                write!(
                    f,
                    "fragmented NOTIFY larger than the {capacity}-byte reassembly buffer"
                )
            }
            Error::OutputTooSmall => f.write_str("output buffer too small for a reply"),
            Error::Timeout => f.write_str("timed out waiting for the peer"),
        }
    }
}

/// A client of another protocol on the agent's port, recognised by the 4 bytes read as a frame
/// LENGTH: the length is those bytes, so they are recovered from it at display and need no room
/// in [`Error`]. No SPOE peer sends such a length (printable text starts at 0x20000000, 512 MiB),
/// and saying what the bytes look like spares the operator from raising `max-frame-size` for a
/// health check or a browser pointed at the wrong port. The status stays "frame is too big".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Foreign {
    /// An HTTP/1 request line ([`HTTP_STARTS`]) or the HTTP/2 preface ("PRI ").
    Http([u8; 4]),
    /// A TLS record of type handshake (0x16), version 3.x: a ClientHello.
    Tls,
    /// Other text (SSH's "SSH-", SMTP, a line typed into telnet...).
    Text([u8; 4]),
}

/// The first 4 bytes of every HTTP/1 method, and of the HTTP/2 connection preface (`PRI `).
const HTTP_STARTS: [[u8; 4]; 10] = [
    *b"GET ", *b"HEAD", *b"POST", *b"PUT ", *b"DELE", *b"OPTI", *b"PATC", *b"CONN", *b"TRAC",
    *b"PRI ",
];

impl Foreign {
    /// What the 4 bytes of `length` look like, if they look like another protocol.
    fn of(length: u32) -> Option<Foreign> {
        let bytes = length.to_be_bytes();
        let [first, second, ..] = bytes;
        if first == 0x16 && second == 0x03 {
            Some(Foreign::Tls)
        } else if HTTP_STARTS.contains(&bytes) {
            Some(Foreign::Http(bytes))
        } else if bytes
            .iter()
            .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        {
            Some(Foreign::Text(bytes))
        } else {
            None
        }
    }
}

impl fmt::Display for Foreign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // ASCII is UTF-8: `from_utf8` cannot fail here, and would only lose the quote if it did.
            Foreign::Http(bytes) => {
                let text = core::str::from_utf8(bytes).unwrap_or_default();
                write!(
                    f,
                    "its first bytes read {text:?}: an HTTP client, not HAProxy's SPOE; \
                     a health check needs option spop-check"
                )
            }
            Foreign::Tls => f.write_str(
                "its first bytes are a TLS handshake: a TLS client, not HAProxy's SPOE, \
                 which the agent speaks in clear",
            ),
            Foreign::Text(bytes) => {
                let text = core::str::from_utf8(bytes).unwrap_or_default();
                write!(f, "its first bytes read {text:?}: text, not HAProxy's SPOE")
            }
        }
    }
}
