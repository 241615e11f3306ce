//! The IP-reputation handler of HAProxy's `spoa-example`: message `check-client-ip` with the
//! client's address answered with `ip_score`, a uniformly random integer in 0..=100, that HAProxy
//! stores as `sess.<var-prefix>.ip_score` (`sess.iprep.ip_score` with the example config).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use runtime_core::HandlerFactory;
use spop_core::{AckWriter, Bytes, Handler, Message, Scope, TypedData};

/// The message this agent answers.
pub const MESSAGE: &[u8] = b"check-client-ip";
/// The variable it sets, in the session scope.
pub const VARIABLE: &[u8] = b"ip_score";

/// Scores addresses for one worker (or one connection on the std runtime).
pub struct IpReputation {
    rng: oorandom::Rand32,
    delay: Option<Duration>,
}

impl IpReputation {
    /// A handler drawing from the generator stream `stream` of `seed`.
    pub fn new(seed: u64, stream: u64, delay: Option<Duration>) -> Self {
        IpReputation {
            rng: oorandom::Rand32::new_inc(seed, stream),
            delay,
        }
    }
}

impl Handler for IpReputation {
    fn on_message(&mut self, message: &Message<'_>, ack: &mut AckWriter<'_>) {
        if message.name != MESSAGE {
            log::debug!("message {} ignored (unknown)", Bytes(message.name));
            return;
        }
        let Some(arg) = message.args().next() else {
            log::debug!("check-client-ip without argument: no score");
            return;
        };
        match arg.value {
            TypedData::Ipv4(_) | TypedData::Ipv6(_) => {
                if let Some(delay) = self.delay {
                    std::thread::sleep(delay);
                }
                let score = self.rng.rand_range(0..101) as i32;
                // One action in an ACK sized by `ack_size_hint` always fits.
                let _ = ack.set_var(Scope::Session, VARIABLE, TypedData::Int32(score));
                log::debug!("check-client-ip {}: ip_score={score}", arg.value);
            }
            other => log::debug!("check-client-ip with {other}: not an address, no score"),
        }
    }

    fn ack_size_hint(&self) -> Option<usize> {
        // Header (29 bytes at most) and one SET-VAR of `ip_score` (18 at most), with headroom.
        Some(128)
    }
}

/// Makes one [`IpReputation`] per worker: each gets its own generator stream of one seed, so no
/// generator is shared between threads.
pub struct Factory {
    seed: u64,
    streams: AtomicU64,
    delay: Option<Duration>,
}

impl Factory {
    /// Handlers drawing from `seed`, sleeping `delay` before each answer.
    pub fn new(seed: u64, delay: Option<Duration>) -> Self {
        Factory {
            seed,
            streams: AtomicU64::new(0),
            delay,
        }
    }
}

impl HandlerFactory for Factory {
    type Handler = IpReputation;

    fn handler(&self, _worker: usize) -> IpReputation {
        // Streams are handed out in creation order: with --seed, the n-th connection (std) or
        // worker (uring) always draws the same scores.
        let stream = self.streams.fetch_add(1, Ordering::Relaxed);
        IpReputation::new(self.seed, stream, self.delay)
    }
}
