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
