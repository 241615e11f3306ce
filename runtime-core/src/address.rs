//! Where an agent listens, and who is on the other end of a connection: the same words for
//! every runtime's listeners, admission and log lines.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The longest path a Unix socket can be bound to: `sun_path` holds 108 bytes on Linux, the
/// last one the terminating NUL.
pub const UNIX_PATH_MAX: usize = 107;

/// Where to listen: a TCP address, or a Unix socket file (reached by HAProxy as
/// `server x unix@/path`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddress {
    /// An IP address and port.
    Tcp(SocketAddr),
    /// The path of a socket file, absolute (see [`ListenAddress::unix`]).
    Unix(PathBuf),
}

impl ListenAddress {
    /// A Unix socket address, if `path` can be one: absolute (the agent may be started from any
    /// directory, and HAProxy must name the same file), without a NUL byte, and short enough for
    /// `sun_path` ([`UNIX_PATH_MAX`] bytes).
    pub fn unix(path: impl Into<PathBuf>) -> Result<ListenAddress, String> {
        let path = path.into();
        let shown = path.display();
        if !path.is_absolute() {
            return Err(format!(
                "unix socket path '{shown}' is relative: give an absolute path (/run/spoa/spoa.sock)"
            ));
        }
        let bytes = path.as_os_str().len();
        if bytes > UNIX_PATH_MAX {
            return Err(format!(
                "unix socket path '{shown}' is {bytes} bytes long: at most {UNIX_PATH_MAX} fit in a socket address"
            ));
        }
        if path.to_string_lossy().contains('\0') {
            return Err(format!("unix socket path '{shown}' contains a NUL byte"));
        }
        if path.file_name().is_none() {
            return Err(format!("unix socket path '{shown}' names no file"));
        }
        Ok(ListenAddress::Unix(path))
    }

    /// The TCP address, if this is one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            ListenAddress::Tcp(addr) => Some(*addr),
            ListenAddress::Unix(_) => None,
        }
    }
}

impl From<SocketAddr> for ListenAddress {
    fn from(addr: SocketAddr) -> Self {
        ListenAddress::Tcp(addr)
    }
}

/// As `-a` takes it: `127.0.0.1:12345`, `[::1]:12345`, `unix:/run/spoa/spoa.sock`.
impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Tcp(addr) => addr.fmt(f),
            ListenAddress::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Who is on the other end of a connection, for admission and log lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client, by its address.
    Ip(SocketAddr),
    /// A client of a Unix socket. It has no address (HAProxy connects from an unnamed socket),
    /// so it is named by the socket file it came through; its connection id tells connections
    /// apart. Shared by every connection of one listener: naming a peer allocates nothing.
    Unix(Arc<Path>),
}

impl Peer {
    /// The peer's IP address; `None` for a Unix socket client.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Ip(addr) => Some(addr.ip()),
            Peer::Unix(_) => None,
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Self {
        Peer::Ip(addr)
    }
}

/// `192.0.2.1:40000`, or `unix:/run/spoa/spoa.sock` for a Unix socket client.
impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(addr) => addr.fmt(f),
            Peer::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unix_address_is_absolute_and_fits_in_sun_path() {
        assert_eq!(
            ListenAddress::unix("/run/spoa/spoa.sock").map(|a| a.to_string()),
            Ok("unix:/run/spoa/spoa.sock".to_string())
        );
        assert!(ListenAddress::unix("spoa.sock")
            .unwrap_err()
            .contains("relative"));
        assert!(ListenAddress::unix("").unwrap_err().contains("relative"));
        let longest = format!("/{}", "a".repeat(UNIX_PATH_MAX - 1));
        assert!(ListenAddress::unix(&longest).is_ok());
        let too_long = format!("/{}", "a".repeat(UNIX_PATH_MAX));
        assert!(ListenAddress::unix(too_long)
            .unwrap_err()
            .contains("108 bytes long"));
        assert!(ListenAddress::unix("/").is_err());
    }

    #[test]
    fn a_unix_peer_has_no_ip_and_is_named_by_its_socket() {
        let peer = Peer::Unix(Arc::from(Path::new("/run/spoa/spoa.sock")));
        assert_eq!(peer.ip(), None);
        assert_eq!(peer.to_string(), "unix:/run/spoa/spoa.sock");
        let ip = Peer::from(SocketAddr::from(([192, 0, 2, 1], 40000)));
        assert_eq!(ip.ip(), Some(IpAddr::from([192, 0, 2, 1])));
        assert_eq!(ip.to_string(), "192.0.2.1:40000");
    }
}
