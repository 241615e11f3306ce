//! Bad input, slow and vanishing peers, floods and drains: each bad connection gets the protocol's
//! answer and one log line, and a healthy connection open alongside is never disturbed. Every
//! test runs against each runtime the binary can run here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use spop_core::{FrameType, TypedData};
use support::*;

fn ip() -> TypedData<'static> {
    TypedData::Ipv4(Ipv4Addr::new(192, 0, 2, 7))
}

/// A healthy connection still answers after something bad happened elsewhere.
fn assert_healthy(s: &mut TcpStream, stream: u64) {
    s.write_all(&notify(stream, 1, ip())).unwrap();
    let (h, p) = read_frame(s).unwrap();
    assert_eq!(h.stream_id.0, stream);
    check_score_ack(&h, &p);
}

/// Sends `bytes` on a fresh connection (after a HELLO when `after_hello`) and returns the status
/// of the AGENT-DISCONNECT that must follow, checking the agent then closes.
fn status_for(agent: &Agent, after_hello: bool, bytes: &[u8], name: &str) -> u32 {
    let mut s = if after_hello {
        agent.session()
    } else {
        agent.connect()
    };
    s.write_all(bytes).unwrap();
    let (h, p) = read_frame(&mut s).unwrap_or_else(|| panic!("{name}: no AGENT-DISCONNECT"));
    let status = disconnect_status(&h, &p);
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "closed after AGENT-DISCONNECT"
    );
    status
}

#[test]
fn each_fault_gets_its_status_and_the_healthy_connection_goes_on() {
    let hello_kv = |items: &[(&[u8], TypedData<'_>)]| hello_with(items);
    let v = |s: &'static [u8]| (&b"supported-versions"[..], TypedData::String(s));
    let m = |n: u32| (&b"max-frame-size"[..], TypedData::Uint32(n));
    let mut truncated = notify(1, 1, ip());
    let len = truncated.len();
    truncated.truncate(len - 2);
    let cut = (truncated.len() as u32 - 4).to_be_bytes();
    truncated[..4].copy_from_slice(&cut);
    let cases: Vec<(&str, bool, Vec<u8>, u32)> = vec![
        (
            "64 KiB+1 first frame",
            false,
            65537u32.to_be_bytes().to_vec(),
            3,
        ),
        (
            "LENGTH 0xFFFFFFFF",
            false,
            u32::MAX.to_be_bytes().to_vec(),
            3,
        ),
        (
            "frame above the negotiated size",
            true,
            16381u32.to_be_bytes().to_vec(),
            3,
        ),
        ("LENGTH 0", false, 0u32.to_be_bytes().to_vec(), 4),
        (
            "LENGTH too short for a header",
            true,
            vec![0, 0, 0, 3, 3, 0, 0],
            4,
        ),
        ("never-ending varint", true, raw_frame(3, 1, &[0xff; 12]), 4),
        (
            "nb-args larger than what follows",
            true,
            raw_frame(3, 1, b"\x0fcheck-client-ip\x05\x00\x06\x7f\x00\x00\x01"),
            4,
        ),
        ("truncated value", true, truncated, 4),
        (
            "garbage payload",
            true,
            raw_frame(3, 1, b"\xfe\x01\xaa\x55"),
            4,
        ),
        ("NOTIFY before HELLO", false, notify(1, 1, ip()), 4),
        ("second HELLO", true, hello(16380), 4),
        (
            "version not offered",
            false,
            hello_kv(&[v(b"3.0"), m(16380)]),
            8,
        ),
        ("version missing", false, hello_kv(&[m(16380)]), 5),
        ("max-frame-size missing", false, hello_kv(&[v(b"2.0")]), 6),
        (
            "max-frame-size below 256",
            false,
            hello_kv(&[v(b"2.0"), m(255)]),
            9,
        ),
        (
            "NOTIFY without FIN",
            true,
            raw_frame(3, 0, b"\x0fcheck-client-ip\x00"),
            10,
        ),
    ];
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &[]);
        let mut healthy = agent.session();
        for (i, (name, after_hello, bytes, want)) in cases.iter().enumerate() {
            let got = status_for(&agent, *after_hello, bytes, name);
            assert_eq!(got, *want, "{runtime}: {name}");
            assert_healthy(&mut healthy, i as u64);
        }
        // One warn line per bad connection (well under the rate limit here).
        thread::sleep(Duration::from_millis(200));
        let warns = agent
            .logs()
            .iter()
            .filter(|l| l.contains("WARN") && l.contains("AGENT-DISCONNECT status"))
            .count();
        assert_eq!(warns, cases.len(), "{runtime}: {:#?}", agent.logs());
    }
}

#[test]
fn an_http_request_on_the_port_is_closed_and_named_in_the_log() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &[]);
        let mut healthy = agent.session();
        let mut http = agent.connect();
        http.write_all(b"GET / HTTP/1.1\r\nHost: agent\r\nUser-Agent: curl/8\r\n\r\n")
            .unwrap();
        let (h, p) = read_frame(&mut http).expect("AGENT-DISCONNECT");
        assert_eq!(disconnect_status(&h, &p), 3, "{runtime}: frame is too big");
        assert!(
            closed_within(&mut http, Duration::from_secs(5)),
            "{runtime}: closed"
        );
        assert!(
            agent.wait_log(
                "AGENT-DISCONNECT status 3 (frame is too big): frame length 1195725856 exceeds \
                 max-frame-size 65532 (its first bytes read \"GET \": an HTTP client, not \
                 HAProxy's SPOE; a health check needs option spop-check)",
                Duration::from_secs(5)
            ),
            "{runtime}: {:#?}",
            agent.logs()
        );
        assert_healthy(&mut healthy, 1);
    }
}

#[test]
fn unknown_frame_types_are_skipped_and_the_next_notify_answered() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &[]);
        let mut s = agent.session();
        s.write_all(&raw_frame(42, 1, b"whatever")).unwrap();
        assert_healthy(&mut s, 9);
    }
}

#[test]
fn a_silent_new_connection_is_cut_at_the_hello_timeout() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &["--hello-timeout", "0.5"]);
        let mut healthy = agent.session();
        let mut silent = agent.connect();
        let started = Instant::now();
        let (h, p) = read_frame(&mut silent).expect("AGENT-DISCONNECT");
        assert_eq!(disconnect_status(&h, &p), 2, "{runtime}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert!(closed_within(&mut silent, Duration::from_secs(5)));
        assert_healthy(&mut healthy, 1);
    }
}

#[test]
fn a_peer_dribbling_one_byte_every_100ms_is_cut_off() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &["--frame-timeout", "1"]);
        let mut healthy = agent.session();
        let mut slow = agent.session();
        let bytes = notify_message(
            1,
            1,
            b"check-client-ip",
            &[(b"x", TypedData::Binary(&[7; 200]))],
        );
        let started = Instant::now();
        let mut status = None;
        for b in &bytes {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(100));
            slow.set_nonblocking(true).unwrap();
            let mut probe = [0u8; 1];
            let peeked = slow.peek(&mut probe);
            slow.set_nonblocking(false).unwrap();
            if matches!(peeked, Ok(1)) {
                let (h, p) = read_frame(&mut slow).unwrap();
                status = Some(disconnect_status(&h, &p));
                break;
            }
        }
        assert_eq!(
            status,
            Some(2),
            "{runtime}: AGENT-DISCONNECT 2 for the slow frame"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{runtime}: cut off in {:?}",
            started.elapsed()
        );
        assert_healthy(&mut healthy, 3);
    }
}

/// The frame timeout is per frame: a busy peer whose writes never end on a frame boundary (every
/// read stops half-way into the next NOTIFY) is never cut, however long it goes on.
#[test]
fn a_busy_connection_whose_reads_end_mid_frame_is_not_timed_out() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &["--frame-timeout", "0.3"]);
        let mut s = agent.session();
        let frames: Vec<Vec<u8>> = (1..=60).map(|stream| notify(stream, 1, ip())).collect();
        let half = frames[0].len() / 2;
        s.write_all(&frames[0][..half]).unwrap();
        let started = Instant::now();
        for (i, frame) in frames.iter().enumerate() {
            // Well within the timeout for each frame; 60 of them last 5x the timeout.
            thread::sleep(Duration::from_millis(25));
            let mut chunk = frame[half..].to_vec();
            if let Some(next) = frames.get(i + 1) {
                chunk.extend_from_slice(&next[..half]);
            }
            s.write_all(&chunk).unwrap();
            let (h, p) = read_frame(&mut s)
                .unwrap_or_else(|| panic!("{runtime}: closed before the ACK of NOTIFY {i}"));
            assert_eq!(
                h.frame_type,
                FrameType::Ack,
                "{runtime}: NOTIFY {i}, {:?} after the first byte: not an ACK (AGENT-DISCONNECT {})",
                started.elapsed(),
                if h.frame_type == FrameType::AgentDisconnect {
                    disconnect_status(&h, &p)
                } else {
                    0
                }
            );
            assert_eq!(h.stream_id.0, i as u64 + 1, "{runtime}: ACK ids");
            assert_eq!(h.frame_id.0, 1, "{runtime}: ACK ids");
            check_score_ack(&h, &p);
        }
        assert!(started.elapsed() >= Duration::from_millis(1500));
        assert_healthy(&mut s, 100);
    }
}

#[test]
fn idle_connections_between_frames_are_never_timed_out() {
    for runtime in runtimes() {
        let agent = Agent::start(
            runtime,
            &["--frame-timeout", "0.3", "--hello-timeout", "0.3"],
        );
        let mut s = agent.session();
        thread::sleep(Duration::from_millis(1200));
        assert_healthy(&mut s, 5);
    }
}

#[test]
fn connections_past_max_connections_are_closed_at_once() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &["--max-connections", "3", "-n", "1"]);
        let mut open: Vec<_> = (0..3).map(|_| agent.session()).collect();
        let mut extra = agent.connect();
        extra.write_all(&hello(16380)).ok();
        assert!(
            closed_within(&mut extra, Duration::from_secs(5)),
            "{runtime}: 4th connection closed"
        );
        assert!(
            agent.wait_log("(max-connections)", Duration::from_secs(5)),
            "{runtime}"
        );
        for (i, s) in open.iter_mut().enumerate() {
            assert_healthy(s, i as u64);
        }
        drop(open);
        thread::sleep(Duration::from_millis(300));
        let mut later = agent.session();
        assert_healthy(&mut later, 7);
    }
}

#[test]
fn a_peer_that_never_reads_its_acks_is_closed_and_memory_stays_bounded() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &["--write-timeout", "1"]);
        let mut healthy = agent.session();
        let mut greedy = agent.session();
        let rss_before = agent.rss_kib();
        // Whole frames only, sent until the agent stops reading (backpressure) and, once its
        // write timeout passes, drops us: then our writes fail.
        let writer = thread::spawn(move || {
            let batch: Vec<u8> = (0..1000).flat_map(|i| notify(i, 1, ip())).collect();
            let started = Instant::now();
            let mut sent = 0usize;
            while started.elapsed() < Duration::from_secs(30) {
                if greedy.write_all(&batch).is_err() {
                    return (true, sent);
                }
                sent += batch.len();
            }
            (false, sent)
        });
        assert!(
            agent.wait_log("did not read its ACKs", Duration::from_secs(30)),
            "{runtime}: greedy peer never cut: {:#?}",
            agent.logs()
        );
        let (cut, sent) = writer.join().unwrap();
        assert!(
            cut,
            "{runtime}: our writes kept succeeding after the agent gave up"
        );
        let grown = agent.rss_kib().saturating_sub(rss_before);
        assert!(
            grown < 64 * 1024,
            "{runtime}: RSS grew {grown} KiB after {sent} bytes"
        );
        assert_healthy(&mut healthy, 11);
    }
}

#[test]
fn a_reset_mid_write_is_dropped_quietly() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &[]);
        let mut healthy = agent.session();
        for _ in 0..20 {
            let mut s = agent.session();
            let batch: Vec<u8> = (0..200).flat_map(|i| notify(i, 1, ip())).collect();
            s.write_all(&batch).unwrap();
            // SO_LINGER 0 would send RST; dropping with unread data does the same on Linux.
            drop(s);
        }
        assert_healthy(&mut healthy, 13);
        let warns = agent.logs().iter().filter(|l| l.contains("WARN")).count();
        assert_eq!(
            warns,
            0,
            "{runtime}: resets are not warnings: {:#?}",
            agent.logs()
        );
    }
}

#[test]
fn a_flood_of_bad_connections_is_rate_limited_in_the_log() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &[]);
        for _ in 0..200 {
            let mut s = agent.connect();
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
        thread::sleep(Duration::from_millis(300));
        let warns = agent.logs().iter().filter(|l| l.contains("WARN")).count();
        assert!(
            warns > 0 && warns < 100,
            "{runtime}: {warns} warn lines for 200 bad connections"
        );
        let mut healthy = agent.session();
        assert_healthy(&mut healthy, 15);
    }
}

#[test]
fn sigterm_under_load_answers_every_notify_received() {
    for runtime in runtimes() {
        let mut agent = Agent::start(runtime, &["--shutdown-timeout", "5"]);
        let clients: Vec<_> = (0..8)
            .map(|c| {
                let mut s = agent.session();
                let mut reader = s.try_clone().unwrap();
                thread::spawn(move || {
                    // Closed loop, 16 in flight: count what was sent and what came back.
                    let mut sent = 0u64;
                    let mut acked = 0u64;
                    let mut disconnect = None;
                    for i in 0..16 {
                        if s.write_all(&notify(c * 1_000_000 + i, 1, ip())).is_ok() {
                            sent += 1;
                        }
                    }
                    while let Some((h, p)) = read_frame(&mut reader) {
                        match h.frame_type {
                            FrameType::Ack => {
                                check_score_ack(&h, &p);
                                acked += 1;
                                if disconnect.is_none()
                                    && s.write_all(&notify(c * 1_000_000 + sent, 1, ip())).is_ok()
                                {
                                    sent += 1;
                                }
                            }
                            FrameType::AgentDisconnect => {
                                disconnect = Some(disconnect_status(&h, &p))
                            }
                            other => panic!("unexpected {other}"),
                        }
                    }
                    (sent, acked, disconnect)
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(500));
        agent.signal("TERM");
        let status = agent
            .wait_exit(Duration::from_secs(10))
            .expect("agent exits");
        assert!(status.success(), "{runtime}: {status:?}");
        for c in clients {
            let (sent, acked, disconnect) = c.join().unwrap();
            assert!(acked > 0, "{runtime}");
            assert_eq!(disconnect, Some(0), "{runtime}: AGENT-DISCONNECT 0");
            // NOTIFYs written after the agent stopped reading may be lost with the connection;
            // everything it read was answered: at most the last window is unanswered.
            assert!(sent - acked <= 16, "{runtime}: sent {sent}, acked {acked}");
        }
    }
}

/// HAProxy reopens every SPOE connection at once on reload: 5,000 connections within a second,
/// each saying HELLO and one NOTIFY, must all be answered.
#[test]
fn a_reload_burst_of_5000_connections_is_all_answered() {
    const CONNECTIONS: usize = 5000;
    const THREADS: usize = 8;
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &[]);
        let rss_idle = agent.rss_kib();
        let started = Instant::now();
        let mut greeting = hello(16380);
        greeting.extend(notify(1, 1, ip()));
        let openers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (addr, greeting) = (agent.addr, greeting.clone());
                thread::spawn(move || {
                    (0..CONNECTIONS / THREADS)
                        .map(|_| {
                            let mut s = TcpStream::connect(addr).expect("connect");
                            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                            s.write_all(&greeting).unwrap();
                            s
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut conns: Vec<TcpStream> = openers
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let opened = started.elapsed();
        for s in &mut conns {
            let (h, _) = read_frame(s).expect("AGENT-HELLO");
            assert_eq!(h.frame_type, FrameType::AgentHello, "{runtime}");
            let (h, p) = read_frame(s).expect("ACK");
            check_score_ack(&h, &p);
        }
        let answered = started.elapsed();
        let peak = std::fs::read_to_string(format!("/proc/{}/status", agent.child.id()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
            .unwrap_or_default();
        eprintln!(
            "burst, {runtime} runtime: {CONNECTIONS} connections opened in {opened:?}, all answered \
             in {answered:?}; agent RSS idle {rss_idle} KiB, peak {peak} KiB"
        );
        assert_eq!(conns.len(), CONNECTIONS);
    }
}

#[test]
fn allow_from_closes_other_sources_at_accept() {
    for runtime in runtimes() {
        let refusing = Agent::start(
            runtime,
            &[
                "--allow-from",
                "10.0.0.0/8",
                "--allow-from",
                "2001:db8::/32",
            ],
        );
        let mut s = refusing.connect();
        let _ = s.write_all(&hello(16380));
        assert!(
            closed_within(&mut s, Duration::from_secs(5)),
            "{runtime}: refused"
        );
        assert!(
            refusing.wait_log("not in allow-from", Duration::from_secs(5)),
            "{runtime}"
        );

        let allowing = Agent::start(
            runtime,
            &["--allow-from", "10.0.0.0/8", "--allow-from", "127.0.0.1"],
        );
        let mut s = allowing.session();
        assert_healthy(&mut s, 1);
    }
}

#[test]
fn startup_reports_the_open_files_limit() {
    for runtime in runtimes() {
        let agent = Agent::start(runtime, &[]);
        assert!(
            agent.wait_log("open files limit", Duration::from_secs(5)),
            "{runtime}: {:#?}",
            agent.logs()
        );
    }
}

/// Out of descriptors (EMFILE), accept fails: the agent must back off, not spin, and serve again
/// once descriptors are free.
#[test]
fn running_out_of_descriptors_does_not_spin_the_accept_loop() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("*** SKIPPED: prlimit (util-linux) not found ***");
        return;
    }
    for runtime in runtimes() {
        let agent = Agent::start_wrapped(
            runtime,
            &["prlimit", "--nofile=64:64"],
            &["-a", "127.0.0.1", "-p", "0"],
            &[],
        );
        // More connections than descriptors: the kernel completes them in the backlog, accept
        // then fails with EMFILE.
        let mut conns: Vec<TcpStream> = (0..100)
            .filter_map(|_| TcpStream::connect(agent.addr).ok())
            .collect();
        for s in &mut conns {
            let _ = s.write_all(&hello(16380));
        }
        thread::sleep(Duration::from_millis(500));
        let before = agent.cpu_ticks();
        thread::sleep(Duration::from_secs(2));
        let spent = agent.cpu_ticks() - before;
        // 100 ticks a second: a spinning accept loop would burn ~200 ticks in 2 s.
        assert!(
            spent < 40,
            "{runtime}: {spent} ticks of CPU in 2 s while out of descriptors"
        );
        assert!(
            agent.wait_log("accept failed", Duration::from_secs(5)),
            "{runtime}: {:#?}",
            agent.logs()
        );
        drop(conns);
        thread::sleep(Duration::from_millis(500));
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let mut s = agent.connect();
            if s.write_all(&hello(16380)).is_ok() {
                if let Some((h, _)) = read_frame(&mut s) {
                    assert_eq!(h.frame_type, FrameType::AgentHello, "{runtime}");
                    break;
                }
            }
            assert!(
                Instant::now() < end,
                "{runtime}: not serving again after descriptors were freed"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    for runtime in runtimes() {
        // A NOTIFY whose answer takes 5 s (--processing-delay) keeps the drain waiting; the
        // second signal must not wait for it.
        let mut agent = Agent::start(runtime, &["--shutdown-timeout", "30", "-t", "5000"]);
        let mut s = agent.session();
        s.write_all(&notify(1, 1, ip())).unwrap();
        thread::sleep(Duration::from_millis(100));
        agent.signal("TERM");
        thread::sleep(Duration::from_millis(300));
        assert!(
            agent.child.try_wait().unwrap().is_none(),
            "{runtime}: still draining"
        );
        let started = Instant::now();
        agent.signal("TERM");
        let status = agent
            .wait_exit(Duration::from_secs(5))
            .expect("exits at once");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{runtime}: {:?}",
            started.elapsed()
        );
        assert!(
            !status.success(),
            "{runtime}: the forced exit says so: {status:?}"
        );
    }
}
