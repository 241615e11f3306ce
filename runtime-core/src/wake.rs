//! Waking an accept loop at a stop, without dropping a connection that queued before the wake.
//!
//! A runtime blocked in `accept` learns of a stop from a connection of its own to its listener.
//! That connection joins the end of the accept queue: what the loop accepts first may be a
//! HAProxy connection that arrived just before. Such a connection is served (and drained with
//! the others), and the loop ends at its own wake-up connection, which it recognises by the
//! address it was made from: a TCP port chosen before connecting, or on a Unix socket an
//! abstract name (HAProxy's Unix connections come from unnamed sockets). Connections after the
//! wake-up stay queued: on a socket a service manager keeps open across a restart
//! ([`crate::inherit`]), the next process accepts them.

use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::address::ListenAddress;
use crate::listen::wake_address;

/// How long a wake-up connection may take to be queued.
const WAKE_TIMEOUT: Duration = Duration::from_millis(200);

/// The wake-up connections of one server, by the address they come from.
#[derive(Debug, Default)]
pub struct AcceptWake {
    from: Mutex<Vec<SockAddr>>,
}

/// A wake-up connection: keep it until the accept loops have ended (closing it early could let
/// a loop accept it already reset, or not at all).
#[derive(Debug)]
pub struct Wake {
    _socket: Socket,
}

impl AcceptWake {
    pub fn new() -> AcceptWake {
        AcceptWake::default()
    }

    /// Connects to the listener at `listener` from an address chosen (and recorded) first, so
    /// that the accept loop knows this connection when it sees it.
    pub fn wake(&self, listener: &ListenAddress) -> io::Result<Wake> {
        let (socket, target) = match listener {
            ListenAddress::Tcp(addr) => {
                let target = wake_address(*addr);
                let socket = Socket::new(
                    Domain::for_address(target),
                    Type::STREAM,
                    Some(socket2::Protocol::TCP),
                )?;
                socket.bind(&SocketAddr::new(target.ip(), 0).into())?;
                (socket, SockAddr::from(target))
            }
            ListenAddress::Unix(path) => {
                let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
                #[cfg(target_os = "linux")]
                socket.bind(&unix_wake_name()?)?;
                (socket, SockAddr::unix(path)?)
            }
        };
        let from = socket.local_addr()?;
        if let Ok(mut list) = self.from.lock() {
            list.push(from);
        }
        // A Unix connect does not wait for a full queue (EAGAIN): a full queue means the loop is
        // awake anyway.
        socket.connect_timeout(&target, WAKE_TIMEOUT)?;
        Ok(Wake { _socket: socket })
    }

    /// Whether a TCP connection accepted from `peer` is one of this server's wake-ups. Called
    /// only once stopping (it locks).
    fn is_wake_from(&self, peer: SocketAddr) -> bool {
        self.from
            .lock()
            .map(|list| list.iter().any(|from| from.as_socket() == Some(peer)))
            .unwrap_or(true)
    }

    /// Whether an accepted connection, TCP or Unix, is one of this server's wake-ups (asks the
    /// kernel for its peer's address). Called only once stopping (it locks).
    #[cfg(unix)]
    pub fn is_wake(&self, connection: &impl AsFd) -> bool {
        let Ok(peer) = socket2::SockRef::from(connection).peer_addr() else {
            // Already reset: not a wake-up, which is kept open until the loops end.
            return false;
        };
        if let Some(peer) = peer.as_socket() {
            return self.is_wake_from(peer);
        }
        if cfg!(not(target_os = "linux")) {
            // Without abstract names the wake-up is unnamed like every client: the first
            // connection once stopping ends the loop.
            return true;
        }
        let Some(name) = peer.as_abstract_namespace() else {
            // An unnamed (or path-named) Unix client: HAProxy's, never a wake-up.
            return false;
        };
        self.from
            .lock()
            .map(|list| {
                list.iter()
                    .any(|from| from.as_abstract_namespace() == Some(name))
            })
            .unwrap_or(true)
    }
}

/// An abstract Unix socket name no other wake-up has (this process, a counter): the address a
/// Unix wake-up connects from, so that the accept loop can tell it from HAProxy's unnamed
/// connections.
#[cfg(target_os = "linux")]
fn unix_wake_name() -> io::Result<SockAddr> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    SockAddr::unix(format!("\0spoa-wake-{}-{n}", std::process::id()))
}
