//! `--scores`: exact scores from CIDR lists, live reload on SIGHUP (also under pipelined load,
//! every ACK checked), bad files. The agent runs as its own process on every runtime this
//! machine has, and is spoken to over real TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spop_core::{
    Ack, Action, Arg, Frame, FrameId, FrameType, NotifyWriter, Scope, StreamId, TypedData,
};
use support::*;

fn typed(ip: IpAddr) -> TypedData<'static> {
    match ip {
        IpAddr::V4(a) => TypedData::Ipv4(a),
        IpAddr::V6(a) => TypedData::Ipv6(a),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The score the agent gives `addr` on connection `s`.
fn score(s: &mut TcpStream, stream: u64, addr: IpAddr) -> i64 {
    s.write_all(&notify(stream, 1, typed(addr))).unwrap();
    let (h, p) = read_frame(s).expect("an ACK");
    assert_eq!((h.stream_id.0, h.frame_id.0), (stream, 1));
    check_score_ack(&h, &p)
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Lines of the agent's log containing `needle`.
fn count_logs(agent: &Agent, needle: &str) -> usize {
    agent.logs().iter().filter(|l| l.contains(needle)).count()
}

/// Sends SIGHUP and waits until the agent has logged one more line containing `needle`.
fn sighup_and_wait(agent: &Agent, needle: &str) {
    let before = count_logs(agent, needle);
    agent.signal("HUP");
    let end = Instant::now() + Duration::from_secs(10);
    while count_logs(agent, needle) == before {
        assert!(
            Instant::now() < end,
            "{}: no {needle:?} after SIGHUP: {:#?}",
            agent.runtime,
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

const BLOCK: &str = "\
# block list: nested networks, IPv4 and IPv6
10.0.0.0/8          50
10.1.0.0/16         20
10.1.2.0/24          5
10.1.2.3             0
2001:db8::/32       60
2001:db8:1::/48     30
2001:db8:1::1        1
192.0.2.0/24         9
";

const ALLOW: &str = "
# allow list, given last: it wins for a network both lists name
192.0.2.0/24        95   # same network as in the block list
10.1.2.128/25       70
";

/// (address, score) with BLOCK then ALLOW loaded; `None`: in no list.
const CASES: &[(&str, Option<i64>)] = &[
    ("9.255.255.255", None),
    ("10.0.0.0", Some(50)),
    ("10.0.255.255", Some(50)),
    ("10.1.0.0", Some(20)),
    ("10.1.1.255", Some(20)),
    ("10.1.2.0", Some(5)),
    ("10.1.2.2", Some(5)),
    ("10.1.2.3", Some(0)),
    ("10.1.2.4", Some(5)),
    ("10.1.2.127", Some(5)),
    ("10.1.2.128", Some(70)),
    ("10.1.2.255", Some(70)),
    ("10.1.3.0", Some(20)),
    ("10.2.0.0", Some(50)),
    ("10.255.255.255", Some(50)),
    ("11.0.0.0", None),
    ("192.0.2.0", Some(95)),
    ("192.0.2.255", Some(95)),
    ("192.0.3.0", None),
    ("::ffff:10.1.2.3", Some(0)),
    ("::ffff:11.0.0.1", None),
    ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2001:db8::", Some(60)),
    ("2001:db8:0:ffff:ffff:ffff:ffff:ffff", Some(60)),
    ("2001:db8:1::", Some(30)),
    ("2001:db8:1::1", Some(1)),
    ("2001:db8:1::2", Some(30)),
    ("2001:db8:1:ffff:ffff:ffff:ffff:ffff", Some(30)),
    ("2001:db8:2::", Some(60)),
    ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Some(60)),
    ("2001:db9::", None),
];

#[test]
fn exact_scores_inside_at_the_edges_of_and_outside_overlapping_networks() {
    let dir = Dir::new("exact");
    let block = dir.file("block.txt", BLOCK);
    let allow = dir.file("allow.txt", ALLOW);
    for runtime in runtimes() {
        let agent = Agent::start(
            runtime,
            &[
                "--scores",
                path_arg(&block),
                "--scores",
                path_arg(&allow),
                "--default-score",
                "77",
            ],
        );
        let mut s = agent.session();
        for (i, &(addr, want)) in CASES.iter().enumerate() {
            assert_eq!(
                score(&mut s, i as u64 + 1, ip(addr)),
                want.unwrap_or(77),
                "{runtime}: {addr}"
            );
        }
        let logs = agent.logs().join("\n");
        let loaded = format!(
            "scores: 9 networks (6 IPv4, 3 IPv6, 1 repeated (the later line kept)) from {} (5 \
             IPv4, 3 IPv6), {} (2 IPv4, 0 IPv6)",
            block.display(),
            allow.display()
        );
        assert!(logs.contains(&loaded), "{runtime}: {loaded:?} in {logs}");
        assert!(logs.contains("addresses in no list get --default-score 77"));
    }
}

#[test]
fn addresses_in_no_list_keep_the_random_score() {
    let dir = Dir::new("random");
    let block = dir.file("block.txt", BLOCK);
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &["--scores", path_arg(&block)]);
        let mut s = agent.session();
        let mut unlisted = Vec::new();
        for round in 0..40u64 {
            assert_eq!(score(&mut s, 2 * round + 1, ip("10.1.2.3")), 0, "{runtime}");
            unlisted.push(score(&mut s, 2 * round + 2, ip("198.51.100.1")));
        }
        unlisted.sort_unstable();
        unlisted.dedup();
        assert!(
            unlisted.len() > 5,
            "{runtime}: unlisted addresses get random scores, got {unlisted:?}"
        );
        assert!(agent.wait_log(
            "addresses in no list get a random score",
            Duration::from_secs(2)
        ));
    }
}

#[test]
fn sighup_reloads_on_open_connections_and_a_bad_file_keeps_the_table() {
    let dir = Dir::new("sighup");
    for runtime in runtimes() {
        let path = dir.file("scores.txt", "192.0.2.0/24 10\n");
        let agent = Agent::start(
            runtime,
            &["--scores", path_arg(&path), "--default-score", "100"],
        );
        let mut open = agent.session();
        assert_eq!(score(&mut open, 1, ip("192.0.2.1")), 10);
        assert_eq!(score(&mut open, 3, ip("2001:db8::1")), 100);

        dir.replace(&path, "192.0.2.0/24 90\n2001:db8::/32 15\n");
        sighup_and_wait(&agent, "scores reloaded (SIGHUP)");
        assert_eq!(score(&mut open, 5, ip("192.0.2.1")), 90, "{runtime}");
        assert_eq!(score(&mut open, 7, ip("2001:db8::1")), 15, "{runtime}");
        assert_eq!(score(&mut agent.session(), 1, ip("192.0.2.1")), 90);

        dir.replace(&path, "192.0.2.0/24 20\n\n10.0.0.0/8 101\n");
        sighup_and_wait(&agent, "scores reload (SIGHUP) failed");
        let failure = format!("{}:3: score 101 is outside 0..=100", path.display());
        assert!(
            agent.wait_log(&failure, Duration::from_secs(2)),
            "{runtime}: {failure:?} in {:#?}",
            agent.logs()
        );
        assert!(agent.wait_log("keeping the table loaded", Duration::from_secs(2)));
        assert_eq!(
            score(&mut open, 9, ip("192.0.2.1")),
            90,
            "{runtime}: old table"
        );

        std::fs::remove_file(&path).unwrap();
        sighup_and_wait(&agent, "scores reload (SIGHUP) failed");
        assert!(agent.wait_log("cannot open", Duration::from_secs(2)));
        assert_eq!(
            score(&mut open, 11, ip("192.0.2.1")),
            90,
            "{runtime}: old table"
        );

        dir.replace(&path, "192.0.2.0/25 30\n");
        sighup_and_wait(&agent, "scores reloaded (SIGHUP)");
        assert_eq!(score(&mut open, 13, ip("192.0.2.1")), 30, "{runtime}");
        assert_eq!(score(&mut open, 15, ip("192.0.2.200")), 100, "{runtime}");
        assert!(agent.wait_log("lookups so far: ", Duration::from_secs(2)));
    }
}

#[test]
fn scores_watch_reloads_a_replaced_file() {
    let dir = Dir::new("watch");
    for runtime in runtimes() {
        let path = dir.file("scores.txt", "192.0.2.0/24 10\n");
        let agent = Agent::start(
            runtime,
            &["--scores", path_arg(&path), "--scores-watch", "0.05"],
        );
        let mut s = agent.session();
        assert_eq!(score(&mut s, 1, ip("192.0.2.1")), 10);
        dir.replace(&path, "192.0.2.0/24 11\n");
        assert!(
            agent.wait_log("scores reloaded (files changed)", Duration::from_secs(10)),
            "{runtime}: {:#?}",
            agent.logs()
        );
        assert_eq!(score(&mut s, 3, ip("192.0.2.1")), 11, "{runtime}");
    }
}

// ---------------------------------------------------------------------------------------------
// Reload under load.

/// Listed networks for the load: 10.<i / 256>.<i % 256>.0/24 and 2001:db8:<i>::/48.
const NETWORKS: u32 = 2048;

/// Table A scores network `i` with `i % 50`, table B with `50 + i % 50`: every score says which
/// table gave it.
fn load_table(b: bool) -> String {
    let mut text = String::from("# reload under load\n");
    for i in 0..NETWORKS {
        let s = i % 50 + if b { 50 } else { 0 };
        text.push_str(&format!("10.{}.{}.0/24 {s}\n", i / 256, i % 256));
        text.push_str(&format!("2001:db8:{i:x}::/48 {s}\n"));
    }
    text
}

fn load_address(n: u64) -> (IpAddr, i64) {
    let i = (n % u64::from(NETWORKS)) as u32;
    let host = (n / u64::from(NETWORKS)) as u8;
    let addr = if n.is_multiple_of(2) {
        IpAddr::V4(Ipv4Addr::new(10, (i / 256) as u8, (i % 256) as u8, host))
    } else {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            i as u16,
            0,
            0,
            0,
            0,
            host.into(),
        ))
    };
    (addr, i64::from(i % 50))
}

/// A NOTIFY with two `check-client-ip` messages: both must be answered from one table.
fn two_message_notify(stream: u64, a: IpAddr, b: IpAddr) -> Vec<u8> {
    let mut out = vec![0u8; 256];
    let mut w = NotifyWriter::new(&mut out, StreamId(stream), FrameId(1), u32::MAX).unwrap();
    for addr in [a, b] {
        w.message(
            b"check-client-ip",
            &[Arg {
                name: b"",
                value: typed(addr),
            }],
        )
        .unwrap();
    }
    let n = w.finish();
    out.truncate(n);
    out
}

/// The two scores of an ACK of a two-message NOTIFY.
fn two_scores(header: &spop_core::FrameHeader, payload: &[u8]) -> (i64, i64) {
    assert_eq!(header.frame_type, FrameType::Ack);
    let frame = Frame {
        header: *header,
        payload,
    };
    let ack = Ack::from_frame(&frame).unwrap();
    let scores: Vec<i64> = ack
        .actions()
        .map(|a| match a.unwrap() {
            Action::SetVar {
                scope: Scope::Session,
                name: b"ip_score",
                value: TypedData::Int32(v),
            } => i64::from(v),
            other => panic!("unexpected action {other:?}"),
        })
        .collect();
    assert_eq!(scores.len(), 2, "two set-vars");
    (scores[0], scores[1])
}

#[derive(Default, Debug)]
struct Seen {
    acks: u64,
    a: u64,
    b: u64,
}

/// One connection keeping `DEPTH` two-message NOTIFYs in flight until `stop`, checking that
/// each ACK's two scores come from one table; then a last round, sent after the last reload,
/// that must all come from `last` (B when true).
fn keep_loading(mut s: TcpStream, conn: u64, stop: &AtomicBool, last_is_b: bool) -> Seen {
    const DEPTH: u64 = 16;
    let mut reader = s.try_clone().unwrap();
    let mut in_flight: HashMap<u64, (i64, i64)> = HashMap::new();
    let mut next = 0u64;
    let mut seen = Seen::default();
    let mut send = |s: &mut TcpStream, in_flight: &mut HashMap<u64, (i64, i64)>| {
        let stream = 2 * next + 1;
        let (a, base_a) = load_address(next * 7 + conn);
        let (b, base_b) = load_address(next * 13 + conn + 1);
        s.write_all(&two_message_notify(stream, a, b)).unwrap();
        in_flight.insert(stream, (base_a, base_b));
        next += 1;
    };
    for _ in 0..DEPTH {
        send(&mut s, &mut in_flight);
    }
    let check = |reader: &mut TcpStream, in_flight: &mut HashMap<u64, (i64, i64)>| {
        let (h, p) = read_frame(reader).expect("the connection stays open");
        let (base_a, base_b) = in_flight
            .remove(&h.stream_id.0)
            .unwrap_or_else(|| panic!("ACK for unknown stream {}", h.stream_id.0));
        let got = two_scores(&h, &p);
        let from_b = got == (base_a + 50, base_b + 50);
        assert!(
            from_b || got == (base_a, base_b),
            "ACK {} has {got:?}: not both from table A {:?} nor both from B {:?}",
            h.stream_id.0,
            (base_a, base_b),
            (base_a + 50, base_b + 50)
        );
        from_b
    };
    while !stop.load(Ordering::Acquire) {
        let from_b = check(&mut reader, &mut in_flight);
        seen.acks += 1;
        if from_b {
            seen.b += 1;
        } else {
            seen.a += 1;
        }
        send(&mut s, &mut in_flight);
    }
    while !in_flight.is_empty() {
        check(&mut reader, &mut in_flight);
        seen.acks += 1;
    }
    for _ in 0..DEPTH {
        send(&mut s, &mut in_flight);
    }
    for _ in 0..DEPTH {
        assert_eq!(
            check(&mut reader, &mut in_flight),
            last_is_b,
            "a NOTIFY sent after the last reload uses the last table"
        );
    }
    seen
}

#[test]
fn ten_reloads_under_pipelined_load_every_ack_from_one_whole_table() {
    let dir = Dir::new("load");
    let (a, b) = (load_table(false), load_table(true));
    for runtime in runtimes() {
        let path = dir.file("scores.txt", &a);
        let agent = Agent::start(runtime, &["--scores", path_arg(&path)]);
        let stop = Arc::new(AtomicBool::new(false));
        const RELOADS: usize = 10;
        let last_is_b = RELOADS % 2 == 1;
        let loaders: Vec<_> = (0..4)
            .map(|conn| {
                let s = agent.session();
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || keep_loading(s, conn, &stop, last_is_b))
            })
            .collect();
        for n in 0..RELOADS {
            std::thread::sleep(Duration::from_millis(60));
            dir.replace(&path, if n % 2 == 0 { &b } else { &a });
            sighup_and_wait(&agent, "scores reloaded (SIGHUP)");
        }
        std::thread::sleep(Duration::from_millis(60));
        stop.store(true, Ordering::Release);
        let mut total = Seen::default();
        for l in loaders {
            let seen = l.join().expect("a load connection failed");
            total.acks += seen.acks;
            total.a += seen.a;
            total.b += seen.b;
        }
        eprintln!("{runtime}: {RELOADS} reloads under load: {total:?}");
        assert!(
            total.a > 0 && total.b > 0,
            "{runtime}: both tables answered"
        );
        assert_eq!(count_logs(&agent, "scores reloaded (SIGHUP)"), RELOADS);
        let faults = agent
            .logs()
            .iter()
            .filter(|l| l.contains("ERROR") || l.contains("connection #"))
            .cloned()
            .collect::<Vec<_>>();
        assert!(faults.is_empty(), "{runtime}: {faults:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bad files and the command line.

/// Runs the agent, expecting it to exit by itself within 10 s; returns (success, stderr).
fn run_to_exit(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(BIN)
        .args(["-a", "127.0.0.1", "-p", "0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("{args:?}: the agent did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.success(), stderr)
}

#[test]
fn malformed_files_stop_the_startup_with_file_line_and_reason() {
    let dir = Dir::new("bad");
    let good = dir.file("good.txt", "192.0.2.0/24 5\n");
    for (text, line, reason) in [
        ("# ok\n10.0.0.0/8 101\n", 2, "score 101 is outside 0..=100"),
        ("10.0.0.0/8 -3\n", 1, "score -3 is outside 0..=100"),
        ("10.0.0.0/8 high\n", 1, "score 'high' is not an integer"),
        ("\n\n10.0.0.0/8\n", 3, "no score after '10.0.0.0/8'"),
        ("10.0.0.0/8 5 6\n", 1, "unexpected '6' after the score"),
        (
            "10.0.0.256 5\n",
            1,
            "'10.0.0.256' is not an IPv4 or IPv6 address",
        ),
        ("10.0.0.0/33 5\n", 1, "prefix length '/33' is not 0..=32"),
        (
            "2001:db8::/129 5\n",
            1,
            "prefix length '/129' is not 0..=128",
        ),
        (
            "10.1.0.0/8 5\n",
            1,
            "host bits set after /8: the network is 10.0.0.0/8",
        ),
        (
            "10.0.0.0/8 5\n\u{fffd}\n",
            2,
            "'\u{fffd}' is not an IPv4 or IPv6 address",
        ),
    ] {
        let bad = dir.file("bad.txt", text);
        let (ok, stderr) = run_to_exit(&["--scores", path_arg(&good), "--scores", path_arg(&bad)]);
        assert!(!ok, "{text:?} accepted");
        let want = format!("--scores: {}:{line}: {reason}", bad.display());
        assert!(
            stderr.contains(&want),
            "{text:?}: want {want:?} in {stderr}"
        );
        assert!(!stderr.contains("listening on"), "{stderr}");
    }
    std::fs::write(dir.0.join("binary.txt"), b"10.0.0.0/8 5\n\xff\xfe\n").unwrap();
    let (ok, stderr) = run_to_exit(&["--scores", path_arg(&dir.0.join("binary.txt"))]);
    assert!(
        !ok && stderr.contains("binary.txt:2: not UTF-8 text"),
        "{stderr}"
    );
    let (ok, stderr) = run_to_exit(&["--scores", path_arg(&dir.0.join("missing.txt"))]);
    assert!(
        !ok && stderr.contains("missing.txt: cannot open"),
        "{stderr}"
    );
    for args in [
        &["--default-score", "101"][..],
        &["--default-score", "-1"],
        &["--scores-watch", "1"],
    ] {
        let (ok, stderr) = run_to_exit(args);
        assert!(!ok && stderr.contains("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn help_explains_the_score_files_and_the_reload() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--scores <FILE>",
        "--default-score <N>",
        "--scores-watch <TIME>",
        "CIDR SCORE",
        "kill -HUP",
        "the later file wins",
        "file:line",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}
