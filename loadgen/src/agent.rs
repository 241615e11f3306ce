//! The agent under test as its own process: `spoa -a 127.0.0.1 -p <free port> --runtime R ...`.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A runtime configuration of the agent to benchmark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeSpec {
    /// The name in the table: `std`, `uring`, `uring-spin`.
    pub name: String,
    /// The agent's flags for it (besides address and port).
    pub args: Vec<String>,
}

/// The number of CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl RuntimeSpec {
    /// `std` (a thread per connection), `uring` (one worker per agent CPU), `uring-spin` (same,
    /// busy-polling 50 µs before sleeping), or `uring-spin=<µs>`; `agent_cpus` is how many CPUs
    /// the agent gets.
    pub fn parse(name: &str, agent_cpus: usize) -> Result<RuntimeSpec, String> {
        let workers = agent_cpus.max(1).to_string();
        let (base, spin) = match name.split_once('=') {
            Some((base, us)) => (base, Some(us)),
            None => (name, None),
        };
        let args: Vec<String> = match (base, spin) {
            ("std", None) => vec!["--runtime".into(), "std".into()],
            ("uring", None) => vec!["--runtime".into(), "uring".into(), "-n".into(), workers],
            ("uring-spin", us) => {
                let us = us.unwrap_or("50");
                if us.parse::<u64>().is_err() {
                    return Err(format!("runtime '{name}': spin time must be microseconds"));
                }
                vec![
                    "--runtime".into(),
                    "uring".into(),
                    "-n".into(),
                    workers,
                    "--spin-us".into(),
                    us.into(),
                ]
            }
            _ => {
                return Err(format!(
                    "unknown runtime '{name}' (std, uring, uring-spin, uring-spin=<µs>)"
                ))
            }
        };
        Ok(RuntimeSpec {
            name: name.to_string(),
            args,
        })
    }

    /// Whether the agent binary can run this configuration here (`--check-runtime` exits 0);
    /// the error is the agent's own explanation.
    pub fn check(&self, agent: &Path) -> Result<(), String> {
        if self.args.iter().any(|a| a == "std") {
            return Ok(());
        }
        let out = Command::new(agent)
            .args(&self.args)
            .arg("--check-runtime")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", agent.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no message");
        Err(format!(
            "`spoa {} --check-runtime` exited with {}: {why}",
            self.args.join(" "),
            out.status
        ))
    }
}

/// A running agent; killed on drop.
pub struct AgentProcess {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

/// A port that was free a moment ago.
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

impl AgentProcess {
    /// Starts the agent on 127.0.0.1 and a free port, on `cpus` (any when `None`), and waits
    /// until it accepts connections.
    pub fn start(
        agent: &Path,
        spec: &RuntimeSpec,
        cpus: Option<&[usize]>,
    ) -> Result<AgentProcess, String> {
        let mut last = String::new();
        // The port may be taken between our probe and the agent's bind: try a few.
        for _ in 0..3 {
            match Self::try_start(agent, spec, cpus)? {
                Ok(a) => return Ok(a),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start(
        agent: &Path,
        spec: &RuntimeSpec,
        cpus: Option<&[usize]>,
    ) -> Result<Result<AgentProcess, String>, String> {
        let port = free_port()?;
        let mut child = crate::placement::command(agent, cpus)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(&spec.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", agent.display()))?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let sink = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("listening on") {
                        let _ = tx.send(());
                    }
                    if let Ok(mut logs) = sink.lock() {
                        // Keep the start and the end; an agent logging per connection must
                        // not grow this without bound.
                        if logs.len() >= 200 {
                            logs.remove(100);
                        }
                        logs.push(line);
                    }
                }
            });
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut me = AgentProcess { child, addr, logs };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut announced = false;
        loop {
            if let Ok(Some(status)) = me.child.try_wait() {
                return Ok(Err(format!(
                    "spoa {} exited with {status} at start: {}",
                    spec.args.join(" "),
                    me.log_tail(3)
                )));
            }
            if !announced {
                announced = rx.recv_timeout(Duration::from_millis(20)).is_ok();
            } else if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(Ok(me));
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
            if Instant::now() > deadline {
                return Ok(Err(format!(
                    "spoa {} did not start listening on {addr} within 20 s: {}",
                    spec.args.join(" "),
                    me.log_tail(3)
                )));
            }
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its last `n` log lines, joined.
    pub fn log_tail(&self, n: usize) -> String {
        self.logs
            .lock()
            .map(|l| l[l.len().saturating_sub(n)..].join(" | "))
            .unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The release agent of the cargo target directory this executable was built in
/// (`<target>/release/spoa`, found from `<target>/<profile>/[deps/]<exe>`), else
/// `target/release/spoa` relative to the working directory.
pub fn default_agent_path() -> PathBuf {
    let name = format!("spoa{}", std::env::consts::EXE_SUFFIX);
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent();
        if dir.and_then(Path::file_name).is_some_and(|n| n == "deps") {
            dir = dir.and_then(Path::parent);
        }
        if let Some(target) = dir.and_then(Path::parent) {
            let candidate = target.join("release").join(&name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("target/release").join(name)
}
