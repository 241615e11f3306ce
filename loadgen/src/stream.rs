//! A connection to the agent, TCP or Unix socket (`--connect unix:/PATH`): the handshake's
//! blocking stream, then the event loop's non-blocking one.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::event::Source;
use mio::{Interest, Registry, Token};

/// A blocking connection, for the handshake: runtime-core's TCP-or-Unix stream.
pub use runtime_core::Stream as Blocking;

/// The same socket as `blocking`, non-blocking, for the event loop.
pub fn into_nonblocking(blocking: Blocking) -> io::Result<Stream> {
    Ok(match blocking {
        Blocking::Tcp(s) => {
            s.set_nonblocking(true)?;
            Stream::Tcp(mio::net::TcpStream::from_std(s))
        }
        Blocking::Unix(s) => {
            s.set_nonblocking(true)?;
            Stream::Unix(mio::net::UnixStream::from_std(s))
        }
    })
}

/// A non-blocking connection in the event loop.
pub enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Stream {
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(registry, token, interests),
            Stream::Unix(s) => s.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(registry, token, interests),
            Stream::Unix(s) => s.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(registry),
            Stream::Unix(s) => s.deregister(registry),
        }
    }
}
