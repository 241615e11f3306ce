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
use std::sync::mpsc::Receiver;
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

/// Round trips in which a completion lands while the executor is busy.
const BUSY_ROUNDS: usize = 200;

/// A receive that completes while a task keeps the executor busy (running user code, then
/// yielding its task queue, so the executor polls its rings between runs but never sleeps) is
/// seen by one of those polls. A kernel that defers the completion's work until the executor
/// enters the ring (`IORING_SETUP_DEFER_TASKRUN`) leaves the completion queue empty meanwhile:
/// an executor that only looks at the queue never sees the byte, and the busy task waits
/// forever.
#[test]
fn a_receive_that_completes_while_the_executor_is_busy_is_seen_without_a_sleep() {
    if !common::uring_available(1) {
        return;
    }
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (outcome_tx, outcome_rx) = std::sync::mpsc::channel();
    let executor = LocalExecutorBuilder::default()
        .preempt_timer(Duration::from_millis(1))
        .name("busy")
        .spawn(move || async move {
            let outcome = async {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let mut stream = listener.accept().await.unwrap();
                let received = std::rc::Rc::new(std::cell::Cell::new(0usize));
                let counter = received.clone();
                let reader = glommio::spawn_local(async move {
                    let mut byte = [0u8; 1];
                    while let Ok(1) = stream.read(&mut byte).await {
                        counter.set(counter.get() + 1);
                    }
                });
                for round in 0..BUSY_ROUNDS {
                    go_tx.send(()).unwrap();
                    let asked = Instant::now();
                    while received.get() <= round {
                        if asked.elapsed() > STALL {
                            return Err(format!(
                                "round {round} of {BUSY_ROUNDS}: the byte asked for {STALL:?} ago \
                             was never seen while a task kept the executor busy"
                            ));
                        }
                        // User code for a while, then the other tasks and the rings get a turn.
                        let busy = Instant::now();
                        while busy.elapsed() < Duration::from_micros(20) {
                            std::hint::spin_loop();
                        }
                        glommio::executor().yield_task_queue_now().await;
                    }
                }
                drop(go_tx);
                reader.await;
                Ok(())
            }
            .await;
            outcome_tx.send(outcome).unwrap();
        })
        .unwrap();

    let addr = addr_rx
        .recv_timeout(STALL)
        .expect("the executor never ran its first task");
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_nodelay(true).unwrap();
    // A byte per round, sent once the executor is busy waiting for it (its receive armed).
    while go_rx.recv_timeout(STALL).is_ok() {
        std::thread::sleep(Duration::from_micros(500));
        if client.write_all(&[1]).is_err() {
            break;
        }
    }
    drop(client);
    finish(executor, &outcome_rx);
}

/// The outcome the executor sent, then the executor joined; a panic if it sent none in time
/// (an executor that never wakes again would never finish: it is left behind, not joined).
fn finish(executor: glommio::ExecutorJoinHandle<()>, outcome: &Receiver<Result<(), String>>) {
    match outcome.recv_timeout(STALL * 4) {
        Ok(Ok(())) => executor.join().unwrap(),
        Ok(Err(stall)) => {
            std::mem::forget(executor);
            panic!("{stall}");
        }
        Err(_) => {
            std::mem::forget(executor);
            panic!("the executor stalled: it never reported an outcome");
        }
    }
}

/// An executor asleep is woken by another executor's message, again and again: the wake-up
/// goes through an eventfd read on the sleeper's latency ring, whose completion the main ring
/// (where the executor sleeps) sees through a poll on the latency ring's descriptor. With
/// task work not signalled by an interrupt (`IORING_SETUP_COOP_TASKRUN`) or deferred to the
/// next entry (`IORING_SETUP_DEFER_TASKRUN`), each link of that chain must still wake it.
#[test]
fn executors_asleep_are_woken_by_each_others_messages() {
    if !common::uring_available(2) {
        return;
    }
    const PINGS: usize = 5_000;
    let (to_pong, from_ping) = glommio::channels::shared_channel::new_bounded::<usize>(1);
    let (to_ping, from_pong) = glommio::channels::shared_channel::new_bounded::<usize>(1);
    let pong = LocalExecutorBuilder::default()
        .name("pong")
        .spawn(move || async move {
            let (rx, tx) = (from_ping.connect().await, to_ping.connect().await);
            while let Some(n) = rx.recv().await {
                if tx.send(n).await.is_err() {
                    break;
                }
            }
        })
        .unwrap();
    let (outcome_tx, outcome_rx) = std::sync::mpsc::channel();
    let ping = LocalExecutorBuilder::default()
        .name("ping")
        .spawn(move || async move {
            let outcome = async {
                let (tx, rx) = (to_pong.connect().await, from_pong.connect().await);
                for n in 0..PINGS {
                    tx.send(n).await.unwrap();
                    let sent = Instant::now();
                    // The reply comes within microseconds; a lost wake-up leaves it unread.
                    let reply = glommio::timer::timeout(STALL, async {
                        Ok::<_, glommio::GlommioError<()>>(rx.recv().await)
                    })
                    .await;
                    match reply {
                        Ok(Some(back)) => assert_eq!(back, n),
                        Ok(None) => return Err(format!("ping {n}: the other executor went away")),
                        Err(_) => {
                            return Err(format!(
                                "ping {n} of {PINGS}: no reply after {:?}: a wake-up was lost",
                                sent.elapsed()
                            ))
                        }
                    }
                }
                Ok(())
            }
            .await;
            outcome_tx.send(outcome).unwrap();
        })
        .unwrap();
    finish(ping, &outcome_rx);
    pong.join().unwrap();
}

/// Longer than a poll of the rings, shorter than the client's pause between requests in
/// `a_task_woken_from_a_sleep_is_preempted_once_it_runs_past_the_preemption_timer`.
const WOKEN_PREEMPT: Duration = Duration::from_millis(2);

/// A task woken from a sleep is preempted on time. An executor sleeps without a preemption
/// timer (a timer still pending from before fires once and is gone), so when a completion wakes
/// it with a task to run, it must arm one before running the task. Each request here arrives
/// after a pause longer than the preemption period, and its task then runs until
/// `need_preempt` says so: without a timer armed at the wake-up, it would run on (the test
/// gives up after `STALL`).
#[test]
fn a_task_woken_from_a_sleep_is_preempted_once_it_runs_past_the_preemption_timer() {
    if !common::uring_available(1) {
        return;
    }
    const ROUNDS: usize = 50;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (outcome_tx, outcome_rx) = std::sync::mpsc::channel();
    let executor = LocalExecutorBuilder::default()
        .preempt_timer(WOKEN_PREEMPT)
        .name("woken-preempt")
        .spawn(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let mut stream = listener.accept().await.unwrap();
            let mut byte = [0u8; 1];
            let mut round = 0;
            let outcome = loop {
                if !matches!(stream.read(&mut byte).await, Ok(1)) {
                    break Ok(());
                }
                let ran = Instant::now();
                while !glommio::executor().need_preempt() && ran.elapsed() < STALL {}
                if ran.elapsed() >= STALL {
                    break Err(format!(
                        "request {round}: its task ran {STALL:?} without being preempted"
                    ));
                }
                stream.write_all(&byte).await.unwrap();
                round += 1;
            };
            // An early end closes the connection, which ends the client's wait for a reply.
            drop(stream);
            outcome_tx.send(outcome).unwrap();
        })
        .unwrap();

    let addr = addr_rx
        .recv_timeout(STALL)
        .expect("the executor never ran its first task");
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(STALL * 2)).unwrap();
    for round in 0..ROUNDS {
        // The executor goes to sleep, and its pending preemption timer fires meanwhile.
        std::thread::sleep(WOKEN_PREEMPT * 3);
        client.write_all(&[round as u8]).unwrap();
        let mut byte = [0u8; 1];
        if !matches!(client.read(&mut byte), Ok(1)) {
            break;
        }
    }
    drop(client);
    finish(executor, &outcome_rx);
}
