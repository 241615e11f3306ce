//! The replies the agent must send, built here byte by byte from the protocol's layout (SPOE.txt
//! §3.2) rather than with spop-core's encoders, so a fault in those encoders cannot hide behind
//! the same fault in the expectation. [`self_check`] ties these builders to frames HAProxy 2.6
//! accepted in the captures.
//!
//! Only one-byte varints are built (values under 240): every id, score, status and length the
//! scenarios use is that small.

use spop_appliance::vectors;

/// Room for any reply the scenarios expect.
pub const REPLY_MAX: usize = 128;

/// One frame the agent must send.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// A frame captured from the real exchange, expected as is.
    Captured(&'static [u8]),
    /// ACK for NOTIFY `stream`/`frame` carrying `SET-VAR sess ip_score = INT32 score`.
    Ack { stream: u8, frame: u8, score: u8 },
    /// AGENT-DISCONNECT with `status-code = UINT32 status` and `message = STRING message`.
    Disconnect { status: u8, message: &'static str },
}

/// A reply the builders here cannot express (a value of 240 or more, or too long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unbuildable;

impl Reply {
    /// Writes the reply's bytes into `buf`; returns how many.
    pub fn render(&self, buf: &mut [u8; REPLY_MAX]) -> Result<usize, Unbuildable> {
        let mut f = FrameBytes { buf, len: 0 };
        match *self {
            Reply::Captured(bytes) => f.put(bytes)?,
            Reply::Ack {
                stream,
                frame,
                score,
            } => {
                f.header(0x67, stream, frame)?; // ACK
                f.put(&[0x01, 0x03, 0x01])?; // SET-VAR, 3 args, scope sess
                f.string(b"ip_score")?;
                f.put(&[0x02])?; // INT32
                f.varint(score)?;
                f.set_length()?;
            }
            Reply::Disconnect { status, message } => {
                f.header(0x66, 0, 0)?; // AGENT-DISCONNECT
                f.string(b"status-code")?;
                f.put(&[0x03])?; // UINT32
                f.varint(status)?;
                f.string(b"message")?;
                f.put(&[0x08])?; // STRING
                f.string(message.as_bytes())?;
                f.set_length()?;
            }
        }
        Ok(f.len)
    }

    /// Whether this reply is an ACK (to count them against the engine's statistics).
    pub const fn is_ack(&self) -> bool {
        matches!(self, Reply::Ack { .. })
    }
}

struct FrameBytes<'a> {
    buf: &'a mut [u8; REPLY_MAX],
    len: usize,
}

impl FrameBytes<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Unbuildable> {
        let end = self.len + bytes.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(Unbuildable)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn varint(&mut self, value: u8) -> Result<(), Unbuildable> {
        if value >= 240 {
            return Err(Unbuildable);
        }
        self.put(&[value])
    }

    fn string(&mut self, bytes: &[u8]) -> Result<(), Unbuildable> {
        self.varint(u8::try_from(bytes.len()).map_err(|_| Unbuildable)?)?;
        self.put(bytes)
    }

    /// LENGTH placeholder, TYPE, FLAGS = FIN, STREAM-ID, FRAME-ID.
    fn header(&mut self, frame_type: u8, stream: u8, frame: u8) -> Result<(), Unbuildable> {
        self.put(&[0, 0, 0, 0, frame_type, 0, 0, 0, 1])?;
        self.varint(stream)?;
        self.varint(frame)
    }

    fn set_length(&mut self) -> Result<(), Unbuildable> {
        let length = u32::try_from(self.len - 4).map_err(|_| Unbuildable)?;
        self.buf
            .get_mut(..4)
            .ok_or(Unbuildable)?
            .copy_from_slice(&length.to_be_bytes());
        Ok(())
    }
}

/// The builders against frames HAProxy 2.6 accepted: how many agreed, out of how many.
pub fn self_check() -> (usize, usize) {
    let cases: [(Reply, &[u8]); 4] = [
        (
            Reply::Ack {
                stream: 0,
                frame: 1,
                score: 42,
            },
            vectors::ACK_IPV4,
        ),
        (
            Reply::Ack {
                stream: 2,
                frame: 1,
                score: 42,
            },
            vectors::ACK_IPV6,
        ),
        (
            Reply::Disconnect {
                status: 0,
                message: "bye",
            },
            vectors::AGENT_DISCONNECT_NORMAL,
        ),
        (
            Reply::Disconnect {
                status: 99,
                message: "agent says goodbye",
            },
            vectors::AGENT_DISCONNECT_99,
        ),
    ];
    let mut buf = [0u8; REPLY_MAX];
    let agreed = cases
        .iter()
        .filter(|(reply, captured)| {
            reply
                .render(&mut buf)
                .is_ok_and(|n| buf.get(..n) == Some(*captured))
        })
        .count();
    (agreed, cases.len())
}
