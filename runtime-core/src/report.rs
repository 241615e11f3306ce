//! How a connection's end is logged, the same way by both runtimes: normal ends at debug level,
//! peer faults as rate-limited warnings.

use std::io;

use spop_core::Close;

use crate::address::Peer;
use crate::limited_warn;
use crate::limiter::LogLimiter;
use crate::session::Session;

/// Warnings about bad peers: at most this many lines a second.
static PEER_WARNINGS: LogLimiter = LogLimiter::new(20);

/// How a connection ended, for its log line.
#[derive(Debug)]
pub enum End {
    /// The engine closed it (handshake fault, HAProxy's DISCONNECT, timeout, shutdown...).
    Closed(Close),
    /// The peer closed it.
    Eof,
    /// The peer did not read its ACKs within the write timeout.
    WriteStalled,
    /// A read or write failed (reset, broken pipe).
    Io(io::Error),
    /// The application's handler panicked; only this connection was closed.
    HandlerPanicked,
    /// At the stop, handed to the next agent through the service manager ([`crate::handoff`]):
    /// closed here without a word to the peer, which the next agent goes on serving.
    HandedOver,
}

/// Logs the end of connection `id` from `peer`: a debug line for normal ends, a rate-limited
/// warning for a protocol fault or a peer that vanished in the middle of a frame.
pub fn report<const FRAG: usize>(peer: &Peer, id: u64, session: &Session<FRAG>, end: End) {
    let acks = session.engine().stats().acks;
    if let Some(probe) = session.probe() {
        probe.ended(&end, session.buffered() > 0);
    }
    match end {
        End::Closed(Close::Error(error)) => limited_warn!(
            PEER_WARNINGS,
            peer:% = peer, connection = id, status = error.status().code();
            "{peer}: connection #{id} closed with AGENT-DISCONNECT status {}: {error}",
            error.status()
        ),
        End::Closed(close) => log::debug!(
            peer:% = peer, connection = id, acks = acks;
            "{peer}: connection #{id} closed: {close} ({acks} ACKs)"
        ),
        End::Eof if session.buffered() > 0 => limited_warn!(
            PEER_WARNINGS,
            peer:% = peer, connection = id;
            "{peer}: connection #{id} closed by the peer in the middle of a frame ({} bytes pending)",
            session.buffered()
        ),
        End::Eof => log::debug!(
            peer:% = peer, connection = id, acks = acks;
            "{peer}: connection #{id} closed by the peer ({acks} ACKs)"
        ),
        End::WriteStalled => limited_warn!(
            PEER_WARNINGS,
            peer:% = peer, connection = id;
            "{peer}: connection #{id} closed: the peer did not read its ACKs within the write timeout"
        ),
        End::Io(e) => log::debug!(
            peer:% = peer, connection = id, acks = acks;
            "{peer}: connection #{id} dropped: {e} ({acks} ACKs)"
        ),
        End::HandedOver => log::debug!(
            peer:% = peer, connection = id, acks = acks;
            "{peer}: connection #{id} handed over to the next agent ({acks} ACKs)"
        ),
        End::HandlerPanicked => limited_warn!(
            PEER_WARNINGS,
            peer:% = peer, connection = id;
            "{peer}: connection #{id} closed: the handler panicked"
        ),
    }
}
