//! The IP-reputation handler of HAProxy's `spoa-example`: message `check-client-ip` with the
//! client's address answered with `ip_score` 0..=100, that HAProxy stores as
//! `sess.<var-prefix>.ip_score` (`sess.iprep.ip_score` with the example config).
//!
//! The score is the one of the longest network holding the address in the `--scores` lists;
//! an address in no list (or every address, without lists) gets `--default-score` when given,
//! else a uniformly random score, the seed agent's behaviour.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use runtime_core::HandlerFactory;
use spop_core::{AckWriter, Bytes, Handler, Message, Notify, Scope, TypedData};

use crate::reload::{Reader, Scores};

/// The message this agent answers.
pub const MESSAGE: &[u8] = b"check-client-ip";
/// The variable it sets, in the session scope.
pub const VARIABLE: &[u8] = b"ip_score";

/// Scores addresses for one worker (or one connection on the std runtime).
pub struct IpReputation {
    rng: oorandom::Rand32,
    delay: Option<Duration>,
    default_score: Option<u8>,
    scores: Option<Reader>,
}

impl IpReputation {
    /// A handler drawing from the generator stream `stream` of `seed`.
    pub fn new(seed: u64, stream: u64, delay: Option<Duration>) -> Self {
        IpReputation {
            rng: oorandom::Rand32::new_inc(seed, stream),
            delay,
            default_score: None,
            scores: None,
        }
    }

    /// Looks addresses up in `reader`'s table first.
    pub fn with_scores(mut self, reader: Reader) -> Self {
        self.scores = Some(reader);
        self
    }

    /// Gives `score` instead of a random one to addresses in no list.
    pub fn with_default_score(mut self, score: Option<u8>) -> Self {
        self.default_score = score;
        self
    }

    /// The score of `addr`, and where it came from (for the debug log).
    fn score(&mut self, addr: IpAddr) -> (u8, &'static str) {
        if let Some(score) = self.scores.as_ref().and_then(|r| r.lookup(addr)) {
            return (score, "listed");
        }
        match self.default_score {
            Some(score) => (score, "default"),
            None => (self.rng.rand_range(0..101) as u8, "random"),
        }
    }
}

impl Handler for IpReputation {
    fn on_notify(&mut self, notify: &Notify<'_>, ack: &mut AckWriter<'_>) {
        // Once per NOTIFY: every message of it sees the same table, even if a reload lands
        // meanwhile.
        if let Some(reader) = &mut self.scores {
            reader.refresh();
        }
        for message in notify.messages() {
            self.on_message(&message, ack);
        }
    }

    fn on_message(&mut self, message: &Message<'_>, ack: &mut AckWriter<'_>) {
        if message.name != MESSAGE {
            log::debug!("message {} ignored (unknown)", Bytes(message.name));
            return;
        }
        let Some(arg) = message.args().next() else {
            log::debug!("check-client-ip without argument: no score");
            return;
        };
        let addr = match arg.value {
            TypedData::Ipv4(a) => IpAddr::V4(a),
            TypedData::Ipv6(a) => IpAddr::V6(a),
            other => {
                log::debug!("check-client-ip with {other}: not an address, no score");
                return;
            }
        };
        if let Some(delay) = self.delay {
            std::thread::sleep(delay);
        }
        let (score, source) = self.score(addr);
        // One action in an ACK sized by `ack_size_hint` always fits.
        let _ = ack.set_var(Scope::Session, VARIABLE, TypedData::Int32(score.into()));
        log::debug!("check-client-ip {addr}: ip_score={score} ({source})");
    }

    fn ack_size_hint(&self) -> Option<usize> {
        // Header (29 bytes at most) and one SET-VAR of `ip_score` (18 at most), with headroom.
        Some(128)
    }
}

/// Makes one [`IpReputation`] per worker: each gets its own generator stream of one seed, so no
/// generator is shared between threads, and its own reader of the score table.
pub struct Factory {
    seed: u64,
    streams: AtomicU64,
    delay: Option<Duration>,
    default_score: Option<u8>,
    scores: Option<Arc<Scores>>,
}

impl Factory {
    /// Handlers drawing from `seed`, sleeping `delay` before each answer.
    pub fn new(seed: u64, delay: Option<Duration>) -> Self {
        Factory {
            seed,
            streams: AtomicU64::new(0),
            delay,
            default_score: None,
            scores: None,
        }
    }

    /// Handlers look addresses up in `scores` first.
    pub fn with_scores(mut self, scores: Option<Arc<Scores>>) -> Self {
        self.scores = scores;
        self
    }

    /// Handlers give `score` to addresses in no list instead of a random one.
    pub fn with_default_score(mut self, score: Option<u8>) -> Self {
        self.default_score = score;
        self
    }
}

impl HandlerFactory for Factory {
    type Handler = IpReputation;

    fn handler(&self, _worker: usize) -> IpReputation {
        // Streams are handed out in creation order: with --seed, the n-th connection (std) or
        // worker (uring) always draws the same scores.
        let stream = self.streams.fetch_add(1, Ordering::Relaxed);
        let handler =
            IpReputation::new(self.seed, stream, self.delay).with_default_score(self.default_score);
        match &self.scores {
            Some(scores) => handler.with_scores(scores.reader()),
            None => handler,
        }
    }
}
