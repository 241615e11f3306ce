//! Waking an accept loop at a stop, without dropping a connection that queued before the wake.
//!
//! A runtime blocked in `accept` learns of a stop from a connection of its own to its listener.
//! That connection joins the end of the accept queue: what the loop accepts first may be a
//! HAProxy connection that arrived just before. Such a connection is served (and drained with
//! the others), and the loop ends at its own wake-up connection, which it recognises by the
//! port it was made from. Connections after the wake-up stay queued: on a socket a service
//! manager keeps open across a restart ([`crate::inherit`]), the next process accepts them.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use crate::listen::wake_address;

/// How long a wake-up connection may take to be queued.
const WAKE_TIMEOUT: Duration = Duration::from_millis(200);

/// The wake-up connections of one server, by the address they come from.
#[derive(Debug, Default)]
pub struct AcceptWake {
    from: Mutex<Vec<SocketAddr>>,
}

impl AcceptWake {
    pub fn new() -> AcceptWake {
        AcceptWake::default()
    }

    /// Connects to the listener bound to `listener` from a port chosen (and recorded) first, so
    /// that the accept loop knows this connection when it sees it. Keep the stream until the
    /// loops have ended.
    pub fn wake(&self, listener: SocketAddr) -> io::Result<TcpStream> {
        let target = wake_address(listener);
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(target),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.bind(&SocketAddr::new(target.ip(), 0).into())?;
        let from = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("wake-up socket without an address"))?;
        if let Ok(mut list) = self.from.lock() {
            list.push(from);
        }
        socket.connect_timeout(&target.into(), WAKE_TIMEOUT)?;
        Ok(socket.into())
    }

    /// Whether a connection accepted from `peer` is one of this server's wake-ups. Called only
    /// once stopping (it locks).
    pub fn is_wake(&self, peer: SocketAddr) -> bool {
        self.from
            .lock()
            .map(|list| list.contains(&peer))
            .unwrap_or(true)
    }
}
