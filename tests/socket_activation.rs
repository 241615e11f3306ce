//! Socket activation (`sd_listen_fds(3)`): the agent serves on the listening sockets a service
//! manager passes it (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`) instead of binding `-a`, on
//! every runtime, TCP sockets and Unix socket files alike; it refuses with the reason what it
//! cannot serve on, and ignores variables meant for another process. The manager is played by `systemd-socket-activate` (package
//! systemd, which `scripts/install-test-deps.sh` installs) or by the test itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use spop_core::TypedData;
use support::inherit::{command_with_fd, start_on};
use support::*;

const SOCKET_ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

/// One NOTIFY on a fresh session to `addr`, answered with a score.
fn scored(addr: SocketAddr) {
    let mut s = session(addr);
    s.write_all(&notify(0, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
        .unwrap();
    let (h, p) = read_frame(&mut s).expect("ACK");
    check_score_ack(&h, &p);
}

/// The same over the Unix socket at `path`.
fn scored_unix(path: &Path) {
    let mut s = session_unix(path);
    s.write_all(&notify(0, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
        .unwrap();
    let (h, p) = read_frame(&mut s).expect("ACK");
    check_score_ack(&h, &p);
}

fn skip_without_socket_activate() -> bool {
    if Path::new(SOCKET_ACTIVATE).exists() {
        return false;
    }
    let msg =
        format!("{SOCKET_ACTIVATE} not found (package systemd: scripts/install-test-deps.sh)");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("\n*** SKIPPED: {msg} ***\n");
    true
}

/// Runs the agent (std runtime) as a socket unit would, with `fd` as descriptor 3 and `env` on
/// top of `LISTEN_FDS=1` and its `LISTEN_PID`, and returns how it exited.
fn refused(env: &[(&str, &str)], fd: Option<&dyn AsRawFd>) -> Output {
    let mut command = match fd {
        Some(fd) => command_with_fd("std", fd.as_raw_fd()),
        None => {
            let mut c = Command::new("sh");
            c.args(["-c", r#"export LISTEN_PID=$$; exec "$0" "$@""#, BIN])
                .args(["--runtime", "std"]);
            c
        }
    };
    let mut child = command
        .args(["-a", "127.0.0.1", "-p", "0"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the agent did not refuse {env:?}: still running");
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn assert_refused(output: &Output, reason: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exited with success: {stderr}");
    assert!(
        stderr.contains("cannot use the inherited sockets") && stderr.contains(reason),
        "no {reason:?} in: {stderr}"
    );
}

#[test]
fn an_agent_started_by_systemd_socket_activate_serves_on_the_sockets_it_was_given() {
    if skip_without_socket_activate() {
        return;
    }
    for runtime in runtimes() {
        let port = free_port();
        let v4: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
        let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
        // systemd-socket-activate starts the agent at the first connection, as a socket unit
        // does: this one waits in the queue and is answered once the agent runs.
        let first = thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(v4).is_err() {
                assert!(Instant::now() < end, "nothing listens on {v4}");
                thread::sleep(Duration::from_millis(20));
            }
            scored(v4);
        });
        let (l4, l6) = (v4.to_string(), v6.to_string());
        let agent = Agent::start_wrapped(
            runtime,
            &[
                SOCKET_ACTIVATE,
                "-l",
                &l4,
                "-l",
                &l6,
                "--fdname=spoa:spoa-v6",
            ],
            &[],
            &[],
        );
        first.join().unwrap();
        assert_eq!(agent.addr, v4, "{runtime}");
        let logs = agent.logs().join("\n");
        for expected in [
            format!("inherited listener: descriptor 3 (spoa) on {v4}"),
            format!("inherited listener: descriptor 4 (spoa-v6) on {v6}"),
            format!("listening on {v4}, {v6}; sockets passed by the service manager"),
        ] {
            assert!(
                logs.contains(&expected),
                "{runtime}: no {expected:?} in {logs}"
            );
        }
        scored(v4);
        scored(v6);
    }
}

#[test]
fn a_socket_passed_as_descriptor_3_is_served_and_outlives_the_agent() {
    let listener = runtime_core::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    for runtime in runtimes() {
        let mut agent = start_on(runtime, &listener, &["-a", "::1"]);
        assert_eq!(agent.addr, addr, "{runtime}: {:?}", agent.logs());
        assert!(
            agent.wait_log(
                "-a/--address (SPOA_ADDRESS) not bound",
                Duration::from_secs(2)
            ),
            "{runtime}: {:?}",
            agent.logs()
        );
        scored(addr);
        // The stop leaves the socket open: a connection made now waits for the next agent.
        agent.signal("TERM");
        assert!(agent.wait_exit(Duration::from_secs(10)).is_some());
        let mut queued = connect(addr);
        queued.write_all(&hello(16380)).unwrap();
        let next = start_on(runtime, &listener, &[]);
        let (h, p) = read_frame(&mut queued).expect("AGENT-HELLO from the next agent");
        assert_eq!(
            h.frame_type,
            spop_core::FrameType::AgentHello,
            "{runtime}: {p:?}"
        );
        scored(next.addr);
    }
}

#[test]
fn malformed_listen_fds_is_refused_with_the_reason() {
    let out = refused(&[("LISTEN_FDS", "two")], None);
    assert_refused(&out, r#"LISTEN_FDS="two" is not a number"#);
    let listener = runtime_core::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let out = refused(
        &[("LISTEN_FDNAMES", "a:b")],
        Some(&listener as &dyn AsRawFd),
    );
    assert_refused(&out, "LISTEN_FDNAMES has 2 names for LISTEN_FDS=1");
}

#[test]
fn a_descriptor_that_is_not_open_is_refused() {
    let listener = runtime_core::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    // Descriptor 3 is passed, 4 is not.
    let out = refused(&[("LISTEN_FDS", "2")], Some(&listener as &dyn AsRawFd));
    assert_refused(&out, "inherited descriptor 4 (LISTEN_FDS) is not open");
}

#[test]
fn a_descriptor_that_is_not_a_socket_is_refused() {
    let file = std::fs::File::open(BIN).unwrap();
    let out = refused(&[], Some(&file as &dyn AsRawFd));
    assert_refused(&out, "inherited descriptor 3 (LISTEN_FDS) is not a socket");
}

#[test]
fn a_datagram_socket_is_refused() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let out = refused(&[], Some(&udp as &dyn AsRawFd));
    assert_refused(&out, "is not a stream socket");
}

#[test]
fn a_tcp_socket_that_is_not_listening_is_refused() {
    let listener = runtime_core::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let connected = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let out = refused(&[], Some(&connected as &dyn AsRawFd));
    assert_refused(&out, "is a stream socket that is not listening");
}

#[test]
fn an_agent_started_by_systemd_socket_activate_serves_on_a_socket_file() {
    if skip_without_socket_activate() {
        return;
    }
    for runtime in runtimes() {
        let dir = Dir::new(&format!("activate-{runtime}"));
        let path = dir.socket();
        let listen = path.to_str().unwrap().to_string();
        // The first connection starts the agent; it waits in the queue until the agent runs.
        let first = {
            let path = path.clone();
            thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(20);
                while std::os::unix::net::UnixStream::connect(&path).is_err() {
                    assert!(
                        Instant::now() < end,
                        "nothing listens on {}",
                        path.display()
                    );
                    thread::sleep(Duration::from_millis(20));
                }
                scored_unix(&path);
            })
        };
        let agent = Agent::start_wrapped(
            runtime,
            &[SOCKET_ACTIVATE, "-l", &listen, "--fdname=spoa"],
            &[],
            &[],
        );
        first.join().unwrap();
        let logs = agent.logs().join("\n");
        for expected in [
            format!("inherited listener: descriptor 3 (spoa) on unix:{listen}"),
            format!("listening on unix:{listen}; sockets passed by the service manager"),
        ] {
            assert!(
                logs.contains(&expected),
                "{runtime}: no {expected:?} in {logs}"
            );
        }
        scored_unix(&path);
    }
}

#[test]
fn a_unix_socket_passed_as_descriptor_3_is_served_and_its_file_outlives_the_agent() {
    let dir = Dir::new("unix");
    let path = dir.socket();
    let listener = UnixListener::bind(&path).unwrap();
    for runtime in runtimes() {
        let mut agent = start_on(runtime, &listener, &[]);
        assert!(
            agent.wait_log(
                &format!(
                    "inherited listener: descriptor 3 on unix:{}",
                    path.display()
                ),
                Duration::from_secs(2)
            ),
            "{runtime}: {:?}",
            agent.logs()
        );
        scored_unix(&path);
        // The stop ends the accept loop at its own wake-up (told from HAProxy's unnamed
        // connections by its abstract name) and leaves the file and the socket: a connection
        // made now waits for the next agent.
        agent.signal("TERM");
        assert!(
            agent.wait_exit(Duration::from_secs(10)).is_some(),
            "{runtime}: the agent did not stop: {:?}",
            agent.logs()
        );
        assert!(
            std::fs::metadata(&path).unwrap().file_type().is_socket(),
            "{runtime}: the socket file is gone"
        );
        let mut queued = connect_unix(&path);
        queued.write_all(&hello(16380)).unwrap();
        let _next = start_on(runtime, &listener, &[]);
        let (h, p) = read_frame(&mut queued).expect("AGENT-HELLO from the next agent");
        assert_eq!(
            h.frame_type,
            spop_core::FrameType::AgentHello,
            "{runtime}: {p:?}"
        );
        scored_unix(&path);
    }
}

#[test]
fn a_unix_socket_without_a_file_is_refused() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("spoa-inherit-abstract-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let abstract_listener = UnixListener::bind_addr(&addr).unwrap();
    let out = refused(&[], Some(&abstract_listener as &dyn AsRawFd));
    assert_refused(&out, "is a Unix socket without a file");
}

#[test]
fn listen_fds_meant_for_another_process_is_ignored_and_the_agent_binds_its_addresses() {
    let agent = Agent::start_env(
        "std",
        &[("LISTEN_FDS", "1"), ("LISTEN_PID", "1")],
        &["-a", "127.0.0.1", "-p", "0"],
    );
    assert!(
        agent.wait_log(
            "LISTEN_FDS is set for process 1, not this one",
            Duration::from_secs(2)
        ),
        "{:?}",
        agent.logs()
    );
    scored(agent.addr);
}
