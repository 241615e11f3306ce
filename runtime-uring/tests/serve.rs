//! The uring runtime on real sockets: handshake, pipelining, vanishing peers, spread over
//! executors, limits and the graceful stop. Skipped (with a note) where io_uring cannot run.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use spop_core::{Action, FrameType, TypedData};
use spop_testkit::peer;

#[test]
fn handshake_then_notify_gets_its_ack() {
    if !uring_available(1) {
        return;
    }
    let server = start(config(1), TagFactory);
    let mut s = session(server.addr);
    s.write_all(&notify(7, 1)).unwrap();
    let (h, p) = read_frame(&mut s).expect("ACK");
    assert_eq!(ack_worker(&h, &p, 7, 1), 0);
    drop(s);
    assert_eq!(server.stop().unwrap(), 0);
}

#[test]
fn pipelined_notifies_on_several_connections_are_all_answered_in_order() {
    let workers = runtime_uring::usable_cpus().len().min(2);
    if !uring_available(workers) {
        return;
    }
    let server = start(config(workers), TagFactory);
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            let addr = server.addr;
            thread::spawn(move || {
                let mut s = session(addr);
                let mut reader = s.try_clone().unwrap();
                // 2,000 NOTIFYs written in batches of 100 without waiting, read back in order.
                let check = thread::spawn(move || {
                    let mut worker = None;
                    for i in 0..2000u64 {
                        let (h, p) = read_frame(&mut reader).expect("ACK");
                        let w = ack_worker(&h, &p, c * 10_000 + i, 1);
                        assert_eq!(*worker.get_or_insert(w), w, "one executor per connection");
                    }
                    worker.unwrap()
                });
                for batch in 0..20u64 {
                    let bytes: Vec<u8> = (0..100)
                        .flat_map(|i| notify(c * 10_000 + batch * 100 + i, 1))
                        .collect();
                    s.write_all(&bytes).unwrap();
                }
                check.join().unwrap()
            })
        })
        .collect();
    let mut per_worker = vec![0; workers];
    for client in clients {
        per_worker[client.join().unwrap() as usize] += 1;
    }
    // Least-loaded hand-off: 4 long-lived connections over 2 executors are split 2 + 2.
    assert!(
        per_worker.iter().all(|&n| n == 4 / workers),
        "connections per executor: {per_worker:?}"
    );
    assert_eq!(server.stop().unwrap(), 0);
}

#[test]
fn a_peer_vanishing_mid_frame_does_not_disturb_another_connection() {
    if !uring_available(1) {
        return;
    }
    let server = start(config(1), TagFactory);
    let mut healthy = session(server.addr);
    for round in 0..10u64 {
        let mut gone = session(server.addr);
        let frame = notify(1, 1);
        gone.write_all(&frame[..frame.len() / 2]).unwrap();
        if round % 2 == 1 {
            // Unread data at close makes the kernel send RST instead of FIN.
            gone.write_all(&notify(2, 1)).unwrap();
            thread::sleep(Duration::from_millis(5));
        }
        drop(gone);
        healthy.write_all(&notify(100 + round, 1)).unwrap();
        let (h, p) = read_frame(&mut healthy).expect("ACK on the healthy connection");
        ack_worker(&h, &p, 100 + round, 1);
    }
    drop(healthy);
    assert_eq!(server.stop().unwrap(), 0);
}

#[test]
fn graceful_stop_answers_every_notify_sent_before_it() {
    let workers = runtime_uring::usable_cpus().len().min(2);
    if !uring_available(workers) {
        return;
    }
    let server = start(config(workers), TagFactory);
    let mut busy: Vec<_> = (0..4).map(|_| session(server.addr)).collect();
    let idle = session(server.addr);
    for (c, s) in busy.iter_mut().enumerate() {
        let bytes: Vec<u8> = (0..500)
            .flat_map(|i| notify(c as u64 * 1000 + i, 1))
            .collect();
        s.write_all(&bytes).unwrap();
    }
    let readers: Vec<_> = busy
        .into_iter()
        .chain(std::iter::once(idle))
        .enumerate()
        .map(|(c, mut s)| {
            thread::spawn(move || {
                let mut acks = 0u64;
                let mut status = None;
                while let Some((h, p)) = read_frame(&mut s) {
                    match h.frame_type {
                        FrameType::Ack => {
                            ack_worker(&h, &p, c as u64 * 1000 + acks, 1);
                            acks += 1;
                        }
                        FrameType::AgentDisconnect => status = Some(disconnect_status(&h, &p)),
                        other => panic!("unexpected {other}"),
                    }
                }
                (acks, status)
            })
        })
        .collect();
    let left = server.stop().unwrap();
    assert_eq!(left, 0, "every connection drained");
    for (c, reader) in readers.into_iter().enumerate() {
        let (acks, status) = reader.join().unwrap();
        let sent = if c < 4 { 500 } else { 0 };
        assert_eq!(acks, sent, "connection {c}: every NOTIFY answered");
        assert_eq!(
            status,
            Some(0),
            "connection {c}: AGENT-DISCONNECT 0 at the end"
        );
    }
}

#[test]
fn a_panicking_handler_closes_only_its_connection() {
    if !uring_available(1) {
        return;
    }
    let server = start(config(1), TagFactory);
    let mut healthy = session(server.addr);
    let mut doomed = session(server.addr);
    doomed.write_all(&notify_named(1, 1, b"panic")).unwrap();
    assert!(
        read_frame(&mut doomed).is_none(),
        "closed without an answer"
    );
    for i in 0..3 {
        healthy.write_all(&notify(i, 1)).unwrap();
        let (h, p) = read_frame(&mut healthy).expect("ACK");
        ack_worker(&h, &p, i, 1);
    }
    let mut later = session(server.addr);
    later.write_all(&notify(9, 1)).unwrap();
    let (h, p) = read_frame(&mut later).expect("ACK");
    ack_worker(&h, &p, 9, 1);
    drop((healthy, later));
    assert_eq!(server.stop().unwrap(), 0);
}

#[test]
fn hello_timeout_gets_agent_disconnect_2() {
    if !uring_available(1) {
        return;
    }
    let mut cfg = config(1);
    cfg.hello_timeout = Some(Duration::from_millis(300));
    let server = start(cfg, TagFactory);
    let mut s = connect(server.addr);
    let started = Instant::now();
    let (h, p) = read_frame(&mut s).expect("AGENT-DISCONNECT");
    assert_eq!(disconnect_status(&h, &p), 2);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(server.stop().unwrap(), 0);
}

#[test]
fn a_frame_cut_short_after_an_answered_notify_gets_agent_disconnect_2() {
    if !uring_available(1) {
        return;
    }
    let mut cfg = config(1);
    cfg.frame_timeout = Some(Duration::from_millis(300));
    cfg.write_timeout = None;
    let server = start(cfg, TagFactory);
    let mut s = session(server.addr);
    // A whole NOTIFY and the first half of the next in one write: the ACK is written behind and
    // sent with the read that waits for the rest, which never comes. At the frame timeout the
    // agent's AGENT-DISCONNECT must not wait for that read.
    let mut bytes = notify(1, 1);
    let next = notify(3, 1);
    bytes.extend_from_slice(&next[..next.len() / 2]);
    s.write_all(&bytes).unwrap();
    let started = Instant::now();
    let (h, _) = read_frame(&mut s).expect("ACK");
    assert_eq!(h.frame_type, FrameType::Ack);
    let (h, p) = read_frame(&mut s).expect("AGENT-DISCONNECT");
    assert_eq!(disconnect_status(&h, &p), 2);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(server.stop().unwrap(), 0);
}

#[test]
fn connections_past_max_connections_are_closed() {
    if !uring_available(1) {
        return;
    }
    let mut cfg = config(1);
    cfg.max_connections = 2;
    let server = start(cfg, TagFactory);
    let mut open: Vec<_> = (0..2).map(|_| session(server.addr)).collect();
    let mut extra = connect(server.addr);
    let _ = extra.write_all(&hello(16380));
    let mut buf = [0u8; 64];
    let closed = matches!(extra.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "the third connection is closed at once");
    for (i, s) in open.iter_mut().enumerate() {
        s.write_all(&notify(i as u64, 1)).unwrap();
        let (h, p) = read_frame(s).expect("ACK");
        ack_worker(&h, &p, i as u64, 1);
    }
    drop(open);
    assert_eq!(server.stop().unwrap(), 0);
}

#[test]
fn a_connection_that_does_not_drain_is_cut_at_the_shutdown_timeout() {
    if !uring_available(1) {
        return;
    }
    let mut cfg = config(1);
    cfg.shutdown_timeout = Duration::from_millis(300);
    cfg.write_timeout = None;
    // ACKs of 1 KiB for NOTIFYs of a few dozen bytes, so what the agent still owes when it
    // stops (the answers to the NOTIFYs waiting in its receive buffer) cannot fit in the socket
    // buffers: it writes behind (a reply goes out with the next read), and replies that all
    // fit would be a connection that drained.
    let server = start(cfg, PaddedFactory);
    let mut greedy = session(server.addr);
    greedy
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Never read the ACKs: the agent's writes block once the socket buffers are full, and then
    // it stops reading. Three write timeouts in a row (600 ms without the agent reading) say so.
    let batch: Vec<u8> = (0..1000).flat_map(|i| notify(i, 1)).collect();
    let started = Instant::now();
    let mut stalls = 0;
    let mut at = 0;
    while stalls < 3 && started.elapsed() < Duration::from_secs(20) {
        // A write cut short by the timeout goes on where it stopped: frames stay whole.
        match greedy.write(&batch[at..]) {
            Ok(n) => {
                at = (at + n) % batch.len();
                stalls = 0;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                stalls += 1
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert_eq!(stalls, 3, "the agent stopped reading");
    let begun = Instant::now();
    assert_eq!(server.stop().unwrap(), 1, "the blocked connection is cut");
    assert!(begun.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_peer_that_stops_reading_between_small_batches_is_cut_at_the_write_timeout() {
    if !uring_available(1) {
        return;
    }
    let mut cfg = config(1);
    cfg.write_timeout = Some(Duration::from_millis(300));
    let server = start(cfg, PaddedFactory);
    let mut greedy = session(server.addr);
    greedy
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Batches of 20 NOTIFYs (20 KiB of ACKs each), never reading the ACKs: each batch's replies
    // are written behind and sent with the next read, until a send blocks because the socket
    // buffers are full, with that read queued behind it. The write timeout must still cut the
    // connection (our writes then fail), not leave it waiting in that read forever.
    let started = Instant::now();
    let mut frame = 0;
    let cut = loop {
        if started.elapsed() > Duration::from_secs(20) {
            break None;
        }
        let batch: Vec<u8> = (frame..frame + 20).flat_map(|i| notify(i, 1)).collect();
        frame += 20;
        match greedy.write_all(&batch) {
            Ok(()) => thread::sleep(Duration::from_millis(1)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break Some(started.elapsed()),
        }
    };
    assert!(cut.is_some(), "the connection was never cut");
    server.stop().unwrap();
}

#[test]
fn a_reader_that_pauses_until_its_socket_is_full_gets_every_ack_whole_and_in_order() {
    if !uring_available(1) {
        return;
    }
    let mut cfg = config(1);
    cfg.write_timeout = Some(Duration::from_secs(10));
    let server = start(cfg, PaddedFactory);
    let mut s = session(server.addr);
    let mut reader = s.try_clone().unwrap();
    // 10,000 NOTIFYs answered by 1 KiB ACKs (11 MB), in batches of 20 a millisecond apart
    // (so each batch's 22 KiB of replies is written behind and sent with the next read), the
    // reader asleep for the first second: the socket buffers fill, so sends chained before a
    // read find too little room, go out in part and the rest follows alone (PATCHES.md change
    // 11). Every ACK must arrive whole, once, in order.
    let writer = thread::spawn(move || {
        for batch in 0..500u64 {
            let bytes: Vec<u8> = (0..20).flat_map(|i| notify(batch * 20 + i, 1)).collect();
            s.write_all(&bytes).unwrap();
            thread::sleep(Duration::from_millis(1));
        }
        s
    });
    thread::sleep(Duration::from_secs(1));
    for i in 0..10_000u64 {
        let (h, p) = read_frame(&mut reader).expect("ACK");
        peer::assert_ack_of(&h, i, 1);
        match peer::ack_actions(&h, &p).as_slice() {
            [Action::SetVar {
                name: b"padding",
                value: TypedData::Binary(v),
                ..
            }] => assert!(v.len() == 1024 && v.iter().all(|&b| b == 0), "ACK {i}"),
            other => panic!("ACK {i}: unexpected actions {other:?}"),
        }
    }
    drop(writer.join().unwrap());
    assert_eq!(server.stop().unwrap(), 0);
}

#[test]
fn too_many_workers_is_refused_with_the_cpu_count() {
    let cpus = runtime_uring::usable_cpus().len();
    match runtime_uring::probe(cpus + 1) {
        Err(runtime_uring::Unavailable::TooManyWorkers { workers, cpus: c }) => {
            assert_eq!((workers, c), (cpus + 1, cpus));
        }
        Err(other) => eprintln!("NOTE: io_uring unavailable first: {other}"),
        Ok(()) => panic!("{} workers on {cpus} CPUs accepted", cpus + 1),
    }
}
