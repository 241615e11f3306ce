//! An adaptive spin (glommio's `adaptive_spin`, what `--spin-us` sets up) spins while spinning finds
//! work and backs off when it does not.
//!
//! An executor out of tasks may poll its rings for a while before it sleeps (`--spin-us`): a
//! request arriving within that time is answered without the sleep and the wake-up, and one
//! arriving later costs the whole spin in CPU. With the adaptive spin, a spin that found
//! nothing makes the next 1, then 2, 4 ... 64 waits sleep at once, and a spin that found work
//! resets that. These tests count spins (glommio's `ExecutorStats`), not times: each wait is
//! either far longer than the spin or far shorter.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpListener;
use glommio::{ExecutorStats, LocalExecutorBuilder, Placement};

/// Waits of an idle executor, each a timer this long.
const IDLE_WAITS: u32 = 40;
const IDLE_WAIT: Duration = Duration::from_millis(20);
/// Ten times shorter than an idle wait: a spin before one finds nothing.
const SHORT_SPIN: Duration = Duration::from_millis(2);
/// Far longer than a loopback round trip, even on a loaded machine: a spin always finds the
/// next request.
const LONG_SPIN: Duration = Duration::from_secs(2);
const ROUND_TRIPS: u32 = 500;
/// More than the longest back-off (glommio's `ADAPTIVE_SPIN_MAX_SKIPS`, 64 waits) three times.
const SHORT_WAITS: u32 = 200;

/// Spinning needs an executor bound to a CPU (glommio ignores the spin otherwise).
fn pinned() -> LocalExecutorBuilder {
    let cpu = *runtime_uring::usable_cpus().first().expect("no usable CPU");
    LocalExecutorBuilder::new(Placement::Fixed(cpu)).name("spin")
}

/// `IDLE_WAITS` sleeps on a timer, each longer than the spin.
async fn idle() {
    for _ in 0..IDLE_WAITS {
        glommio::timer::sleep(IDLE_WAIT).await;
    }
}

/// The executor's statistics after [`idle`] waits.
fn idle_waits(adaptive: bool) -> ExecutorStats {
    pinned()
        .spin_before_park(SHORT_SPIN)
        .adaptive_spin(adaptive)
        .spawn(|| async move {
            glommio::executor().executor_stats(); // counted from here
            idle().await;
            glommio::executor().executor_stats()
        })
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn a_plain_spin_spins_before_every_sleep_of_an_idle_executor() {
    if !common::uring_available(1) {
        return;
    }
    let stats = idle_waits(false);
    assert!(
        stats.spins_that_found_nothing() >= u64::from(IDLE_WAITS) - 2,
        "{} of {IDLE_WAITS} idle waits spun for nothing",
        stats.spins_that_found_nothing()
    );
}

#[test]
fn an_adaptive_spin_backs_off_on_an_idle_executor() {
    if !common::uring_available(1) {
        return;
    }
    let stats = idle_waits(true);
    // Spins before waits 1, 3, 6, 11, 20 and 37 (then 1, 2, 4, 8 and 16 waits sleep at once);
    // a preemption timer found by a spin may reset the back-off once or twice.
    assert!(
        stats.spins() <= 10,
        "{} spins in {IDLE_WAITS} idle waits ({} found nothing)",
        stats.spins(),
        stats.spins_that_found_nothing()
    );
}

#[test]
fn a_spin_that_finds_work_restarts_the_back_off() {
    if !common::uring_available(1) {
        return;
    }
    let again = pinned()
        .spin_before_park(SHORT_SPIN)
        .adaptive_spin(true)
        .spawn(|| async move {
            // Backed off far: after these, the next 32 waits or so sleep at once.
            idle().await;
            // Waits far shorter than the spin: once the back-off has run out, a spin finds
            // the timer, which must start the back-off over.
            for _ in 0..SHORT_WAITS {
                glommio::timer::sleep(SHORT_SPIN / 10).await;
            }
            glommio::executor().executor_stats(); // counted from here
            idle().await;
            glommio::executor().executor_stats()
        })
        .unwrap()
        .join()
        .unwrap();
    // As from a standing start: spins before idle waits 1, 3, 6, 11, 20 and 37 (8 measured,
    // with the preemption timer). A back-off that went on from where it was sleeps at once
    // for up to 64 waits after its first spin (3 measured with the reset taken out).
    assert!(
        again.spins() >= 5,
        "{} spins in {IDLE_WAITS} idle waits after spins that found work",
        again.spins()
    );
}

#[test]
fn an_adaptive_spin_keeps_spinning_while_requests_arrive_within_it() {
    if !common::uring_available(1) {
        return;
    }
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let executor = pinned()
        .spin_before_park(LONG_SPIN)
        .adaptive_spin(true)
        .spawn(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let mut stream = listener.accept().await.unwrap();
            glommio::executor().executor_stats(); // counted from here
            let mut byte = [0u8; 1];
            while let Ok(1) = stream.read(&mut byte).await {
                stream.write_all(&byte).await.unwrap();
            }
            glommio::executor().executor_stats()
        })
        .unwrap();
    let mut client = TcpStream::connect(addr_rx.recv().unwrap()).unwrap();
    client.set_nodelay(true).unwrap();
    let mut reply = [0u8; 1];
    for round_trip in 0..ROUND_TRIPS {
        client.write_all(&[round_trip as u8]).unwrap();
        client.read_exact(&mut reply).unwrap();
    }
    drop(client);
    let stats = executor.join().unwrap();
    assert!(
        stats.spins() >= u64::from(ROUND_TRIPS),
        "{} spins for {ROUND_TRIPS} requests",
        stats.spins()
    );
    // The close comes within the spin too; nothing else is waited for.
    assert_eq!(stats.spins_that_found_nothing(), 0);
}
