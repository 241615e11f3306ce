//! Handing open connections to the next agent at a restart, through the service manager's
//! file-descriptor store, instead of ending them.
//!
//! # Why
//!
//! With socket activation ([`crate::inherit`]) a restart loses no connection attempt, but a
//! stopping agent still ends each open connection with AGENT-DISCONNECT, and a NOTIFY that
//! HAProxy sends on it in that instant fails (SPOE error 256 on HAProxy 2.6, 257 on 3.x). A
//! connection at a frame boundary (every NOTIFY read so far answered and its ACK written, no
//! byte of the next frame read) carries no state but what its handshake fixed
//! ([`spop_core::Handshake`]): the agent passes the socket to the service manager
//! (`sd_notify(3)`: `FDSTORE=1` with `FDNAME=` and the descriptor), which passes it to the next
//! agent beside the listening sockets (`LISTEN_FDS`, `LISTEN_FDNAMES`). HAProxy sees nothing: a
//! NOTIFY sent meanwhile waits in the socket until the next agent reads it.
//!
//! # The name
//!
//! The descriptor's name carries the handshake (names are at most 255 printable characters,
//! without `:`), in a versioned, strictly parsed form:
//!
//! ```text
//!   spop-v1.<max-frame-size>.<HAProxy's offer>.<agent capabilities>.<HAProxy's capabilities>.<tag>
//! ```
//!
//! sizes in decimal, capabilities as [`Capabilities::bits`] in decimal, and a tag making the
//! name unique (the handing process's pid and the connection's id), so that the next agent can
//! take exactly that descriptor out of the store (`FDSTOREREMOVE=1` removes every descriptor of
//! a name). Any name starting with `spop-` is a connection's; one that does not parse is refused
//! with a log line and its descriptor closed.
//!
//! # The barrier
//!
//! Before exiting, the agent sends `BARRIER=1` with the write end of a pipe and closes its own
//! copy: the manager closes its copy once it has processed every earlier message, so the read
//! end's end-of-file says every descriptor was taken (systemd's `sd_notify_barrier(3)`).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use spop_core::{Capabilities, Handshake};

use crate::address::Peer;
use crate::stream::Stream;

/// What every connection descriptor's name starts with.
pub const NAME_PREFIX: &str = "spop-";
/// The version of the name's format this agent writes and reads.
const VERSION: &str = "spop-v1";
/// The longest name a service manager takes (systemd's `FDNAME_MAX`).
pub const NAME_MAX: usize = 255;
/// The longest tag a name may carry.
const TAG_MAX: usize = 64;
/// How long the agent waits for the manager to take its descriptors before exiting anyway.
pub const BARRIER_TIMEOUT: Duration = Duration::from_secs(5);

/// When a stop's hand-over phase ends: connections that reached no frame boundary by then are
/// drained as without a hand-over, in the other half of the shutdown timeout.
pub fn handing_deadline(stopped: Instant, shutdown_timeout: Duration) -> Instant {
    stopped + shutdown_timeout / 2
}

/// Whether a descriptor's name says it is a handed-over connection.
pub fn is_connection_name(name: &str) -> bool {
    name.starts_with(NAME_PREFIX)
}

/// The name a connection with this handshake is handed over under; `tag` makes it unique.
pub fn connection_name(handshake: &Handshake, tag: &str) -> String {
    format!(
        "{VERSION}.{}.{}.{}.{}.{tag}",
        handshake.max_frame_size,
        handshake.peer_max_frame_size,
        handshake.capabilities.bits(),
        handshake.peer_capabilities.bits(),
    )
}

/// Why a connection descriptor's name was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum NameError {
    /// Longer than a manager stores, or with a character it refuses.
    NotAName,
    /// Another version of the format (a newer agent's) or none.
    Version(String),
    /// Not the six fields of the format.
    Fields(usize),
    /// A field that is not a plain decimal number in its range.
    Field { field: &'static str, value: String },
    /// A missing, long, or strange tag.
    Tag,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::NotAName => write!(
                f,
                "not a descriptor name (at most {NAME_MAX} printable characters, no ':')"
            ),
            NameError::Version(v) => write!(
                f,
                "format {v:?} is not {VERSION:?}, the one this agent reads"
            ),
            NameError::Fields(n) => write!(f, "{n} dot-separated fields, {VERSION} has 6"),
            NameError::Field { field, value } => write!(f, "{field} {value:?} is not valid"),
            NameError::Tag => f.write_str("the tag is missing or not [0-9A-Za-z_-]{1,64}"),
        }
    }
}

impl std::error::Error for NameError {}

/// Reads the handshake a connection descriptor's name carries.
pub fn parse_connection_name(name: &str) -> Result<Handshake, NameError> {
    if name.len() > NAME_MAX || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(NameError::NotAName);
    }
    let fields: Vec<&str> = name.split('.').collect();
    let version = fields.first().copied().unwrap_or_default();
    if version != VERSION {
        return Err(NameError::Version(version.to_string()));
    }
    let [_, max, offer, caps, peer_caps, tag] = fields[..] else {
        return Err(NameError::Fields(fields.len()));
    };
    let number = |field: &'static str, value: &str| {
        let plain = !value.is_empty()
            && value.len() <= 10
            && value.bytes().all(|b| b.is_ascii_digit())
            && (value == "0" || !value.starts_with('0'));
        plain
            .then(|| value.parse::<u32>().ok())
            .flatten()
            .ok_or_else(|| NameError::Field {
                field,
                value: value.to_string(),
            })
    };
    let capabilities = |field: &'static str, value: &str| {
        number(field, value).and_then(|bits| {
            u8::try_from(bits)
                .ok()
                .and_then(Capabilities::from_bits)
                .ok_or_else(|| NameError::Field {
                    field,
                    value: value.to_string(),
                })
        })
    };
    let handshake = Handshake {
        max_frame_size: number("max-frame-size", max)?,
        peer_max_frame_size: number("HAProxy's max-frame-size", offer)?,
        capabilities: capabilities("capabilities", caps)?,
        peer_capabilities: capabilities("HAProxy's capabilities", peer_caps)?,
    };
    let tag_ok = !tag.is_empty()
        && tag.len() <= TAG_MAX
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !tag_ok {
        return Err(NameError::Tag);
    }
    Ok(handshake)
}

/// A connection another agent handed over, taken from the environment
/// ([`crate::inherit::take_from_environment`]) and ready to be served by a runtime.
#[derive(Debug)]
pub struct Adopted {
    pub stream: Stream,
    /// Who it is from (a Unix socket's clients by the socket's file).
    pub peer: Peer,
    /// What its handshake fixed, from its name.
    pub handshake: Handshake,
    /// The descriptor it came as, and its name.
    pub fd: i32,
    pub name: String,
}

/// The service manager's notification socket (`NOTIFY_SOCKET`), used as a store for
/// descriptors.
#[derive(Clone, Debug)]
pub struct FdStore {
    /// A socket file's path, or an abstract name (`@` first).
    socket: OsString,
}

impl FdStore {
    /// The manager's socket, if the agent was started with one (`Type=notify`). The variable
    /// stays: the agent notifies through it until it exits.
    pub fn from_environment() -> Option<FdStore> {
        std::env::var_os("NOTIFY_SOCKET")
            .filter(|s| !s.is_empty())
            .map(FdStore::at)
    }

    /// The manager listening at `socket` (a path, or `@name` for an abstract socket).
    pub fn at(socket: impl Into<OsString>) -> FdStore {
        FdStore {
            socket: socket.into(),
        }
    }

    /// Where the manager listens, for log lines.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(&self.socket)
    }

    /// Gives the manager a duplicate of `fd` to keep under `name` (`FDSTORE=1`).
    pub fn store(&self, fd: BorrowedFd<'_>, name: &str) -> io::Result<()> {
        self.send(&format!("FDSTORE=1\nFDNAME={name}\n"), &[fd.as_raw_fd()])
    }

    /// Asks the manager to close and forget the descriptors it keeps under `name`
    /// (`FDSTOREREMOVE=1`): a connection the agent adopted, which a later stop will store anew.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        self.send(&format!("FDSTOREREMOVE=1\nFDNAME={name}\n"), &[])
    }

    /// Waits until the manager has processed every message sent before (`BARRIER=1`), at most
    /// `timeout`.
    pub fn barrier(&self, timeout: Duration) -> io::Result<()> {
        let (reader, writer) = std::io::pipe()?;
        self.send("BARRIER=1\n", &[writer.as_raw_fd()])?;
        drop(writer);
        wait_for_eof(&reader, timeout)
    }

    #[cfg(target_os = "linux")]
    fn send(&self, text: &str, fds: &[RawFd]) -> io::Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
        use std::os::unix::ffi::OsStrExt;
        let bytes = self.socket.as_bytes();
        let address = match bytes.strip_prefix(b"@") {
            Some(name) => UnixAddr::new_abstract(name),
            None => UnixAddr::new(bytes),
        }
        .map_err(io::Error::from)?;
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        let rights = [ControlMessage::ScmRights(fds)];
        let control: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
        let sent = sendmsg(
            socket.as_raw_fd(),
            &[io::IoSlice::new(text.as_bytes())],
            control,
            MsgFlags::MSG_NOSIGNAL,
            Some(&address),
        )
        .map_err(io::Error::from)?;
        if sent != text.len() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn send(&self, _text: &str, _fds: &[RawFd]) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[cfg(target_os = "linux")]
fn wait_for_eof(reader: &std::io::PipeReader, timeout: Duration) -> io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags};
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let millis = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut fds = [PollFd::new(reader, PollFlags::POLLIN)];
        match poll(&mut fds, millis) {
            Ok(0) => return Err(io::ErrorKind::TimedOut.into()),
            // The only writer is the manager's copy: readable means closed (a manager writes
            // nothing into it).
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn wait_for_eof(_reader: &std::io::PipeReader, _timeout: Duration) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// One stop's hand-over, shared by a runtime's threads: where connections go, and what became
/// of each connection open at the stop.
#[derive(Debug)]
pub struct HandOver {
    store: FdStore,
    handed: AtomicUsize,
    ended: AtomicUsize,
}

impl HandOver {
    pub fn new(store: FdStore) -> HandOver {
        HandOver {
            store,
            handed: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
        }
    }

    /// Hands connection `id` (its socket `fd`, at a frame boundary, with nothing of the agent's
    /// own pending on it) to the manager, named for `handshake`. On success the caller closes
    /// its own descriptor without sending anything, and without `shutdown()`, which would end
    /// the connection for the next agent too. On failure it ends the connection as without a
    /// hand-over.
    pub fn hand_over(&self, fd: BorrowedFd<'_>, handshake: &Handshake, id: u64) -> io::Result<()> {
        let name = connection_name(handshake, &format!("{}-{id}", std::process::id()));
        match self.store.store(fd, &name) {
            Ok(()) => {
                self.handed.fetch_add(1, Ordering::Relaxed);
                log::debug!("connection #{id} handed to the service manager as {name}");
                Ok(())
            }
            Err(e) => {
                crate::listen::log_accept_warning(format_args!(
                    "connection #{id}: cannot hand it to the service manager at {}: {e}; \
                     ending it with AGENT-DISCONNECT",
                    self.store.socket().display()
                ));
                Err(e)
            }
        }
    }

    /// A connection open at the stop ended without being handed over (it reached no frame
    /// boundary in time, HAProxy closed it, the hand-over failed).
    pub fn ended(&self) {
        self.ended.fetch_add(1, Ordering::Relaxed);
    }

    /// Where connections are handed.
    pub fn store(&self) -> &FdStore {
        &self.store
    }

    /// How many connections were handed over so far.
    pub fn handed(&self) -> usize {
        self.handed.load(Ordering::Relaxed)
    }

    /// At the end of the stop, `cut` connections still open at the shutdown timeout: waits
    /// until the manager has taken every descriptor, then logs what became of the connections.
    pub fn finish(&self, cut: usize) {
        let handed = self.handed();
        if handed > 0 {
            if let Err(e) = self.store.barrier(BARRIER_TIMEOUT) {
                log::warn!(
                    "the service manager did not confirm taking the handed-over connections \
                     ({e}); they may be lost"
                );
            }
        }
        log::info!(
            "stop: {handed} connections handed over to the next agent, {} ended \
             (AGENT-DISCONNECT or closed by HAProxy), {cut} cut at the shutdown timeout",
            self.ended.load(Ordering::Relaxed)
        );
    }
}

/// A server's hand-over at the stop, as its connections see it: set once when the server starts
/// running (from [`ServerState::start`](crate::ServerState::start)), and a phase that the stop
/// closes when the connections still open are drained as without a hand-over.
#[derive(Debug, Default)]
pub struct HandOverAtStop {
    hand_over: OnceLock<HandOver>,
    /// Connections at a frame boundary may still hand themselves over. A runtime that shuts the
    /// remaining connections down from another thread closes it first, under the same lock
    /// that a connection holds while it hands itself over.
    open: AtomicBool,
}

impl HandOverAtStop {
    /// No hand-over: the stop ends every connection with AGENT-DISCONNECT.
    pub fn new() -> HandOverAtStop {
        HandOverAtStop::default()
    }

    /// The server starts running with `hand_over` (if any), its phase open. Only the first
    /// call counts: the connections already running keep the hand-over they read.
    pub(crate) fn begin(&self, hand_over: Option<HandOver>) {
        if let Some(hand_over) = hand_over {
            if self.hand_over.set(hand_over).is_ok() {
                self.open.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Where connections go at the stop, if they are handed over.
    pub fn get(&self) -> Option<&HandOver> {
        self.hand_over.get()
    }

    /// The hand-over, while its phase is open.
    pub fn handing_over(&self) -> Option<&HandOver> {
        self.hand_over
            .get()
            .filter(|_| self.open.load(Ordering::SeqCst))
    }

    /// Ends the phase: the connections still open are drained as without a hand-over.
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    /// A connection open at the stop ended without being handed over ([`HandOver::ended`]).
    pub fn ended(&self) {
        if let Some(hand_over) = self.get() {
            hand_over.ended();
        }
    }

    /// At the end of the stop ([`HandOver::finish`]); nothing without a hand-over.
    pub fn finish(&self, cut: usize) {
        if let Some(hand_over) = self.get() {
            hand_over.finish(cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake() -> Handshake {
        Handshake {
            max_frame_size: 16380,
            peer_max_frame_size: 16380,
            capabilities: Capabilities::PIPELINING,
            peer_capabilities: Capabilities::PIPELINING | Capabilities::ASYNC,
        }
    }

    #[test]
    fn a_name_carries_the_handshake_there_and_back() {
        let name = connection_name(&handshake(), "4242-17");
        assert_eq!(name, "spop-v1.16380.16380.1.3.4242-17");
        assert!(is_connection_name(&name));
        assert_eq!(parse_connection_name(&name), Ok(handshake()));
    }

    #[test]
    fn the_longest_name_fits_a_managers_limit() {
        let widest = Handshake {
            max_frame_size: u32::MAX,
            peer_max_frame_size: u32::MAX,
            capabilities: Capabilities::from_bits(7).unwrap(),
            peer_capabilities: Capabilities::from_bits(7).unwrap(),
        };
        let tag = format!("{}-{}", u32::MAX, u64::MAX);
        assert!(connection_name(&widest, &tag).len() <= NAME_MAX);
    }

    #[test]
    fn names_are_parsed_strictly() {
        let field = |field: &'static str, value: &str| NameError::Field {
            field,
            value: value.to_string(),
        };
        let refused = [
            (
                "spop-v2.16380.16380.1.3.t",
                NameError::Version("spop-v2".into()),
            ),
            ("spop-v1.16380.16380.1.3", NameError::Fields(5)),
            ("spop-v1.16380.16380.1.3.t.x", NameError::Fields(7)),
            (
                "spop-v1.016380.16380.1.3.t",
                field("max-frame-size", "016380"),
            ),
            (
                "spop-v1.+16380.16380.1.3.t",
                field("max-frame-size", "+16380"),
            ),
            (
                "spop-v1.99999999999.16380.1.3.t",
                field("max-frame-size", "99999999999"),
            ),
            (
                "spop-v1.16380..1.3.t",
                field("HAProxy's max-frame-size", ""),
            ),
            ("spop-v1.16380.16380.8.3.t", field("capabilities", "8")),
            (
                "spop-v1.16380.16380.1.300.t",
                field("HAProxy's capabilities", "300"),
            ),
            ("spop-v1.16380.16380.1.3.", NameError::Tag),
            ("spop-v1.16380.16380.1.3.a/b", NameError::Tag),
            ("spop-v1.16380.16380.1.3.a b", NameError::NotAName),
            ("spop-v1.16380.16380.1.3.a:b", NameError::NotAName),
            ("spop-v1", NameError::Fields(1)),
        ];
        for (name, why) in refused {
            assert_eq!(parse_connection_name(name), Err(why), "{name}");
        }
        let long = format!("spop-v1.16380.16380.1.3.{}", "t".repeat(65));
        assert_eq!(parse_connection_name(&long), Err(NameError::Tag));
        let too_long = format!("spop-v1.16380.16380.1.3.{}", "t".repeat(NAME_MAX));
        assert_eq!(parse_connection_name(&too_long), Err(NameError::NotAName));
    }

    #[test]
    fn listener_names_are_not_connection_names() {
        assert!(!is_connection_name("spoa.socket"));
        assert!(!is_connection_name("stored"));
    }
}
