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
    let err = refused(Command::new(BIN).args(["-t", "10 ns"]), 2);
    assert!(err.contains("10ms, 100us, 1s"), "{err}");
}

#[test]
fn help_shows_the_environment_variable_of_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let options = help.split("HAPROXY CONFIGURATION").next().unwrap();
    let flags = flags_in_help().len();
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

/// The long flags `--help` lists (not `--help` and `--version`), sorted.
fn flags_in_help() -> Vec<String> {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let options = help.split("HAPROXY CONFIGURATION").next().unwrap();
    let mut flags: Vec<String> = options
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = if l.starts_with("--") {
                l
            } else if l.starts_with('-') && l.get(2..4) == Some(", ") {
                &l[4..]
            } else {
                return None;
            };
            let name = l.split([' ', '=']).next().unwrap();
            (name != "--help" && name != "--version").then(|| name.to_string())
        })
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn the_readme_flags_table_has_a_row_for_every_flag() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Flags\n")
        .nth(1)
        .expect("a Flags section");
    // The table: from its header to the first line that is not a row.
    let rows = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    let mut documented: Vec<String> = rows
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(|first| {
            first
                .split('`')
                .filter_map(|code| {
                    code.split(' ')
                        .find(|w| w.starts_with("--") && w[2..].starts_with(char::is_alphabetic))
                })
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    documented.sort();
    documented.dedup();
    let help = flags_in_help();
    assert!(help.len() >= 20, "{help:?}");
    assert_eq!(documented, help, "README's Flags table against --help");
}

/// Runs `command`, which the agent must refuse with exit status `code`; returns what it said.
fn refused(command: &mut Command, code: i32) -> String {
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(code), "{command:?}: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_environment_value_is_refused_naming_the_flag() {
    let err = refused(Command::new(BIN).env("SPOA_PORT", "not-a-port"), 2);
    assert!(
        err.contains("--port") && err.contains("not-a-port"),
        "{err}"
    );
}

#[test]
fn a_port_in_use_is_refused_saying_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for runtime in runtimes() {
        let err = refused(
            Command::new(BIN).args(["--runtime", runtime, "-a", "127.0.0.1", "-p", &port]),
            1,
        );
        assert!(
            err.contains(&format!("cannot listen on 127.0.0.1:{port}: "))
                && err.contains(
                    ": another process (another agent?) listens there; choose another -p or -a"
                ),
            "{runtime}: {err}"
        );
    }
}

#[test]
fn a_metrics_address_with_a_host_name_is_refused_saying_what_is_expected() {
    for value in ["localhost:9000", "127.0.0.1", "9000"] {
        let err = refused(Command::new(BIN).args(["--metrics-address", value]), 2);
        assert!(
            err.contains(&format!("'{value}'"))
                && err.contains("--metrics-address")
                && err.contains(
                    "expected IP:PORT such as 127.0.0.1:9100 or [::1]:9100 \
                     (host names are not resolved)"
                ),
            "{value}: {err}"
        );
    }
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
    refused(Command::new(BIN).args(["--log-level", "loud"]), 2);
}

/// The metrics address an agent started with `--metrics-address 127.0.0.1:0` logged.
fn metrics_address(agent: &Agent) -> std::net::SocketAddr {
    let line = agent
        .wait_line("metrics at http://", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no metrics line: {:?}", agent.logs()));
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line}"))
}

/// GET `path` over plain HTTP/1.1: (status line, headers and body).
fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: spoa\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    (head.to_string(), body.to_string())
}

/// The samples of a scrape: `name{labels}` → value.
fn scrape(addr: std::net::SocketAddr) -> std::collections::HashMap<String, f64> {
    let (head, body) = http_get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// Scrapes until `ready` holds (the last counts land just after the last ACK is written), then
/// returns that scrape, or the last one after 5 s.
fn scrape_until(
    addr: std::net::SocketAddr,
    ready: impl Fn(&std::collections::HashMap<String, f64>) -> bool,
) -> std::collections::HashMap<String, f64> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let samples = scrape(addr);
        if ready(&samples) || Instant::now() > end {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_count_exactly_what_was_sent_on_each_runtime() {
    for runtime in runtimes() {
        let agent = Agent::start(
            runtime,
            &[
                "--metrics-address",
                "127.0.0.1:0",
                "-n",
                "1",
                "--max-connections",
                "2",
            ],
        );
        let metrics = metrics_address(&agent);
        let l = |name: &str, labels: &str| {
            if labels.is_empty() {
                format!("{name}{{runtime=\"{runtime}\"}}")
            } else {
                format!("{name}{{runtime=\"{runtime}\",{labels}}}")
            }
        };

        // A: HELLO, 8 NOTIFYs each waiting for its ACK (8 batches), an unknown frame, then
        // HAPROXY-DISCONNECT.
        let mut a = agent.session();
        for i in 0..8 {
            let waited = ack_time_on_frame(&mut a, i);
            assert!(waited < Duration::from_secs(5));
        }
        a.write_all(&unknown_frame()).unwrap();
        a.write_all(&haproxy_disconnect()).unwrap();
        let (h, p) = read_frame(&mut a).expect("AGENT-DISCONNECT");
        assert_eq!(disconnect_status(&h, &p), 0);
        assert!(closed_within(&mut a, Duration::from_secs(5)));
        // B: a health check.
        let mut b = agent.connect();
        b.write_all(&healthcheck_hello()).unwrap();
        assert!(read_frame(&mut b).is_some());
        assert!(closed_within(&mut b, Duration::from_secs(5)));
        // C: a NOTIFY before the HELLO: AGENT-DISCONNECT 4.
        let mut c = agent.connect();
        c.write_all(&notify(0, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
            .unwrap();
        let (h, p) = read_frame(&mut c).expect("AGENT-DISCONNECT");
        assert_eq!(disconnect_status(&h, &p), 4);
        assert!(closed_within(&mut c, Duration::from_secs(5)));
        // D and E fill --max-connections 2; F is refused. The agent counts a connection closed
        // a moment after the peer sees it closed: wait until A to C are gone.
        let open = l("spoa_connections_open", "worker=\"0\"");
        let end = Instant::now() + Duration::from_secs(5);
        while scrape(metrics)[&open] != 0.0 {
            assert!(Instant::now() < end, "connections A to C still counted");
            std::thread::sleep(Duration::from_millis(10));
        }
        let (d, e) = (agent.session(), agent.session());
        let during = scrape(metrics);
        assert_eq!(during[&l("spoa_connections_open", "worker=\"0\"")], 2.0);
        let mut f = agent.connect();
        assert!(closed_within(&mut f, Duration::from_secs(5)));
        drop((d, e));

        let expected = [
            (l("spoa_connections_accepted_total", "worker=\"0\""), 5.0),
            (l("spoa_connections_open", "worker=\"0\""), 0.0),
            (l("spoa_connections_refused_total", "reason=\"limit\""), 1.0),
            (
                l("spoa_connections_refused_total", "reason=\"allow_from\""),
                0.0,
            ),
            (
                l(
                    "spoa_connections_closed_total",
                    "reason=\"haproxy_disconnect\"",
                ),
                1.0,
            ),
            (
                l("spoa_connections_closed_total", "reason=\"healthcheck\""),
                1.0,
            ),
            (
                l("spoa_connections_closed_total", "reason=\"protocol_error\""),
                1.0,
            ),
            (l("spoa_connections_closed_total", "reason=\"eof\""), 2.0),
            (
                l("spoa_connections_closed_total", "reason=\"read_timeout\""),
                0.0,
            ),
            (l("spoa_healthchecks_total", ""), 1.0),
            (l("spoa_notifies_total", ""), 8.0),
            (l("spoa_acks_total", ""), 8.0),
            (l("spoa_unknown_frames_total", ""), 1.0),
            (
                l("spoa_frames_received_total", "type=\"haproxy_hello\""),
                4.0,
            ),
            (l("spoa_frames_received_total", "type=\"notify\""), 8.0),
            (
                l("spoa_frames_received_total", "type=\"haproxy_disconnect\""),
                1.0,
            ),
            (l("spoa_frames_received_total", "type=\"unknown\""), 1.0),
            (l("spoa_frames_received_total", "type=\"other\""), 1.0),
            (l("spoa_agent_disconnects_total", "status=\"0\""), 1.0),
            (l("spoa_agent_disconnects_total", "status=\"4\""), 1.0),
            (l("spoa_haproxy_disconnects_total", "status=\"0\""), 1.0),
            (l("spoa_notify_to_ack_seconds_count", ""), 8.0),
            (l("spoa_notify_to_ack_seconds_bucket", "le=\"+Inf\""), 8.0),
        ];
        let samples = scrape_until(metrics, |s| {
            expected.iter().all(|(k, v)| s.get(k) == Some(v))
        });
        for (key, value) in &expected {
            assert_eq!(samples.get(key), Some(value), "{key} in {samples:?}");
        }
        let sum = samples[&l("spoa_notify_to_ack_seconds_sum", "")];
        assert!(sum > 0.0 && sum < 8.0, "{sum}");
        let build = format!(
            "spoa_build_info{{version=\"{}\",runtime=\"{runtime}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(samples.get(&build), Some(&1.0), "{samples:?}");
        let (head, _) = http_get(metrics, "/nothing");
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    }
}

#[test]
fn metrics_count_allow_from_refusals_and_read_timeouts_and_are_off_by_default() {
    let agent = Agent::start(
        "std",
        &[
            "--metrics-address",
            "127.0.0.1:0",
            "--allow-from",
            "10.0.0.0/8",
        ],
    );
    let metrics = metrics_address(&agent);
    let mut s = agent.connect();
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    let key = "spoa_connections_refused_total{runtime=\"std\",reason=\"allow_from\"}";
    let samples = scrape_until(metrics, |s| s.get(key) == Some(&1.0));
    assert_eq!(samples.get(key), Some(&1.0));

    // A connection that never says HELLO: cut at the hello timeout with AGENT-DISCONNECT 2.
    let agent = Agent::start(
        "std",
        &["--metrics-address", "127.0.0.1:0", "--hello-timeout", "0.2"],
    );
    let metrics = metrics_address(&agent);
    let mut silent = agent.connect();
    let (h, p) = read_frame(&mut silent).expect("AGENT-DISCONNECT");
    assert_eq!(disconnect_status(&h, &p), 2);
    let expected = [
        ("spoa_read_timeouts_total{runtime=\"std\"}", 1.0),
        ("spoa_write_timeouts_total{runtime=\"std\"}", 0.0),
        (
            "spoa_agent_disconnects_total{runtime=\"std\",status=\"2\"}",
            1.0,
        ),
        (
            "spoa_connections_closed_total{runtime=\"std\",reason=\"read_timeout\"}",
            1.0,
        ),
    ];
    let samples = scrape_until(metrics, |s| {
        expected.iter().all(|(k, v)| s.get(*k) == Some(v))
    });
    for (key, value) in expected {
        assert_eq!(samples.get(key), Some(&value), "{key}");
    }

    let quiet = Agent::start("std", &[]);
    assert!(!quiet.logs().iter().any(|l| l.contains("metrics")));
}

#[test]
fn the_metrics_pass_promtool_check_metrics() {
    let Some(promtool) = ["promtool", "/usr/bin/promtool"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is missing (Debian package prometheus; scripts/install-test-deps.sh)"
        );
        eprintln!("*** SKIPPED: promtool not installed (apt-get install prometheus) ***");
        return;
    };
    // With a score table, so that its series are linted too.
    let scores = std::env::temp_dir().join(format!("spoa-promtool-{}.scores", std::process::id()));
    std::fs::write(&scores, "192.0.2.0/24 5\n").unwrap();
    for runtime in runtimes() {
        let agent = Agent::start(
            runtime,
            &[
                "--metrics-address",
                "127.0.0.1:0",
                "--scores",
                scores.to_str().unwrap(),
            ],
        );
        let metrics = metrics_address(&agent);
        let _ = ack_time(&agent);
        let (_, body) = http_get(metrics, "/metrics");
        assert!(body.contains("spoa_scores_lookups_total"), "{body}");
        let mut check = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        check
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{runtime}: promtool check metrics:\n{}{}\n{body}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Sends NOTIFY `frame` on `s` and waits for its ACK.
fn ack_time_on_frame(s: &mut std::net::TcpStream, frame: u64) -> Duration {
    let start = Instant::now();
    s.write_all(&notify(1, frame, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
        .unwrap();
    let (h, p) = read_frame(s).expect("ACK");
    assert_eq!(h.frame_id.0, frame);
    check_score_ack(&h, &p);
    start.elapsed()
}

/// A frame of type 0x7f, which the agent skips.
fn unknown_frame() -> Vec<u8> {
    // LENGTH 7: type, flags (FIN), stream-id 0, frame-id 0.
    vec![0, 0, 0, 7, 0x7f, 0, 0, 0, 1, 0, 0]
}

/// A HAPROXY-HELLO with healthcheck set, as `option spop-check` sends it.
fn healthcheck_hello() -> Vec<u8> {
    let mut out = vec![0u8; 1024];
    let n = spop_core::HaproxyHello {
        supported_versions: Some(b"2.0"),
        max_frame_size: Some(16380),
        capabilities: Some(b""),
        engine_id: None,
        healthcheck: true,
    }
    .encode(&mut out)
    .unwrap();
    out.truncate(n);
    out
}

#[test]
fn systemd_readiness_is_sent_once_listening_and_stopping_on_sigterm() {
    use std::os::unix::net::UnixDatagram;
    for runtime in runtimes() {
        let path =
            std::env::temp_dir().join(format!("spoa-notify-{}-{runtime}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut agent = Agent::start_env(
            runtime,
            &[("NOTIFY_SOCKET", path.to_str().unwrap())],
            &["-a", "127.0.0.1", "-p", "0"],
        );
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification");
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            message.lines().any(|l| l == "READY=1"),
            "{runtime}: {message:?}"
        );
        assert!(
            message.contains(&format!("STATUS=listening on {}", agent.addr)),
            "{runtime}: {message:?}"
        );
        // Ready means serving.
        assert!(ack_time(&agent) < Duration::from_secs(5));
        agent.signal("TERM");
        let n = socket.recv(&mut buf).expect("STOPPING=1");
        assert_eq!(&buf[..n], b"STOPPING=1\n", "{runtime}");
        assert!(agent.wait_exit(Duration::from_secs(10)).is_some());
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn the_man_page_and_completions_are_generated_from_the_flags() {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let options = help.split("HAPROXY CONFIGURATION").next().unwrap();
    let flags: Vec<&str> = options
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches(','))
        .collect();
    assert!(flags.contains(&"--metrics-address"), "{flags:?}");

    let man = Command::new(BIN)
        .args(["--generate", "man"])
        .output()
        .unwrap();
    assert!(man.status.success());
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(man.contains(".TH spoa 1"), "{man}");
    for flag in &flags {
        // roff escapes every dash.
        let escaped = flag.replace('-', "\\-");
        assert!(man.contains(&escaped), "the man page lacks {flag}");
    }
    for section in [".SH ENVIRONMENT", ".SH HAPROXY CONFIGURATION", "SPOA_PORT"] {
        assert!(man.contains(section), "the man page lacks {section}");
    }
    assert!(!man.contains("--generate"), "the hidden flag is documented");

    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["--generate", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for flag in ["metrics-address", "log-format", "processing-delay"] {
            assert!(script.contains(flag), "{shell} completions lack {flag}");
        }
    }
    let out = Command::new(BIN)
        .args(["--generate", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// With `--scores`, `/metrics` says which table is loaded and how many lookups hit a list.
#[test]
fn metrics_say_which_score_table_is_loaded_and_how_many_lookups_hit_it() {
    let dir = std::env::temp_dir().join(format!("spoa-metrics-scores-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("block.scores");
    std::fs::write(&file, "192.0.2.0/24 5\n198.51.100.7 0\n2001:db8::/32 10\n").unwrap();
    for runtime in runtimes() {
        let agent = Agent::start(
            runtime,
            &[
                "--metrics-address",
                "127.0.0.1:0",
                "--scores",
                file.to_str().unwrap(),
                "--default-score",
                "70",
            ],
        );
        let metrics = metrics_address(&agent);
        let mut s = agent.session();
        // Three addresses in a list, two in none.
        let addresses = [
            TypedData::Ipv4(Ipv4Addr::new(192, 0, 2, 9)),
            TypedData::Ipv4(Ipv4Addr::new(198, 51, 100, 7)),
            TypedData::Ipv6("2001:db8::1".parse().unwrap()),
            TypedData::Ipv4(Ipv4Addr::new(203, 0, 113, 1)),
            TypedData::Ipv6("2001:db9::1".parse().unwrap()),
        ];
        for (i, ip) in addresses.into_iter().enumerate() {
            s.write_all(&notify(i as u64 + 1, 1, ip)).unwrap();
            let (h, p) = read_frame(&mut s).unwrap();
            check_score_ack(&h, &p);
        }
        let samples = scrape_until(metrics, |m| {
            m.get("spoa_scores_lookups_total") == Some(&5.0)
        });
        let file_label = format!("spoa_scores_file_networks{{file=\"{}\"}}", file.display());
        for (name, value) in [
            ("spoa_scores_networks{family=\"ipv4\"}", 2.0),
            ("spoa_scores_networks{family=\"ipv6\"}", 1.0),
            (file_label.as_str(), 3.0),
            ("spoa_scores_reloads_total", 0.0),
            ("spoa_scores_lookups_total", 5.0),
            ("spoa_scores_hits_total", 3.0),
        ] {
            assert_eq!(
                samples.get(name),
                Some(&value),
                "{runtime}: {name} in {samples:?}"
            );
        }
        assert!(samples["spoa_scores_loaded_timestamp_seconds"] > 1.7e9);
    }
}

/// Timeouts take units like `-t` (a bare number stays seconds): `--hello-timeout 200ms` cuts a
/// silent connection a fifth of a second in, with AGENT-DISCONNECT 2.
#[test]
fn timeouts_take_units() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &["--hello-timeout", "200ms"]);
        let mut s = agent.connect();
        let started = Instant::now();
        let (h, p) = read_frame(&mut s).expect("AGENT-DISCONNECT");
        assert_eq!(disconnect_status(&h, &p), 2, "{runtime}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(190) && took < Duration::from_secs(2),
            "{runtime}: cut after {took:?}"
        );
    }
    let out = Command::new(BIN)
        .args(["--frame-timeout", "5 parsecs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--frame-timeout") && err.contains("'5 parsecs'"),
        "{err}"
    );
}
