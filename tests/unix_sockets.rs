//! `-a unix:/PATH`: the agent as its own process on a Unix socket file, beside a TCP listener,
//! with a scripted HAProxy peer over the socket. Every test that serves runs against each
//! runtime the binary can run on this machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use spop_core::TypedData;
use support::*;

/// The agent on 127.0.0.1 (port chosen by the system, for `Agent::addr`) and on `path`.
fn start(runtime: &'static str, path: &Path, args: &[&str]) -> Agent {
    let unix = format!("unix:{}", path.display());
    Agent::start_on(runtime, &["-a", "127.0.0.1", "-p", "0", "-a", &unix], args)
}

/// Runs the agent expecting it to refuse to start; returns what it said.
fn refused(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["--runtime", "std"])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ip() -> TypedData<'static> {
    TypedData::Ipv4(Ipv4Addr::new(192, 0, 2, 1))
}

#[test]
fn a_notify_over_a_unix_socket_gets_an_ack_with_ip_score() {
    for runtime in runtimes() {
        let dir = Dir::new("unix");
        let agent = start(
            runtime,
            &dir.socket(),
            &["--default-score", "42", "--log-level", "debug"],
        );
        let mut s = session_unix(&dir.socket());
        s.write_all(&notify(3, 1, ip())).unwrap();
        let (h, p) = read_frame(&mut s).expect("ACK");
        assert_ack_of(&h, 3, 1);
        assert_eq!(check_score_ack(&h, &p), 42, "{runtime}");
        ping_pong(&mut s, &notify(5, 1, ip()), 100);
        let peer = format!("unix:{}: connection #", dir.socket().display());
        assert!(
            agent.wait_log(&peer, Duration::from_secs(5)),
            "{runtime}: no log line naming the Unix peer: {:?}",
            agent.logs()
        );
    }
}

#[test]
fn pipelined_notifies_over_a_unix_socket_are_all_answered() {
    for runtime in runtimes() {
        let dir = Dir::new("unix");
        let _agent = start(runtime, &dir.socket(), &[]);
        let mut s = session_unix(&dir.socket());
        const ROUNDS: u64 = 50;
        const DEPTH: u64 = 32;
        for round in 0..ROUNDS {
            let mut batch = Vec::new();
            let mut pending = HashSet::new();
            for i in 0..DEPTH {
                let stream = round * DEPTH + i;
                batch.extend(notify(stream, 1, ip()));
                pending.insert(stream);
            }
            s.write_all(&batch).unwrap();
            for _ in 0..DEPTH {
                let (h, p) = read_frame(&mut s).expect("ACK");
                assert!(pending.remove(&h.stream_id.0), "{runtime}: unknown ACK");
                check_score_ack(&h, &p);
            }
        }
        // Many connections at once, all on the socket file.
        let mut conns: Vec<_> = (0..50).map(|_| session_unix(&dir.socket())).collect();
        for (i, s) in conns.iter_mut().enumerate() {
            pipelined(s, &notify(i as u64, 1, ip()), 2, 8);
        }
    }
}

#[test]
fn a_silent_unix_client_is_cut_at_the_hello_timeout() {
    for runtime in runtimes() {
        let dir = Dir::new("unix");
        let _agent = start(runtime, &dir.socket(), &["--hello-timeout", "300ms"]);
        let mut s = connect_unix(&dir.socket());
        let started = Instant::now();
        let (h, p) = read_frame(&mut s).expect("AGENT-DISCONNECT");
        assert_eq!(disconnect_status(&h, &p), 2, "{runtime}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(3),
            "{runtime}: cut after {took:?}"
        );
        assert!(closed_within(&mut s, Duration::from_secs(3)), "{runtime}");
    }
}

#[test]
fn a_stale_socket_file_is_replaced_at_start_with_a_log_line() {
    for runtime in runtimes() {
        let dir = Dir::new("unix");
        // A killed agent leaves its file: bound, nothing listening any more.
        drop(UnixListener::bind(dir.socket()).unwrap());
        assert!(fs::symlink_metadata(dir.socket()).is_ok());
        let agent = start(runtime, &dir.socket(), &[]);
        assert!(
            agent.wait_log("removed stale socket file", Duration::from_secs(5)),
            "{runtime}: {:?}",
            agent.logs()
        );
        let mut s = session_unix(&dir.socket());
        ping_pong(&mut s, &notify(1, 1, ip()), 3);
    }
}

#[test]
fn a_path_where_an_agent_listens_is_refused_and_that_agent_keeps_serving() {
    for runtime in runtimes() {
        let dir = Dir::new("unix");
        let _first = start(runtime, &dir.socket(), &[]);
        let unix = format!("unix:{}", dir.socket().display());
        let err = refused(&["-a", &unix]);
        assert!(err.contains("another process is listening on"), "{err}");
        assert!(
            err.contains("(another agent running?); choose another -a"),
            "{err}"
        );
        let mut s = session_unix(&dir.socket());
        ping_pong(&mut s, &notify(1, 1, ip()), 3);
    }
}

#[test]
fn a_path_that_is_not_a_socket_is_refused_and_left_alone() {
    let dir = Dir::new("unix");
    fs::write(dir.socket(), "not a socket").unwrap();
    let unix = format!("unix:{}", dir.socket().display());
    let err = refused(&["-a", &unix]);
    assert!(
        err.contains("exists and is not a socket: not replacing it"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(dir.socket()).unwrap(), "not a socket");
}

#[test]
fn a_relative_too_long_or_homeless_path_is_refused_saying_why() {
    let err = refused(&["-a", "unix:spoa.sock"]);
    assert!(
        err.contains("relative: give an absolute path"),
        "relative: {err}"
    );
    let long = format!("unix:/tmp/{}", "x".repeat(120));
    let err = refused(&["-a", &long]);
    assert!(err.contains("at most 107 fit"), "too long: {err}");
    let err = refused(&["-a", "unix:/nonexistent-spoa-dir/spoa.sock"]);
    assert!(
        err.contains("directory /nonexistent-spoa-dir does not exist"),
        "no directory: {err}"
    );
    let err = refused(&["-a", "unix:/tmp/x.sock", "--unix-mode", "0999"]);
    assert!(err.contains("is not a file mode"), "mode: {err}");
    let err = refused(&[
        "-a",
        "unix:/tmp/x.sock",
        "--unix-owner",
        "no-such-user-spoa",
    ]);
    assert!(err.contains("no user named 'no-such-user-spoa'"), "{err}");
}

/// The current user's and group's names and ids.
fn me() -> (String, String, u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id").arg(flag).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (uid, gid) = (id("-u").parse().unwrap(), id("-g").parse().unwrap());
    (id("-un"), id("-gn"), uid, gid)
}

#[test]
fn the_socket_file_gets_the_mode_and_owner_asked() {
    let (user, group, uid, gid) = me();
    for runtime in runtimes() {
        for (mode, owner) in [
            ("0640", format!("{user}:{group}")),
            ("600", format!("{uid}:{gid}")),
            ("0666", format!(":{group}")),
        ] {
            let dir = Dir::new("unix");
            let agent = start(
                runtime,
                &dir.socket(),
                &["--unix-mode", mode, "--unix-owner", &owner],
            );
            let meta = fs::symlink_metadata(dir.socket()).unwrap();
            assert!(meta.file_type().is_socket());
            let want = u32::from_str_radix(mode, 8).unwrap();
            assert_eq!(
                meta.permissions().mode() & 0o7777,
                want,
                "{runtime} {mode} {owner}"
            );
            assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{runtime} {owner}");
            let said = format!(
                "unix socket {}: mode {want:04o}, owner {uid}:{gid}",
                dir.socket().display()
            );
            assert!(
                agent.logs().iter().any(|l| l.contains(&said)),
                "{runtime}: {said} not in {:?}",
                agent.logs()
            );
        }
    }
}

#[test]
fn the_socket_file_is_removed_when_the_agent_stops_on_sigterm() {
    for runtime in runtimes() {
        let dir = Dir::new("unix");
        let mut agent = start(runtime, &dir.socket(), &[]);
        let mut s = session_unix(&dir.socket());
        ping_pong(&mut s, &notify(1, 1, ip()), 2);
        agent.signal("TERM");
        // The open connection is drained: AGENT-DISCONNECT 0, then closed.
        let (h, p) = read_frame(&mut s).expect("AGENT-DISCONNECT at the stop");
        assert_eq!(disconnect_status(&h, &p), 0, "{runtime}");
        let status = agent.wait_exit(Duration::from_secs(10)).expect("exit");
        assert!(status.success(), "{runtime}: {status}");
        assert!(
            !dir.socket().exists(),
            "{runtime}: socket file left after the stop"
        );
        assert!(
            agent
                .logs()
                .iter()
                .any(|l| l.contains("removed socket file")),
            "{runtime}: {:?}",
            agent.logs()
        );
    }
}

#[test]
fn allow_from_does_not_block_unix_clients() {
    for runtime in runtimes() {
        let dir = Dir::new("unix");
        let agent = start(runtime, &dir.socket(), &["--allow-from", "192.0.2.0/24"]);
        let mut tcp = agent.connect();
        tcp.write_all(&hello(16380)).unwrap();
        assert!(
            closed_within(&mut tcp, Duration::from_secs(5)),
            "{runtime}: a TCP client outside allow-from was served"
        );
        let mut s = session_unix(&dir.socket());
        ping_pong(&mut s, &notify(1, 1, ip()), 3);
    }
}

#[test]
fn allow_from_with_only_unix_sockets_is_said_to_be_ignored() {
    let dir = Dir::new("unix");
    let unix = format!("unix:{}", dir.socket().display());
    let agent = Agent::start_on("std", &["-a", &unix], &["--allow-from", "192.0.2.0/24"]);
    assert!(
        agent.wait_log(
            "--allow-from applies to TCP listeners only",
            Duration::from_secs(5)
        ),
        "{:?}",
        agent.logs()
    );
    ping_pong(&mut session_unix(&dir.socket()), &notify(1, 1, ip()), 1);
}

#[test]
fn a_unix_client_past_max_connections_is_refused_with_a_line_naming_the_socket() {
    for runtime in runtimes() {
        let dir = Dir::new("unix");
        let agent = start(runtime, &dir.socket(), &["--max-connections", "1"]);
        let mut first = session_unix(&dir.socket());
        let mut second = connect_unix(&dir.socket());
        assert!(
            closed_within(&mut second, Duration::from_secs(5)),
            "{runtime}: a connection past the limit was kept"
        );
        let line = format!(
            "unix:{}: refused, 1 connections already open",
            dir.socket().display()
        );
        assert!(
            agent.wait_log(&line, Duration::from_secs(5)),
            "{runtime}: {:?}",
            agent.logs()
        );
        ping_pong(&mut first, &notify(1, 1, ip()), 1);
    }
}

#[test]
fn help_says_allow_from_does_not_apply_to_unix_sockets() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "unix:/PATH",
        "--unix-mode <MODE>",
        "[env: SPOA_UNIX_MODE=]",
        "--unix-owner <USER[:GROUP]>",
        "[env: SPOA_UNIX_OWNER=]",
        "Does not apply to Unix",
        "unix@/run/spoa/spoa.sock",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}");
    }
}

#[test]
fn unix_addresses_and_permissions_come_from_the_environment() {
    let (_, _, uid, gid) = me();
    for runtime in runtimes() {
        let dir = Dir::new("unix");
        let unix = format!("127.0.0.1:0,unix:{}", dir.socket().display());
        let owner = format!("{uid}:{gid}");
        let _agent = Agent::start_env(
            runtime,
            &[
                ("SPOA_ADDRESS", &unix),
                ("SPOA_UNIX_MODE", "0620"),
                ("SPOA_UNIX_OWNER", &owner),
            ],
            &[],
        );
        let meta = fs::symlink_metadata(dir.socket()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o620, "{runtime}");
        let mut s = session_unix(&dir.socket());
        ping_pong(&mut s, &notify(1, 1, ip()), 1);
    }
}

#[test]
fn the_socket_file_of_an_agent_just_killed_is_taken_over_at_once() {
    // uring's listener outlives its killed process for a few milliseconds (the kernel tears the
    // ring down afterwards): a restart right after must still take the file over.
    for runtime in runtimes() {
        let dir = Dir::new("unix");
        for round in 0..3 {
            let agent = start(runtime, &dir.socket(), &[]);
            let mut s = session_unix(&dir.socket());
            ping_pong(&mut s, &notify(1, 1, ip()), 1);
            drop(agent); // SIGKILL, then reaped
            assert!(dir.socket().exists(), "{runtime} round {round}");
        }
        let _agent = start(runtime, &dir.socket(), &[]);
        ping_pong(&mut session_unix(&dir.socket()), &notify(1, 1, ip()), 1);
    }
}

#[test]
fn the_load_generator_drives_an_agent_on_a_unix_socket() {
    use spoa_loadgen::{LoadConfig, Shape};
    for runtime in runtimes() {
        let dir = Dir::new("unix");
        let _agent = start(runtime, &dir.socket(), &[]);
        let config = LoadConfig {
            warmup: Duration::ZERO,
            duration: Duration::from_secs(5),
            notifies: Some(4000),
            ..LoadConfig::new(
                runtime_core::ListenAddress::unix(dir.socket()).unwrap(),
                "4x8".parse::<Shape>().unwrap(),
            )
        };
        let result = spoa_loadgen::run(&config).unwrap();
        assert_eq!(
            (result.errors, result.total_acks),
            (0, 4000),
            "{runtime}: {:?}",
            result.first_errors
        );
    }
}
