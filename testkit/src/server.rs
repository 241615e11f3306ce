//! The agent side of an in-process test: where a server under test listens.

use std::net::SocketAddr;

use runtime_core::ServerConfig;

/// A server configuration for tests: 127.0.0.1 on a port the system picks (read it back from
/// the bound server), `workers` workers, every other setting at its default. Nothing else on the
/// machine can collide with it or reach it.
pub fn loopback(workers: usize) -> ServerConfig {
    ServerConfig {
        addresses: vec![SocketAddr::from(([127, 0, 0, 1], 0)).into()],
        workers,
        ..ServerConfig::default()
    }
}
