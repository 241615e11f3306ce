//! One connection, independent of how its bytes move: buffers around a [`spop_core::Engine`],
//! the connection's deadlines, and what every I/O outcome means.
//!
//! A runtime drives it in a loop (the shape of quinn-proto's connection: no I/O and no clock
//! inside):
//!
//! ```text
//!   loop match session.next(handler, now) {
//!       Next::Read     => read into session.read_buf() until session.poll_timeout(),
//!                         then session.on_read(result, now)
//!       Next::Write    => write session.output() until session.poll_timeout(),
//!                         then session.on_write(result, now)
//!       Next::Close(e) => close the socket, report(peer, id, &session, e)
//!   }
//! ```
//!
//! Time is always given, never read: every deadline decision is a pure function of the
//! instants the runtime passes in, so it is tested without sleeping (`tests/session.rs`).

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use std::{fmt, io};

use spop_core::frame::{peek_length, LENGTH_SIZE};
use spop_core::{
    Capabilities, Close, ConfigError, Engine, Error, Flow, Handler, Handshake, ResumeError,
};

use crate::config::ServerConfig;
use crate::metrics::Probe;
use crate::report::End;

/// Input buffer at start: HAProxy's frames are small; it grows to fit any frame the engine accepts.
const INITIAL_INPUT: usize = 4096;
/// Output buffer when the handler bounds its ACKs: room for dozens of ACKs per write.
const BOUNDED_OUTPUT: usize = 4096;

/// What the connection needs from its runtime next.
#[derive(Debug)]
pub enum Next {
    /// Read into [`Session::read_buf`], waiting at most until [`Session::poll_timeout`]; report
    /// with [`Session::on_read`].
    Read,
    /// Write [`Session::output`] (whole or in part), waiting at most until
    /// [`Session::poll_timeout`]; report with [`Session::on_write`].
    Write,
    /// Close the socket: the connection is over, for this reason (pass it to
    /// [`report`](crate::report())). Everything the protocol asked to send was written.
    Close(End),
}

/// The three deadlines of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From the connection's start to the end of HAPROXY-HELLO.
    pub hello: Option<Duration>,
    /// From the first byte of a frame to its last: per frame, so a busy peer whose reads rarely
    /// end on a frame boundary is never cut.
    pub frame: Option<Duration>,
    /// Without progress while replies wait to be written (a peer that does not read).
    pub write: Option<Duration>,
}

impl From<&ServerConfig> for Timeouts {
    fn from(config: &ServerConfig) -> Self {
        Timeouts {
            hello: config.hello_timeout,
            frame: config.frame_timeout,
            write: config.write_timeout,
        }
    }
}

/// The buffers, engine and deadlines of one connection.
///
/// Input is read into [`Session::read_buf`]; every complete frame goes through the engine and
/// all replies are appended to one output region, written with as few writes as the socket
/// allows. The input buffer starts small and grows only to the LENGTH of a frame the engine has
/// already accepted, so no buffer is ever sized from an unchecked length.
#[derive(Debug)]
pub struct Session<const FRAG: usize = 0> {
    engine: Engine<FRAG>,
    input: Vec<u8>,
    filled: usize,
    output: Vec<u8>,
    pending: usize,
    bounded_acks: bool,
    timeouts: Timeouts,
    opened: Instant,
    /// When the last bytes arrived.
    last_read: Instant,
    /// When the frame under way started arriving; `None` between frames.
    frame_started: Option<Instant>,
    /// When the output last made progress, while replies are pending.
    write_since: Option<Instant>,
    /// Input arrived (or output room freed) since the engine last asked for more input.
    unprocessed: bool,
    /// The agent is stopping: the peer's end-of-input is answered with AGENT-DISCONNECT 0.
    draining: bool,
    /// How the connection ends, once decided; reported after the output is written.
    end: Option<End>,
    /// This connection's metrics cell, when metrics are on.
    probe: Option<Probe>,
    /// When the read that completed the first NOTIFY of the unwritten ACKs happened: the start
    /// of the NOTIFY-read to ACK-written time.
    batch_read: Option<Instant>,
    /// Replies written behind could not be sent ([`Session::on_written_behind_failed`]).
    behind_failed: bool,
}

impl<const FRAG: usize> Session<FRAG> {
    /// A session for a connection opened at `now`; `ack_size_hint` is the handler's
    /// [`Handler::ack_size_hint`].
    pub fn new(
        config: &ServerConfig,
        ack_size_hint: Option<usize>,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        Ok(Session::with_engine(
            Engine::new(config.engine)?,
            config,
            ack_size_hint,
            now,
        ))
    }

    /// A session for a connection another process handshook and handed over (see
    /// [`crate::handoff`]): established from the start, no HELLO expected.
    pub fn resume(
        config: &ServerConfig,
        ack_size_hint: Option<usize>,
        handshake: Handshake,
        now: Instant,
    ) -> Result<Self, ResumeError> {
        let engine = Engine::resume(config.engine, handshake)?;
        Ok(Session::with_engine(engine, config, ack_size_hint, now))
    }

    fn with_engine(
        engine: Engine<FRAG>,
        config: &ServerConfig,
        ack_size_hint: Option<usize>,
        now: Instant,
    ) -> Self {
        let bounded_acks = ack_size_hint.is_some_and(|hint| hint <= BOUNDED_OUTPUT / 4);
        let output = if bounded_acks {
            BOUNDED_OUTPUT
        } else {
            2 * engine.input_capacity()
        };
        Session {
            engine,
            input: vec![0; INITIAL_INPUT],
            filled: 0,
            output: vec![0; output],
            pending: 0,
            bounded_acks,
            timeouts: Timeouts::from(config),
            opened: now,
            last_read: now,
            frame_started: None,
            write_since: None,
            unprocessed: false,
            draining: false,
            end: None,
            probe: config.metrics.open(),
            batch_read: None,
            behind_failed: false,
        }
    }

    /// The protocol state.
    pub fn engine(&self) -> &Engine<FRAG> {
        &self.engine
    }

    /// This connection's metrics cell, when metrics are on.
    pub(crate) fn probe(&self) -> Option<&Probe> {
        self.probe.as_ref()
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn buffered(&self) -> usize {
        self.filled
    }

    /// Whether part of a frame (or of a fragmented NOTIFY) is held: a frame timeout applies.
    pub fn is_mid_frame(&self) -> bool {
        self.filled > 0 || self.engine.is_reassembling()
    }

    /// What the handshake fixed, for handing the connection to another process; `None` before
    /// HAPROXY-HELLO and once the connection is closing.
    pub fn handshake(&self) -> Option<Handshake> {
        self.engine.handshake().filter(|_| self.end.is_none())
    }

    /// Whether the connection is at a frame boundary another process can take it over from:
    /// established, every frame read so far answered and its reply written, no byte of a next
    /// frame (or fragment) held, nothing decided about its end. The runtime must also know that
    /// no read of its own is still under way on the socket.
    pub fn can_hand_over(&self) -> bool {
        self.handshake().is_some() && self.pending == 0 && !self.unprocessed && !self.is_mid_frame()
    }

    /// What to do next. Handles every complete frame received so far (as far as the output has
    /// room), so one read's replies go out together. After [`Next::Close`] the session is over.
    pub fn next<H: Handler>(&mut self, handler: &mut H, now: Instant) -> Next {
        loop {
            if self.pending > 0 {
                self.write_since.get_or_insert(now);
                return Next::Write;
            }
            self.write_since = None;
            if let Some(end) = self.end.take() {
                return Next::Close(end);
            }
            if !self.unprocessed {
                return Next::Read;
            }
            self.process(handler);
        }
    }

    /// Free input space to read into; never empty when [`Session::next`] says [`Next::Read`].
    pub fn read_buf(&mut self) -> &mut [u8] {
        self.input.get_mut(self.filled..).unwrap_or_default()
    }

    /// What a read into [`Session::read_buf`] gave: bytes, the peer's end of input (`Ok(0)`), a
    /// timeout (`WouldBlock` / `TimedOut`: the deadline is checked against `now`), or a failure.
    pub fn on_read(&mut self, result: io::Result<usize>, now: Instant) {
        match result {
            Ok(0) if self.draining => {
                self.shutdown();
                self.close(End::Closed(Close::Shutdown));
            }
            Ok(0) => self.close(End::Eof),
            Ok(n) => {
                self.filled = (self.filled + n).min(self.input.len());
                self.last_read = now;
                self.frame_started.get_or_insert(now);
                self.unprocessed = true;
            }
            Err(e) => self.on_error(e, now),
        }
    }

    /// Replies waiting to be written, whole frames only.
    pub fn output(&self) -> &[u8] {
        self.output.get(..self.pending).unwrap_or_default()
    }

    /// What a write of [`Session::output`] gave: how many bytes went out, a timeout, or a failure.
    pub fn on_write(&mut self, result: io::Result<usize>, now: Instant) {
        match result {
            Ok(0) => self.fail(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let n = n.min(self.pending);
                self.output.copy_within(n..self.pending, 0);
                self.pending -= n;
                self.write_since = Some(now);
                if self.pending == 0 {
                    if let (Some(probe), Some(read)) = (&self.probe, self.batch_read.take()) {
                        probe.cell.observe(now.saturating_duration_since(read));
                    }
                }
            }
            Err(e) => self.on_error(e, now),
        }
    }

    /// Replies that [`Session::on_write`] already counted as written could not be sent after
    /// all: the runtime writes behind (the bytes left with a later read, see the uring
    /// runtime) and the send failed. A send the write deadline cut short (`TimedOut`) is a
    /// peer that did not read its replies in time, closed like one whose write timed out.
    pub fn on_written_behind_failed(&mut self, error: io::Error) {
        self.pending = 0;
        self.behind_failed = true;
        match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => self.close(End::WriteStalled),
            _ => self.fail(error),
        }
    }

    /// Whether replies written behind failed to go out: the runtime then has nothing left to
    /// flush at the close.
    pub fn written_behind_failed(&self) -> bool {
        self.behind_failed
    }

    /// The instant the current wait must end: the write deadline while replies are pending,
    /// else the handshake's, else the frame's under way; `None` between frames, since HAProxy
    /// keeps idle connections open in a pool. When it has passed, call
    /// [`Session::handle_timeout`] (or report the read or write as timed out).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.pending > 0 {
            let since = self.write_since?;
            return self.timeouts.write.map(|t| since + t);
        }
        if self.engine.is_handshaking() {
            self.timeouts.hello.map(|t| self.opened + t)
        } else {
            let started = self.frame_started?;
            self.timeouts.frame.map(|t| started + t)
        }
    }

    /// Ends the connection if its deadline has passed at `now`: a handshake or a frame that did
    /// not arrive in time gets AGENT-DISCONNECT 2 ("timed out waiting for the peer"); a peer
    /// that did not read its replies in time is closed without one (it would not read it).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.end.is_some() && self.pending == 0 {
            return;
        }
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {}
            _ => return,
        }
        if self.pending > 0 {
            self.pending = 0;
            self.close(End::WriteStalled);
        } else {
            let out = self.output.get_mut(..).unwrap_or_default();
            self.pending = self.engine.abort(Error::Timeout, out);
            self.close(End::Closed(Close::Error(Error::Timeout)));
        }
    }

    /// The agent is stopping: what was received is still answered, and the peer's end of input
    /// (the runtime shuts the read side) is answered with AGENT-DISCONNECT 0.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// The connection failed outside the protocol (the runtime's own error): no more I/O.
    pub fn fail(&mut self, error: io::Error) {
        self.pending = 0;
        self.close(End::Io(error));
    }

    fn on_error(&mut self, error: io::Error, now: Instant) {
        match error.kind() {
            io::ErrorKind::Interrupted => {}
            // A socket timeout: whether the connection's deadline really passed is decided
            // here, against the session's own clock, not by the socket's rounding.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.handle_timeout(now),
            _ => self.fail(error),
        }
    }

    /// Records how the connection ends; the first reason stands.
    fn close(&mut self, end: End) {
        self.unprocessed = false;
        self.end.get_or_insert(end);
    }

    /// Feeds every complete frame to the engine, as far as the output has room.
    fn process<H: Handler>(&mut self, handler: &mut H) {
        let input = self.input.get(..self.filled).unwrap_or_default();
        let out = self.output.get_mut(self.pending..).unwrap_or_default();
        let engine = &mut self.engine;
        let handshaking = engine.is_handshaking();
        let acks_before = engine.stats().acks;
        // A panicking handler ends this connection only, not the thread or executor serving
        // others; the output of the interrupted batch is dropped.
        let Ok(progress) =
            panic::catch_unwind(AssertUnwindSafe(|| engine.feed(input, out, handler)))
        else {
            self.pending = 0;
            self.close(End::HandlerPanicked);
            return;
        };
        if handshaking && !self.engine.is_handshaking() {
            warn_if_offer_exceeds_cap(&self.engine);
        }
        if let Some(probe) = &self.probe {
            let stats = self.engine.stats();
            if stats.acks > acks_before {
                self.batch_read.get_or_insert(self.last_read);
            }
            probe.cell.publish(stats);
        }
        self.pending += progress.written;
        if progress.consumed > 0 {
            self.input.copy_within(progress.consumed..self.filled, 0);
            self.filled -= progress.consumed;
            // The frame timeout is per frame: a frame was consumed, so what is left (part of the
            // next frame, or of a fragmented NOTIFY) started arriving with the last read.
            self.frame_started = self.is_mid_frame().then_some(self.last_read);
        }
        match progress.flow {
            Flow::NeedInput => {
                self.unprocessed = false;
                self.fit_buffers();
            }
            // Frames are left: process again once the output is written.
            Flow::NeedOutput => {}
            Flow::Close(close) => self.close(End::Closed(close)),
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
            let wanted = 2 * self.engine.input_capacity();
            if wanted != self.output.len() && self.pending == 0 {
                self.output = vec![0; wanted];
            }
        }
    }

    /// Appends AGENT-DISCONNECT 0 (nothing before the handshake: HAProxy has not spoken yet).
    fn shutdown(&mut self) {
        if self.engine.is_handshaking() {
            return;
        }
        let out = self.output.get_mut(self.pending..).unwrap_or_default();
        self.pending += self.engine.shutdown(out);
    }
}

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

/// Reassembly capacity when fragmentation is on: HAProxy 2.x fragments a NOTIFY only when it is
/// larger than the agent's max-frame-size, and never beyond its `tune.bufsize`.
pub const FRAGMENT_CAPACITY: usize = 128 * 1024;

/// A connection's serving code, generic over the engine's reassembly capacity: [`open`] picks
/// the capacity the configuration needs, so a connection without fragmentation never carries
/// (or zeroes) a reassembly buffer.
pub trait Serve {
    /// What serving gives (a runtime's connection outcome, a spawned task...).
    type Output;

    /// Serves the connection with its session.
    fn serve<const FRAG: usize>(self, session: Box<Session<FRAG>>) -> Self::Output;
}

/// Why a connection's session could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The configuration is refused ([`Session::new`]).
    Config(ConfigError),
    /// The handed-over connection's handshake does not fit this agent's configuration
    /// ([`Session::resume`]).
    Resume(ResumeError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Config(e) => e.fmt(f),
            OpenError::Resume(e) => write!(f, "cannot resume the handed-over connection: {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Makes the session `config` calls for (with a [`FRAGMENT_CAPACITY`] reassembly buffer when
/// fragmentation is announced) and hands it to `serve`. With `handshake`, the connection was
/// handshook by another process and handed over (see [`crate::handoff`]): the session resumes
/// from it instead of waiting for HAPROXY-HELLO.
pub fn open<S: Serve>(
    config: &ServerConfig,
    ack_size_hint: Option<usize>,
    handshake: Option<Handshake>,
    now: Instant,
    serve: S,
) -> Result<S::Output, OpenError> {
    if config
        .engine
        .capabilities
        .contains(Capabilities::FRAGMENTATION)
    {
        Ok(serve.serve(boxed::<FRAGMENT_CAPACITY>(
            config,
            ack_size_hint,
            handshake,
            now,
        )?))
    } else {
        Ok(serve.serve(boxed::<0>(config, ack_size_hint, handshake, now)?))
    }
}

/// On the heap, built out of line: with fragmentation the engine holds its reassembly buffer
/// inline, and that temporary must not sit in the caller's frame (or in a future).
#[inline(never)]
fn boxed<const FRAG: usize>(
    config: &ServerConfig,
    ack_size_hint: Option<usize>,
    handshake: Option<Handshake>,
    now: Instant,
) -> Result<Box<Session<FRAG>>, OpenError> {
    match handshake {
        None => Session::new(config, ack_size_hint, now).map_err(OpenError::Config),
        Some(handshake) => {
            Session::resume(config, ack_size_hint, handshake, now).map_err(OpenError::Resume)
        }
    }
    .map(Box::new)
}

/// A socket's timeout kept in step with a session's deadline, for runtimes whose sockets take a
/// timeout per operation rather than a deadline. Setting one is a system call (std) or a timer
/// (glommio), so it is set again only when that matters: when a deadline appears or goes away,
/// or when the one set would overrun the deadline by more than a tenth of itself. A timeout that
/// fires early is harmless (the session checks its deadline and the runtime waits again), so the
/// usual case, a new frame every read with its clock restarted, costs no call at all; a stuck
/// frame is cut at most a tenth of its timeout late.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketTimeout(Option<Duration>);

impl SocketTimeout {
    /// The timeout to set on the socket for `deadline` at `now` (at least 1 ms: a zero timeout
    /// means none), or `None` when the one set last is still good enough.
    pub fn update(&mut self, deadline: Option<Instant>, now: Instant) -> Option<Option<Duration>> {
        let wanted = deadline.map(|d| {
            d.saturating_duration_since(now)
                .max(Duration::from_millis(1))
        });
        let keep = match (self.0, wanted) {
            (None, None) => true,
            (Some(set), Some(wanted)) => wanted + set / 10 >= set,
            _ => false,
        };
        (!keep).then(|| {
            self.0 = wanted;
            wanted
        })
    }
}
