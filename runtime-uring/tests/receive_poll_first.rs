//! A receive queued with a reply arms its poll first (glommio change 17).
//!
//! With write-behind, a reply goes out chained before the next receive. When the last receive
//! drained the socket, the peer's next request answers that reply, so it is not there yet: the
//! receive carries `IORING_RECVSEND_POLL_FIRST` (Linux 5.19), and the kernel arms its poll on
//! the socket at once instead of first trying a receive that finds nothing (socket receives per
//! request/reply at one request in flight: 2 without it, 1 with it, counted by
//! `KERNEL=1 scripts/syscalls-per-ack.sh`). Where the kernel lacks the flag it is never set,
//! and `UringOptions::receive_poll_first: false` forces the plain receive everywhere.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{receive_poll_first_supported, TcpListener};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder};
use runtime_uring::UringOptions;

const ROUND_TRIPS: u64 = 200;
const REQUEST: usize = 8;
/// Far beyond any scheduling delay of a loaded CI machine, far below "forever".
const STALL: Duration = Duration::from_secs(5);

/// What an echo server on one connection saw: bytes echoed, receives queued poll first.
#[derive(Debug, PartialEq)]
struct Echoed {
    bytes: u64,
    polled_first: u64,
}

/// Serves one connection on its own executor: reads up to 64 bytes at a time, pausing `pause`
/// after each read, and writes each read back behind; returns what it saw once the peer closes.
fn echo_server(poll_first: bool, pause: Duration) -> (SocketAddr, ExecutorJoinHandle<Echoed>) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let executor = LocalExecutorBuilder::default()
        .name("poll-first")
        .spawn(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let mut stream = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            stream.set_write_behind(true);
            assert_eq!(
                stream.set_receive_poll_first(poll_first),
                poll_first && receive_poll_first_supported()
            );
            let mut buf = [0u8; 64];
            let mut bytes = 0;
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                if !pause.is_zero() {
                    glommio::timer::sleep(pause).await;
                }
                stream.write_all(&buf[..n]).await.unwrap();
                bytes += n as u64;
            }
            Echoed {
                bytes,
                polled_first: stream.receives_polled_first(),
            }
        })
        .unwrap();
    let addr = addr_rx.recv_timeout(STALL).expect("the executor never ran");
    (addr, executor)
}

fn client(addr: SocketAddr) -> TcpStream {
    let client = TcpStream::connect(addr).unwrap();
    client.set_nodelay(true).unwrap();
    client.set_read_timeout(Some(STALL)).unwrap();
    client
}

/// `ROUND_TRIPS` requests of `REQUEST` bytes, each sent once the previous one's reply is back.
fn one_at_a_time(addr: SocketAddr) {
    let mut client = client(addr);
    let mut reply = [0u8; REQUEST];
    for round_trip in 0..ROUND_TRIPS {
        let request = [round_trip as u8; REQUEST];
        client.write_all(&request).unwrap();
        client
            .read_exact(&mut reply)
            .unwrap_or_else(|e| panic!("round trip {round_trip}: no reply ({e})"));
        assert_eq!(reply, request);
    }
}

#[test]
fn every_receive_after_a_reply_that_drained_the_socket_polls_first() {
    if !uring_available(1) {
        return;
    }
    let (addr, server) = echo_server(true, Duration::ZERO);
    one_at_a_time(addr);
    // Every receive but the first follows a reply, and each before it returned one request,
    // fewer bytes than it asked for; the last one sees the peer go.
    let expected = if receive_poll_first_supported() {
        ROUND_TRIPS
    } else {
        0
    };
    assert_eq!(
        server.join().unwrap(),
        Echoed {
            bytes: ROUND_TRIPS * REQUEST as u64,
            polled_first: expected
        }
    );
}

#[test]
fn turned_off_no_receive_polls_first_and_every_reply_still_comes_back() {
    if !uring_available(1) {
        return;
    }
    let (addr, server) = echo_server(false, Duration::ZERO);
    one_at_a_time(addr);
    assert_eq!(
        server.join().unwrap(),
        Echoed {
            bytes: ROUND_TRIPS * REQUEST as u64,
            polled_first: 0
        }
    );
}

#[test]
fn a_request_already_waiting_when_the_receive_polls_first_is_received_at_once() {
    if !uring_available(1) {
        return;
    }
    // The server pauses 50 ms after each read; the second request is sent 10 ms after the
    // first, so it waits in the socket when the receive after the first reply arms its poll.
    // A poll armed only for data still to come would never see it: no reply within STALL.
    let (addr, server) = echo_server(true, Duration::from_millis(50));
    let mut client = client(addr);
    client.write_all(&[1; REQUEST]).unwrap();
    thread::sleep(Duration::from_millis(10));
    client.write_all(&[2; REQUEST]).unwrap();
    let mut replies = [0u8; 2 * REQUEST];
    client
        .read_exact(&mut replies)
        .expect("both replies, the second request read by a receive that polled first");
    assert_eq!(replies[..REQUEST], [1; REQUEST]);
    assert_eq!(replies[REQUEST..], [2; REQUEST]);
    drop(client);
    let echoed = server.join().unwrap();
    assert_eq!(echoed.bytes, 2 * REQUEST as u64);
    if receive_poll_first_supported() {
        // After the first reply (the socket already held the second request) and the second.
        assert_eq!(echoed.polled_first, 2);
    }
}

/// The agent answers NOTIFYs one at a time and pipelined whether its receives poll first or not.
fn answers_notifies(receive_poll_first: bool) {
    let options = UringOptions {
        receive_poll_first,
        ..Default::default()
    };
    let server = start_with(config(1), options, TagFactory);
    let mut s = session(server.addr);
    for i in 0..200u64 {
        s.write_all(&notify(i, 1)).unwrap();
        let (h, p) = read_frame(&mut s).expect("ACK");
        assert_eq!(ack_worker(&h, &p, i, 1), 0);
    }
    let batch: Vec<u8> = (1000..1100u64).flat_map(|i| notify(i, 1)).collect();
    s.write_all(&batch).unwrap();
    for i in 1000..1100u64 {
        let (h, p) = read_frame(&mut s).expect("ACK");
        assert_eq!(ack_worker(&h, &p, i, 1), 0);
    }
    drop(s);
    assert_eq!(server.stop().unwrap(), 0);
}

#[test]
fn the_agent_answers_with_receives_that_poll_first() {
    if !uring_available(1) {
        return;
    }
    answers_notifies(true);
}

#[test]
fn the_agent_answers_with_poll_first_forced_off() {
    if !uring_available(1) {
        return;
    }
    answers_notifies(false);
}
