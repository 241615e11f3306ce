//! The agent as its own process on loopback, with a scripted HAProxy peer over real TCP. Every
//! test runs against each runtime the binary can run on this machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::thread;
use std::time::Duration;

use spop_core::{FrameType, TypedData};
use support::*;

fn each_runtime(test: impl Fn(&Agent)) {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &[]);
        test(&agent);
    }
}

#[test]
fn notify_gets_an_ack_with_ip_score_for_ipv4_and_ipv6() {
    each_runtime(|agent| {
        let mut s = agent.session();
        s.write_all(&notify(0, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
            .unwrap();
        let (h, p) = read_frame(&mut s).unwrap();
        assert_eq!((h.stream_id.0, h.frame_id.0), (0, 1));
        check_score_ack(&h, &p);
        s.write_all(&notify(7, 2, TypedData::Ipv6(Ipv6Addr::LOCALHOST)))
            .unwrap();
        let (h, p) = read_frame(&mut s).unwrap();
        assert_eq!((h.stream_id.0, h.frame_id.0), (7, 2));
        check_score_ack(&h, &p);
    });
}

#[test]
fn other_messages_and_argument_types_get_an_empty_ack() {
    each_runtime(|agent| {
        let mut s = agent.session();
        let cases = [
            notify_message(
                1,
                1,
                b"other-message",
                &[(b"", TypedData::Ipv4(Ipv4Addr::LOCALHOST))],
            ),
            notify(3, 1, TypedData::String(b"127.0.0.1")),
            notify(5, 1, TypedData::Null),
            notify_message(7, 1, b"check-client-ip", &[]),
            notify_message(9, 1, b"", &[]),
        ];
        for (i, frame) in cases.iter().enumerate() {
            s.write_all(frame).unwrap();
            let (h, p) = read_frame(&mut s).unwrap();
            assert_eq!(h.frame_type, FrameType::Ack, "case {i}");
            assert_eq!(h.stream_id.0, 1 + 2 * i as u64, "case {i}");
            assert!(p.is_empty(), "case {i}: ACK without actions, got {p:?}");
        }
    });
}

#[test]
fn pipelined_notifies_are_all_answered_with_matching_ids() {
    each_runtime(|agent| {
        let mut s = agent.session();
        let mut reader = s.try_clone().unwrap();
        const ROUNDS: u64 = 100;
        const DEPTH: u64 = 20;
        for round in 0..ROUNDS {
            let mut batch = Vec::new();
            let mut pending = HashSet::new();
            for i in 0..DEPTH {
                let stream = round * DEPTH * 2 + 2 * i + 1;
                batch.extend(notify(
                    stream,
                    1,
                    TypedData::Ipv4(Ipv4Addr::new(10, 0, 0, i as u8)),
                ));
                pending.insert(stream);
            }
            s.write_all(&batch).unwrap();
            for _ in 0..DEPTH {
                let (h, p) = read_frame(&mut reader).unwrap();
                assert!(
                    pending.remove(&h.stream_id.0),
                    "ACK for unknown stream {}",
                    h.stream_id.0
                );
                assert_eq!(h.frame_id.0, 1);
                check_score_ack(&h, &p);
            }
        }
    });
}

#[test]
fn a_thousand_connections_are_served_at_once() {
    each_runtime(|agent| {
        let mut conns: Vec<_> = (0..1000).map(|_| agent.connect()).collect();
        for s in &mut conns {
            s.write_all(&hello(16380)).unwrap();
        }
        for s in &mut conns {
            let (h, p) = read_frame(s).unwrap();
            assert_eq!(
                h.frame_type,
                FrameType::AgentHello,
                "{:?}",
                spop_core::Disconnect::parse(&p)
                    .map(|d| (d.status, String::from_utf8_lossy(d.message).to_string()))
            );
        }
        for (i, s) in conns.iter_mut().enumerate() {
            s.write_all(&notify(i as u64, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
                .unwrap();
        }
        for (i, s) in conns.iter_mut().enumerate() {
            let (h, p) = read_frame(s).unwrap();
            assert_eq!(h.stream_id.0, i as u64);
            check_score_ack(&h, &p);
        }
    });
}

#[test]
fn a_peer_vanishing_mid_frame_does_not_disturb_the_others() {
    each_runtime(|agent| {
        let mut healthy = agent.session();
        let mut doomed = agent.session();
        let frame = notify(1, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST));
        doomed.write_all(&frame[..frame.len() / 2]).unwrap();
        drop(doomed);
        for i in 0..50 {
            healthy
                .write_all(&notify(i, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
                .unwrap();
            let (h, p) = read_frame(&mut healthy).unwrap();
            assert_eq!(h.stream_id.0, i);
            check_score_ack(&h, &p);
        }
        assert!(
            agent.wait_log("in the middle of a frame", Duration::from_secs(5)),
            "{}: no log line for the vanished peer: {:#?}",
            agent.runtime,
            agent.logs()
        );
    });
}

#[test]
fn health_check_gets_agent_hello_then_close() {
    each_runtime(|agent| {
        let mut s = agent.connect();
        s.write_all(&healthcheck_hello()).unwrap();
        let (h, p) = read_frame(&mut s).unwrap();
        assert_eq!(h.frame_type, FrameType::AgentHello);
        assert_eq!(
            h.flags.0, 1,
            "health-check AGENT-HELLO flags must be exactly FIN"
        );
        let hello = spop_core::AgentHello::parse(&p).unwrap();
        assert_eq!(hello.version, b"2.0");
        assert_eq!(hello.max_frame_size, 16380);
        assert!(
            hello.capabilities.is_some(),
            "3.x health checks require capabilities"
        );
        assert!(closed_within(&mut s, Duration::from_secs(5)));
    });
}

#[test]
fn haproxy_disconnect_is_answered_with_status_0_then_close() {
    each_runtime(|agent| {
        let mut s = agent.session();
        s.write_all(&haproxy_disconnect()).unwrap();
        let (h, p) = read_frame(&mut s).unwrap();
        assert_eq!(disconnect_status(&h, &p), 0);
        assert!(closed_within(&mut s, Duration::from_secs(5)));
    });
}

#[test]
fn an_oversized_first_frame_gets_status_3_and_others_go_on() {
    each_runtime(|agent| {
        let mut healthy = agent.session();
        let mut bad = agent.connect();
        bad.write_all(&0x0001_0001u32.to_be_bytes()).unwrap();
        let (h, p) = read_frame(&mut bad).unwrap();
        assert_eq!(disconnect_status(&h, &p), 3);
        assert!(closed_within(&mut bad, Duration::from_secs(5)));
        healthy
            .write_all(&notify(1, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
            .unwrap();
        let (h, p) = read_frame(&mut healthy).unwrap();
        check_score_ack(&h, &p);
        assert!(agent.wait_log("status 3", Duration::from_secs(5)));
    });
}

#[test]
fn an_http_request_to_the_agent_port_gets_status_3() {
    each_runtime(|agent| {
        let mut s = agent.connect();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (h, p) = read_frame(&mut s).unwrap();
        assert_eq!(disconnect_status(&h, &p), 3);
        assert!(closed_within(&mut s, Duration::from_secs(5)));
    });
}

#[test]
fn notify_before_hello_gets_status_4() {
    each_runtime(|agent| {
        let mut s = agent.connect();
        s.write_all(&notify(1, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
            .unwrap();
        let (h, p) = read_frame(&mut s).unwrap();
        assert_eq!(disconnect_status(&h, &p), 4);
        assert!(closed_within(&mut s, Duration::from_secs(5)));
    });
}

#[test]
fn seed_makes_scores_reproducible() {
    for runtime in runtimes() {
        let scores = |agent: &Agent| -> Vec<i64> {
            let mut s = agent.session();
            (0..20)
                .map(|i| {
                    s.write_all(&notify(i, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
                        .unwrap();
                    let (h, p) = read_frame(&mut s).unwrap();
                    check_score_ack(&h, &p)
                })
                .collect()
        };
        let a = scores(&Agent::start(runtime, &["--seed", "42", "-n", "1"]));
        let b = scores(&Agent::start(runtime, &["--seed", "42", "-n", "1"]));
        assert_eq!(a, b, "{runtime}: same seed, same scores");
        assert!(
            a.iter().collect::<HashSet<_>>().len() > 1,
            "scores vary: {a:?}"
        );
    }
}

#[test]
fn sigterm_drains_and_exits_0() {
    for runtime in runtimes() {
        let mut agent = Agent::start(runtime, &[]);
        let mut s = agent.session();
        let mut reader = s.try_clone().unwrap();
        let mut batch = Vec::new();
        for i in 0..20 {
            batch.extend(notify(i, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)));
        }
        s.write_all(&batch).unwrap();
        thread::sleep(Duration::from_millis(50));
        agent.signal("TERM");
        let mut acks = 0;
        let mut disconnect = None;
        while let Some((h, p)) = read_frame(&mut reader) {
            match h.frame_type {
                FrameType::Ack => {
                    check_score_ack(&h, &p);
                    acks += 1;
                }
                FrameType::AgentDisconnect => disconnect = Some(disconnect_status(&h, &p)),
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(
            acks, 20,
            "{runtime}: every NOTIFY sent before the signal is answered"
        );
        assert_eq!(
            disconnect,
            Some(0),
            "{runtime}: AGENT-DISCONNECT 0 before closing"
        );
        let status = agent
            .wait_exit(Duration::from_secs(10))
            .expect("agent exits");
        assert!(status.success(), "{runtime}: exit status {status:?}");
    }
}

#[test]
fn help_explains_the_flags_and_the_haproxy_config() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "-p, --port",
        "-n, --workers",
        "-d, --debug",
        "-a, --address",
        "-m, --max-frame-size",
        "-c, --capability",
        "--runtime",
        "--seed",
        "-t, --processing-delay",
        "filter spoe engine ip-reputation",
        "sess.iprep.ip_score",
        "option spop-check",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn bad_flags_are_refused_with_a_clear_error() {
    for args in [
        &["-n", "0"][..],
        &["-m", "100"],
        &["-a", "not-an-ip"],
        &["-c", "bogus"],
    ] {
        let out = std::process::Command::new(BIN).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{args:?}: {err}");
    }
}

#[test]
fn fragmented_notify_is_reassembled_into_one_ack() {
    let vector = |name: &str| {
        let path = format!(
            "{}/spop-core/tests/vectors/{name}.hex",
            env!("CARGO_MANIFEST_DIR")
        );
        let hex = std::fs::read_to_string(path).unwrap();
        (0..hex.trim().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &["-c", "pipelining,fragmentation", "-m", "256"]);
        let mut s = agent.connect();
        s.write_all(&vector("haproxy-hello")).unwrap();
        let (h, p) = read_frame(&mut s).unwrap();
        assert_eq!(h.frame_type, FrameType::AgentHello);
        let hello = spop_core::AgentHello::parse(&p).unwrap();
        assert_eq!(hello.max_frame_size, 256);
        assert_eq!(hello.capabilities, Some(&b"pipelining,fragmentation"[..]));
        for part in ["notify-frag-1", "notify-frag-2", "notify-frag-3"] {
            s.write_all(&vector(part)).unwrap();
        }
        let (h, p) = read_frame(&mut s).unwrap();
        assert_eq!(h.frame_type, FrameType::Ack);
        assert_eq!((h.stream_id.0, h.frame_id.0), (0, 2));
        assert!(p.is_empty(), "all-types/second-msg are not scored");
        s.write_all(&notify(4, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
            .unwrap();
        let (h, p) = read_frame(&mut s).unwrap();
        check_score_ack(&h, &p);
    }
}

/// HAProxy offering more than `-m` (a tune.bufsize above the agent's limit) is worth one warning:
/// larger NOTIFYs would need fragmentation, which HAProxy 2.6 turns into a reconnect loop.
#[test]
fn an_offer_above_max_frame_size_is_warned_about_once() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &["-m", "1024"]);
        for _ in 0..3 {
            let mut s = agent.connect();
            s.write_all(&hello(16380)).unwrap();
            let (h, p) = read_frame(&mut s).unwrap();
            assert_eq!(h.frame_type, FrameType::AgentHello);
            assert_eq!(
                spop_core::AgentHello::parse(&p).unwrap().max_frame_size,
                1024
            );
        }
        assert!(
            agent.wait_log(
                "HAProxy offered max-frame-size 16380",
                Duration::from_secs(5)
            ),
            "{runtime}: no warning in {:?}",
            agent.logs()
        );
        thread::sleep(Duration::from_millis(200));
        let warnings = agent
            .logs()
            .iter()
            .filter(|l| l.contains("offered max-frame-size"))
            .count();
        assert_eq!(warnings, 1, "{runtime}: {:?}", agent.logs());
    }
}

#[test]
fn an_offer_within_max_frame_size_is_not_warned_about() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &[]);
        let mut s = agent.session();
        s.write_all(&notify(0, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
            .unwrap();
        let (h, p) = read_frame(&mut s).unwrap();
        check_score_ack(&h, &p);
        assert!(
            !agent
                .logs()
                .iter()
                .any(|l| l.contains("offered max-frame-size")),
            "{runtime}: {:?}",
            agent.logs()
        );
    }
}

/// A debug line says which receive path this kernel gets: receives that wait for data first
/// (Linux 5.19 and later) or plain ones; the startup line leaves it out.
#[cfg(target_os = "linux")]
#[test]
fn uring_says_at_debug_level_which_receive_path_the_kernel_gets() {
    if !runtimes().contains(&"uring") {
        return;
    }
    let said = if runtime_uring::receive_poll_first_supported() {
        "io_uring: a receive queued with a reply waits for data first (IORING_RECVSEND_POLL_FIRST)"
    } else {
        "io_uring: plain receives (IORING_RECVSEND_POLL_FIRST needs Linux 5.19)"
    };
    let debug = Agent::start("uring", &["--log-level", "debug"]);
    assert!(
        debug.wait_log(said, Duration::from_secs(5)),
        "{:?}",
        debug.logs()
    );
    let info = Agent::start("uring", &[]);
    assert!(
        info.wait_log("listening on", Duration::from_secs(5)),
        "{:?}",
        info.logs()
    );
    assert!(
        !info
            .logs()
            .iter()
            .any(|l| l.contains("IORING_RECVSEND_POLL_FIRST")),
        "{:?}",
        info.logs()
    );
}

#[test]
fn debug_lines_name_the_connection_they_belong_to() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &["--log-level", "debug"]);
        let mut first = agent.session();
        let mut second = agent.session();
        // The id the agent gave a session, from its "opened" line.
        let line_with = |needle: &str| {
            agent
                .wait_line(needle, Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{runtime}: no line with {needle:?}: {:?}", agent.logs()))
        };
        let id_of = |s: &std::net::TcpStream| {
            let opened = format!("{}: connection #", s.local_addr().unwrap());
            let line = line_with(&opened);
            let rest = &line[line.find(&opened).unwrap() + opened.len()..];
            rest.split_whitespace().next().unwrap().to_string()
        };
        let (first_id, second_id) = (id_of(&first), id_of(&second));
        assert_ne!(first_id, second_id);
        for (s, stream, addr) in [
            (&mut second, 22, [192, 0, 2, 2]),
            (&mut first, 11, [192, 0, 2, 1]),
        ] {
            s.write_all(&notify(stream, 1, TypedData::Ipv4(Ipv4Addr::from(addr))))
                .unwrap();
            let (h, p) = read_frame(s).unwrap();
            check_score_ack(&h, &p);
        }
        for (id, frame, scored) in [
            (
                &first_id,
                "<- NOTIFY stream=11 ",
                "check-client-ip 192.0.2.1:",
            ),
            (
                &second_id,
                "<- NOTIFY stream=22 ",
                "check-client-ip 192.0.2.2:",
            ),
        ] {
            for needle in [frame, scored] {
                let line = line_with(needle);
                assert!(
                    line.contains(&format!("connection #{id}: {needle}")),
                    "{runtime}: {line}"
                );
            }
        }
    }
}

/// The CPUs this process may run on, as the kernel lists them.
fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap();
    runtime_core::parse_cpu_list(allowed.trim()).unwrap()
}

/// `--cpus` keeps uring's executors on the CPUs an operator leaves free of HAProxy.
#[test]
fn uring_executors_are_pinned_to_the_cpus_given() {
    if !runtimes().contains(&"uring") {
        return;
    }
    let usable = allowed_cpus();
    let last = usable.last().unwrap().to_string();
    let agent = Agent::start("uring", &["--cpus", &last]);
    assert!(
        agent.wait_log(
            &format!(", 1 worker on CPU {last},"),
            Duration::from_secs(5)
        ),
        "{:?}",
        agent.logs()
    );
    let mut s = agent.session();
    s.write_all(&notify(0, 1, TypedData::Ipv4(Ipv4Addr::LOCALHOST)))
        .unwrap();
    let (h, p) = read_frame(&mut s).unwrap();
    check_score_ack(&h, &p);
}

/// `--check-runtime` names the CPUs uring would start on, counted in words that agree.
#[test]
fn check_runtime_says_the_workers_and_cpus_uring_would_use() {
    if !runtimes().contains(&"uring") {
        return;
    }
    let usable = allowed_cpus();
    let check = |cpus: &[usize]| {
        let list: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
        let out = std::process::Command::new(BIN)
            .args([
                "--runtime",
                "uring",
                "--cpus",
                &list.join(","),
                "--check-runtime",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let last = *usable.last().unwrap();
    assert_eq!(
        check(&[last]),
        format!("uring can run: 1 worker on CPU {last}")
    );
    if let [a, b, ..] = usable[..] {
        // In the order the executors are placed (spread over the topology), as CPU lists are
        // written everywhere (`--cpus`, /proc): a run of CPUs as a range.
        let two = check(&[a, b]);
        let ascending = if b == a + 1 {
            format!("{a}-{b}")
        } else {
            format!("{a},{b}")
        };
        assert!(
            two == format!("uring can run: 2 workers on CPUs {ascending}")
                || two == format!("uring can run: 2 workers on CPUs {b},{a}"),
            "{two}"
        );
    }
}

#[test]
fn cpus_the_process_cannot_use_are_refused_with_a_reason() {
    if !runtimes().contains(&"uring") {
        return;
    }
    let out = std::process::Command::new(BIN)
        .args(["--runtime", "uring", "-p", "0", "--cpus", "100000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CPUs 100000 are offline or outside"), "{err}");
}
