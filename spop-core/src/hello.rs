//! The handshake frames (SPOE.txt §3.2.4 "Frame: HAPROXY-HELLO", §3.2.5 "Frame: AGENT-HELLO",
//! §3.2.8 and §3.2.9 for the DISCONNECT frames; docs/protocol.md §5).

use crate::data::TypedData;
use crate::error::{DecodeError, EncodeError};
use crate::frame::{FrameHeader, FrameType, FrameWriter};
use crate::kv::{self, KvList};
use crate::tokens::tokens;

/// The only protocol version this crate speaks, as AGENT-HELLO announces it.
pub const VERSION: &[u8] = b"2.0";

/// A decoded HAPROXY-HELLO. Absent keys are `None`; unknown keys are skipped; for duplicate keys
/// the last one wins, as in HAProxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HaproxyHello<'a> {
    /// `supported-versions`: a comma list such as `"2.0"`.
    pub supported_versions: Option<&'a [u8]>,
    /// `max-frame-size`, of any integer type.
    pub max_frame_size: Option<u64>,
    /// `capabilities`: a comma list; empty on a health check.
    pub capabilities: Option<&'a [u8]>,
    /// `engine-id`: HAProxy's UUID (one per thread on 2.x, per agent on 3.x).
    pub engine_id: Option<&'a [u8]>,
    /// `healthcheck`: true on `option spop-check` connections, which close after AGENT-HELLO.
    pub healthcheck: bool,
}

impl<'a> HaproxyHello<'a> {
    /// Encodes a HAPROXY-HELLO (for tools and tests that play HAProxy) with its keys in HAProxy's
    /// order, leaving out absent ones; `healthcheck` is written only when true, as HAProxy does.
    /// A `max-frame-size` above `u32::MAX` is sent as `u32::MAX` (it is a UINT32 on the wire).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut f = FrameWriter::begin(out, &FrameHeader::connection(FrameType::HaproxyHello))?;
        let w = f.payload();
        if let Some(versions) = self.supported_versions {
            kv::put(w, b"supported-versions", &TypedData::String(versions))?;
        }
        if let Some(size) = self.max_frame_size {
            let size = u32::try_from(size).unwrap_or(u32::MAX);
            kv::put(w, b"max-frame-size", &TypedData::Uint32(size))?;
        }
        if let Some(caps) = self.capabilities {
            kv::put(w, b"capabilities", &TypedData::String(caps))?;
        }
        if let Some(id) = self.engine_id {
            kv::put(w, b"engine-id", &TypedData::String(id))?;
        }
        if self.healthcheck {
            kv::put(w, b"healthcheck", &TypedData::Bool(true))?;
        }
        f.finish(u32::MAX)
    }

    /// Decodes a HAPROXY-HELLO payload.
    pub fn parse(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut hello = HaproxyHello::default();
        for (key, value) in KvList::parse(payload)? {
            match key {
                b"supported-versions" => hello.supported_versions = value.as_bytes(),
                b"max-frame-size" => hello.max_frame_size = value.as_u64(),
                b"capabilities" => hello.capabilities = value.as_bytes(),
                b"engine-id" => hello.engine_id = value.as_bytes(),
                b"healthcheck" => hello.healthcheck = value == TypedData::Bool(true),
                _ => {}
            }
        }
        Ok(hello)
    }
}

/// Whether a `supported-versions` list offers a 2.x version, which includes 2.0.
///
/// Each token is optional spaces, MAJOR `.` MINOR (digits, minor at most 3 of them), optional
/// spaces; announcing X.Y means every version from X.0 to X.Y (SPOE.txt §3.2.4). Tokens that do
/// not parse are ignored.
pub fn offers_version_2(list: &[u8]) -> bool {
    tokens(list).any(|token| {
        let mut parts = token.splitn(2, |&b| b == b'.');
        let (Some(major), Some(minor)) = (parts.next(), parts.next()) else {
            return false;
        };
        let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
        let significant = major
            .iter()
            .position(|&b| b != b'0')
            .and_then(|start| major.get(start..));
        digits(major) && digits(minor) && minor.len() <= 3 && significant == Some(b"2")
    })
}

/// An AGENT-HELLO: the agent's half of the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentHello<'a> {
    /// `version`: [`VERSION`].
    pub version: &'a [u8],
    /// `max-frame-size`: the size both sides use from now on, at most HAProxy's offer.
    pub max_frame_size: u32,
    /// `capabilities`, or no key at all (HAProxy then works one NOTIFY at a time).
    pub capabilities: Option<&'a [u8]>,
}

impl<'a> AgentHello<'a> {
    /// Encodes the frame (FIN, ids 0, exact key names as HAProxy 3.x health checks demand) into
    /// `out`; returns the bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut f = FrameWriter::begin(out, &FrameHeader::connection(FrameType::AgentHello))?;
        let w = f.payload();
        kv::put(w, b"version", &TypedData::String(self.version))?;
        kv::put(
            w,
            b"max-frame-size",
            &TypedData::Uint32(self.max_frame_size),
        )?;
        if let Some(caps) = self.capabilities {
            kv::put(w, b"capabilities", &TypedData::String(caps))?;
        }
        f.finish(self.max_frame_size)
    }

    /// Decodes an AGENT-HELLO payload (for tools that play HAProxy). A missing `version` or
    /// `max-frame-size` decodes as empty / 0.
    pub fn parse(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut hello = AgentHello {
            version: b"",
            max_frame_size: 0,
            capabilities: None,
        };
        for (key, value) in KvList::parse(payload)? {
            match key {
                b"version" => hello.version = value.as_bytes().unwrap_or_default(),
                b"max-frame-size" => {
                    hello.max_frame_size =
                        value.as_u64().map_or(0, |v| v.min(u32::MAX.into()) as u32)
                }
                b"capabilities" => hello.capabilities = value.as_bytes(),
                _ => {}
            }
        }
        Ok(hello)
    }
}

/// A HAPROXY-DISCONNECT or AGENT-DISCONNECT (SPOE.txt §3.2.8, §3.2.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disconnect<'a> {
    /// `status-code`.
    pub status: crate::Status,
    /// `message`: free text. HAProxy 2.6 ignores an AGENT-DISCONNECT whose message exceeds 255
    /// bytes, so [`Disconnect::encode`] cuts longer ones to [`MAX_DISCONNECT_MESSAGE`].
    pub message: &'a [u8],
}

/// The longest `message` HAProxy 2.6 accepts in an AGENT-DISCONNECT.
pub const MAX_DISCONNECT_MESSAGE: usize = 255;

impl<'a> Disconnect<'a> {
    /// Decodes a DISCONNECT payload. A missing status decodes as [`crate::Status::Unknown`].
    pub fn parse(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut d = Disconnect {
            status: crate::Status::Unknown,
            message: b"",
        };
        for (key, value) in KvList::parse(payload)? {
            match key {
                b"status-code" => {
                    if let Some(code) = value.as_u64() {
                        d.status = crate::Status::from_code(code.min(u32::MAX.into()) as u32);
                    }
                }
                b"message" => d.message = value.as_bytes().unwrap_or_default(),
                _ => {}
            }
        }
        Ok(d)
    }

    /// Encodes an AGENT-DISCONNECT into `out` (LENGTH limited to `max_len`); returns its size.
    pub fn encode(&self, out: &mut [u8], max_len: u32) -> Result<usize, EncodeError> {
        self.encode_as(FrameType::AgentDisconnect, out, max_len)
    }

    /// Encodes this as a frame of `frame_type` (HAPROXY-DISCONNECT for tools that play HAProxy).
    pub fn encode_as(
        &self,
        frame_type: FrameType,
        out: &mut [u8],
        max_len: u32,
    ) -> Result<usize, EncodeError> {
        let message = self
            .message
            .get(..MAX_DISCONNECT_MESSAGE)
            .unwrap_or(self.message);
        let mut f = FrameWriter::begin(out, &FrameHeader::connection(frame_type))?;
        let w = f.payload();
        kv::put(w, b"status-code", &TypedData::Uint32(self.status.code()))?;
        kv::put(w, b"message", &TypedData::String(message))?;
        f.finish(max_len)
    }
}
