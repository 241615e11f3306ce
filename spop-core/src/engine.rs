//! The sans-io connection engine: bytes in, [`Handler`] called once per NOTIFY, bytes out, and an
//! explicit close signal. It owns everything SPOP says about a connection (SPOE.txt §3.2,
//! docs/protocol.md §5–11, §14): the handshake, pipelining, fragment reassembly, and the
//! AGENT-DISCONNECT status of every fault. A runtime (or an appliance's event loop) only moves
//! bytes and keeps time.
//!
//! ```text
//!   read bytes ──► Engine::feed(input, out, handler) ──► Progress { consumed, written, flow }
//!                      │ per NOTIFY: Handler::on_notify(&Notify, &mut AckWriter)
//!   write out[..written] in one write; drop input[..consumed]; act on flow
//! ```

use core::fmt::Write as _;

use heapless::Vec as FixedVec;

use crate::ack::AckWriter;
use crate::capabilities::Capabilities;
use crate::error::Error;
use crate::frame::{
    split, Frame, FrameId, FrameType, LengthError, Parsed, StreamId, LENGTH_SIZE,
    MAX_FRAME_SIZE_LIMIT, MIN_MAX_FRAME_SIZE,
};
use crate::hello::{offers_version_2, AgentHello, Disconnect, HaproxyHello, VERSION};
use crate::logging::debug;
use crate::notify::{Message, Notify};
use crate::status::Status;
use crate::DecodeError;

/// The agent's default max-frame-size cap: HAProxy's offer is taken up to this, so a
/// `tune.bufsize` of 64 KiB works without fragmentation (docs/field-notes.md 8). It is also the
/// limit on a connection's first frame, so a 64 KiB+1 first frame is refused with status 3.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 65532;

/// Output room that holds an AGENT-HELLO or AGENT-DISCONNECT (its message is at most 128 bytes).
const CONTROL_REPLY_ROOM: usize = 256;

/// How an engine behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// The largest frame LENGTH the agent accepts; the negotiated size is the smaller of this and
    /// HAProxy's offer.
    pub max_frame_size: u32,
    /// What AGENT-HELLO announces. FRAGMENTATION needs an engine with a reassembly buffer.
    pub capabilities: Capabilities,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            capabilities: Capabilities::PIPELINING,
        }
    }
}

/// A configuration the engine cannot run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// `max_frame_size` below the protocol minimum of 256.
    MaxFrameSizeTooSmall(u32),
    /// FRAGMENTATION asked of an engine whose reassembly buffer holds nothing (`FRAG == 0`).
    NoReassemblyBuffer,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::MaxFrameSizeTooSmall(n) => {
                write!(f, "max-frame-size {n} is below the protocol minimum of 256")
            }
            ConfigError::NoReassemblyBuffer => {
                f.write_str("fragmentation needs an engine with a reassembly buffer")
            }
        }
    }
}

/// What a completed handshake fixed: everything an engine keeps from HAPROXY-HELLO and its
/// AGENT-HELLO. With it another engine (in another process: a restarted agent given the open
/// connection) resumes the connection without a HELLO ([`Engine::resume`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Handshake {
    /// The negotiated max-frame-size.
    pub max_frame_size: u32,
    /// What HAProxy offered (above the negotiated size when the agent's cap was lower).
    pub peer_max_frame_size: u32,
    /// What the agent announced in its AGENT-HELLO.
    pub capabilities: Capabilities,
    /// What HAProxy announced in its HELLO.
    pub peer_capabilities: Capabilities,
}

/// Why an engine cannot resume a connection with a [`Handshake`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ResumeError {
    /// The configuration itself is refused ([`Engine::new`]).
    Config(ConfigError),
    /// The negotiated max-frame-size is below the protocol minimum, above HAProxy's offer, or
    /// above this engine's own cap: frames the peer may send would not be accepted.
    FrameSize {
        /// The size the connection was opened with.
        negotiated: u32,
        /// This engine's own cap.
        cap: u32,
    },
    /// The agent announced other capabilities than this engine's configuration has (a peer told
    /// FRAGMENTATION would send fragments an engine without it refuses).
    Capabilities {
        /// What the connection was opened with.
        announced: Capabilities,
        /// What this engine's configuration has.
        configured: Capabilities,
    },
}

impl core::fmt::Display for ResumeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ResumeError::Config(e) => e.fmt(f),
            ResumeError::FrameSize { negotiated, cap } => write!(
                f,
                "negotiated max-frame-size {negotiated} does not fit this agent (minimum 256, \
                 at most its max-frame-size {cap} and HAProxy's offer)"
            ),
            ResumeError::Capabilities {
                announced,
                configured,
            } => write!(
                f,
                "the connection was opened with capabilities {announced}, this agent has {configured}"
            ),
        }
    }
}

/// The application: what to answer to each NOTIFY.
pub trait Handler {
    /// Called once per message of a NOTIFY, in order; append actions to `ack`.
    fn on_message(&mut self, message: &Message<'_>, ack: &mut AckWriter<'_>);

    /// The largest ACK this handler ever writes, LENGTH included, if it knows one. The engine then
    /// keeps only that much output room per NOTIFY instead of a whole max-frame-size, so a small
    /// output buffer still batches many ACKs; an action beyond it fails with
    /// [`EncodeError::BufferTooSmall`](crate::EncodeError::BufferTooSmall).
    fn ack_size_hint(&self) -> Option<usize> {
        None
    }

    /// Called once per NOTIFY. The default calls [`Handler::on_message`] for each message; the ACK
    /// is sent whatever the handler appends, even nothing.
    fn on_notify(&mut self, notify: &Notify<'_>, ack: &mut AckWriter<'_>) {
        for message in notify.messages() {
            self.on_message(&message, ack);
        }
    }
}

/// Why the connection must close now. Whatever frame the protocol asks for (AGENT-HELLO,
/// AGENT-DISCONNECT) is already in the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Close {
    /// A health check got its AGENT-HELLO.
    Healthcheck,
    /// HAProxy sent HAPROXY-DISCONNECT with this status; AGENT-DISCONNECT 0 answered it.
    PeerDisconnect(Status),
    /// A protocol fault; AGENT-DISCONNECT with its status was written (when the output had room).
    Error(Error),
    /// The agent is shutting down; AGENT-DISCONNECT 0 was written.
    Shutdown,
}

impl core::fmt::Display for Close {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Close::Healthcheck => f.write_str("health check answered"),
            Close::PeerDisconnect(status) => write!(f, "HAProxy disconnected with status {status}"),
            Close::Error(error) => write!(f, "status {}: {error}", error.status().code()),
            Close::Shutdown => f.write_str("agent shutting down"),
        }
    }
}

/// What the runtime does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Flow {
    /// Every complete frame was handled; what is left of the input (if anything) is the start of
    /// a frame. Read more.
    NeedInput,
    /// The output is full: write it, then call [`Engine::feed`] again with the unconsumed input.
    NeedOutput,
    /// Write the output, then close the connection.
    Close(Close),
}

/// The result of one [`Engine::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Progress {
    /// Input bytes used (whole frames only).
    pub consumed: usize,
    /// Output bytes written (whole frames only), to send in one write.
    pub written: usize,
    /// What next.
    pub flow: Flow,
}

/// Counters for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Frames received.
    pub frames: u64,
    /// NOTIFY frames received (a fragmented NOTIFY counts once, by its first frame).
    pub notifies: u64,
    /// NOTIFYs answered with an ACK.
    pub acks: u64,
    /// Frames of unknown type skipped (SPOE.txt §3.2.2: a peer may skip them).
    pub unknown_frames: u64,
    /// NOTIFYs dropped because HAProxy aborted them.
    pub aborted: u64,
    /// NOTIFYs reassembled from fragments and answered.
    pub reassembled: u64,
    /// HAPROXY-HELLO frames received (one per connection; a second one is a fault).
    pub hellos: u32,
    /// HAPROXY-DISCONNECT frames received (at most one: it closes the connection).
    pub disconnects: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Hello,
    Running,
    Closed,
}

/// A fragmented NOTIFY being reassembled (HAProxy 2.x with fragmentation).
#[derive(Debug)]
struct Reassembly<const N: usize> {
    ids: Option<(StreamId, FrameId)>,
    buf: FixedVec<u8, N>,
}

/// One connection's protocol state. `FRAG` is the fragment reassembly capacity in bytes (0: no
/// fragmentation). All state is inline and fixed in size: `Engine<0>` is 128 bytes on x86_64.
#[derive(Debug)]
pub struct Engine<const FRAG: usize = 0> {
    config: Config,
    phase: Phase,
    max_frame_size: u32,
    peer_capabilities: Capabilities,
    peer_max_frame_size: u32,
    reassembly: Reassembly<FRAG>,
    stats: Stats,
    close: Option<Close>,
}

impl<const FRAG: usize> Engine<FRAG> {
    /// A new connection, waiting for HAPROXY-HELLO. A `max_frame_size` above
    /// [`MAX_FRAME_SIZE_LIMIT`] is taken as that limit.
    pub fn new(mut config: Config) -> Result<Self, ConfigError> {
        if config.max_frame_size < MIN_MAX_FRAME_SIZE {
            return Err(ConfigError::MaxFrameSizeTooSmall(config.max_frame_size));
        }
        config.max_frame_size = config.max_frame_size.min(MAX_FRAME_SIZE_LIMIT);
        if FRAG == 0 && config.capabilities.contains(Capabilities::FRAGMENTATION) {
            return Err(ConfigError::NoReassemblyBuffer);
        }
        Ok(Engine {
            config,
            phase: Phase::Hello,
            max_frame_size: config.max_frame_size,
            peer_capabilities: Capabilities::NONE,
            peer_max_frame_size: 0,
            reassembly: Reassembly {
                ids: None,
                buf: FixedVec::new(),
            },
            stats: Stats::default(),
            close: None,
        })
    }

    /// An engine for a connection whose handshake another engine completed: no HELLO is
    /// expected (one arriving is a protocol error, as on any established connection); frames are
    /// taken up to the negotiated size, with the capabilities announced then, which must be
    /// this configuration's.
    pub fn resume(config: Config, handshake: Handshake) -> Result<Self, ResumeError> {
        let mut engine = Engine::new(config).map_err(ResumeError::Config)?;
        let cap = engine.config.max_frame_size;
        let negotiated = handshake.max_frame_size;
        if negotiated < MIN_MAX_FRAME_SIZE
            || negotiated > cap
            || negotiated > handshake.peer_max_frame_size
        {
            return Err(ResumeError::FrameSize { negotiated, cap });
        }
        if handshake.capabilities != engine.config.capabilities {
            return Err(ResumeError::Capabilities {
                announced: handshake.capabilities,
                configured: engine.config.capabilities,
            });
        }
        engine.phase = Phase::Running;
        engine.max_frame_size = negotiated;
        engine.peer_max_frame_size = handshake.peer_max_frame_size;
        engine.peer_capabilities = handshake.peer_capabilities;
        Ok(engine)
    }

    /// What the handshake fixed, once it is done and while the connection is open (`None`
    /// before HAPROXY-HELLO and after the close).
    pub fn handshake(&self) -> Option<Handshake> {
        (self.phase == Phase::Running).then_some(Handshake {
            max_frame_size: self.max_frame_size,
            peer_max_frame_size: self.peer_max_frame_size,
            capabilities: self.config.capabilities,
            peer_capabilities: self.peer_capabilities,
        })
    }

    /// The frame size limit in force: the agent's cap until the handshake, then the negotiated
    /// size. Runtimes size their buffers from it: input `max_frame_size() + 4` holds any frame,
    /// output `max_frame_size() + 4` free holds any reply.
    pub const fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// The configuration in force (`max_frame_size` capped as [`Engine::new`] says).
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Input bytes a caller must be able to buffer for [`Engine::feed`] to see any frame this
    /// engine accepts whole: `max_frame_size() + 4` (LENGTH included).
    pub const fn input_capacity(&self) -> usize {
        self.max_frame_size as usize + LENGTH_SIZE
    }

    /// Whether HAPROXY-HELLO is still awaited (for a handshake timeout).
    pub fn is_handshaking(&self) -> bool {
        self.phase == Phase::Hello
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether part of a fragmented NOTIFY is held (for a frame timeout).
    pub fn is_reassembling(&self) -> bool {
        self.reassembly.ids.is_some()
    }

    /// The max-frame-size HAProxy offered in its HELLO (0 before it; offers above `u32::MAX`
    /// saturate). An offer above the agent's own limit is worth a warning: HAProxy 2.x then
    /// fragments larger NOTIFYs, and without FRAGMENTATION it reports status 10 and reconnects.
    pub const fn peer_max_frame_size(&self) -> u32 {
        self.peer_max_frame_size
    }

    /// What HAProxy announced in its HELLO.
    pub const fn peer_capabilities(&self) -> Capabilities {
        self.peer_capabilities
    }

    /// This connection's counters.
    pub const fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Why the connection closed, once it has.
    pub const fn close_reason(&self) -> Option<Close> {
        self.close
    }

    fn fragmentation(&self) -> bool {
        FRAG > 0
            && self
                .config
                .capabilities
                .contains(Capabilities::FRAGMENTATION)
    }

    /// Handles every complete frame at the start of `input`, writing replies to `out`.
    ///
    /// Frames are handled while `out` has room for the largest reply (`max_frame_size() + 4`
    /// bytes, or the handler's [`Handler::ack_size_hint`], or all of `out` when it is smaller);
    /// otherwise the flow is [`Flow::NeedOutput`].
    /// A frame's LENGTH is checked as soon as its 4 bytes are in, before the runtime buffers
    /// anything more of it.
    ///
    /// Input room is the caller's part of the contract: a frame is handled only once it is whole
    /// in `input`, so the caller must be able to hold [`Engine::input_capacity`] bytes (one
    /// frame of the largest accepted size). With less, a large frame never completes: size the
    /// buffer from [`Config::max_frame_size`], or lower that to fit the buffer.
    pub fn feed<H: Handler>(&mut self, input: &[u8], out: &mut [u8], handler: &mut H) -> Progress {
        let mut consumed = 0;
        let mut written = 0;
        // Room kept free before each frame: its reply fits whole. HELLO and DISCONNECT replies
        // are under `CONTROL_REPLY_ROOM` bytes.
        let max_reply = handler
            .ack_size_hint()
            .map_or(usize::MAX, |hint| hint.max(CONTROL_REPLY_ROOM));
        let room = (self.max_frame_size as usize + LENGTH_SIZE)
            .min(max_reply)
            .min(out.len());
        let flow = loop {
            if let Some(close) = self.close {
                break Flow::Close(close);
            }
            let rest = input.get(consumed..).unwrap_or_default();
            let free = out.get_mut(written..).unwrap_or_default();
            let (body, total) = match split(rest, self.max_frame_size) {
                Ok(Parsed::Complete(body, total)) => (body, total),
                Ok(Parsed::Partial) => break Flow::NeedInput,
                Err(fault) => {
                    // The AGENT-DISCONNECT needs room too: flush earlier replies first.
                    if free.len() < room && written > 0 {
                        break Flow::NeedOutput;
                    }
                    let error = match fault {
                        LengthError::TooBig { length, max } => Error::FrameTooBig { length, max },
                        LengthError::TooShort(length) => Error::Malformed {
                            frame: rest
                                .get(LENGTH_SIZE)
                                .map_or(FrameType::Unset, |&t| t.into()),
                            cause: DecodeError::FrameTooShort(length),
                        },
                    };
                    written += self.abort(error, free);
                    continue;
                }
            };
            if free.len() < room && written > 0 {
                break Flow::NeedOutput;
            }
            consumed += total;
            // A reply gets at most the hinted room, however much is free: an ACK's content must
            // not depend on how full the output happens to be.
            let reply_len = free.len().min(max_reply);
            let reply = free.get_mut(..reply_len).unwrap_or_default();
            match self.on_frame(body, reply, handler) {
                Ok(n) => written += n,
                Err(error) => written += self.abort(error, free),
            }
        };
        Progress {
            consumed,
            written,
            flow,
        }
    }

    /// Ends the connection for `error` (for a runtime's timeouts): writes AGENT-DISCONNECT with
    /// its status and a message saying why into `out`, returns the bytes written (0 when `out` is
    /// too small or the connection is already closed).
    pub fn abort(&mut self, error: Error, out: &mut [u8]) -> usize {
        if self.close.is_some() {
            return 0;
        }
        let mut text = MessageBuf::default();
        let _ = write!(text, "{error}");
        debug!("closing with status {}: {}", error.status(), error);
        self.close_with(Close::Error(error), error.status(), text.as_bytes(), out)
    }

    /// Ends the connection because the agent stops (a graceful drain): writes AGENT-DISCONNECT 0.
    pub fn shutdown(&mut self, out: &mut [u8]) -> usize {
        if self.close.is_some() {
            return 0;
        }
        self.close_with(Close::Shutdown, Status::Normal, b"agent shutting down", out)
    }

    fn close_with(
        &mut self,
        close: Close,
        status: Status,
        message: &[u8],
        out: &mut [u8],
    ) -> usize {
        self.close = Some(close);
        self.phase = Phase::Closed;
        Disconnect { status, message }
            .encode(out, self.max_frame_size)
            .unwrap_or(0)
    }

    fn on_frame<H: Handler>(
        &mut self,
        body: &[u8],
        out: &mut [u8],
        handler: &mut H,
    ) -> Result<usize, Error> {
        let frame = Frame::decode_body(body).map_err(|cause| Error::Malformed {
            frame: body.first().map_or(FrameType::Unset, |&t| t.into()),
            cause,
        })?;
        let h = frame.header;
        self.stats.frames += 1;
        debug!(
            "<- {} stream={} frame={} flags={} length={}",
            h.frame_type,
            h.stream_id,
            h.frame_id,
            h.flags.0,
            body.len()
        );
        let after_hello = self.phase != Phase::Hello;
        let fragmentable = matches!(h.frame_type, FrameType::Notify | FrameType::Unset);
        match h.frame_type {
            FrameType::Unknown(_) => {
                self.stats.unknown_frames += 1;
                Ok(0)
            }
            FrameType::AgentHello | FrameType::AgentDisconnect | FrameType::Ack => {
                Err(Error::UnexpectedFrame {
                    frame: h.frame_type,
                    after_hello,
                })
            }
            _ if !(h.flags.is_fin() || fragmentable && self.fragmentation()) => {
                Err(Error::FragmentationNotSupported {
                    frame: h.frame_type,
                })
            }
            FrameType::HaproxyDisconnect => {
                self.stats.disconnects = self.stats.disconnects.saturating_add(1);
                self.on_disconnect(frame.payload, out)
            }
            FrameType::HaproxyHello if !after_hello => {
                self.stats.hellos = self.stats.hellos.saturating_add(1);
                self.on_hello(frame.payload, out)
            }
            FrameType::Notify | FrameType::Unset if after_hello => {
                self.on_notify(&frame, out, handler)
            }
            FrameType::HaproxyHello | FrameType::Notify | FrameType::Unset => {
                Err(Error::UnexpectedFrame {
                    frame: h.frame_type,
                    after_hello,
                })
            }
        }
    }

    fn on_hello(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let hello = HaproxyHello::parse(payload).map_err(|cause| Error::Malformed {
            frame: FrameType::HaproxyHello,
            cause,
        })?;
        let versions = hello.supported_versions.ok_or(Error::MissingVersion)?;
        if !offers_version_2(versions) {
            return Err(Error::UnsupportedVersion);
        }
        let offered = hello.max_frame_size.ok_or(Error::MissingMaxFrameSize)?;
        if offered < u64::from(MIN_MAX_FRAME_SIZE) {
            return Err(Error::MaxFrameSizeTooSmall { offered });
        }
        let negotiated = offered.min(u64::from(self.config.max_frame_size)) as u32;
        let mut caps = [0u8; 32];
        let reply = AgentHello {
            version: VERSION,
            max_frame_size: negotiated,
            capabilities: Some(self.config.capabilities.write_to(&mut caps)),
        };
        let n = reply.encode(out).map_err(|_| Error::OutputTooSmall)?;
        self.max_frame_size = negotiated;
        self.peer_capabilities = Capabilities::parse(hello.capabilities.unwrap_or_default());
        self.peer_max_frame_size = u32::try_from(offered).unwrap_or(u32::MAX);
        debug!(
            "-> AGENT-HELLO max-frame-size={} (offered {}) capabilities={} healthcheck={}",
            negotiated, offered, self.config.capabilities, hello.healthcheck
        );
        if hello.healthcheck {
            self.phase = Phase::Closed;
            self.close = Some(Close::Healthcheck);
        } else {
            self.phase = Phase::Running;
        }
        Ok(n)
    }

    fn on_disconnect(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let peer = Disconnect::parse(payload).map_err(|cause| Error::Malformed {
            frame: FrameType::HaproxyDisconnect,
            cause,
        })?;
        debug!(
            "HAProxy disconnects: status {}: {}",
            peer.status,
            crate::Bytes(peer.message)
        );
        let n = self.close_with(
            Close::PeerDisconnect(peer.status),
            Status::Normal,
            Status::Normal.message().as_bytes(),
            out,
        );
        Ok(n)
    }

    fn on_notify<H: Handler>(
        &mut self,
        frame: &Frame<'_>,
        out: &mut [u8],
        handler: &mut H,
    ) -> Result<usize, Error> {
        let h = frame.header;
        let ids = (h.stream_id, h.frame_id);
        if h.frame_type == FrameType::Notify {
            self.stats.notifies += 1;
        }
        if h.flags.is_abort() {
            // HAProxy gives up a (fragmented) NOTIFY: drop what was gathered, send no ACK.
            self.reassembly.ids = None;
            self.reassembly.buf.clear();
            self.stats.aborted += 1;
            return Ok(0);
        }
        let fin = h.flags.is_fin();
        match (h.frame_type, self.reassembly.ids) {
            (FrameType::Notify, None) if fin => answer(
                ids,
                frame.payload,
                out,
                self.max_frame_size,
                handler,
                &mut self.stats,
            ),
            (FrameType::Notify, None) => {
                self.reassembly.ids = Some(ids);
                self.reassembly.buf.clear();
                self.gather(frame.payload)?;
                Ok(0)
            }
            (FrameType::Unset, Some(pending)) if pending == ids => {
                self.gather(frame.payload)?;
                if !fin {
                    return Ok(0);
                }
                self.reassembly.ids = None;
                self.stats.reassembled += 1;
                let payload = self.reassembly.buf.as_slice();
                answer(
                    ids,
                    payload,
                    out,
                    self.max_frame_size,
                    handler,
                    &mut self.stats,
                )
            }
            (FrameType::Unset, None) => Err(Error::UnexpectedFrame {
                frame: FrameType::Unset,
                after_hello: true,
            }),
            _ => Err(Error::InterlacedFrames),
        }
    }

    fn gather(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.reassembly
            .buf
            .extend_from_slice(payload)
            .map_err(|()| Error::ReassemblyOverflow { capacity: FRAG })
    }
}

/// Validates a NOTIFY's messages, lets the handler fill its ACK, and completes the ACK.
fn answer<H: Handler>(
    (stream_id, frame_id): (StreamId, FrameId),
    payload: &[u8],
    out: &mut [u8],
    max_frame_size: u32,
    handler: &mut H,
    stats: &mut Stats,
) -> Result<usize, Error> {
    let notify = Notify::parse(stream_id, frame_id, payload).map_err(|cause| Error::Malformed {
        frame: FrameType::Notify,
        cause,
    })?;
    let mut ack = AckWriter::new(out, stream_id, frame_id, max_frame_size)
        .map_err(|_| Error::OutputTooSmall)?;
    handler.on_notify(&notify, &mut ack);
    let actions = ack.len();
    let n = ack.finish();
    stats.acks += 1;
    debug!(
        "-> ACK stream={} frame={} actions={} length={}",
        stream_id,
        frame_id,
        actions as u32,
        (n - LENGTH_SIZE) as u32
    );
    Ok(n)
}

/// A fixed buffer for an AGENT-DISCONNECT message; text beyond its capacity is cut.
struct MessageBuf {
    buf: [u8; 128],
    len: usize,
}

impl Default for MessageBuf {
    fn default() -> Self {
        MessageBuf {
            buf: [0; 128],
            len: 0,
        }
    }
}

impl MessageBuf {
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl core::fmt::Write for MessageBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}
