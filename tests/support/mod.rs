//! Shared by the integration tests: start the `spoa` binary as its own process, play HAProxy's
//! side of SPOP over real TCP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spop_core::frame::{FrameWriter, LENGTH_SIZE};
use spop_core::{
    Ack, Action, Arg, Disconnect, Frame, FrameHeader, FrameId, FrameType, HaproxyHello,
    NotifyWriter, Scope, Status, StreamId, TypedData,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_spoa");

/// The runtimes this binary can run here. uring is listed when the binary accepts it.
pub fn runtimes() -> Vec<&'static str> {
    let mut list = vec!["std"];
    let out = Command::new(BIN)
        .args(["--runtime", "uring", "--check-runtime"])
        .output();
    if let Ok(out) = out {
        if out.status.success() {
            list.push("uring");
        } else {
            eprintln!(
                "NOTE: uring runtime not tested here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
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
        let mut child = command
            .args(["--runtime", runtime])
            .args(listen)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
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
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split([',', ';']).next())
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in {line}"));
        Agent {
            child,
            addr,
            logs,
            runtime,
        }
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect to agent");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// A connection past the handshake.
    pub fn session(&self) -> TcpStream {
        let mut s = self.connect();
        s.write_all(&hello(16380)).unwrap();
        let (h, _) = read_frame(&mut s).expect("AGENT-HELLO");
        assert_eq!(h.frame_type, FrameType::AgentHello);
        s
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.logs().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
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

/// A HAPROXY-HELLO as HAProxy 2.6 sends it, with `max-frame-size` set.
pub fn hello(max_frame_size: u32) -> Vec<u8> {
    encoded(|out| {
        HaproxyHello {
            supported_versions: Some(b"2.0"),
            max_frame_size: Some(max_frame_size.into()),
            capabilities: Some(b"pipelining,async"),
            engine_id: Some(b"00c6af8f-2e5d-40b6-9651-21edb52e7009"),
            healthcheck: false,
        }
        .encode(out)
        .unwrap()
    })
}

/// A HAPROXY-HELLO with exactly these items, in this order (for the handshake faults: missing or
/// odd keys that `HaproxyHello::encode` would not write).
pub fn hello_with(items: &[(&[u8], TypedData<'_>)]) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    let mut f =
        FrameWriter::begin(&mut out, &FrameHeader::connection(FrameType::HaproxyHello)).unwrap();
    for (k, v) in items {
        spop_core::kv::put(f.payload(), k, v).unwrap();
    }
    let n = f.finish(u32::MAX).unwrap();
    out.truncate(n);
    out
}

/// A NOTIFY carrying `check-client-ip` with `ip` as its one unnamed argument.
pub fn notify(stream: u64, frame: u64, ip: TypedData<'_>) -> Vec<u8> {
    notify_message(stream, frame, b"check-client-ip", &[(b"", ip)])
}

pub fn notify_message(
    stream: u64,
    frame: u64,
    name: &[u8],
    args: &[(&[u8], TypedData<'_>)],
) -> Vec<u8> {
    let args: Vec<Arg<'_>> = args
        .iter()
        .map(|&(name, value)| Arg { name, value })
        .collect();
    encoded(|out| {
        let mut w = NotifyWriter::new(out, StreamId(stream), FrameId(frame), u32::MAX).unwrap();
        w.message(name, &args).unwrap();
        w.finish()
    })
}

/// Runs an encoder over a scratch buffer and keeps the bytes it wrote.
fn encoded(encode: impl FnOnce(&mut [u8]) -> usize) -> Vec<u8> {
    let mut out = vec![0u8; 65536];
    let n = encode(&mut out);
    out.truncate(n);
    out
}

pub fn haproxy_disconnect() -> Vec<u8> {
    let mut out = vec![0u8; 256];
    let n = Disconnect {
        status: Status::Normal,
        message: b"normal",
    }
    .encode_as(FrameType::HaproxyDisconnect, &mut out, 16380)
    .unwrap();
    out.truncate(n);
    out
}

/// Reads one whole frame; `None` at end of stream.
pub fn read_frame(s: &mut impl Read) -> Option<(FrameHeader, Vec<u8>)> {
    let mut len = [0u8; LENGTH_SIZE];
    s.read_exact(&mut len).ok()?;
    let len = u32::from_be_bytes(len) as usize;
    assert!(len <= 65536, "agent frame of {len} bytes");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("frame body");
    let frame = Frame::decode_body(&body).expect("agent frame header");
    let header = frame.header;
    let payload = frame.payload.to_vec();
    Some((header, payload))
}

/// Checks that a frame is the ACK of (stream, frame) with FIN and exactly one set-var
/// sess.ip_score of an integer 0..=100; returns the score.
pub fn check_score_ack(header: &FrameHeader, payload: &[u8]) -> i64 {
    assert_eq!(header.frame_type, FrameType::Ack, "expected an ACK");
    assert!(header.flags.is_fin(), "ACK without FIN");
    let body_frame = Frame {
        header: *header,
        payload,
    };
    let ack = Ack::from_frame(&body_frame).unwrap();
    let actions: Vec<_> = ack
        .actions()
        .collect::<Result<_, _>>()
        .expect("actions decode");
    assert_eq!(actions.len(), 1, "one action: {actions:?}");
    match actions[0] {
        Action::SetVar {
            scope: Scope::Session,
            name: b"ip_score",
            value,
        } => {
            let score = match value {
                TypedData::Int32(v) => i64::from(v),
                TypedData::Int64(v) => v,
                other => panic!("ip_score of type {other:?}"),
            };
            assert!((0..=100).contains(&score), "score {score} out of 0..=100");
            score
        }
        other => panic!("unexpected action {other:?}"),
    }
}

/// The status of an AGENT-DISCONNECT frame.
pub fn disconnect_status(header: &FrameHeader, payload: &[u8]) -> u32 {
    assert_eq!(
        header.frame_type,
        FrameType::AgentDisconnect,
        "expected AGENT-DISCONNECT"
    );
    Disconnect::parse(payload).unwrap().status.code()
}

/// Reads until the peer closes; true when it did within `timeout`.
pub fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
