//! A Unix socket's file: what may be replaced before binding, the mode and owner it gets, and
//! its removal when the agent stops.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::UnixPermissions;
use crate::listen::LISTEN_BACKLOG;

/// A socket file this agent created; removed on drop (a clean stop) unless another file has
/// taken its path since.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// Device and inode at creation: the file removed is the one created.
    identity: (u64, u64),
}

impl SocketFile {
    /// The socket file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == self.identity)
            .unwrap_or(false);
        if !ours {
            return;
        }
        match fs::remove_file(&self.path) {
            Ok(()) => log::info!("removed socket file {}", self.path.display()),
            Err(e) => log::warn!("cannot remove socket file {}: {e}", self.path.display()),
        }
    }
}

/// A listening Unix socket at `path`, with a deep accept queue and `permissions` applied
/// before it listens: a client connecting in between is refused, never let in past a mode not
/// yet set. A stale socket file (nothing listening) is replaced; a live agent's socket or a
/// file that is not a socket is left alone and refused.
pub fn listen_unix(
    path: &Path,
    permissions: &UnixPermissions,
) -> io::Result<(UnixListener, SocketFile)> {
    check_directory(path)?;
    clear_stale(path)?;
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    let metadata = fs::symlink_metadata(path)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        identity: (metadata.dev(), metadata.ino()),
    };
    apply(path, permissions)?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok((UnixListener::from(std::os::fd::OwnedFd::from(socket)), file))
}

/// The socket's directory must exist: `bind` alone would say only "No such file or directory".
fn check_directory(path: &Path) -> io::Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    match fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("{} is not a directory", parent.display()),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(io::Error::new(
            ErrorKind::NotFound,
            format!(
                "directory {} does not exist (create it, or RuntimeDirectory= in a systemd unit)",
                parent.display()
            ),
        )),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot use directory {}: {e}", parent.display()),
        )),
    }
}

/// How long a socket file that still answers is watched before it is called live (see
/// [`clear_stale`]).
const DYING_LISTENER_GRACE: Duration = Duration::from_millis(500);

/// Removes a socket file nothing listens on (an agent that was killed leaves its file, and
/// `bind` fails on an existing path); refuses a live one and anything that is not a socket.
fn clear_stale(path: &Path) -> io::Result<()> {
    let shown = path.display();
    let metadata = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !metadata.file_type().is_socket() {
        return Err(io::Error::new(
            ErrorKind::AlreadyExists,
            format!("{shown} exists and is not a socket: not replacing it"),
        ));
    }
    // An agent that was just killed can leave a listener that still answers for a moment: the
    // kernel tears down its io_uring after the process is gone, and the ring's pending accept
    // holds the socket open (measured: 10-16 ms after the uring runtime was killed and reaped,
    // under 1 ms for std). Only one that keeps answering is live.
    let deadline = Instant::now() + DYING_LISTENER_GRACE;
    loop {
        let result = probe(path);
        let answered = match &result {
            Ok(()) => true,
            Err(e) => e.kind() == ErrorKind::WouldBlock,
        };
        if answered && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match result {
            Ok(()) => {
                return Err(io::Error::new(
                    ErrorKind::AddrInUse,
                    format!("another process is listening on {shown} (another agent running?)"),
                ))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                fs::remove_file(path)?;
                log::info!(
                    "removed stale socket file {shown} (left by an agent that stopped: nothing answered on it)"
                );
                return Ok(());
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                return Err(io::Error::new(
                    ErrorKind::AddrInUse,
                    format!("another process is listening on {shown} (its accept queue is full)"),
                ))
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot tell whether {shown} is in use: {e}"),
                ))
            }
        }
    }
}

/// Connects to `path` without blocking: a live listener answers (or has a full queue:
/// `WouldBlock`), a stale file refuses.
pub(crate) fn probe(path: &Path) -> io::Result<()> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.connect(&socket2::SockAddr::unix(path)?)
}

/// Owner and group first: changing them may clear mode bits that `chmod` then sets.
fn apply(path: &Path, permissions: &UnixPermissions) -> io::Result<()> {
    let shown = path.display();
    if permissions.owner.is_some() || permissions.group.is_some() {
        std::os::unix::fs::chown(path, permissions.owner, permissions.group).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot give {shown} to {}:{}: {e}",
                    describe_id(permissions.owner),
                    describe_id(permissions.group),
                ),
            )
        })?;
    }
    if let Some(mode) = permissions.mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot chmod {mode:04o} {shown}: {e}"))
        })?;
    }
    Ok(())
}

fn describe_id(id: Option<u32>) -> String {
    id.map_or_else(|| "-".to_string(), |id| id.to_string())
}

/// The mode and owner a socket file has, for the startup log: `mode 0660, owner 0:115`.
pub fn describe(path: &Path) -> String {
    match fs::symlink_metadata(path) {
        Ok(m) => format!(
            "mode {:04o}, owner {}:{}",
            m.mode() & 0o7777,
            m.uid(),
            m.gid()
        ),
        Err(e) => format!("not found: {e}"),
    }
}
