//! Playing systemd's part in socket activation: the test owns a listening socket and starts
//! agents on it, the way a `.socket` unit passes its socket to each process of its service
//! (descriptor 3, `LISTEN_FDS=1`, `LISTEN_PID` = the agent's pid).

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::{Agent, BIN};

/// `LISTEN_PID` must be the agent's own pid, known only once it runs: a shell sets it to its
/// own pid and then becomes the agent (`exec` keeps the pid).
const SET_LISTEN_PID: &str = r#"export LISTEN_PID=$$; exec "$0" "$@""#;

/// The agent's command with `fd` passed as descriptor 3 and `LISTEN_FDS=1`, `LISTEN_PID` set;
/// add arguments and environment, then spawn it.
pub fn command_with_fd(runtime: &str, fd: RawFd) -> Command {
    let mut command = Command::new("sh");
    command
        .args(["-c", SET_LISTEN_PID, BIN, "--runtime", runtime])
        .env("LISTEN_FDS", "1")
        .env_remove("LISTEN_FDNAMES");
    pass_as_fd_3(&mut command, fd);
    command
}

/// Makes `fd` the child's descriptor 3, open across exec.
#[allow(unsafe_code)]
pub fn pass_as_fd_3(command: &mut Command, fd: RawFd) {
    // SAFETY: the closure runs in the child between fork and exec, and calls only dup2 and
    // fcntl, which are async-signal-safe; `fd` is open in the parent, so in the child too.
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                // dup2 onto itself does nothing: clear close-on-exec instead.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes `fds` the child's descriptors 3, 4, ... in order, open across exec (`LISTEN_FDS`
/// numbering).
#[allow(unsafe_code)]
pub fn pass_fds(command: &mut Command, fds: &[RawFd]) {
    const MAX: usize = 64;
    assert!(fds.len() <= MAX, "at most {MAX} descriptors");
    let mut sources = [-1; MAX];
    sources[..fds.len()].copy_from_slice(fds);
    let count = fds.len();
    // SAFETY: the closure runs in the child between fork and exec, and calls only fcntl, dup2
    // and close, which are async-signal-safe, on descriptors open in the parent (so in the
    // child); it allocates nothing. Every source is first copied above the target range, so
    // that placing one never overwrites another still to be placed.
    unsafe {
        command.pre_exec(move || {
            let mut high = [-1; MAX];
            for (copy, &source) in high.iter_mut().zip(&sources[..count]) {
                *copy = libc::fcntl(source, libc::F_DUPFD_CLOEXEC, 3 + MAX as i32);
                if *copy < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (target, &copy) in (3..).zip(&high[..count]) {
                if libc::dup2(copy, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(copy);
            }
            Ok(())
        });
    }
}

/// An agent serving on `listener` (TCP or Unix), as a socket unit would start it; waits for its
/// startup line.
pub fn start_on(runtime: &'static str, listener: &impl AsRawFd, args: &[&str]) -> Agent {
    let mut command = command_with_fd(runtime, listener.as_raw_fd());
    command.args(args).env("RUST_LOG", "info");
    Agent::spawn(runtime, command)
}
