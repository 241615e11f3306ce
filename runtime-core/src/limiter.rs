//! Rate-limited warnings: a flood of bad connections must not flood the log
//! (docs/field-notes.md 10).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Allows `per_second` lines each second and counts the rest, reporting the count with the next
/// line allowed. Lock-free: shared by every connection of every worker.
#[derive(Debug)]
pub struct LogLimiter {
    per_second: u64,
    /// Current second (high 32 bits) and lines logged in it (low 32 bits).
    window: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// A limiter allowing `per_second` lines a second.
    pub const fn new(per_second: u64) -> Self {
        LogLimiter {
            per_second,
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were suppressed since the
    /// last one; `None` when this line must be dropped.
    pub fn admit(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            & 0xFFFF_FFFF;
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let (second, count) = (current >> 32, current & 0xFFFF_FFFF);
            let next = if second == now {
                if count >= self.per_second {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                current + 1
            } else {
                (now << 32) | 1
            };
            match self.window.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::Relaxed)),
                Err(actual) => current = actual,
            }
        }
    }
}

/// Logs a warning through `limiter`, noting how many were dropped before it. Key-values before
/// the message (`peer:% = peer, connection = id; "..."`) go with the line as `log` key-values,
/// which the JSON log format prints as fields; a line after suppressed ones also carries
/// `suppressed`.
#[macro_export]
macro_rules! limited_warn {
    ($limiter:expr, $($key:ident $(:$capture:tt)? = $value:expr),+; $($arg:tt)+) => {
        if let Some(dropped) = $limiter.admit() {
            if dropped > 0 {
                log::warn!(
                    $($key $(:$capture)? = $value,)+ suppressed = dropped;
                    "{} ({} similar lines suppressed)", format_args!($($arg)+), dropped
                );
            } else {
                log::warn!($($key $(:$capture)? = $value),+; $($arg)+);
            }
        }
    };
    ($limiter:expr, $($arg:tt)+) => {
        if let Some(dropped) = $limiter.admit() {
            if dropped > 0 {
                log::warn!(
                    suppressed = dropped;
                    "{} ({} similar lines suppressed)", format_args!($($arg)+), dropped
                );
            } else {
                log::warn!($($arg)+);
            }
        }
    };
}
