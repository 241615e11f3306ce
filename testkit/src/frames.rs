//! The frames HAProxy sends, appended to a caller's buffer, and the check of the ACK an
//! IP-reputation agent answers `check-client-ip` with.
//!
//! Everything is built with `spop-core`'s encoders, so a test or a load run sends exactly what
//! the codec under test would send as HAProxy. Nothing here does I/O or panics: a failure to
//! encode is returned, an ACK that is not right is described in an [`AckFault`].

use std::fmt;

use spop_core::{
    Ack, Action, Arg, Disconnect, EncodeError, Flags, Frame, FrameHeader, FrameId, FrameType,
    FrameWriter, HaproxyHello, NotifyWriter, Scope, Status, StreamId, TypedData,
};

/// The max-frame-size HAProxy offers by default (`tune.bufsize` 16384 minus the LENGTH field).
pub const MAX_FRAME_SIZE: u32 = 16380;

/// The message HAProxy's `spoa-example` configuration sends, with the client address.
pub const CHECK_CLIENT_IP: &[u8] = b"check-client-ip";

/// The session variable the answer to [`CHECK_CLIENT_IP`] sets.
pub const IP_SCORE: &[u8] = b"ip_score";

/// The largest frame [`append`] makes room for: far above any frame a test or a load run sends,
/// small enough that a runaway encoder fails instead of eating memory.
const MAX_ROOM: usize = 16 << 20;

/// Appends what `encode` writes to `out` and returns its length. `encode` is given a zeroed
/// slice at the end of `out` and retried with more room while it answers
/// [`EncodeError::BufferTooSmall`], so callers need not know a frame's size in advance; on an
/// error `out` is left as it was.
pub fn append(
    out: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<usize, EncodeError> {
    let start = out.len();
    // Room for any frame HAProxy usually sends (a NOTIFY or an ACK is under 64 bytes), so the
    // common case zeroes little and runs once.
    let mut room = 128;
    loop {
        out.resize(start + room, 0);
        match encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(n);
            }
            Err(EncodeError::BufferTooSmall) if room < MAX_ROOM => room = (room * 16).min(MAX_ROOM),
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
}

/// Which HAProxy a HAPROXY-HELLO imitates. The agent must answer both the same way; they differ
/// in what HAProxy announces (2.6 still offers `async`, 3.x no longer does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Haproxy {
    /// HAProxy 2.6: capabilities `pipelining,async`, an engine-id per thread.
    V2_6,
    /// HAProxy 3.x: capabilities `pipelining`, one engine-id per agent.
    V3,
}

/// A HAPROXY-HELLO as HAProxy sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The HAProxy imitated.
    pub haproxy: Haproxy,
    /// The max-frame-size offered.
    pub max_frame_size: u32,
    /// An `option spop-check` connection: empty capabilities, no engine-id, `healthcheck`; the
    /// agent answers AGENT-HELLO and closes.
    pub healthcheck: bool,
}

impl Hello {
    /// HAProxy 2.6's HELLO offering `max_frame_size`.
    pub const fn v2_6(max_frame_size: u32) -> Self {
        Hello {
            haproxy: Haproxy::V2_6,
            max_frame_size,
            healthcheck: false,
        }
    }

    /// HAProxy 3.x's HELLO offering `max_frame_size`.
    pub const fn v3(max_frame_size: u32) -> Self {
        Hello {
            haproxy: Haproxy::V3,
            max_frame_size,
            healthcheck: false,
        }
    }

    /// The HELLO of an `option spop-check` health check (the same on 2.6 and 3.x).
    pub const fn healthcheck() -> Self {
        Hello {
            haproxy: Haproxy::V3,
            max_frame_size: MAX_FRAME_SIZE,
            healthcheck: true,
        }
    }

    /// Appends the frame to `out`.
    pub fn push(&self, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        let (capabilities, engine_id): (&[u8], &[u8]) = match self.haproxy {
            Haproxy::V2_6 => (b"pipelining,async", b"00c6af8f-2e5d-40b6-9651-21edb52e7009"),
            Haproxy::V3 => (b"pipelining", b"5b3c1a2e-7d44-4c1e-9a57-6f0e0c1b2d3e"),
        };
        let hello = if self.healthcheck {
            HaproxyHello {
                capabilities: Some(b""),
                engine_id: None,
                healthcheck: true,
                ..self.base()
            }
        } else {
            HaproxyHello {
                capabilities: Some(capabilities),
                engine_id: Some(engine_id),
                ..self.base()
            }
        };
        append(out, |buf| hello.encode(buf))
    }

    fn base(&self) -> HaproxyHello<'static> {
        HaproxyHello {
            supported_versions: Some(b"2.0"),
            max_frame_size: Some(self.max_frame_size.into()),
            ..HaproxyHello::default()
        }
    }
}

/// Appends a HAPROXY-HELLO with exactly these key-value items, in this order: the handshake
/// faults (a missing version, an odd max-frame-size type) that [`Hello`] never sends.
pub fn push_hello_items(
    out: &mut Vec<u8>,
    items: &[(&[u8], TypedData<'_>)],
) -> Result<usize, EncodeError> {
    append(out, |buf| {
        let mut f = FrameWriter::begin(buf, &FrameHeader::connection(FrameType::HaproxyHello))?;
        for (key, value) in items {
            spop_core::kv::put(f.payload(), key, value)?;
        }
        f.finish(u32::MAX)
    })
}

/// Appends a NOTIFY of (`stream`, `frame`) with one message `name` and its arguments.
pub fn push_notify(
    out: &mut Vec<u8>,
    stream: u64,
    frame: u64,
    name: &[u8],
    args: &[Arg<'_>],
) -> Result<usize, EncodeError> {
    append(out, |buf| {
        let mut w = NotifyWriter::new(buf, StreamId(stream), FrameId(frame), u32::MAX)?;
        w.message(name, args)?;
        Ok(w.finish())
    })
}

/// Appends the NOTIFY HAProxy's `spoa-example` configuration sends: `check-client-ip` with the
/// client address as its one unnamed argument (`args src`).
pub fn push_check_client_ip(
    out: &mut Vec<u8>,
    stream: u64,
    frame: u64,
    ip: TypedData<'_>,
) -> Result<usize, EncodeError> {
    let args = [Arg {
        name: b"",
        value: ip,
    }];
    push_notify(out, stream, frame, CHECK_CLIENT_IP, &args)
}

/// Appends HAPROXY-DISCONNECT with `status` and `message`.
pub fn push_haproxy_disconnect(
    out: &mut Vec<u8>,
    status: Status,
    message: &[u8],
) -> Result<usize, EncodeError> {
    append(out, |buf| {
        Disconnect { status, message }.encode_as(FrameType::HaproxyDisconnect, buf, u32::MAX)
    })
}

/// Appends a frame of any type byte and flags, stream-id 1 and frame-id 1, around `payload`
/// taken as it is: well framed, but its type, flags or payload may be wrong on purpose.
pub fn push_raw_frame(
    out: &mut Vec<u8>,
    frame_type: u8,
    flags: u32,
    payload: &[u8],
) -> Result<usize, EncodeError> {
    let header = FrameHeader {
        frame_type: FrameType::from(frame_type),
        flags: Flags(flags),
        stream_id: StreamId(1),
        frame_id: FrameId(1),
    };
    append(out, |buf| Frame { header, payload }.encode(buf, u32::MAX))
}

/// Why a frame is not the ACK [`check_score_ack`] wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckFault {
    /// Another frame type (an AGENT-DISCONNECT is described with its status and message).
    NotAck(String),
    /// FIN missing or ABORT set.
    Flags(u32),
    /// The actions are not exactly one SET-VAR sess.`ip_score` of an integer 0..=100.
    Actions(String),
}

impl fmt::Display for AckFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckFault::NotAck(what) => f.write_str(what),
            AckFault::Flags(flags) => write!(f, "ACK flags {flags:#010x} (want FIN, no ABORT)"),
            AckFault::Actions(detail) => f.write_str(detail),
        }
    }
}

/// Checks the answer to a `check-client-ip` NOTIFY: an ACK with FIN and no ABORT whose actions
/// are exactly one SET-VAR sess.`ip_score` of an integer (any width and sign HAProxy takes) in
/// 0..=100, nothing after it. Returns the score. The ids are the caller's to check: only it knows
/// which NOTIFYs are in flight.
pub fn check_score_ack(frame: &Frame<'_>) -> Result<i64, AckFault> {
    let Some(ack) = Ack::from_frame(frame) else {
        let what = match frame.header.frame_type {
            FrameType::AgentDisconnect => match Disconnect::parse(frame.payload) {
                Ok(d) => format!(
                    "AGENT-DISCONNECT status {} \"{}\"",
                    d.status.code(),
                    String::from_utf8_lossy(d.message)
                ),
                Err(e) => format!("AGENT-DISCONNECT (undecodable: {e:?})"),
            },
            other => format!("expected ACK, got {other}"),
        };
        return Err(AckFault::NotAck(what));
    };
    let flags = ack.header.flags;
    if !flags.is_fin() || flags.is_abort() {
        return Err(AckFault::Flags(flags.0));
    }
    let bad = |detail: String| AckFault::Actions(detail);
    let mut actions = ack.actions();
    let score = match actions.next() {
        None => return Err(bad("no action".into())),
        Some(Err(e)) => return Err(bad(format!("undecodable action: {e:?}"))),
        Some(Ok(Action::SetVar {
            scope: Scope::Session,
            name,
            value,
        })) if name == IP_SCORE => match value {
            TypedData::Int32(v) => i64::from(v),
            TypedData::Uint32(v) => i64::from(v),
            TypedData::Int64(v) => v,
            TypedData::Uint64(v) => i64::try_from(v).unwrap_or(i64::MAX),
            other => return Err(bad(format!("ip_score of type {other:?}"))),
        },
        Some(Ok(other)) => return Err(bad(format!("unexpected action {other:?}"))),
    };
    if !(0..=100).contains(&score) {
        return Err(bad(format!("ip_score {score} outside 0..=100")));
    }
    match actions.next() {
        None => Ok(score),
        Some(Ok(extra)) => Err(bad(format!("more than one action: then {extra:?}"))),
        Some(Err(e)) => Err(bad(format!("trailing bytes after the action: {e:?}"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use spop_core::{HaproxyHello, Notify, Parsed};

    fn one_frame(bytes: &[u8]) -> Frame<'_> {
        match Frame::decode(bytes, u32::MAX).unwrap() {
            Parsed::Complete(frame, used) => {
                assert_eq!(used, bytes.len(), "one whole frame");
                frame
            }
            Parsed::Partial => panic!("partial frame"),
        }
    }

    #[test]
    fn hellos_say_what_each_haproxy_says() {
        for (hello, caps, engine) in [
            (Hello::v2_6(1024), Some(&b"pipelining,async"[..]), true),
            (Hello::v3(16380), Some(&b"pipelining"[..]), true),
            (Hello::healthcheck(), Some(&b""[..]), false),
        ] {
            let mut out = vec![0xAA];
            let n = hello.push(&mut out).unwrap();
            assert_eq!(out.len(), n + 1, "appended after what was there");
            let frame = one_frame(&out[1..]);
            assert_eq!(frame.header.frame_type, FrameType::HaproxyHello);
            let parsed = HaproxyHello::parse(frame.payload).unwrap();
            assert_eq!(parsed.supported_versions, Some(&b"2.0"[..]));
            assert_eq!(parsed.max_frame_size, Some(hello.max_frame_size.into()));
            assert_eq!(parsed.capabilities, caps);
            assert_eq!(parsed.engine_id.is_some(), engine);
            assert_eq!(parsed.healthcheck, hello.healthcheck);
        }
    }

    #[test]
    fn the_healthcheck_hello_is_the_item_list_haproxy_sends() {
        let mut by_items = Vec::new();
        push_hello_items(
            &mut by_items,
            &[
                (b"supported-versions", TypedData::String(b"2.0")),
                (b"max-frame-size", TypedData::Uint32(16380)),
                (b"capabilities", TypedData::String(b"")),
                (b"healthcheck", TypedData::Bool(true)),
            ],
        )
        .unwrap();
        let mut hello = Vec::new();
        Hello::healthcheck().push(&mut hello).unwrap();
        assert_eq!(hello, by_items);
    }

    #[test]
    fn raw_frames_keep_any_type_flags_and_payload() {
        let mut out = Vec::new();
        push_raw_frame(&mut out, 42, 0, b"whatever").unwrap();
        assert_eq!(out, b"\x00\x00\x00\x0f\x2a\x00\x00\x00\x00\x01\x01whatever");
    }

    #[test]
    fn a_notify_larger_than_the_first_room_is_appended_whole() {
        let big = vec![7u8; 100_000];
        let mut out = Vec::new();
        let args = [Arg {
            name: b"body",
            value: TypedData::Binary(&big),
        }];
        push_notify(&mut out, 9, 2, b"check-request", &args).unwrap();
        let notify = Notify::from_frame(&one_frame(&out)).unwrap();
        assert_eq!(
            (notify.stream_id, notify.frame_id),
            (StreamId(9), FrameId(2))
        );
        let message = notify.messages().next().unwrap();
        assert_eq!(message.name, b"check-request");
        assert_eq!(message.arg(b"body"), Some(TypedData::Binary(&big)));
    }

    #[test]
    fn a_score_ack_passes_and_an_empty_one_does_not() {
        let mut out = vec![0u8; 64];
        let mut ack =
            spop_core::AckWriter::new(&mut out, StreamId(3), FrameId(1), MAX_FRAME_SIZE).unwrap();
        ack.set_var(Scope::Session, IP_SCORE, TypedData::Int32(55))
            .unwrap();
        let n = ack.finish();
        assert_eq!(check_score_ack(&one_frame(&out[..n])), Ok(55));
        let empty = spop_core::AckWriter::new(&mut out, StreamId(3), FrameId(1), MAX_FRAME_SIZE)
            .unwrap()
            .finish();
        assert_eq!(
            check_score_ack(&one_frame(&out[..empty])),
            Err(AckFault::Actions("no action".into()))
        );
    }
}
