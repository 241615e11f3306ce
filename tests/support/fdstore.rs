//! Playing systemd's descriptor store (`sd_notify(3)`, `FileDescriptorStoreMax=`): the test
//! owns a `NOTIFY_SOCKET` (a Unix datagram socket) and keeps what an agent stores there
//! (`FDSTORE=1` with `FDNAME=` and descriptors), forgets what it removes (`FDSTOREREMOVE=1`),
//! and answers `BARRIER=1` by closing the pipe that came with it, as systemd does; then it
//! starts the next agent with the listening socket and the stored descriptors (`LISTEN_FDS`,
//! `LISTEN_FDNAMES`).

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use super::inherit::pass_fds;
use super::{Agent, BIN};

/// Descriptors one message may carry here (systemd takes up to 768 per message; agents send
/// one per message).
const FDS_PER_MESSAGE: usize = 16;

/// Stored descriptors as the next agent is given them: (name, number), for [`Manager::start`].
pub fn passed(stored: &[(String, OwnedFd)]) -> Vec<(String, RawFd)> {
    stored
        .iter()
        .map(|(name, fd)| (name.clone(), fd.as_raw_fd()))
        .collect()
}

/// A service manager's notification socket and descriptor store.
pub struct Manager {
    dir: PathBuf,
    path: PathBuf,
    stored: Arc<Mutex<Vec<(String, OwnedFd)>>>,
    messages: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Manager {
    /// A store at a socket of its own, named for `test`.
    pub fn new(test: &str) -> Manager {
        let dir = std::env::temp_dir().join(format!("spoa-fdstore-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stored = Arc::new(Mutex::new(Vec::new()));
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stored, messages, stop) = (
                Arc::clone(&stored),
                Arc::clone(&messages),
                Arc::clone(&stop),
            );
            thread::spawn(move || serve(&socket, &stored, &messages, &stop))
        };
        Manager {
            dir,
            path,
            stored,
            messages,
            stop,
            thread: Some(thread),
        }
    }

    /// Takes every stored descriptor out of the store, with its name, in the order stored.
    pub fn take(&self) -> Vec<(String, OwnedFd)> {
        std::mem::take(&mut *self.stored.lock().unwrap())
    }

    /// How many descriptors the store holds.
    pub fn len(&self) -> usize {
        self.stored.lock().unwrap().len()
    }

    /// Every message received so far, as text.
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// An agent started as systemd starts a service with a socket unit and a descriptor store:
    /// `listener` as descriptor 3 (named `spoa`), then `stored` with their names, and
    /// `NOTIFY_SOCKET` set; `--hand-over-connections` on.
    pub fn start(
        &self,
        runtime: &'static str,
        listener: &impl AsRawFd,
        stored: &[(String, RawFd)],
    ) -> Agent {
        let mut fds = vec![listener.as_raw_fd()];
        let mut names = vec!["spoa".to_string()];
        for (name, fd) in stored {
            fds.push(*fd);
            names.push(name.clone());
        }
        let mut command = Command::new("sh");
        command
            .args([
                "-c",
                r#"export LISTEN_PID=$$; exec "$0" "$@""#,
                BIN,
                "--runtime",
                runtime,
                "--hand-over-connections",
            ])
            .env("LISTEN_FDS", fds.len().to_string())
            .env("LISTEN_FDNAMES", names.join(":"))
            .env("NOTIFY_SOCKET", &self.path)
            // SPOA_TEST_RUST_LOG: more of the agents' logs, to look into a failure.
            .env(
                "RUST_LOG",
                std::env::var("SPOA_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
            );
        pass_fds(&mut command, &fds);
        Agent::spawn(runtime, command)
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Receives messages until stopped.
fn serve(
    socket: &UnixDatagram,
    stored: &Mutex<Vec<(String, OwnedFd)>>,
    messages: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let mut text = [0u8; 4096];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut text)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        );
        let Ok(received) = received else {
            continue;
        };
        let mut fds: Vec<OwnedFd> = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = message {
                fds.extend(rights);
            }
        }
        let text = String::from_utf8_lossy(&text[..received.bytes]).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let name = lines
            .iter()
            .find_map(|l| l.strip_prefix("FDNAME="))
            .unwrap_or("stored")
            .to_string();
        if lines.contains(&"FDSTORE=1") {
            let mut store = stored.lock().unwrap();
            store.extend(fds.drain(..).map(|fd| (name.clone(), fd)));
        } else if lines.contains(&"FDSTOREREMOVE=1") {
            stored.lock().unwrap().retain(|(n, _)| *n != name);
        }
        // BARRIER=1: its pipe is closed here, with every descriptor not stored.
        drop(fds);
        messages.lock().unwrap().push(text);
    }
}
