//! What the appliance firmwares share: the application ([`reputation`]), the one shape of agent
//! they all run ([`agent`]), HAProxy's captured frames ([`vectors`]), a stand-in for the network
//! stack ([`link`]), the event loop of the footprint builds ([`event_loop`]), the stack probe
//! ([`stack`]) and a fmt-free console ([`console`]).
//!
//! The binaries are `conformance` (HAProxy's captured conversations through the engine under
//! QEMU, every reply checked byte for byte) and `footprint-agent` / `footprint-baseline` (one
//! skeleton with and without the engine, so their difference is what spop-core costs).
#![no_std]
#![deny(unsafe_code)]

pub mod agent;
pub mod console;
pub mod event_loop;
pub mod link;
pub mod reputation;
pub mod stack;
pub mod vectors;
