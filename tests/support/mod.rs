//! Shared by the integration tests: start the `spoa` binary as its own process (its logs, its
//! signals). HAProxy's side of SPOP over real TCP is `spop_testkit::peer`, re-exported here.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use spop_testkit::peer::*;

pub mod fdstore;
pub mod inherit;

pub const BIN: &str = env!("CARGO_BIN_EXE_spoa");

/// A directory of a test's own for its files and sockets (unique per process and call),
/// removed at the end.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "spoa-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    /// The path for the agent's Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.0.join("spoa.sock")
    }

    /// Writes `text` to a file `name` in the directory.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Replaces `path` the way operators should: write aside, rename over.
    pub fn replace(&self, path: &Path, text: &str) {
        let aside = self.0.join(".next");
        std::fs::write(&aside, text).unwrap();
        std::fs::rename(&aside, path).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The runtimes this binary can run here. uring is listed when the binary accepts it; under CI
/// (`CI=true`) it must: a green run must have tested both runtimes.
pub fn runtimes() -> Vec<&'static str> {
    let mut list = vec!["std"];
    let out = Command::new(BIN)
        .args(["--runtime", "uring", "--check-runtime"])
        .output()
        .expect("run spoa --check-runtime");
    if out.status.success() {
        list.push("uring");
    } else {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the uring runtime cannot run here: {}",
            why.trim()
        );
        eprintln!("NOTE: uring runtime not tested here: {}", why.trim());
    }
    list
}

/// A running agent process; killed on drop.
pub struct Agent {
    pub child: Child,
    pub addr: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub runtime: &'static str,
}

impl Agent {
    /// Starts `spoa --runtime <runtime> -a 127.0.0.1 -p 0 <args>` and waits for its startup line.
    pub fn start(runtime: &'static str, args: &[&str]) -> Agent {
        Agent::start_on(runtime, &["-a", "127.0.0.1", "-p", "0"], args)
    }

    pub fn start_on(runtime: &'static str, listen: &[&str], args: &[&str]) -> Agent {
        Agent::start_wrapped(runtime, &[], listen, args)
    }

    /// Starts the agent through `wrapper` (for example `prlimit --nofile=64:64`).
    pub fn start_wrapped(
        runtime: &'static str,
        wrapper: &[&str],
        listen: &[&str],
        args: &[&str],
    ) -> Agent {
        Agent::start_full(runtime, wrapper, &[], listen, args)
    }

    /// Starts the agent with these environment variables set (and `listen` and `args` on the
    /// command line, which may be empty to take everything from the environment).
    pub fn start_env(runtime: &'static str, env: &[(&str, &str)], args: &[&str]) -> Agent {
        Agent::start_full(runtime, &[], env, &[], args)
    }

    pub fn start_full(
        runtime: &'static str,
        wrapper: &[&str],
        env: &[(&str, &str)],
        listen: &[&str],
        args: &[&str],
    ) -> Agent {
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        command
            .args(["--runtime", runtime])
            .args(listen)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        Agent::spawn(runtime, command)
    }

    /// Starts `command` (the agent, maybe wrapped, with its arguments) with its stderr captured,
    /// and waits for its startup line.
    pub fn spawn(runtime: &'static str, mut command: Command) -> Agent {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start spoa");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("spoa did not start: {:?}", logs.lock().unwrap()));
        let listed: Vec<&str> = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .map(|list| list.split(',').map(str::trim).collect())
            .unwrap_or_default();
        // The first TCP address; an agent on Unix sockets only gets one that nothing answers.
        let addr = listed
            .iter()
            .find_map(|a| a.parse().ok())
            .or_else(|| {
                listed
                    .iter()
                    .any(|a| a.starts_with("unix:"))
                    .then(|| SocketAddr::from(([0, 0, 0, 0], 0)))
            })
            .unwrap_or_else(|| panic!("no address in {line}"));
        Agent {
            child,
            addr,
            logs,
            runtime,
        }
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// A connection past the handshake.
    pub fn session(&self) -> TcpStream {
        session(self.addr)
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_line(needle, timeout).is_some()
    }

    /// Waits for the first log line that contains `needle`, and returns it.
    pub fn wait_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| l.contains(needle)) {
                return Some(line);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// CPU time (user + system) the agent has used so far, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // After the command name: state is field 3, utime 14, stime 15 (1-based).
        let tick = |i: usize| {
            fields
                .get(i - 3)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        tick(14) + tick(15)
    }

    /// Resident memory of the agent in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// From `spoa --runtime auto --check-runtime`'s answer "std chosen; HAProxy (pid N) may run on
/// CPU ...": the HAProxy process it named, when that is ours or another HAProxy that may be
/// running on this machine (the agent names the first it finds). `None` for any other answer.
#[allow(dead_code)] // used by some test binaries only
pub fn haproxy_named(answer: &str, ours: u32) -> Option<u32> {
    let pid: u32 = answer
        .strip_prefix("std chosen; HAProxy (pid ")?
        .split(')')
        .next()?
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    (pid == ours || String::from_utf8_lossy(&cmdline).contains("haproxy")).then_some(pid)
}
