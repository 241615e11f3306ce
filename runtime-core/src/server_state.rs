//! What a server holds between binding and running, the same on every runtime: its listening
//! sockets, the connections the previous agent handed over, and where open connections go at
//! the stop.

use std::net::SocketAddr;

#[cfg(unix)]
use crate::handoff::{Adopted, HandOver, HandOverAtStop};
use crate::{ListenAddress, Listeners};

/// A bound server's state before it runs; a runtime's `Server` keeps one and passes its
/// setters and getters through.
#[derive(Debug)]
pub struct ServerState {
    listeners: Listeners,
    /// Connections the previous agent handed over, served from the start.
    #[cfg(unix)]
    adopted: Vec<Adopted>,
    /// Where open connections go at the stop, if they are handed over.
    #[cfg(unix)]
    hand_over: Option<HandOver>,
}

impl ServerState {
    /// Serves on `listeners`, with no adopted connection and no hand-over at the stop.
    pub fn new(listeners: Listeners) -> ServerState {
        ServerState {
            listeners,
            #[cfg(unix)]
            adopted: Vec::new(),
            #[cfg(unix)]
            hand_over: None,
        }
    }

    /// Serves these connections too, handed over by the previous agent (see
    /// [`crate::handoff`]): each resumes as an established session.
    #[cfg(unix)]
    pub fn adopt(&mut self, connections: Vec<Adopted>) {
        self.adopted.extend(connections);
    }

    /// At the stop, hands each open connection to the service manager behind `hand_over` at
    /// its next frame boundary instead of ending it with AGENT-DISCONNECT; connections that
    /// reach none within half the shutdown timeout are drained as without it. Like any setter,
    /// a second call replaces the first: nothing has been handed through it before the server
    /// runs.
    #[cfg(unix)]
    pub fn hand_over_at_stop(&mut self, hand_over: HandOver) {
        self.hand_over = Some(hand_over);
    }

    /// The bound TCP addresses (with the real port when 0 was asked).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listen_addresses()
            .iter()
            .filter_map(ListenAddress::tcp)
            .collect()
    }

    /// Every bound address, TCP and Unix.
    pub fn listen_addresses(&self) -> Vec<ListenAddress> {
        self.listeners.addresses()
    }

    /// The server starts running: the hand-over goes to `at_stop`, where its connections find
    /// it, and the runtime takes the listeners and the adopted connections.
    #[cfg(unix)]
    pub fn start(self, at_stop: &HandOverAtStop) -> (Listeners, Vec<Adopted>) {
        at_stop.begin(self.hand_over);
        (self.listeners, self.adopted)
    }

    /// The server starts running on its listeners.
    #[cfg(not(unix))]
    pub fn start(self) -> Listeners {
        self.listeners
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::handoff::FdStore;
    use crate::{listen_all, UnixPermissions};

    fn bound(addresses: &[ListenAddress]) -> ServerState {
        ServerState::new(listen_all(addresses, &UnixPermissions::default()).expect("bind"))
    }

    fn loopback() -> ServerState {
        bound(&[ListenAddress::Tcp("127.0.0.1:0".parse().expect("address"))])
    }

    fn store_of(at_stop: &HandOverAtStop) -> Option<std::path::PathBuf> {
        at_stop.get().map(|h| h.store().socket())
    }

    #[test]
    fn without_a_hand_over_the_stop_hands_nothing_over() {
        let at_stop = HandOverAtStop::new();
        let _ = loopback().start(&at_stop);
        assert!(at_stop.get().is_none());
        assert!(at_stop.handing_over().is_none());
    }

    #[test]
    fn the_hand_over_reaches_the_connections_when_the_server_starts() {
        let mut state = loopback();
        state.hand_over_at_stop(HandOver::new(FdStore::at("/run/one")));
        let at_stop = HandOverAtStop::new();
        assert!(at_stop.get().is_none(), "not before the server runs");
        let _ = state.start(&at_stop);
        assert_eq!(store_of(&at_stop), Some("/run/one".into()));
        assert!(at_stop.handing_over().is_some(), "its phase is open");
    }

    #[test]
    fn a_second_hand_over_replaces_the_first() {
        let mut state = loopback();
        state.hand_over_at_stop(HandOver::new(FdStore::at("/run/one")));
        state.hand_over_at_stop(HandOver::new(FdStore::at("/run/two")));
        let at_stop = HandOverAtStop::new();
        let _ = state.start(&at_stop);
        assert_eq!(store_of(&at_stop), Some("/run/two".into()));
    }

    #[test]
    fn closing_the_phase_keeps_the_hand_over_for_the_stops_accounting() {
        let mut state = loopback();
        state.hand_over_at_stop(HandOver::new(FdStore::at("/run/one")));
        let at_stop = HandOverAtStop::new();
        let _ = state.start(&at_stop);
        at_stop.close();
        assert!(at_stop.handing_over().is_none());
        assert_eq!(store_of(&at_stop), Some("/run/one".into()));
    }

    #[test]
    fn local_addrs_are_the_tcp_listen_addresses_with_their_real_ports() {
        let dir = std::env::temp_dir().join(format!("server-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("agent.sock");
        let state = bound(&[
            ListenAddress::Tcp("127.0.0.1:0".parse().expect("address")),
            ListenAddress::Unix(path.clone()),
        ]);
        let tcp = state.local_addrs();
        assert_eq!(tcp.len(), 1);
        assert_ne!(tcp[0].port(), 0);
        assert_eq!(
            state.listen_addresses(),
            vec![ListenAddress::Tcp(tcp[0]), ListenAddress::Unix(path)]
        );
        drop(state);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
