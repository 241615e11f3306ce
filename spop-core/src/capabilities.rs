//! Capabilities (SPOE.txt §3.2.1 "Frame capabilities"; docs/protocol.md §6): a comma-separated
//! list, spaces ignored, unknown tokens ignored.

use core::fmt;

use crate::tokens::{tokens, trim};

/// A set of SPOP capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Capabilities(u8);

impl Capabilities {
    /// No capability.
    pub const NONE: Capabilities = Capabilities(0);
    /// Several NOTIFYs in flight on one connection, ACKs in any order on that connection.
    pub const PIPELINING: Capabilities = Capabilities(1);
    /// ACKs on any connection of the same HAProxy (2.x only). This agent always answers on the
    /// NOTIFY's own connection, which async allows too.
    pub const ASYNC: Capabilities = Capabilities(2);
    /// HAProxy may split a NOTIFY into fragments (2.x only); the agent reassembles them.
    pub const FRAGMENTATION: Capabilities = Capabilities(4);

    const NAMES: [(Capabilities, &'static str); 3] = [
        (Capabilities::PIPELINING, "pipelining"),
        (Capabilities::ASYNC, "async"),
        (Capabilities::FRAGMENTATION, "fragmentation"),
    ];

    /// Whether every capability of `other` is in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` without `other`.
    pub const fn without(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & !other.0)
    }

    /// The set as bits (PIPELINING 1, ASYNC 2, FRAGMENTATION 4): a compact form for carrying a
    /// negotiated set outside the protocol (a restarted agent resuming a connection).
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The set [`Capabilities::bits`] gave; `None` for bits this crate does not know.
    pub const fn from_bits(bits: u8) -> Option<Capabilities> {
        if bits & !7 == 0 {
            Some(Capabilities(bits))
        } else {
            None
        }
    }

    /// The capability a token names, if this crate knows it.
    pub fn from_token(token: &[u8]) -> Option<Capabilities> {
        let token = trim(token);
        Self::NAMES
            .iter()
            .find(|(_, name)| name.as_bytes() == token)
            .map(|(cap, _)| *cap)
    }

    /// Parses a capabilities string, ignoring unknown tokens.
    pub fn parse(list: &[u8]) -> Capabilities {
        tokens(list)
            .filter_map(Capabilities::from_token)
            .fold(Capabilities::NONE, |acc, cap| acc | cap)
    }

    /// The canonical string (`pipelining,async,fragmentation` order) into `buf`; returns its
    /// bytes. `buf` of 32 bytes holds every combination.
    pub fn write_to(self, buf: &mut [u8; 32]) -> &[u8] {
        let mut len = 0;
        for (cap, name) in Self::NAMES {
            if !self.contains(cap) {
                continue;
            }
            let sep: &[u8] = if len == 0 { b"" } else { b"," };
            for &b in sep.iter().chain(name.as_bytes()) {
                if let Some(slot) = buf.get_mut(len) {
                    *slot = b;
                    len += 1;
                }
            }
        }
        buf.get(..len).unwrap_or_default()
    }
}

impl core::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 | rhs.0)
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        let text = self.write_to(&mut buf);
        if text.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(core::str::from_utf8(text).unwrap_or("?"))
        }
    }
}
