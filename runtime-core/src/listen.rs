//! Listening sockets from listen addresses, the same for every runtime, and the log lines of
//! accepting.

use std::io;
use std::net::{SocketAddr, TcpListener};
#[cfg(unix)]
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;

use crate::address::{ListenAddress, Peer};
use crate::config::{Refusal, UnixPermissions};
use crate::limited_warn;
use crate::limiter::LogLimiter;
#[cfg(unix)]
use crate::socket_file::{listen_unix, SocketFile};

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

/// A listening socket, as a runtime takes it over.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix socket listener; its file belongs to [`Listeners::files`].
    #[cfg(unix)]
    Unix(UnixListener),
}

impl Listener {
    /// Where it listens (with the real port when 0 was asked).
    pub fn address(&self) -> io::Result<ListenAddress> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().map(ListenAddress::Tcp),
            #[cfg(unix)]
            Listener::Unix(listener) => {
                let addr = listener.local_addr()?;
                let path = addr.as_pathname().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "unix listener without a path")
                })?;
                Ok(ListenAddress::Unix(path.to_path_buf()))
            }
        }
    }

    /// How this listener's clients are named when they have no address of their own: a Unix
    /// socket's clients, by its file (`unix:(unnamed)` should its path be unknown); `None` for
    /// TCP, whose clients are named by their address. Made once per listener, cloned per
    /// connection.
    pub fn unix_peer(&self) -> Option<Peer> {
        match self {
            Listener::Tcp(_) => None,
            #[cfg(unix)]
            Listener::Unix(_) => {
                let path = match self.address() {
                    Ok(ListenAddress::Unix(path)) => path,
                    _ => "(unnamed)".into(),
                };
                Some(Peer::Unix(Arc::from(path.as_path())))
            }
        }
    }
}

/// Every listener of a server, and the socket files to remove when it stops.
#[derive(Debug, Default)]
pub struct Listeners {
    /// The sockets, in the order of the addresses.
    pub sockets: Vec<Listener>,
    /// The Unix socket files created: each is removed when dropped, so keep them until the
    /// server has stopped.
    #[cfg(unix)]
    pub files: Vec<SocketFile>,
}

impl Listeners {
    /// Listeners made elsewhere (passed by a service manager: see [`crate::inherit`]), with no
    /// socket file to remove: whoever made a Unix one owns its file.
    pub fn adopted(sockets: Vec<Listener>) -> Listeners {
        Listeners {
            sockets,
            ..Listeners::default()
        }
    }

    /// Where the listeners listen.
    pub fn addresses(&self) -> Vec<ListenAddress> {
        self.sockets
            .iter()
            .filter_map(|l| l.address().ok())
            .collect()
    }
}

/// Binds every address, saying which one failed. A Unix socket's file gets `unix` permissions
/// (see [`listen_unix`] for a file already there); files created before a failure are removed.
pub fn listen_all(
    addresses: &[ListenAddress],
    #[cfg_attr(not(unix), allow(unused_variables))] unix: &UnixPermissions,
) -> io::Result<Listeners> {
    if addresses.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no listen address",
        ));
    }
    let mut listeners = Listeners::default();
    for address in addresses {
        let failed =
            |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {address}: {e}"));
        match address {
            ListenAddress::Tcp(addr) => {
                let socket = listen(*addr).map_err(|e| failed(in_use_by_whom(e)))?;
                listeners.sockets.push(Listener::Tcp(socket));
            }
            #[cfg(unix)]
            ListenAddress::Unix(path) => {
                let (listener, file) = listen_unix(path, unix).map_err(failed)?;
                listeners.sockets.push(Listener::Unix(listener));
                listeners.files.push(file);
            }
            #[cfg(not(unix))]
            ListenAddress::Unix(_) => {
                return Err(failed(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "Unix sockets need a Unix system",
                )))
            }
        }
    }
    Ok(listeners)
}

/// A TCP address in use says who holds it: the OS's "Address already in use" alone leaves the
/// operator guessing, and the usual cause is another agent started on the same port.
fn in_use_by_whom(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::AddrInUse {
        io::Error::new(
            e.kind(),
            format!("{e}: another process (another agent?) listens there"),
        )
    } else {
        e
    }
}

/// Where to connect to reach a listener bound to `addr` (a wildcard address is reached on
/// loopback): where [`crate::AcceptWake`] connects.
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
pub fn log_refusal(peer: &Peer, refusal: Refusal) {
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
