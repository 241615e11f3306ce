//! The application the firmware runs: HAProxy's `spoa-example` contract (`check-client-ip` with
//! the client address, answered with `sess.<prefix>.ip_score`), with a deterministic score so a
//! test can predict every ACK byte.

use core::net::{Ipv4Addr, Ipv6Addr};

use spop_core::{AckWriter, Handler, Message, Scope, TypedData};

/// The variable every scored message sets, in the session scope.
pub const VARIABLE: &[u8] = b"ip_score";

/// The largest ACK [`Reputation`] writes, LENGTH included: the 11-byte header and one SET-VAR of
/// an INT32 (25 bytes with a score under 240), rounded up. It lets the engine batch several
/// ACKs into a small output buffer.
pub const ACK_ROOM: usize = 32;

/// Scores the first IPv4 or IPv6 argument of every message; messages without an address get no
/// action (their ACK is still sent).
#[derive(Debug, Default, Clone, Copy)]
pub struct Reputation;

impl Handler for Reputation {
    fn on_message(&mut self, message: &Message<'_>, ack: &mut AckWriter<'_>) {
        let Some(score) = message.args().find_map(|arg| score(&arg.value)) else {
            return;
        };
        // One SET-VAR always fits in ACK_ROOM; if it ever did not, the ACK would still go out
        // without it, which HAProxy takes as "no score".
        let _ = ack.set_var(Scope::Session, VARIABLE, TypedData::Int32(score));
    }

    fn ack_size_hint(&self) -> Option<usize> {
        Some(ACK_ROOM)
    }
}

/// The score of an address argument: the octets weighted by their position (1-based), summed,
/// mod 101. Not a reputation, but a function of every octet and of their order, so an ACK built
/// from a wrongly decoded address shows.
pub fn score(value: &TypedData<'_>) -> Option<i32> {
    match value {
        TypedData::Ipv4(addr) => Some(weighted(&Ipv4Addr::octets(addr))),
        TypedData::Ipv6(addr) => Some(weighted(&Ipv6Addr::octets(addr))),
        _ => None,
    }
}

fn weighted(octets: &[u8]) -> i32 {
    let sum: u32 = (1..)
        .zip(octets)
        .map(|(weight, &octet)| weight * u32::from(octet))
        .sum();
    // At most 136 * 255 before the reduction, and under 101 after: both fit an i32.
    (sum % 101) as i32
}
