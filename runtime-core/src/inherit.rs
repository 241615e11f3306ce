//! Listening sockets handed over by a service manager (systemd socket activation), instead of
//! sockets the agent binds itself.
//!
//! # Why
//!
//! A restart closes the agent's port for the time between the old process closing its listeners
//! and the new one binding them: HAProxy's connections in that window are refused and its SPOE
//! events fail. With a socket unit, systemd owns the listening socket and passes it to each
//! process it starts; across `systemctl restart` the socket stays open and connections queue in
//! its backlog until the new process accepts them.
//!
//! # The protocol (`sd_listen_fds(3)`)
//!
//! The manager passes the sockets as descriptors 3, 4, ... and sets `LISTEN_FDS` (how many),
//! `LISTEN_PID` (the process they are meant for: a child started from a shell script inherits
//! the variables but not the meaning) and optionally `LISTEN_FDNAMES` (names separated by `:`,
//! `FileDescriptorName=` in the unit). The variables are removed once read, so that a process the
//! agent might start does not take the sockets for its own, and the descriptors are marked
//! close-on-exec for the same reason.
//!
//! Beside the listening sockets the manager may pass connections a stopping agent handed over
//! ([`crate::handoff`]): a descriptor whose name starts with `spop-` is one. Each is checked
//! (a connected stream socket, a name that parses) and served as an established connection; a
//! bad one is refused with a log line and closed, and the agent serves the rest.

use std::ffi::OsString;
use std::fmt;

use crate::address::{ListenAddress, Peer};
#[cfg(unix)]
use crate::handoff::{self, Adopted};
use crate::listen::Listener;

/// The first descriptor a service manager passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: i32 = 3;

/// One inherited listener and where it listens.
#[derive(Debug)]
pub struct Inherited {
    pub listener: Listener,
    /// The descriptor it came as.
    pub fd: i32,
    /// Its `LISTEN_FDNAMES` entry (`FileDescriptorName=`, systemd's default is the socket unit's
    /// name), if the manager gave names.
    pub name: Option<String>,
    pub address: ListenAddress,
}

/// What the environment says about inherited sockets.
#[derive(Debug, PartialEq, Eq)]
pub enum Passed {
    /// No `LISTEN_FDS` (or `LISTEN_FDS=0`): the agent binds its own addresses.
    Nothing,
    /// `LISTEN_FDS` is meant for another process (`LISTEN_PID` is not this one, or missing): the
    /// agent binds its own addresses, and says why it ignored the variables.
    NotForUs { listen_pid: Option<String> },
    /// This many descriptors from [`LISTEN_FDS_START`], with their names if given.
    Sockets {
        count: i32,
        names: Option<Vec<String>>,
    },
}

/// Why inherited sockets cannot be used; the agent refuses to start with it.
#[derive(Debug, PartialEq, Eq)]
pub enum InheritError {
    /// `LISTEN_FDS` or `LISTEN_PID` is not a number.
    NotANumber {
        variable: &'static str,
        value: String,
    },
    /// `LISTEN_FDNAMES` does not name every descriptor.
    NameCount { names: usize, fds: i32 },
    /// A descriptor that is not open.
    NotOpen { fd: i32 },
    /// A descriptor that is open but not a socket (a file, a pipe).
    NotASocket { fd: i32 },
    /// A socket the agent cannot serve on: a datagram socket, an abstract Unix socket...
    Unsupported { fd: i32, what: &'static str },
    /// A stream socket that is not listening (`Accept=yes` passes connections, not listeners).
    NotListening { fd: i32 },
    /// A system call failed on the descriptor.
    Os {
        fd: i32,
        call: &'static str,
        error: String,
    },
}

impl fmt::Display for InheritError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HINT: &str = "socket activation passes listening TCP or Unix stream sockets: a \
                            .socket unit with ListenStream= (an address, or a socket file's path) \
                            and Accept=no";
        match self {
            InheritError::NotANumber { variable, value } => {
                write!(f, "{variable}={value:?} is not a number of descriptors or a process id")
            }
            InheritError::NameCount { names, fds } => write!(
                f,
                "LISTEN_FDNAMES has {names} names for LISTEN_FDS={fds} descriptors"
            ),
            InheritError::NotOpen { fd } => write!(
                f,
                "inherited descriptor {fd} (LISTEN_FDS) is not open; {HINT}"
            ),
            InheritError::NotASocket { fd } => write!(
                f,
                "inherited descriptor {fd} (LISTEN_FDS) is not a socket; {HINT}"
            ),
            InheritError::Unsupported { fd, what } => write!(
                f,
                "inherited descriptor {fd} (LISTEN_FDS) is {what}, which the agent cannot serve; {HINT}"
            ),
            InheritError::NotListening { fd } => write!(
                f,
                "inherited descriptor {fd} (LISTEN_FDS) is a stream socket that is not listening; {HINT}"
            ),
            InheritError::Os { fd, call, error } => {
                write!(f, "inherited descriptor {fd} (LISTEN_FDS): {call}: {error}")
            }
        }
    }
}

impl std::error::Error for InheritError {}

/// Reads the protocol's variables, given as they are in the environment, for the process `pid`.
pub fn passed(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    pid: u32,
) -> Result<Passed, InheritError> {
    let Some(fds) = listen_fds else {
        return Ok(Passed::Nothing);
    };
    let number = |variable: &'static str, value: &str| {
        value
            .trim()
            .parse::<u32>()
            .map_err(|_| InheritError::NotANumber {
                variable,
                value: value.to_string(),
            })
    };
    let count = number("LISTEN_FDS", fds)?;
    let for_us = match listen_pid {
        Some(listen_pid) => number("LISTEN_PID", listen_pid)? == pid,
        None => false,
    };
    if !for_us {
        return Ok(Passed::NotForUs {
            listen_pid: listen_pid.map(str::to_string),
        });
    }
    // Descriptors are ints: past i32::MAX - 3 the count cannot be real.
    let count = i32::try_from(count)
        .ok()
        .filter(|n| n.checked_add(LISTEN_FDS_START).is_some())
        .ok_or_else(|| InheritError::NotANumber {
            variable: "LISTEN_FDS",
            value: fds.to_string(),
        })?;
    if count == 0 {
        return Ok(Passed::Nothing);
    }
    let names = match listen_fdnames {
        None => None,
        Some(list) => {
            let names: Vec<String> = list.split(':').map(str::to_string).collect();
            if names.len() != count as usize {
                return Err(InheritError::NameCount {
                    names: names.len(),
                    fds: count,
                });
            }
            Some(names)
        }
    };
    Ok(Passed::Sockets { count, names })
}

/// What [`take_from_environment`] found.
#[derive(Debug)]
pub enum Takeover {
    /// No socket was passed: bind the configured addresses.
    Bind,
    /// Sockets were passed to another process (the variables were inherited from a parent that
    /// did not remove them): bind the configured addresses. Carries `LISTEN_PID`, for a log line.
    Ignored { listen_pid: Option<String> },
    /// Serve on these listeners (none when only connections were passed) and these
    /// handed-over connections.
    Sockets {
        listeners: Vec<Inherited>,
        #[cfg(unix)]
        connections: Vec<Adopted>,
    },
}

/// Takes the listening sockets a service manager passed to this process, if any, and removes
/// `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` from the environment.
///
/// Call it before starting any thread: the environment is changed.
pub fn take_from_environment() -> Result<Takeover, InheritError> {
    let var = |name| std::env::var_os(name).map(|v: OsString| v.to_string_lossy().into_owned());
    let (pid, fds, names) = (var("LISTEN_PID"), var("LISTEN_FDS"), var("LISTEN_FDNAMES"));
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(name);
    }
    match passed(
        pid.as_deref(),
        fds.as_deref(),
        names.as_deref(),
        std::process::id(),
    )? {
        Passed::Nothing => Ok(Takeover::Bind),
        Passed::NotForUs { listen_pid } => Ok(Takeover::Ignored { listen_pid }),
        Passed::Sockets { count, names } => {
            let mut names = names.map(Vec::into_iter);
            let mut listeners = Vec::with_capacity(count as usize);
            #[cfg(unix)]
            let (mut connections, mut stored) = (Vec::new(), Vec::new());
            for fd in LISTEN_FDS_START..LISTEN_FDS_START + count {
                let name = names.as_mut().and_then(Iterator::next);
                #[cfg(unix)]
                if let Some(name) = name.as_deref().filter(|n| handoff::is_connection_name(n)) {
                    stored.push(name.to_string());
                    match adopt_connection(fd, name) {
                        Ok(connection) => connections.push(connection),
                        Err(why) => log::warn!(
                            "inherited descriptor {fd} ({name}): refused as a handed-over \
                             connection: {why}; closed"
                        ),
                    }
                    continue;
                }
                listeners.push(adopt(fd, name)?);
            }
            // Out of the manager's store: the next stop stores the connections still open under
            // new names, and a descriptor stored twice would be served twice.
            #[cfg(unix)]
            if let Some(store) = handoff::FdStore::from_environment() {
                for name in &stored {
                    if let Err(e) = store.remove(name) {
                        log::warn!(
                            "cannot remove {name} from the service manager's store at {}: {e}",
                            store.socket().display()
                        );
                    }
                }
            }
            Ok(Takeover::Sockets {
                listeners,
                #[cfg(unix)]
                connections,
            })
        }
    }
}

/// Marks `fd` close-on-exec; fails if it is not open.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn check_open(fd: i32) -> Result<(), InheritError> {
    let os = |call, error: std::io::Error| InheritError::Os {
        fd,
        call,
        error: error.to_string(),
    };
    // SAFETY: fcntl(F_GETFD) only reads the descriptor's flags; on a closed descriptor it fails
    // with EBADF, which is how a closed one is told apart before anything takes ownership of it.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        let error = std::io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(libc::EBADF) => InheritError::NotOpen { fd },
            _ => os("fcntl(F_GETFD)", error),
        });
    }
    // SAFETY: as above, on a descriptor just seen open; only its close-on-exec flag changes.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(os("fcntl(F_SETFD)", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Takes `fd`, passed under the connection name `name`, as a handed-over connection: an open,
/// connected TCP or Unix stream socket whose name parses. Whatever is refused is closed (a
/// socket shut down first, so that HAProxy sees the connection end rather than wait on it).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn adopt_connection(fd: i32, name: &str) -> Result<Adopted, String> {
    use std::os::fd::FromRawFd;

    check_open(fd).map_err(|e| match e {
        InheritError::NotOpen { .. } => "not open".to_string(),
        other => other.to_string(),
    })?;
    // SAFETY: `fd` is open (checked above) and, by the protocol (LISTEN_PID is this process),
    // handed to this process; nothing else in the process reads LISTEN_FDS, whose variables are
    // already removed, so nothing else owns it. Whatever is refused below is closed with it.
    let socket = unsafe { socket2::Socket::from_raw_fd(fd) };
    match socket.r#type() {
        Ok(socket2::Type::STREAM) => {}
        Ok(_) => return Err("not a stream socket".into()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => return Err("not a socket".into()),
        Err(e) => return Err(format!("getsockopt(SO_TYPE): {e}")),
    }
    let unix = match socket.domain() {
        Ok(socket2::Domain::UNIX) => true,
        Ok(socket2::Domain::IPV4 | socket2::Domain::IPV6) => false,
        Ok(_) => return Err("a socket of another family than IPv4, IPv6, Unix".into()),
        Err(e) => return Err(format!("getsockopt(SO_DOMAIN): {e}")),
    };
    if socket.is_listener().unwrap_or(true) {
        return Err("a listening socket under a connection's name".into());
    }
    let handshake = handoff::parse_connection_name(name).map_err(|e| {
        let _ = socket.shutdown(std::net::Shutdown::Both);
        format!("bad name: {e}")
    })?;
    let peer = socket
        .peer_addr()
        .map_err(|e| format!("not connected: {e}"))?;
    socket
        .set_nonblocking(false)
        .map_err(|e| format!("fcntl(O_NONBLOCK): {e}"))?;
    let (stream, peer) = if unix {
        let path = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(std::path::Path::to_path_buf))
            .unwrap_or_else(|| "(handed over)".into());
        (
            crate::stream::Stream::Unix(socket.into()),
            Peer::Unix(path.into()),
        )
    } else {
        let Some(ip) = peer.as_socket() else {
            return Err("an IP socket without an IP peer".into());
        };
        (crate::stream::Stream::Tcp(socket.into()), Peer::Ip(ip))
    };
    Ok(Adopted {
        stream,
        peer,
        handshake,
        fd,
        name: name.to_string(),
    })
}

#[cfg(all(unix, not(target_os = "linux")))]
fn adopt_connection(_fd: i32, _name: &str) -> Result<Adopted, String> {
    Err("handed-over connections are taken on Linux only".into())
}

/// Checks that `fd` is an open, listening TCP socket or Unix stream socket bound to a file,
/// marks it close-on-exec and blocking (how the agent's own listeners are), and takes ownership
/// of it. A Unix socket's file stays: the manager made it and removes it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn adopt(fd: i32, name: Option<String>) -> Result<Inherited, InheritError> {
    use std::mem::ManuallyDrop;
    use std::os::fd::FromRawFd;

    let os = |call, error: std::io::Error| InheritError::Os {
        fd,
        call,
        error: error.to_string(),
    };
    check_open(fd)?;
    // SAFETY: `fd` is open (checked above) and, by the protocol (LISTEN_PID is this process),
    // handed to this process; nothing else in the process reads LISTEN_FDS, whose variables are
    // already removed, so nothing else owns it. ManuallyDrop: a descriptor refused below is
    // left open as it came, not closed by the checks.
    let socket = ManuallyDrop::new(unsafe { socket2::Socket::from_raw_fd(fd) });
    let kind = match socket.r#type() {
        Ok(kind) => kind,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            return Err(InheritError::NotASocket { fd })
        }
        Err(e) => return Err(os("getsockopt(SO_TYPE)", e)),
    };
    let domain = socket
        .domain()
        .map_err(|e| os("getsockopt(SO_DOMAIN)", e))?;
    let unix = domain == socket2::Domain::UNIX;
    if !unix && domain != socket2::Domain::IPV4 && domain != socket2::Domain::IPV6 {
        return Err(InheritError::Unsupported {
            fd,
            what: "a socket of another family than IPv4, IPv6, Unix",
        });
    }
    if kind != socket2::Type::STREAM {
        return Err(InheritError::Unsupported {
            fd,
            what: "not a stream socket (ListenDatagram=? ListenSequentialPacket=?)",
        });
    }
    if !socket
        .is_listener()
        .map_err(|e| os("getsockopt(SO_ACCEPTCONN)", e))?
    {
        return Err(InheritError::NotListening { fd });
    }
    let local = socket.local_addr().map_err(|e| os("getsockname", e))?;
    let address = match (local.as_socket(), local.as_pathname()) {
        (Some(ip), _) => ListenAddress::Tcp(ip),
        (None, Some(path)) if unix => ListenAddress::Unix(path.to_path_buf()),
        _ => {
            return Err(InheritError::Unsupported {
                fd,
                what: "a Unix socket without a file (an abstract or unnamed one)",
            })
        }
    };
    // The blocking mode belongs to the socket, shared with the manager's copy: the manager only
    // polls it, and every runtime of the agent expects a blocking listener.
    socket
        .set_nonblocking(false)
        .map_err(|e| os("fcntl(O_NONBLOCK)", e))?;
    let socket = ManuallyDrop::into_inner(socket);
    let listener = match address {
        ListenAddress::Tcp(_) => Listener::Tcp(socket.into()),
        ListenAddress::Unix(_) => Listener::Unix(socket.into()),
    };
    Ok(Inherited {
        listener,
        fd,
        name,
        address,
    })
}

#[cfg(not(target_os = "linux"))]
fn adopt(fd: i32, _name: Option<String>) -> Result<Inherited, InheritError> {
    Err(InheritError::Unsupported {
        fd,
        what: "a socket on a system where the agent does not take inherited sockets (Linux only)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: u32 = 4242;

    #[test]
    fn no_listen_fds_means_bind() {
        assert_eq!(passed(None, None, None, PID), Ok(Passed::Nothing));
        assert_eq!(passed(Some("4242"), None, None, PID), Ok(Passed::Nothing));
        assert_eq!(
            passed(Some("4242"), Some("0"), None, PID),
            Ok(Passed::Nothing)
        );
    }

    #[test]
    fn sockets_for_this_process_are_counted_and_named() {
        assert_eq!(
            passed(Some("4242"), Some("2"), None, PID),
            Ok(Passed::Sockets {
                count: 2,
                names: None
            })
        );
        assert_eq!(
            passed(Some("4242"), Some("2"), Some("spoa.socket:v6"), PID),
            Ok(Passed::Sockets {
                count: 2,
                names: Some(vec!["spoa.socket".into(), "v6".into()])
            })
        );
    }

    #[test]
    fn sockets_for_another_process_are_ignored() {
        assert_eq!(
            passed(Some("1"), Some("1"), None, PID),
            Ok(Passed::NotForUs {
                listen_pid: Some("1".into())
            })
        );
        assert_eq!(
            passed(None, Some("1"), None, PID),
            Ok(Passed::NotForUs { listen_pid: None })
        );
    }

    #[test]
    fn malformed_variables_are_refused() {
        for (pid, fds) in [
            (Some("4242"), "one"),
            (Some("4242"), "-1"),
            (Some("4242"), ""),
            (Some("4242"), "4294967295"),
            (Some("x"), "1"),
        ] {
            assert!(
                matches!(
                    passed(pid, Some(fds), None, PID),
                    Err(InheritError::NotANumber { .. })
                ),
                "{pid:?} {fds:?}"
            );
        }
        assert_eq!(
            passed(Some("4242"), Some("2"), Some("only-one"), PID),
            Err(InheritError::NameCount { names: 1, fds: 2 })
        );
    }
}
