//! The frames the load generator sends and the checks it applies to what comes back, on
//! `spop-core`'s codec.

use std::fmt;

use spop_core::frame::LENGTH_SIZE;
use spop_core::varint::Varint;
use spop_core::{
    Ack, Action, AgentHello, Flags, Frame, FrameId, FrameType, HaproxyHello, Parsed, Scope,
    StreamId, TypedData,
};

/// The max-frame-size the tool offers in its HELLO, as HAProxy does by default.
pub const MAX_FRAME_SIZE: u32 = 16380;

/// The message every NOTIFY carries.
pub const MESSAGE: &[u8] = b"check-client-ip";

/// The variable every ACK must set.
pub const VAR_NAME: &[u8] = b"ip_score";

/// The frame-id of every NOTIFY (HAProxy 3.x: one event per stream).
pub const FRAME_ID: u64 = 1;

/// HAPROXY-HELLO as HAProxy 3.x sends it: version 2.0, max-frame-size 16380, pipelining.
pub fn haproxy_hello() -> Vec<u8> {
    let mut out = vec![0u8; 512];
    let len = HaproxyHello {
        supported_versions: Some(b"2.0"),
        max_frame_size: Some(MAX_FRAME_SIZE.into()),
        capabilities: Some(b"pipelining"),
        engine_id: Some(b"5b3c1a2e-7d44-4c1e-9a57-6f0e0c1b2d3e"),
        healthcheck: false,
    }
    .encode(&mut out)
    .unwrap_or(0);
    out.truncate(len);
    out
}

/// What the agent answered to HELLO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The agent's max-frame-size.
    pub max_frame_size: u32,
    /// Whether it announced pipelining.
    pub pipelining: bool,
}

/// Checks an AGENT-HELLO frame.
pub fn check_agent_hello(frame: &Frame<'_>) -> Result<Negotiated, String> {
    if frame.header.frame_type != FrameType::AgentHello {
        return Err(format!(
            "expected AGENT-HELLO, got {}",
            frame.header.frame_type
        ));
    }
    let hello = AgentHello::parse(frame.payload).map_err(|e| format!("AGENT-HELLO: {e:?}"))?;
    if hello
        .version
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .ne(b"2.0")
    {
        return Err(format!(
            "AGENT-HELLO version {:?}",
            String::from_utf8_lossy(hello.version)
        ));
    }
    if !(256..=MAX_FRAME_SIZE).contains(&hello.max_frame_size) {
        return Err(format!(
            "AGENT-HELLO max-frame-size {} outside 256..={MAX_FRAME_SIZE}",
            hello.max_frame_size
        ));
    }
    let pipelining = hello.capabilities.is_some_and(|caps| {
        caps.split(|&b| b == b',').any(|t| {
            t.iter()
                .filter(|b| !b.is_ascii_whitespace())
                .eq(b"pipelining")
        })
    });
    Ok(Negotiated {
        max_frame_size: hello.max_frame_size,
        pipelining,
    })
}

/// Appends NOTIFY frames (`check-client-ip`, one unnamed IPV4 argument) to a buffer. Each NOTIFY
/// carries a different address, so an agent cannot serve them from a cache.
#[derive(Clone, Debug)]
pub struct NotifyEncoder {
    /// Message name, nb-args, empty arg name, IPV4 type byte; the 4 address bytes follow.
    payload_head: Vec<u8>,
    next_ip: u32,
}

impl NotifyEncoder {
    /// An encoder whose addresses start at `first_ip`.
    pub fn new(first_ip: u32) -> Self {
        let mut payload_head = Vec::with_capacity(32);
        payload_head.push(MESSAGE.len() as u8);
        payload_head.extend_from_slice(MESSAGE);
        payload_head.push(1); // nb-args
        payload_head.push(0); // unnamed argument
        payload_head.push(6); // IPV4, no flags
        NotifyEncoder {
            payload_head,
            next_ip: first_ip,
        }
    }

    /// Appends the NOTIFY of `stream_id` (frame-id [`FRAME_ID`]) to `out`.
    pub fn push(&mut self, out: &mut Vec<u8>, stream_id: u64) {
        let sid = Varint::new(stream_id);
        let fid = Varint::new(FRAME_ID);
        let length =
            1 + 4 + sid.as_bytes().len() + fid.as_bytes().len() + self.payload_head.len() + 4;
        out.extend_from_slice(&(length as u32).to_be_bytes());
        out.push(u8::from(FrameType::Notify));
        out.extend_from_slice(&Flags::FIN.0.to_be_bytes());
        out.extend_from_slice(sid.as_bytes());
        out.extend_from_slice(fid.as_bytes());
        out.extend_from_slice(&self.payload_head);
        out.extend_from_slice(&self.next_ip.to_be_bytes());
        self.next_ip = self.next_ip.wrapping_add(1);
    }
}

/// Why an ACK (or another frame from the agent) was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckError {
    /// The agent sent a frame of another type.
    NotAck(String),
    /// FIN missing or ABORT set.
    Flags(u32),
    /// The frame-id is not the one every NOTIFY carries.
    FrameId {
        /// The ACK's stream-id.
        stream_id: u64,
        /// Its frame-id.
        frame_id: u64,
    },
    /// The action list is not exactly one SET-VAR sess.ip_score of an integer 0..=100.
    Actions {
        /// The ACK's stream-id.
        stream_id: u64,
        /// What was wrong.
        detail: String,
    },
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::NotAck(what) => write!(f, "{what}"),
            AckError::Flags(flags) => write!(f, "ACK flags {flags:#010x} (want FIN, no ABORT)"),
            AckError::FrameId {
                stream_id,
                frame_id,
            } => write!(
                f,
                "ACK for stream-id {stream_id} with frame-id {frame_id} (want {FRAME_ID})"
            ),
            AckError::Actions { stream_id, detail } => {
                write!(f, "ACK for stream-id {stream_id}: {detail}")
            }
        }
    }
}

/// Checks one frame from the agent: an ACK with FIN, frame-id [`FRAME_ID`], and exactly one
/// SET-VAR sess.`ip_score` = an integer 0..=100 with nothing after it. Returns the stream-id and
/// the score; the caller checks the stream-id against its pending NOTIFYs.
///
/// On [`AckError::Actions`] and [`AckError::Flags`] the ids are still meaningful and the NOTIFY
/// counts as answered (wrongly); on the others it does not.
pub fn check_ack(frame: &Frame<'_>) -> Result<(u64, i64), (Option<u64>, AckError)> {
    let Some(ack) = Ack::from_frame(frame) else {
        let detail = match frame.header.frame_type {
            FrameType::AgentDisconnect => match spop_core::Disconnect::parse(frame.payload) {
                Ok(d) => format!(
                    "AGENT-DISCONNECT status {} \"{}\"",
                    d.status.code(),
                    String::from_utf8_lossy(d.message)
                ),
                Err(e) => format!("AGENT-DISCONNECT (undecodable: {e:?})"),
            },
            other => format!("expected ACK, got {other}"),
        };
        return Err((None, AckError::NotAck(detail)));
    };
    let StreamId(stream_id) = ack.header.stream_id;
    let FrameId(frame_id) = ack.header.frame_id;
    if frame_id != FRAME_ID {
        return Err((
            None,
            AckError::FrameId {
                stream_id,
                frame_id,
            },
        ));
    }
    let flags = ack.header.flags;
    if !flags.is_fin() || flags.is_abort() {
        return Err((Some(stream_id), AckError::Flags(flags.0)));
    }
    let bad = |detail: String| (Some(stream_id), AckError::Actions { stream_id, detail });
    let mut actions = ack.actions();
    let score = match actions.next() {
        None => return Err(bad("no action".into())),
        Some(Err(e)) => return Err(bad(format!("undecodable action: {e:?}"))),
        Some(Ok(Action::SetVar {
            scope: Scope::Session,
            name,
            value,
        })) if name == VAR_NAME => match value {
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
        None => Ok((stream_id, score)),
        Some(Ok(extra)) => Err(bad(format!("more than one action: then {extra:?}"))),
        Some(Err(e)) => Err(bad(format!("trailing bytes after the action: {e:?}"))),
    }
}

/// Splits the next frame off `buf` (LENGTH at most [`MAX_FRAME_SIZE`]).
pub fn next_frame(buf: &[u8]) -> Result<Parsed<Frame<'_>>, String> {
    Frame::decode(buf, MAX_FRAME_SIZE).map_err(|e| format!("bad frame from the agent: {e:?}"))
}

/// The canned responder's replies, encoded once.
#[derive(Clone, Debug)]
pub struct CannedReplies {
    /// AGENT-HELLO: version 2.0, max-frame-size 16380, pipelining.
    pub agent_hello: Vec<u8>,
    /// AGENT-DISCONNECT 0 "normal".
    pub agent_disconnect: Vec<u8>,
    /// The ACK payload: SET-VAR sess ip_score = int32 42.
    pub ack_payload: Vec<u8>,
}

impl Default for CannedReplies {
    fn default() -> Self {
        let mut hello = vec![0u8; 256];
        let n = AgentHello {
            version: b"2.0",
            max_frame_size: MAX_FRAME_SIZE,
            capabilities: Some(b"pipelining"),
        }
        .encode(&mut hello)
        .unwrap_or(0);
        hello.truncate(n);

        let mut bye = vec![0u8; 256];
        let n = spop_core::Disconnect {
            status: spop_core::Status::Normal,
            message: b"normal",
        }
        .encode_as(FrameType::AgentDisconnect, &mut bye, MAX_FRAME_SIZE)
        .unwrap_or(0);
        bye.truncate(n);

        let mut ack_payload = vec![0u8; 64];
        let mut w = spop_core::Writer::new(&mut ack_payload);
        let n = Action::SetVar {
            scope: Scope::Session,
            name: VAR_NAME,
            value: TypedData::Int32(42),
        }
        .encode(&mut w)
        .map(|()| w.position())
        .unwrap_or(0);
        ack_payload.truncate(n);
        CannedReplies {
            agent_hello: hello,
            agent_disconnect: bye,
            ack_payload,
        }
    }
}

impl CannedReplies {
    /// Appends the canned ACK for (`stream_id`, `frame_id`).
    pub fn push_ack(&self, out: &mut Vec<u8>, stream_id: u64, frame_id: u64) {
        let sid = Varint::new(stream_id);
        let fid = Varint::new(frame_id);
        let length = 1 + 4 + sid.as_bytes().len() + fid.as_bytes().len() + self.ack_payload.len();
        out.reserve(LENGTH_SIZE + length);
        out.extend_from_slice(&(length as u32).to_be_bytes());
        out.push(u8::from(FrameType::Ack));
        out.extend_from_slice(&Flags::FIN.0.to_be_bytes());
        out.extend_from_slice(sid.as_bytes());
        out.extend_from_slice(fid.as_bytes());
        out.extend_from_slice(&self.ack_payload);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use spop_core::FrameHeader;

    fn frame_of(bytes: &[u8]) -> Frame<'_> {
        match next_frame(bytes).unwrap() {
            Parsed::Complete(f, n) => {
                assert_eq!(n, bytes.len());
                f
            }
            Parsed::Partial => panic!("partial"),
        }
    }

    fn ack_with(flags: Flags, sid: u64, fid: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 256];
        let header = FrameHeader {
            frame_type: FrameType::Ack,
            flags,
            stream_id: StreamId(sid),
            frame_id: FrameId(fid),
        };
        let n = Frame { header, payload }
            .encode(&mut out, MAX_FRAME_SIZE)
            .unwrap();
        out.truncate(n);
        out
    }

    fn set_var(scope: u8, name: &[u8], value: TypedData<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; 64];
        let mut w = spop_core::Writer::new(&mut buf);
        Action::SetVar {
            scope: Scope::from(scope),
            name,
            value,
        }
        .encode(&mut w)
        .unwrap();
        let n = w.position();
        buf.truncate(n);
        buf
    }

    #[test]
    fn notify_decodes_as_haproxy_sends_it() {
        let mut out = Vec::new();
        let mut enc = NotifyEncoder::new(0x0A00_0001);
        enc.push(&mut out, 1);
        enc.push(&mut out, 3001);
        let f = frame_of(&out[..out.len() / 2 - 1]);
        assert_eq!(f.header.frame_type, FrameType::Notify);
        assert_eq!(f.header.stream_id, StreamId(1));
        let Parsed::Complete(second, _) = next_frame(&out[out.len() / 2 - 1..]).unwrap() else {
            panic!()
        };
        assert_eq!(second.header.stream_id, StreamId(3001));
        let notify = spop_core::Notify::from_frame(&second).unwrap();
        let msg = notify.messages().next().unwrap();
        assert_eq!(msg.name, MESSAGE);
        let arg = msg.args().next().unwrap();
        assert_eq!(arg.name, b"");
        assert_eq!(
            arg.value,
            TypedData::Ipv4(std::net::Ipv4Addr::new(10, 0, 0, 2))
        );
    }

    #[test]
    fn canned_ack_passes_the_check() {
        let mut out = Vec::new();
        CannedReplies::default().push_ack(&mut out, 4097, 1);
        assert_eq!(check_ack(&frame_of(&out)), Ok((4097, 42)));
    }

    #[test]
    fn bad_acks_are_refused() {
        let good = set_var(1, VAR_NAME, TypedData::Int64(7));
        assert_eq!(
            check_ack(&frame_of(&ack_with(Flags::FIN, 5, 1, &good))),
            Ok((5, 7))
        );
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (ack_with(Flags::NONE, 5, 1, &good), "flags"),
            (ack_with(Flags::FIN | Flags::ABORT, 5, 1, &good), "flags"),
            (ack_with(Flags::FIN, 5, 2, &good), "frame-id"),
            (ack_with(Flags::FIN, 5, 1, &[]), "no action"),
            (
                ack_with(Flags::FIN, 5, 1, &set_var(2, VAR_NAME, TypedData::Int32(7))),
                "unexpected action",
            ),
            (
                ack_with(
                    Flags::FIN,
                    5,
                    1,
                    &set_var(1, b"ip_scor", TypedData::Int32(7)),
                ),
                "unexpected action",
            ),
            (
                ack_with(
                    Flags::FIN,
                    5,
                    1,
                    &set_var(1, VAR_NAME, TypedData::Int32(101)),
                ),
                "outside",
            ),
            (
                ack_with(
                    Flags::FIN,
                    5,
                    1,
                    &set_var(1, VAR_NAME, TypedData::Int64(-1)),
                ),
                "outside",
            ),
            (
                ack_with(
                    Flags::FIN,
                    5,
                    1,
                    &set_var(1, VAR_NAME, TypedData::String(b"7")),
                ),
                "of type",
            ),
            (
                ack_with(Flags::FIN, 5, 1, &[good.clone(), good.clone()].concat()),
                "more than one",
            ),
            (
                ack_with(Flags::FIN, 5, 1, &[good.clone(), vec![0]].concat()),
                "trailing",
            ),
        ];
        for (bytes, want) in cases {
            let err = check_ack(&frame_of(&bytes)).unwrap_err().1.to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
        let hello = CannedReplies::default().agent_hello;
        let err = check_ack(&frame_of(&hello)).unwrap_err();
        assert_eq!(err.0, None);
        assert!(err.1.to_string().contains("AGENT-HELLO"));
    }

    #[test]
    fn hello_round_trip() {
        let canned = CannedReplies::default();
        let n = check_agent_hello(&frame_of(&canned.agent_hello)).unwrap();
        assert_eq!(
            n,
            Negotiated {
                max_frame_size: MAX_FRAME_SIZE,
                pipelining: true
            }
        );
        let hello = haproxy_hello();
        let f = frame_of(&hello);
        let parsed = spop_core::HaproxyHello::parse(f.payload).unwrap();
        assert_eq!(parsed.max_frame_size, Some(u64::from(MAX_FRAME_SIZE)));
        assert_eq!(parsed.capabilities, Some(&b"pipelining"[..]));
    }
}
