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

/// An agent serving on `listener` (TCP or Unix), as a socket unit would start it; waits for its
/// startup line.
pub fn start_on(runtime: &'static str, listener: &impl AsRawFd, args: &[&str]) -> Agent {
    let mut command = command_with_fd(runtime, listener.as_raw_fd());
    command.args(args).env("RUST_LOG", "info");
    Agent::spawn(runtime, command)
}
