//! What operators rely on, through the binary: configuration from the environment, time units,
//! structured logs, the metrics endpoint, systemd readiness, the man page and completions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use spop_core::TypedData;
use support::*;

/// Sends one NOTIFY on a fresh session and returns how long its ACK took.
fn ack_time(agent: &Agent) -> Duration {
    let mut s = agent.session();
    let start = Instant::now();
    s.write_all(&notify(0, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
        .unwrap();
    let (h, p) = read_frame(&mut s).expect("ACK");
    check_score_ack(&h, &p);
    start.elapsed()
}

#[test]
fn every_flag_can_come_from_the_environment() {
    for runtime in runtimes() {
        let agent = Agent::start_env(
            runtime,
            &[
                ("SPOA_ADDRESS", "127.0.0.1"),
                ("SPOA_PORT", "0"),
                ("SPOA_WORKERS", "1"),
                ("SPOA_MAX_CONNECTIONS", "1"),
                ("SPOA_PROCESSING_DELAY", "300ms"),
                ("SPOA_SEED", "42"),
            ],
            &[],
        );
        assert_eq!(agent.addr.ip(), Ipv4Addr::LOCALHOST, "{runtime}");
        assert!(
            agent.wait_log("seed 42", Duration::from_secs(5)),
            "{runtime}: {:?}",
            agent.logs()
        );
        let mut first = agent.session();
        let waited = ack_time_on(&mut first);
        assert!(
            waited >= Duration::from_millis(300),
            "{runtime}: {waited:?}"
        );
        // SPOA_MAX_CONNECTIONS=1: a second connection is refused while the first is open.
        let mut second = agent.connect();
        second.write_all(&hello(16380)).ok();
        assert!(
            closed_within(&mut second, Duration::from_secs(5)),
            "{runtime}"
        );
        assert!(
            agent.wait_log("(max-connections)", Duration::from_secs(5)),
            "{runtime}"
        );
    }
    let out = Command::new(BIN)
        .arg("--check-runtime")
        .env("SPOA_RUNTIME", "std")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("std available"));
}

fn ack_time_on(s: &mut std::net::TcpStream) -> Duration {
    let start = Instant::now();
    s.write_all(&notify(0, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
        .unwrap();
    let (h, p) = read_frame(s).expect("ACK");
    check_score_ack(&h, &p);
    start.elapsed()
}

#[test]
fn the_command_line_wins_over_the_environment() {
    let agent = Agent::start_env("std", &[("SPOA_PROCESSING_DELAY", "20s")], &["-t", "0"]);
    let waited = ack_time(&agent);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
}

#[test]
fn processing_delay_takes_units_and_a_bare_number_is_milliseconds() {
    for (arg, least) in [("250ms", 250), ("250", 250), ("1s", 1000), ("500us", 0)] {
        let agent = Agent::start("std", &["-t", arg]);
        let waited = ack_time(&agent);
        assert!(
            waited >= Duration::from_millis(least) && waited < Duration::from_millis(least + 5000),
            "-t {arg}: {waited:?}"
        );
    }
    let out = Command::new(BIN).args(["-t", "10 ns"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("10ms, 100us, 1s"), "{err}");
}

#[test]
fn help_shows_the_environment_variable_of_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let options = help.split("HAPROXY CONFIGURATION").next().unwrap();
    let flags = options
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            (l.starts_with("--") || (l.starts_with('-') && l.get(2..4) == Some(", ")))
                && !l.contains("--help")
                && !l.contains("--version")
        })
        .count();
    let envs = options.matches("[env: SPOA_").count();
    assert!(flags >= 15, "{flags} flags in:\n{help}");
    assert_eq!(flags, envs, "a flag without its variable:\n{help}");
    for name in [
        "SPOA_PORT",
        "SPOA_WORKERS",
        "SPOA_PROCESSING_DELAY",
        "SPOA_ALLOW_FROM",
    ] {
        assert!(help.contains(&format!("[env: {name}=")), "{name}");
    }
}

#[test]
fn a_bad_environment_value_is_refused_naming_the_flag() {
    let out = Command::new(BIN)
        .env("SPOA_PORT", "not-a-port")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--port") && err.contains("not-a-port"),
        "{err}"
    );
}

/// Every line of `agent`'s log as a JSON object; panics on a line that is not one.
fn json_lines(agent: &Agent) -> Vec<serde_json::Value> {
    agent
        .logs()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON object ({e}): {l}")))
        .collect()
}

#[test]
fn json_logs_are_one_object_per_line_with_peer_and_connection_fields() {
    for runtime in runtimes() {
        let agent = Agent::start(
            runtime,
            &["--log-format", "json", "--log-level", "debug", "-n", "1"],
        );
        // A NOTIFY before the HELLO: a protocol fault, logged as a warning with its status.
        let mut s = agent.connect();
        let local = s.local_addr().unwrap().to_string();
        s.write_all(&notify(0, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
            .unwrap();
        let (h, p) = read_frame(&mut s).expect("AGENT-DISCONNECT");
        assert_eq!(disconnect_status(&h, &p), 4);
        assert!(
            agent.wait_log("AGENT-DISCONNECT status", Duration::from_secs(5)),
            "{runtime}"
        );
        let lines = json_lines(&agent);
        for line in &lines {
            for field in ["time", "level", "target", "message"] {
                assert!(line[field].is_string(), "{runtime}: no {field} in {line}");
            }
        }
        let opened = lines
            .iter()
            .find(|l| {
                l["peer"] == local.as_str() && l["message"].as_str().unwrap().contains("opened")
            })
            .unwrap_or_else(|| panic!("{runtime}: no debug line for {local} opening: {lines:?}"));
        assert_eq!(opened["level"], "DEBUG");
        let id = opened["connection"]
            .as_u64()
            .expect("connection id as a number");
        let closed = lines
            .iter()
            .find(|l| l["peer"] == local.as_str() && l["level"] == "WARN")
            .unwrap_or_else(|| panic!("{runtime}: no warning for {local}: {lines:?}"));
        assert_eq!(closed["connection"], id, "{runtime}: {closed}");
        assert_eq!(closed["status"], 4, "{runtime}: {closed}");
        assert_eq!(closed["target"], "runtime_core::report", "{runtime}");
        if runtime == "uring" {
            assert_eq!(opened["worker"], 0, "{opened}");
        }
    }
}

/// Runs the agent on a port already taken, so that it logs its startup lines and an error,
/// then exits: what reaches standard error at each level, without waiting on a server.
fn startup_log(args: &[&str], rust_log: Option<&str>) -> String {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut command = Command::new(BIN);
    command
        .args(["--runtime", "std", "-a", "127.0.0.1", "-p", &port])
        .args(args)
        .env_remove("RUST_LOG");
    if let Some(filters) = rust_log {
        command.env("RUST_LOG", filters);
    }
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn log_level_and_rust_log_choose_the_lines() {
    let info = startup_log(&[], None);
    assert!(
        info.contains("open files limit") && info.contains("cannot listen"),
        "{info}"
    );
    let warn = startup_log(&["--log-level", "warn"], None);
    assert!(
        !warn.contains("open files limit") && warn.contains("cannot listen"),
        "{warn}"
    );
    // RUST_LOG sets the level when --log-level is not given...
    let rust_log = startup_log(&[], Some("error"));
    assert!(!rust_log.contains("open files limit") && rust_log.contains("cannot listen"));
    // ...and --log-level wins over it.
    let both = startup_log(&["--log-level", "info"], Some("error"));
    assert!(both.contains("open files limit"), "{both}");
    // The error line in JSON.
    let json = startup_log(&["--log-format", "json"], None);
    let error: serde_json::Value = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no ERROR line: {json}"));
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("cannot listen on 127.0.0.1:"));
    let out = Command::new(BIN)
        .args(["--log-level", "loud"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
