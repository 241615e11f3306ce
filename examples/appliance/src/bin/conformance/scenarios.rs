//! The conversations the firmware replays: HAProxy's captured frames in the order a connection
//! carries them, a few of them damaged on purpose, and what the agent must answer.

use spop_appliance::vectors::*;
use spop_core::{Close, DecodeError, Error, FrameType, Status};

use crate::expect::Reply;

/// One connection: what HAProxy sends, what the agent must send back, and how it must end
/// (`None`: HAProxy closes the connection after its last frame and the engine waits for more).
#[derive(Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub wire: &'static [&'static [u8]],
    pub replies: &'static [Reply],
    pub close: Option<Close>,
}

/// The score of 127.0.0.1: 1·127 + 2·0 + 3·0 + 4·1 = 131, and 131 mod 101 = 30.
const SCORE_V4: u8 = 30;
/// The score of ::1: fifteen zero octets, then 16·1 = 16.
const SCORE_V6: u8 = 16;

/// The AGENT-HELLO of every connection: exactly what HAProxy 2.6 accepted in the captures.
const HELLO: Reply = Reply::Captured(AGENT_HELLO_FRAG);

const fn ack(stream: u8, frame: u8, score: u8) -> Reply {
    Reply::Ack {
        stream,
        frame,
        score,
    }
}

const fn disconnect(status: u8, message: &'static str) -> Reply {
    Reply::Disconnect { status, message }
}

/// `frame` cut to its first `N` bytes with LENGTH lowered to match (a value cut short).
const fn cut<const N: usize>(frame: &[u8]) -> [u8; N] {
    assert!(N >= 4 && N < frame.len());
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = frame[i];
        i += 1;
    }
    let length = ((N - 4) as u32).to_be_bytes();
    out[0] = length[0];
    out[1] = length[1];
    out[2] = length[2];
    out[3] = length[3];
    out
}

/// `frame` with its byte at `at` changed from `from` to `to`; a wrong offset stops the build.
const fn patched<const N: usize>(frame: &[u8], at: usize, from: u8, to: u8) -> [u8; N] {
    assert!(N == frame.len() && frame[at] == from);
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = frame[i];
        i += 1;
    }
    out[at] = to;
    out
}

/// 2.6's IPv4 NOTIFY without the last octet of the address: LENGTH 29 instead of 30.
static TRUNCATED_IPV4: [u8; 33] = cut(NOTIFY_IPV4_26);
/// 2.6's IPv6 NOTIFY with the argument's type byte (offset 29: 7, IPV6) made 10, a type id the
/// spec reserves and whose length nobody knows.
static RESERVED_TYPE: [u8; 46] = patched(NOTIFY_IPV6_26, 29, 0x07, 0x0a);
/// 2.6's HELLO offering "3.0" (offset 32 is the '2' of "2.0").
static HELLO_VERSION_3: [u8; 133] = patched(HAPROXY_HELLO_26, 32, b'2', b'3');
/// A LENGTH of 2: too short for any frame header (type byte 0, so the fault reads the same
/// whether or not the type byte has arrived when the LENGTH is judged).
static TOO_SHORT: [u8; 6] = [0, 0, 0, 2, 0, 0];

pub static SCENARIOS: [Scenario; 11] = [
    Scenario {
        name: "2.6: pipelined NOTIFYs (IPv4, IPv6), a 3-fragment NOTIFY, HAPROXY-DISCONNECT",
        wire: &[
            HAPROXY_HELLO_26,
            NOTIFY_IPV4_26,
            NOTIFY_IPV6_26,
            NOTIFY_IPV4_26,
            NOTIFY_IPV6_26,
            NOTIFY_FRAG_1,
            NOTIFY_FRAG_2,
            NOTIFY_FRAG_3,
            NOTIFY_IPV4_26,
            NOTIFY_IPV6_26,
            NOTIFY_IPV4_26,
            NOTIFY_IPV6_26,
            HAPROXY_DISCONNECT_NORMAL,
        ],
        replies: &[
            HELLO,
            ack(0, 1, SCORE_V4),
            ack(2, 1, SCORE_V6),
            ack(0, 1, SCORE_V4),
            ack(2, 1, SCORE_V6),
            // The reassembled `all-types` (first address 127.0.0.1) and `second-msg` (no
            // address, no action): one SET-VAR.
            ack(0, 2, SCORE_V4),
            ack(0, 1, SCORE_V4),
            ack(2, 1, SCORE_V6),
            ack(0, 1, SCORE_V4),
            ack(2, 1, SCORE_V6),
            disconnect(0, "normal"),
        ],
        close: Some(Close::PeerDisconnect(Status::Normal)),
    },
    Scenario {
        name: "3.1: NOTIFYs (IPv4, IPv6), then HAProxy closes",
        wire: &[HAPROXY_HELLO_31, NOTIFY_IPV4_31, NOTIFY_IPV6_31],
        replies: &[HELLO, ack(1, 1, SCORE_V4), ack(3, 1, SCORE_V6)],
        close: None,
    },
    Scenario {
        name: "3.4: NOTIFY, then HAPROXY-DISCONNECT 8",
        wire: &[
            HAPROXY_HELLO_34,
            NOTIFY_IPV4_34,
            HAPROXY_DISCONNECT_BAD_VERSION_34,
        ],
        replies: &[HELLO, ack(1, 1, SCORE_V4), disconnect(0, "normal")],
        close: Some(Close::PeerDisconnect(Status::BadVersion)),
    },
    Scenario {
        name: "health check: AGENT-HELLO, then close (what follows is ignored)",
        wire: &[HAPROXY_HELLO_HEALTHCHECK, NOTIFY_IPV4_26],
        replies: &[HELLO],
        close: Some(Close::Healthcheck),
    },
    Scenario {
        name: "malformed: LENGTH 498 above max-frame-size 256",
        wire: &[HAPROXY_HELLO_26, NOTIFY_IPV4_26, NOTIFY_TYPES_IPV4_26],
        replies: &[
            HELLO,
            ack(0, 1, SCORE_V4),
            disconnect(3, "frame length 498 exceeds max-frame-size 256"),
        ],
        close: Some(Close::Error(Error::FrameTooBig {
            length: 498,
            max: 256,
        })),
    },
    Scenario {
        name: "malformed: NOTIFY whose IPv4 address is cut short",
        wire: &[
            HAPROXY_HELLO_26,
            NOTIFY_IPV6_26,
            &TRUNCATED_IPV4,
            NOTIFY_IPV4_26,
        ],
        replies: &[
            HELLO,
            ack(2, 1, SCORE_V6),
            disconnect(4, "malformed NOTIFY frame: value truncated"),
        ],
        close: Some(Close::Error(Error::Malformed {
            frame: FrameType::Notify,
            cause: DecodeError::Truncated,
        })),
    },
    Scenario {
        name: "malformed: NOTIFY with reserved data type 10",
        wire: &[HAPROXY_HELLO_26, NOTIFY_IPV4_26, &RESERVED_TYPE],
        replies: &[
            HELLO,
            ack(0, 1, SCORE_V4),
            disconnect(4, "malformed NOTIFY frame: reserved data type 10"),
        ],
        close: Some(Close::Error(Error::Malformed {
            frame: FrameType::Notify,
            cause: DecodeError::ReservedType(10),
        })),
    },
    Scenario {
        name: "malformed: LENGTH 2, shorter than a frame header",
        wire: &[HAPROXY_HELLO_26, &TOO_SHORT, NOTIFY_IPV4_26],
        replies: &[
            HELLO,
            disconnect(
                4,
                "malformed UNSET frame: frame length 2 below the 7-byte header",
            ),
        ],
        close: Some(Close::Error(Error::Malformed {
            frame: FrameType::Unset,
            cause: DecodeError::FrameTooShort(2),
        })),
    },
    Scenario {
        name: "malformed: NOTIFY before HAPROXY-HELLO",
        wire: &[NOTIFY_IPV4_26, HAPROXY_HELLO_26],
        replies: &[disconnect(4, "NOTIFY frame before HAPROXY-HELLO")],
        close: Some(Close::Error(Error::UnexpectedFrame {
            frame: FrameType::Notify,
            after_hello: false,
        })),
    },
    Scenario {
        name: "malformed: HAPROXY-HELLO offering only version 3.0",
        wire: &[&HELLO_VERSION_3, NOTIFY_IPV4_26],
        replies: &[disconnect(8, "no supported version offered (need 2.x)")],
        close: Some(Close::Error(Error::UnsupportedVersion)),
    },
    Scenario {
        name: "malformed: a new NOTIFY inside a fragmented one",
        wire: &[
            HAPROXY_HELLO_26,
            NOTIFY_IPV6_26,
            NOTIFY_FRAG_1,
            NOTIFY_IPV4_26,
            NOTIFY_FRAG_2,
        ],
        replies: &[
            HELLO,
            ack(2, 1, SCORE_V6),
            disconnect(11, "fragment does not continue the pending NOTIFY"),
        ],
        close: Some(Close::Error(Error::InterlacedFrames)),
    },
];

/// How the network stack cuts the byte stream, with a name for the report.
pub static PATTERNS: [(&str, &[usize]); 6] = [
    ("1-byte segments", &[1]),
    (
        "odd segments 3,1,4,1,5,9,2,6,5,3,5",
        &[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5],
    ),
    ("2,61,7-byte segments", &[2, 61, 7]),
    ("128-byte segments (a pbuf)", &[128]),
    ("536-byte segments (default MSS)", &[536]),
    ("1460-byte segments (Ethernet MSS)", &[1460]),
];

/// Output buffer sizes: one reply at a time (96: a HELLO or DISCONNECT just fits), two ACKs
/// (300: the engine keeps 256 bytes of room before each frame), and the agent's whole 1 KiB.
pub static OUTPUT_SIZES: [usize; 3] = [96, 300, spop_appliance::agent::OUTPUT_SIZE];
