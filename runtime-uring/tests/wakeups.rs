//! The executor never sleeps while a task is ready to run.
//!
//! A request/reply loop on one connection has exactly one task: after its reply is sent, it is
//! woken, and only when it runs does it queue its next receive. If the executor parked at that
//! moment, nothing would wake it: the peer waits for a reply to a request the agent never reads.
//! The window is the gap between the executor's poll of its rings and its first check for a due
//! preemption (a completion on the latency ring, such as the preemption timer firing). A
//! preemption timer of a few microseconds makes that timer fire in the gap often, so the test
//! turns a rare stall (seen once in 12 runs of 2,000 round trips with the default 100 ms timer)
//! into one that shows within a few thousand round trips.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpListener;
use glommio::LocalExecutorBuilder;

const ROUND_TRIPS: usize = 20_000;
/// Longer than one poll of the rings (so tasks run between preemptions), short enough to fire
/// in the gap between that poll and the first task again and again.
const PREEMPT: Duration = Duration::from_micros(100);
/// Far beyond any scheduling delay of a loaded CI machine, far below "forever".
const STALL: Duration = Duration::from_secs(3);

#[test]
fn a_task_woken_while_a_preemption_is_due_runs_before_the_executor_sleeps() {
    if !common::uring_available(1) {
        return;
    }
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let executor = LocalExecutorBuilder::default()
        .preempt_timer(PREEMPT)
        .name("wakeups")
        .spawn(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let mut stream = listener.accept().await.unwrap();
            let mut byte = [0u8; 1];
            while let Ok(1) = stream.read(&mut byte).await {
                stream.write_all(&byte).await.unwrap();
            }
        })
        .unwrap();

    let addr = addr_rx
        .recv_timeout(STALL)
        .expect("the executor never ran its first task");
    match round_trips(addr) {
        Ok(()) => executor.join().unwrap(),
        Err(stall) => {
            // The stalled executor would never see the client go: joining it would hang.
            std::mem::forget(executor);
            panic!("{stall}");
        }
    }
}

/// One byte out, the same byte back, `ROUND_TRIPS` times; then the connection is closed.
fn round_trips(addr: std::net::SocketAddr) -> Result<(), String> {
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_nodelay(true).unwrap();
    client.set_read_timeout(Some(STALL)).unwrap();
    let mut reply = [0u8; 1];
    for round_trip in 0..ROUND_TRIPS {
        let sent = Instant::now();
        client.write_all(&[round_trip as u8]).unwrap();
        if let Err(e) = client.read_exact(&mut reply) {
            return Err(format!(
                "round trip {round_trip} of {ROUND_TRIPS}: no reply after {:?} ({e}): the \
                 executor slept with the echo task ready to run",
                sent.elapsed()
            ));
        }
        assert_eq!(reply[0], round_trip as u8);
    }
    Ok(())
}
