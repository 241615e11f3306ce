//! Listening sockets, the same for every runtime, and the log lines of accepting.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crate::config::Refusal;
use crate::limited_warn;
use crate::limiter::LogLimiter;

/// The accept queue asked of the kernel (capped by `net.core.somaxconn`). std's own `bind` asks
/// for 128, which a HAProxy reload overflows: on reload every SPOE connection reopens at once,
/// and connections beyond the queue wait for SYN-ACK retransmits (1 s, 2 s, 4 s...).
pub const LISTEN_BACKLOG: i32 = 4096;

/// How long an accept loop waits after a failed accept (EMFILE, ENFILE, ENOBUFS) before trying
/// again: retrying at once would spin on a full descriptor table.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Warnings about accept failures and refused connections.
static ACCEPT_WARNINGS: LogLimiter = LogLimiter::new(5);

/// A listening socket with a deep accept queue, SO_REUSEADDR (restart while old connections are
/// in TIME_WAIT), and IPv6 sockets v6-only so `0.0.0.0` and `::` can share a port.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Binds every address, saying which one failed.
pub fn listen_all(addresses: &[SocketAddr]) -> io::Result<Vec<TcpListener>> {
    if addresses.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no listen address",
        ));
    }
    addresses
        .iter()
        .map(|addr| {
            listen(*addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
        })
        .collect()
}

/// Where to connect to reach a listener bound to `addr` (a wildcard address is reached on
/// loopback): how a runtime wakes its own accept loops at shutdown.
pub fn wake_address(addr: SocketAddr) -> SocketAddr {
    let mut target = addr;
    if addr.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    target
}

/// Logs (rate-limited) a connection closed at accept.
pub fn log_refusal(peer: SocketAddr, refusal: Refusal) {
    limited_warn!(ACCEPT_WARNINGS, peer:% = peer; "{peer}: refused, {refusal}");
}

/// Logs (rate-limited) a failed accept; the caller then waits [`ACCEPT_BACKOFF`].
pub fn log_accept_failure(error: &io::Error) {
    limited_warn!(
        ACCEPT_WARNINGS,
        "accept failed: {error}; retrying in {} ms",
        ACCEPT_BACKOFF.as_millis()
    );
}

/// Logs (rate-limited) another accept-side warning.
pub fn log_accept_warning(message: std::fmt::Arguments<'_>) {
    limited_warn!(ACCEPT_WARNINGS, "{message}");
}
