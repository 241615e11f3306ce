//! A connection reset while it waited in the accept queue is closed once, not twice (patched
//! glommio change 14).
//!
//! `AcceptedTcpStream::peer_addr` fails on such a connection (`ENOTCONN`), and the agent's
//! accept loop then drops it. Upstream's `peer_addr` closed the descriptor on that failure and
//! the drop closed the same number again: a debug build aborts ("IO Safety violation: owned
//! file descriptor already closed"), a release build closes whatever reused the number. Seen
//! with HAProxy 3.2 during restarts (`tests/haproxy.rs`).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use glommio::net::TcpListener;
use glommio::LocalExecutorBuilder;

#[test]
fn a_connection_reset_in_the_accept_queue_is_closed_once() {
    if !common::uring_available(1) {
        return;
    }
    let executor = LocalExecutorBuilder::default()
        .name("accept-reset")
        .spawn(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // Queued by the kernel's handshake, then reset (linger 0) before it is accepted.
            let client = TcpStream::connect(addr).unwrap();
            socket2::SockRef::from(&client)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(client);
            std::thread::sleep(Duration::from_millis(50));
            let accepted = listener.shared_accept().await.unwrap();
            let fd = accepted.as_fd().as_raw_fd();
            assert!(accepted.peer_addr().is_err(), "reset: no peer any more");
            // The descriptor is still the accepted connection's: the failed call left it open.
            let open = socket2::SockRef::from(&accepted).r#type().is_ok();
            assert!(open, "descriptor {fd} was closed by peer_addr");
            // Closed once, here (a second close would abort this debug build).
            drop(accepted.bind_to_executor());
        })
        .unwrap();
    executor.join().unwrap();
}
