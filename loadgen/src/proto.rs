//! The frames the load generator sends and the checks it applies to what comes back.
//!
//! What HAProxy sends and what a correct `ip_score` ACK is come from `spop-testkit`'s
//! [`frames`] module, the definitions every test of the workspace uses too: a load run and the
//! tests cannot drift apart on what they call a right answer. That module does no I/O and never
//! panics, so it serves the load generator's hot path; this one adds what only a load run needs
//! (the frame-id every NOTIFY carries, a different address per NOTIFY, the negotiation result,
//! the canned responder's replies).

use std::fmt;
use std::net::Ipv4Addr;

use spop_core::{
    Action, AgentHello, EncodeError, Flags, Frame, FrameHeader, FrameId, FrameType, Parsed, Scope,
    StreamId, TypedData,
};
use spop_testkit::frames::{self, AckFault, Hello};

/// The max-frame-size the tool offers in its HELLO, as HAProxy does by default.
pub const MAX_FRAME_SIZE: u32 = frames::MAX_FRAME_SIZE;

/// The message every NOTIFY carries.
pub const MESSAGE: &[u8] = frames::CHECK_CLIENT_IP;

/// The variable every ACK must set.
pub const VAR_NAME: &[u8] = frames::IP_SCORE;

/// The frame-id of every NOTIFY (HAProxy 3.x: one event per stream).
pub const FRAME_ID: u64 = 1;

/// HAPROXY-HELLO as HAProxy 3.x sends it: version 2.0, max-frame-size 16380, pipelining.
pub fn haproxy_hello() -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    Hello::v3(MAX_FRAME_SIZE).push(&mut out)?;
    Ok(out)
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
    next_ip: u32,
}

impl NotifyEncoder {
    /// An encoder whose addresses start at `first_ip`.
    pub fn new(first_ip: u32) -> Self {
        NotifyEncoder { next_ip: first_ip }
    }

    /// Appends the NOTIFY of `stream_id` (frame-id [`FRAME_ID`]) to `out`.
    pub fn push(&mut self, out: &mut Vec<u8>, stream_id: u64) -> Result<(), EncodeError> {
        let ip = TypedData::Ipv4(Ipv4Addr::from(self.next_ip));
        frames::push_check_client_ip(out, stream_id, FRAME_ID, ip)?;
        self.next_ip = self.next_ip.wrapping_add(1);
        Ok(())
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

/// Checks one frame from the agent: frame-id [`FRAME_ID`], then [`frames::check_score_ack`] (an
/// ACK with FIN, no ABORT, exactly one SET-VAR sess.`ip_score` = an integer 0..=100 with nothing
/// after it). Returns the stream-id and the score; the caller checks the stream-id against its
/// pending NOTIFYs.
///
/// On [`AckError::Actions`] and [`AckError::Flags`] the ids are still meaningful and the NOTIFY
/// counts as answered (wrongly); on the others it does not.
pub fn check_ack(frame: &Frame<'_>) -> Result<(u64, i64), (Option<u64>, AckError)> {
    let StreamId(stream_id) = frame.header.stream_id;
    let FrameId(frame_id) = frame.header.frame_id;
    if frame.header.frame_type == FrameType::Ack && frame_id != FRAME_ID {
        return Err((
            None,
            AckError::FrameId {
                stream_id,
                frame_id,
            },
        ));
    }
    match frames::check_score_ack(frame) {
        Ok(score) => Ok((stream_id, score)),
        Err(AckFault::NotAck(what)) => Err((None, AckError::NotAck(what))),
        Err(AckFault::Flags(flags)) => Err((Some(stream_id), AckError::Flags(flags))),
        Err(AckFault::Actions(detail)) => {
            Err((Some(stream_id), AckError::Actions { stream_id, detail }))
        }
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
    pub fn push_ack(
        &self,
        out: &mut Vec<u8>,
        stream_id: u64,
        frame_id: u64,
    ) -> Result<(), EncodeError> {
        let ack = Frame {
            header: FrameHeader {
                frame_type: FrameType::Ack,
                flags: Flags::FIN,
                stream_id: StreamId(stream_id),
                frame_id: FrameId(frame_id),
            },
            payload: &self.ack_payload,
        };
        frames::append(out, |buf| ack.encode(buf, MAX_FRAME_SIZE))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        enc.push(&mut out, 1).unwrap();
        enc.push(&mut out, 3001).unwrap();
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
        CannedReplies::default()
            .push_ack(&mut out, 4097, 1)
            .unwrap();
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
        let hello = haproxy_hello().unwrap();
        let f = frame_of(&hello);
        let parsed = spop_core::HaproxyHello::parse(f.payload).unwrap();
        assert_eq!(parsed.max_frame_size, Some(u64::from(MAX_FRAME_SIZE)));
        assert_eq!(parsed.capabilities, Some(&b"pipelining"[..]));
    }
}
