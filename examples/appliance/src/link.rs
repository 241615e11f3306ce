//! A stand-in for a small MCU's network stack: it hands a conversation to the firmware in
//! segments of the sizes a driver delivers (a byte at a time, odd fragments, one MSS), never more
//! than the receive buffer has room for, and takes what the firmware sends.
//!
//! The bytes pass through [`core::hint::black_box`], so the optimizer cannot see that the
//! conversation is a constant and fold the engine away: the footprint builds link what a real
//! receive path would.

use core::hint::black_box;

/// The receive side: `frames` delivered back to back, cut by a repeating pattern of segment sizes
/// that ignores frame boundaries.
#[derive(Debug, Clone)]
pub struct Link<'a> {
    frames: &'a [&'a [u8]],
    pattern: &'a [usize],
    /// The frame being delivered and the offset in it.
    frame: usize,
    offset: usize,
    /// The next entry of `pattern`.
    turn: usize,
}

impl<'a> Link<'a> {
    /// A conversation of `frames`, delivered in segments of `pattern[0]`, `pattern[1]`, ... bytes,
    /// starting again at `pattern[0]` after the last. A 0 in the pattern is read as 1.
    pub const fn new(frames: &'a [&'a [u8]], pattern: &'a [usize]) -> Self {
        Link {
            frames,
            pattern,
            frame: 0,
            offset: 0,
            turn: 0,
        }
    }

    /// Delivers the next segment into `buf` (clipped to its length); 0 once the peer has sent
    /// everything (the connection is closed).
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        let want = match self.pattern.get(self.turn) {
            Some(&size) => size.max(1),
            None => usize::MAX,
        };
        self.turn = if self.turn + 1 < self.pattern.len() {
            self.turn + 1
        } else {
            0
        };
        let want = want.min(buf.len());
        let mut got = 0;
        while got < want {
            let Some(frame) = black_box(self.frames).get(self.frame) else {
                break;
            };
            let rest = frame.get(self.offset..).unwrap_or_default();
            let n = rest.len().min(want - got);
            if let (Some(dst), Some(src)) = (buf.get_mut(got..got + n), rest.get(..n)) {
                dst.copy_from_slice(src);
            }
            got += n;
            self.offset += n;
            if self.offset >= frame.len() {
                self.frame += 1;
                self.offset = 0;
            }
        }
        got
    }
}

/// The transmit side of the footprint builds: takes a batch and counts it, opaquely.
#[derive(Debug, Default)]
pub struct Sink {
    /// Bytes sent so far.
    pub sent: usize,
}

impl Sink {
    /// Sends one batch.
    pub fn send(&mut self, bytes: &[u8]) {
        self.sent += black_box(bytes).len();
    }
}
