//! No allocation per frame on a connection thread: a counting global allocator counts every
//! allocation made on the connection's thread — reads, writes, timeouts, the engine, the
//! handler: the whole connection loop — while 10,000 NOTIFYs are answered after a warm-up, one
//! at a time and then pipelined. Both counts must be 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use runtime_core::ServerConfig;
use runtime_std::Server;
use spop_core::TypedData;
use spop_testkit::alloc::{self, Counting, Measuring, BATCH, MEASURED, PIPELINED};
use spop_testkit::{peer, server};

#[global_allocator]
static COUNTER: Counting = Counting::new();

#[test]
fn a_connection_thread_allocates_nothing_per_notify() {
    let config = ServerConfig {
        // Counting metrics is part of what must not allocate per NOTIFY.
        metrics: runtime_core::Metrics::enabled(),
        ..server::loopback(1)
    };
    let server = Server::bind(config).unwrap();
    let addr = server.local_addrs()[0];
    let stop = server.shutdown_handle();
    let running = std::thread::spawn(move || server.run(|_worker| Measuring::default()));

    let mut s = peer::session(addr);
    let frame = peer::notify(1, 1, TypedData::Ipv4(Ipv4Addr::new(192, 0, 2, 1)));
    alloc::one_at_a_time(&mut s, &frame);
    let one_by_one = COUNTER.take().all;
    eprintln!(
        "std, {MEASURED} NOTIFYs one at a time: {} allocations on the connection thread \
         (+1 canary)",
        one_by_one.saturating_sub(1)
    );
    assert_eq!(one_by_one, 1, "allocations per NOTIFY: the canary only");

    alloc::pipelined(&mut s, &frame);
    let pipelined = COUNTER.counts().all;
    eprintln!("std, {PIPELINED} NOTIFYs in batches of {BATCH}: {pipelined} allocations");
    assert_eq!(pipelined, 0, "allocations per NOTIFY, pipelined");

    drop(s);
    stop.shutdown();
    assert_eq!(running.join().unwrap().unwrap(), 0);
}
