//! Short runs of the load generator: against the canned responder (as a child process and on a
//! thread), against the real agent (std runtime), and against a wrong agent whose every ACK must
//! count as an error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use spoa_loadgen::agent::{AgentProcess, RuntimeSpec};
use spoa_loadgen::proto::CannedReplies;
use spoa_loadgen::responder::{Mode, Responder, ResponderProcess};
use spoa_loadgen::{LoadConfig, LoadResult, Shape};
use spop_core::{AckWriter, FrameId, FrameType, Parsed, Scope, StreamId, TypedData};

fn short(addr: SocketAddr, shape: &str, pid: Option<u32>) -> LoadResult {
    let config = LoadConfig {
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(500),
        drain: Duration::from_secs(2),
        agent_pid: pid,
        ..LoadConfig::new(addr, shape.parse::<Shape>().unwrap())
    };
    spoa_loadgen::run(&config).expect("load run")
}

fn assert_clean(what: &str, r: &LoadResult) {
    eprintln!(
        "{what} {}: {} ACKs in {:?} ({:.0}/s), p50 {:.1} µs, p99 {:.1} µs, errors {}",
        r.shape,
        r.acks,
        r.window,
        r.rate(),
        r.quantile_us(0.5),
        r.quantile_us(0.99),
        r.errors
    );
    assert_eq!(r.errors, 0, "{what}: errors {:?}", r.first_errors);
    assert!(r.acks > 0, "{what}: no ACK in the window");
    assert_eq!(r.latency_ns.len(), r.acks);
}

#[test]
fn canned_responder_child_process() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_spoa-loadgen"));
    for mode in [Mode::Epoll, Mode::Threads] {
        let responder = ResponderProcess::spawn(exe, mode, None).unwrap();
        let r = short(responder.addr(), "4x8", Some(responder.pid()));
        assert_clean(&format!("canned (child, {})", mode.name()), &r);
        assert!(r.agent_cpu.is_some());
    }
}

#[test]
fn canned_responder_thread() {
    let responder = Responder::start("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_clean("canned (thread)", &short(responder.addr(), "1x1", None));
}

#[test]
fn notify_budget_sends_exactly_that_many() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_spoa-loadgen"));
    let responder = ResponderProcess::spawn(exe, Mode::Threads, None).unwrap();
    for (shape, threads) in [("1x1", 1), ("3x8", 2)] {
        let config = LoadConfig {
            warmup: Duration::ZERO,
            duration: Duration::from_secs(60),
            drain: Duration::from_secs(2),
            threads,
            agent_pid: Some(responder.pid()),
            notifies: Some(1_001),
            ..LoadConfig::new(responder.addr(), shape.parse::<Shape>().unwrap())
        };
        let r = spoa_loadgen::run(&config).expect("load run");
        assert_clean(&format!("budget {shape}"), &r);
        assert_eq!((r.total_acks, r.acks), (1_001, 1_001), "{shape}");
        assert!(r.window < Duration::from_secs(30), "stopped at the budget");
        // A thread per connection in the responder: alive when the counts are read.
        assert!(r.agent_switches.is_some_and(|s| s > 0), "{shape}");
    }
}

#[test]
fn a_notify_budget_is_measured_whole_despite_a_warmup() {
    let responder = Responder::start("127.0.0.1:0".parse().unwrap()).unwrap();
    // The default timings: a 1 s warm-up that 100 NOTIFYs finish well within.
    let config = LoadConfig {
        notifies: Some(100),
        ..LoadConfig::new(responder.addr(), "1x1".parse::<Shape>().unwrap())
    };
    assert_eq!(config.warmup, Duration::from_secs(1));
    let r = spoa_loadgen::run(&config).expect("load run");
    assert_clean("budget of 100 after the default warm-up", &r);
    assert_eq!((r.total_acks, r.acks), (100, 100), "every ACK in the row");
    assert_eq!(r.latency_ns.len(), 100);
    assert!(r.rate() > 0.0 && r.quantile_us(0.5) > 0.0);
}

/// The `spoa` binary of this workspace: the profile of this test first, then release.
fn agent_binary() -> Option<PathBuf> {
    let name = format!("spoa{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // <target>/<profile>/deps/<this test>
        if let Some(profile) = exe.parent().and_then(|d| d.parent()) {
            candidates.push(profile.join(&name));
            if let Some(target) = profile.parent() {
                candidates.push(target.join("release").join(&name));
            }
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    candidates.push(target.join("debug").join(&name));
    candidates.push(target.join("release").join(&name));
    candidates.into_iter().find(|p| p.is_file())
}

#[test]
fn real_agent_std_runtime() {
    let Some(bin) = agent_binary() else {
        eprintln!(
            "\n*** SKIPPED real_agent_std_runtime: no spoa binary in target/debug or \
             target/release; run `cargo build` (or `cargo test --workspace`) first ***\n"
        );
        return;
    };
    let spec = RuntimeSpec::parse("std", 1).unwrap();
    let agent = AgentProcess::start(&bin, &spec, None).unwrap();
    let r = short(agent.addr(), "2x8", Some(agent.pid()));
    assert_clean(&format!("spoa std ({})", bin.display()), &r);
    assert!(r.per_ack_us(r.agent_cpu).is_some());
    assert!(
        r.agent_switches.is_some(),
        "context switches read from /proc"
    );
}

/// The default placement puts the agent on CPUs of its own, and the agent really runs there.
#[test]
fn the_agent_runs_on_the_cpus_it_is_given() {
    let Some(bin) = agent_binary() else {
        eprintln!("\n*** SKIPPED the_agent_runs_on_the_cpus_it_is_given: no spoa binary ***\n");
        return;
    };
    let usable = spoa_loadgen::placement::usable_cpus();
    let placement = spoa_loadgen::placement::Placement::split(&usable);
    let Some(cpus) = placement.agent_cpus() else {
        eprintln!("\n*** SKIPPED the_agent_runs_on_the_cpus_it_is_given: one usable CPU ***\n");
        return;
    };
    let spec = RuntimeSpec::parse("std", cpus.len()).unwrap();
    let agent = AgentProcess::start(&bin, &spec, Some(cpus)).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(allowed, spoa_loadgen::placement::format_list(cpus));
}

/// An agent that answers every NOTIFY with ip_score 101: every ACK is an error.
#[test]
fn wrong_scores_are_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let canned = CannedReplies::default();
        let mut buf = vec![0u8; 65536];
        let mut filled = 0;
        let mut out = vec![0u8; 65536];
        loop {
            let n = match s.read(&mut buf[filled..]) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            filled += n;
            let mut at = 0;
            let mut reply = Vec::new();
            while let Ok(Parsed::Complete(frame, used)) =
                spoa_loadgen::proto::next_frame(&buf[at..filled])
            {
                at += used;
                match frame.header.frame_type {
                    FrameType::HaproxyHello => reply.extend_from_slice(&canned.agent_hello),
                    FrameType::Notify => {
                        let StreamId(sid) = frame.header.stream_id;
                        let mut ack =
                            AckWriter::new(&mut out, StreamId(sid), FrameId(1), 16380).unwrap();
                        ack.set_var(Scope::Session, b"ip_score", TypedData::Int32(101))
                            .unwrap();
                        let len = ack.finish();
                        reply.extend_from_slice(&out[..len]);
                    }
                    _ => {}
                }
            }
            buf.copy_within(at..filled, 0);
            filled -= at;
            if s.write_all(&reply).is_err() {
                return;
            }
        }
    });
    let r = short(addr, "1x4", None);
    assert!(r.acks > 0);
    assert_eq!(r.errors, r.total_acks, "every ACK is an error");
    assert!(
        r.first_errors[0].contains("ip_score 101 outside 0..=100"),
        "{:?}",
        r.first_errors
    );
}
