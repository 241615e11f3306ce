//! One connection's buffers around a [`spop_core::Engine`], independent of how bytes move: the
//! std runtime drives it with blocking reads and writes, the uring runtime with async ones.

use std::time::{Duration, Instant};

use spop_core::frame::{peek_length, LENGTH_SIZE};
use std::sync::atomic::{AtomicBool, Ordering};

use spop_core::{Capabilities, Close, Config, ConfigError, Engine, Error, Flow, Handler};

use crate::config::ServerConfig;

/// Input buffer at start: HAProxy's frames are small; it grows to fit any frame the engine accepts.
const INITIAL_INPUT: usize = 4096;
/// Output buffer when the handler bounds its ACKs: room for dozens of ACKs per write.
const BOUNDED_OUTPUT: usize = 4096;

/// Whether the larger-offer warning was logged: once per process is enough to point at the
/// setting, and HAProxy opens many connections with the same offer.
static OFFER_WARNED: AtomicBool = AtomicBool::new(false);

/// HAProxy offered a larger max-frame-size than the agent takes: NOTIFYs between the two sizes
/// need fragmentation, and HAProxy 2.6 turns an agent without it into a status-10 reconnect loop.
fn warn_if_offer_exceeds_cap<const FRAG: usize>(engine: &Engine<FRAG>) {
    let (offered, used) = (engine.peer_max_frame_size(), engine.max_frame_size());
    if offered > used
        && !engine
            .config()
            .capabilities
            .contains(Capabilities::FRAGMENTATION)
        && !OFFER_WARNED.swap(true, Ordering::Relaxed)
    {
        log::warn!(
            "HAProxy offered max-frame-size {offered}, above the agent's limit of {used}: a NOTIFY \
             larger than {used} bytes cannot be received (HAProxy 2.x then disconnects with status \
             10 and reconnects); raise the agent's max-frame-size to {offered} (logged once)"
        );
    }
}

/// What the runtime does after [`Session::process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write [`Session::output`] if any, then read more.
    NeedInput,
    /// Write [`Session::output`], then call [`Session::process`] again.
    NeedOutput,
    /// Write [`Session::output`], then close.
    Close(Close),
}

/// The buffers and engine of one connection.
///
/// Input is read into [`Session::read_buf`]; [`Session::process`] hands every complete frame to the
/// engine and appends all replies to one output region, written with one write. The input buffer
/// starts small and grows only to the LENGTH of a frame the engine has already accepted, so no
/// buffer is ever sized from an unchecked length.
#[derive(Debug)]
pub struct Session<const FRAG: usize = 0> {
    engine: Engine<FRAG>,
    input: Vec<u8>,
    filled: usize,
    output: Vec<u8>,
    pending: usize,
    bounded_acks: bool,
    opened: Instant,
    frame_started: Option<Instant>,
}

impl<const FRAG: usize> Session<FRAG> {
    /// A session for a new connection; `ack_size_hint` is the handler's
    /// [`Handler::ack_size_hint`].
    pub fn new(config: Config, ack_size_hint: Option<usize>) -> Result<Self, ConfigError> {
        let engine = Engine::new(config)?;
        let bounded_acks = ack_size_hint.is_some_and(|hint| hint <= BOUNDED_OUTPUT / 4);
        let output = if bounded_acks {
            BOUNDED_OUTPUT
        } else {
            2 * (engine.max_frame_size() as usize + LENGTH_SIZE)
        };
        Ok(Session {
            engine,
            input: vec![0; INITIAL_INPUT],
            filled: 0,
            output: vec![0; output],
            pending: 0,
            bounded_acks,
            opened: Instant::now(),
            frame_started: None,
        })
    }

    /// The protocol state.
    pub fn engine(&self) -> &Engine<FRAG> {
        &self.engine
    }

    /// Free input space to read into; never empty while the connection is open.
    pub fn read_buf(&mut self) -> &mut [u8] {
        self.input.get_mut(self.filled..).unwrap_or_default()
    }

    /// Records that `n` bytes were read into [`Session::read_buf`].
    pub fn commit_read(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.input.len());
    }

    /// Whether part of a frame (or of a fragmented NOTIFY) is held: a frame timeout applies.
    pub fn is_mid_frame(&self) -> bool {
        self.filled > 0 || self.engine.is_reassembling()
    }

    /// How long the next read may wait: what is left of the handshake's time, then of the frame
    /// under way; `None` between frames, since HAProxy keeps idle connections open in a pool.
    /// When it passes, the runtime calls [`Session::abort`] with [`Error::Timeout`].
    pub fn read_timeout(&mut self, config: &ServerConfig) -> Option<Duration> {
        let deadline = if self.engine.is_handshaking() {
            config.hello_timeout.map(|t| self.opened + t)
        } else if self.is_mid_frame() {
            let started = *self.frame_started.get_or_insert_with(Instant::now);
            config.frame_timeout.map(|t| started + t)
        } else {
            self.frame_started = None;
            None
        };
        deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        })
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn buffered(&self) -> usize {
        self.filled
    }

    /// Handles every complete frame read so far, as far as the output has room.
    pub fn process<H: Handler>(&mut self, handler: &mut H) -> Step {
        let input = self.input.get(..self.filled).unwrap_or_default();
        let out = self.output.get_mut(self.pending..).unwrap_or_default();
        let handshaking = self.engine.is_handshaking();
        let progress = self.engine.feed(input, out, handler);
        if handshaking && !self.engine.is_handshaking() {
            warn_if_offer_exceeds_cap(&self.engine);
        }
        self.pending += progress.written;
        if progress.consumed > 0 {
            self.input.copy_within(progress.consumed..self.filled, 0);
            self.filled -= progress.consumed;
            // The frame timeout is per frame: a frame was consumed, so what is left started
            // with the last read (a busy peer's reads rarely end on a frame boundary).
            self.frame_started = None;
        }
        match progress.flow {
            Flow::NeedInput => {
                self.fit_buffers();
                Step::NeedInput
            }
            Flow::NeedOutput => Step::NeedOutput,
            Flow::Close(close) => Step::Close(close),
        }
    }

    /// Grows the input to hold the frame under way (its LENGTH already passed the engine's check)
    /// and, once the handshake fixed max-frame-size, the output to hold two of the largest replies.
    fn fit_buffers(&mut self) {
        let input = self.input.get(..self.filled).unwrap_or_default();
        if let Some(length) = peek_length(input) {
            let needed = LENGTH_SIZE + length as usize;
            if needed > self.input.len() {
                self.input.resize(needed, 0);
            }
        }
        if !self.bounded_acks && !self.engine.is_handshaking() {
            let wanted = 2 * (self.engine.max_frame_size() as usize + LENGTH_SIZE);
            if wanted != self.output.len() && self.pending == 0 {
                self.output = vec![0; wanted];
            }
        }
    }

    /// Replies waiting to be written, whole frames only.
    pub fn output(&self) -> &[u8] {
        self.output.get(..self.pending).unwrap_or_default()
    }

    /// Records that the first `n` bytes of [`Session::output`] were written.
    pub fn consume_output(&mut self, n: usize) {
        let n = n.min(self.pending);
        self.output.copy_within(n..self.pending, 0);
        self.pending -= n;
    }

    /// Ends the connection for `error` (a timeout): AGENT-DISCONNECT is appended to the output.
    pub fn abort(&mut self, error: Error) {
        let out = self.output.get_mut(self.pending..).unwrap_or_default();
        self.pending += self.engine.abort(error, out);
    }

    /// Ends the connection because the agent stops: AGENT-DISCONNECT 0 is appended to the
    /// output (nothing once the connection is closed or before the handshake).
    pub fn shutdown(&mut self) {
        if self.engine.is_handshaking() {
            return;
        }
        let out = self.output.get_mut(self.pending..).unwrap_or_default();
        self.pending += self.engine.shutdown(out);
    }
}
