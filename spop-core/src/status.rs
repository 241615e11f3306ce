//! DISCONNECT status codes (SPOE.txt §3.5 "Errors & timeouts"; docs/protocol.md §11).

use core::fmt;

/// The `status-code` of a HAPROXY-DISCONNECT or AGENT-DISCONNECT frame.
///
/// Codes HAProxy does not define are kept as [`Status::Other`]. HAProxy 2.6 sends or reports a
/// code of 100 or more as 99; HAProxy 3.x hands an agent's code to the event as 256 + code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// 0: normal end of the connection.
    Normal,
    /// 1: I/O error.
    Io,
    /// 2: a timeout occurred.
    Timeout,
    /// 3: frame is too big.
    TooBig,
    /// 4: invalid frame received.
    Invalid,
    /// 5: version value not found.
    NoVersion,
    /// 6: max-frame-size value not found.
    NoFrameSize,
    /// 7: capabilities value not found.
    NoCapabilities,
    /// 8: unsupported version.
    BadVersion,
    /// 9: max-frame-size too big or too small.
    BadFrameSize,
    /// 10: fragmentation not supported.
    FragmentationNotSupported,
    /// 11: invalid interlaced frames.
    InterlacedFrames,
    /// 12: frame-id not found.
    FrameIdNotFound,
    /// 13: resource allocation error.
    ResourceAllocation,
    /// 99: an unknown error occurred.
    Unknown,
    /// Any other code.
    Other(u32),
}

impl Status {
    /// The numeric code on the wire.
    pub const fn code(self) -> u32 {
        match self {
            Status::Normal => 0,
            Status::Io => 1,
            Status::Timeout => 2,
            Status::TooBig => 3,
            Status::Invalid => 4,
            Status::NoVersion => 5,
            Status::NoFrameSize => 6,
            Status::NoCapabilities => 7,
            Status::BadVersion => 8,
            Status::BadFrameSize => 9,
            Status::FragmentationNotSupported => 10,
            Status::InterlacedFrames => 11,
            Status::FrameIdNotFound => 12,
            Status::ResourceAllocation => 13,
            Status::Unknown => 99,
            Status::Other(code) => code,
        }
    }

    /// The status for a numeric code.
    pub const fn from_code(code: u32) -> Self {
        match code {
            0 => Status::Normal,
            1 => Status::Io,
            2 => Status::Timeout,
            3 => Status::TooBig,
            4 => Status::Invalid,
            5 => Status::NoVersion,
            6 => Status::NoFrameSize,
            7 => Status::NoCapabilities,
            8 => Status::BadVersion,
            9 => Status::BadFrameSize,
            10 => Status::FragmentationNotSupported,
            11 => Status::InterlacedFrames,
            12 => Status::FrameIdNotFound,
            13 => Status::ResourceAllocation,
            99 => Status::Unknown,
            other => Status::Other(other),
        }
    }

    /// HAProxy's text for this code (the `message` HAProxy itself sends).
    pub const fn message(self) -> &'static str {
        match self {
            Status::Normal => "normal",
            Status::Io => "I/O error",
            Status::Timeout => "a timeout occurred",
            Status::TooBig => "frame is too big",
            Status::Invalid => "invalid frame received",
            Status::NoVersion => "version value not found",
            Status::NoFrameSize => "max-frame-size value not found",
            Status::NoCapabilities => "capabilities value not found",
            Status::BadVersion => "unsupported version",
            Status::BadFrameSize => "max-frame-size too big or too small",
            Status::FragmentationNotSupported => "fragmentation not supported",
            Status::InterlacedFrames => "invalid interlaced frames",
            Status::FrameIdNotFound => "frame-id not found",
            Status::ResourceAllocation => "resource allocation error",
            Status::Unknown | Status::Other(_) => "an unknown error occurred",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.message())
    }
}
