//! Restarts that hand open connections to the next agent (issue 12): the stopping agent passes
//! each HAProxy connection, at a frame boundary, to the service manager's descriptor store
//! (`FDSTORE=1`), and the next agent, started with the listening socket and the stored
//! descriptors (`LISTEN_FDS`, `LISTEN_FDNAMES`), serves them as established sessions. The
//! service manager is played by the test (`support::fdstore`), the peer by the testkit's
//! HAProxy; every test runs on every runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use spop_core::{FrameType, TypedData};
use support::fdstore::{passed, Manager};
use support::*;

const IP: TypedData<'static> = TypedData::Ipv4(Ipv4Addr::LOCALHOST);

/// The listening socket a socket unit would hold, the descriptor store named for `test`, and
/// the first agent, started with the socket and an empty store.
fn first_agent(runtime: &'static str, test: &str) -> (TcpListener, Manager, Agent) {
    let listener = runtime_core::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let manager = Manager::new(&format!("{test}-{runtime}"));
    let agent = manager.start(runtime, &listener, &[]);
    (listener, manager, agent)
}

/// SIGTERM, then the agent's exit.
fn stop(agent: &mut Agent) {
    agent.signal("TERM");
    assert!(
        agent.wait_exit(Duration::from_secs(15)).is_some(),
        "{} runtime: the agent did not stop: {:#?}",
        agent.runtime,
        agent.logs()
    );
}

/// One NOTIFY on `s`, answered with a score ACK of its ids.
fn scored(s: &mut TcpStream, stream: u64, frame: u64, by: &str) {
    s.write_all(&notify(stream, frame, IP)).unwrap();
    answered(s, stream, frame, by);
}

/// The next frame on `s` is a score ACK of `stream`/`frame` (the NOTIFY already sent).
fn answered(s: &mut TcpStream, stream: u64, frame: u64, by: &str) {
    let (h, p) = read_frame(s).unwrap_or_else(|| panic!("no ACK of {stream}/{frame} from {by}"));
    assert_ack_of(&h, stream, frame);
    check_score_ack(&h, &p);
}

/// One of `agent`'s log lines contains `needle`.
fn assert_logged(agent: &Agent, needle: &str) {
    assert!(
        agent.logs().iter().any(|l| l.contains(needle)),
        "{} runtime: no log line with {needle:?}: {:#?}",
        agent.runtime,
        agent.logs()
    );
}

#[test]
fn a_notify_sent_while_no_agent_runs_is_answered_by_the_next_agent() {
    for runtime in runtimes() {
        let (listener, manager, mut a) = first_agent(runtime, "gap");
        let mut conns: Vec<TcpStream> = (0..2).map(|_| session(a.addr)).collect();
        for (i, c) in conns.iter_mut().enumerate() {
            scored(c, 1, i as u64 + 1, "the first agent");
        }
        stop(&mut a);
        assert_logged(
            &a,
            "stop: 2 connections handed over to the next agent, 0 ended",
        );
        let stored = manager.take();
        assert_eq!(stored.len(), 2, "{runtime}: {:#?}", manager.messages());
        for (name, _) in &stored {
            assert!(
                name.starts_with("spop-v1.16380.16380."),
                "{runtime}: {name}"
            );
        }
        // No agent runs: the NOTIFY waits in the socket.
        conns[0].write_all(&notify(2, 1, IP)).unwrap();
        let b = manager.start(runtime, &listener, &passed(&stored));
        answered(&mut conns[0], 2, 1, "the next agent");
        scored(&mut conns[1], 2, 2, "the next agent");
        assert_logged(&b, "2 connections handed over by the previous agent");
        // Out of the store: the next stop stores them anew.
        let messages = manager.messages();
        for (name, _) in &stored {
            let removal = format!("FDSTOREREMOVE=1\nFDNAME={name}\n");
            assert!(messages.contains(&removal), "{runtime}: {messages:#?}");
        }
        // A new connection is accepted as before.
        scored(&mut session(b.addr), 1, 1, "the next agent");
    }
}

#[test]
fn pipelined_notifies_across_the_switch_are_all_answered_exactly_once() {
    const NOTIFIES: u64 = 4000;
    for runtime in runtimes() {
        let (listener, manager, mut a) = first_agent(runtime, "pipelined");
        let conn = session(a.addr);
        let mut writer = conn.try_clone().unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&sent);
        let sending = thread::spawn(move || {
            for stream in 1..=NOTIFIES {
                writer.write_all(&notify(stream, 1, IP)).unwrap();
                counter.store(stream, Ordering::Relaxed);
                if stream % 20 == 0 {
                    thread::sleep(Duration::from_micros(500));
                }
            }
        });
        let mut reader = conn.try_clone().unwrap();
        let receiving = thread::spawn(move || {
            let mut acked = Vec::new();
            while (acked.len() as u64) < NOTIFIES {
                let Some((h, p)) = read_frame(&mut reader) else {
                    break;
                };
                assert_eq!(h.frame_type, FrameType::Ack, "after {} ACKs", acked.len());
                check_score_ack(&h, &p);
                acked.push(h.stream_id.0);
            }
            acked
        });
        thread::sleep(Duration::from_millis(30));
        stop(&mut a);
        let sent_to_a = sent.load(Ordering::Relaxed);
        assert!(
            sent_to_a > 0 && sent_to_a < NOTIFIES,
            "{runtime}: the switch fell outside the stream ({sent_to_a} sent when the first agent left)"
        );
        let stored = manager.take();
        assert_eq!(stored.len(), 1, "{runtime}: {:#?}", a.logs());
        let _b = manager.start(runtime, &listener, &passed(&stored));
        sending.join().unwrap();
        let acked = receiving.join().unwrap();
        let mut sorted = acked.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            (acked.len(), sorted.len()),
            (NOTIFIES as usize, NOTIFIES as usize),
            "{runtime}: every NOTIFY answered once"
        );
        assert_eq!(sorted, (1..=NOTIFIES).collect::<Vec<_>>(), "{runtime}");
        assert_logged(&a, "stop: 1 connections handed over");
    }
}

#[test]
fn a_bad_name_or_a_descriptor_that_is_no_socket_is_refused_and_the_rest_are_served() {
    for runtime in runtimes() {
        let (listener, manager, mut a) = first_agent(runtime, "refused");
        let mut good = session(a.addr);
        let mut renamed = session(a.addr);
        scored(&mut good, 1, 1, "the first agent");
        scored(&mut renamed, 1, 1, "the first agent");
        stop(&mut a);
        let stored = manager.take();
        assert_eq!(stored.len(), 2, "{runtime}: {:#?}", a.logs());
        let (pipe, _writer) = std::io::pipe().unwrap();
        let pipe = OwnedFd::from(pipe);
        // Which stored descriptor is which connection: the tag ends with the connection id,
        // in accept order.
        let mut passed = passed(&stored);
        passed.sort_by_key(|(name, _)| {
            let id = name.rsplit('-').next().unwrap_or_default();
            id.parse::<u64>().unwrap_or(0)
        });
        passed[1].0 = "spop-v1.16380.oops.1.3.t".into();
        passed.push(("spop-v1.16380.16380.1.3.pipe".into(), pipe.as_raw_fd()));
        let b = manager.start(runtime, &listener, &passed);
        scored(&mut good, 2, 1, "the next agent");
        assert_logged(
            &b,
            "(spop-v1.16380.oops.1.3.t): refused as a handed-over connection: bad name",
        );
        assert_logged(
            &b,
            "refused as a handed-over connection: not a socket; closed",
        );
        // The refused connection ends: HAProxy would reconnect rather than wait on it.
        renamed
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut byte = [0u8; 1];
        assert!(
            matches!(renamed.read(&mut byte), Ok(0)),
            "{runtime}: the refused connection is shut down"
        );
        drop(stored);
    }
}

#[test]
fn a_connection_mid_frame_at_the_stop_is_handed_over_at_its_next_frame_boundary() {
    for runtime in runtimes() {
        let (listener, manager, mut a) = first_agent(runtime, "mid-frame");
        let mut conn = session(a.addr);
        let frame = notify(1, 1, IP);
        let (first, rest) = frame.split_at(frame.len() / 2);
        conn.write_all(first).unwrap();
        thread::sleep(Duration::from_millis(50));
        a.signal("TERM");
        thread::sleep(Duration::from_millis(200));
        assert!(
            a.child.try_wait().unwrap().is_none(),
            "{runtime}: the agent left before the frame was complete: {:#?}",
            a.logs()
        );
        conn.write_all(rest).unwrap();
        answered(&mut conn, 1, 1, "the stopping agent");
        let stopping = Instant::now();
        assert!(a.wait_exit(Duration::from_secs(15)).is_some());
        assert!(
            stopping.elapsed() < Duration::from_secs(2),
            "{runtime}: handed over at the boundary, not at the shutdown timeout"
        );
        assert_logged(&a, "stop: 1 connections handed over");
        let stored = manager.take();
        conn.write_all(&notify(2, 1, IP)).unwrap();
        let _b = manager.start(runtime, &listener, &passed(&stored));
        answered(&mut conn, 2, 1, "the next agent");
    }
}

#[test]
fn without_a_service_manager_the_option_is_ignored_and_connections_end_as_before() {
    for runtime in runtimes() {
        // Empty: as if unset, whatever runs the tests.
        let mut agent = Agent::start_full(
            runtime,
            &[],
            &[("NOTIFY_SOCKET", "")],
            &["-a", "127.0.0.1", "-p", "0"],
            &["--hand-over-connections"],
        );
        assert_logged(
            &agent,
            "--hand-over-connections needs a service manager's NOTIFY_SOCKET",
        );
        let mut conn = agent.session();
        scored(&mut conn, 1, 1, "the agent");
        stop(&mut agent);
        let (h, p) = read_frame(&mut conn).expect("AGENT-DISCONNECT at the stop");
        assert_eq!(disconnect_status(&h, &p), 0, "{runtime}");
    }
}
