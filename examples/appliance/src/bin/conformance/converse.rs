//! One connection driven the way an appliance's event loop drives it (the loop of spop-core's
//! README): receive a segment into the fixed input buffer, feed the engine until it needs input,
//! send each batch of output, close when told. Every batch is compared with the expected replies
//! as it leaves, byte for byte, and must end on a frame boundary.

use core::fmt;

use spop_appliance::agent::{self, AgentEngine};
use spop_appliance::link::Link;
use spop_appliance::reputation::Reputation;
use spop_appliance::stack;
use spop_core::{Close, ConfigError, Flow, Progress};

use crate::expect::{Reply, REPLY_MAX};
use crate::scenarios::Scenario;

/// The fixed memory of one agent: engine, handler and both buffers, all in `.bss`.
pub struct Agent {
    pub engine: Option<AgentEngine>,
    pub handler: Reputation,
    pub input: [u8; agent::INPUT_SIZE],
    pub output: [u8; agent::OUTPUT_SIZE],
}

/// What a passing connection did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub feeds: usize,
    /// Feeds that stopped because the output was full.
    pub need_output: usize,
    pub bytes_in: usize,
    pub bytes_out: usize,
    /// The most stack one `Engine::feed` used.
    pub feed_stack: usize,
}

/// How a connection went wrong.
#[derive(Debug, Clone, Copy)]
pub enum Mismatch {
    Config(ConfigError),
    /// Expected reply `n` is one the builders cannot make: a fault in the scenario.
    Expectation(usize),
    /// Reply `reply` differs at `offset`.
    Byte {
        reply: usize,
        offset: usize,
        expected: u8,
        got: u8,
    },
    /// More output than the expected replies.
    Extra {
        after: usize,
    },
    /// A batch ended inside reply `reply`.
    SplitReply {
        reply: usize,
        offset: usize,
    },
    /// The connection ended with `got` of the expected replies sent.
    Missing {
        got: usize,
    },
    WrongClose {
        expected: Option<Close>,
        got: Option<Close>,
    },
    /// The engine's ACK count disagrees with the expected replies.
    AckCount {
        expected: usize,
        got: u64,
    },
    /// A `Progress` that claims more than it was given.
    Overrun(Progress),
    /// No progress with room to spare: the loop would spin or wait forever.
    Stalled(Progress),
    /// HAProxy closed mid-frame in a scenario that ends on a whole frame.
    Leftover(usize),
    /// `Engine::feed` went past the painted stack window.
    StackWindow,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Config(e) => write!(f, "engine refused the config: {e}"),
            Mismatch::Expectation(n) => write!(f, "expected reply {n} cannot be built"),
            Mismatch::Byte {
                reply,
                offset,
                expected,
                got,
            } => write!(
                f,
                "reply {reply}, byte {offset}: expected {expected:#04x}, got {got:#04x}"
            ),
            Mismatch::Extra { after } => write!(f, "output beyond the {after} expected replies"),
            Mismatch::SplitReply { reply, offset } => {
                write!(
                    f,
                    "a batch ended inside reply {reply}, after {offset} bytes"
                )
            }
            Mismatch::Missing { got } => write!(f, "only {got} replies were sent"),
            Mismatch::WrongClose { expected, got } => {
                write!(f, "closed with {got:?}, expected {expected:?}")
            }
            Mismatch::AckCount { expected, got } => {
                write!(f, "engine counted {got} ACKs, expected {expected}")
            }
            Mismatch::Overrun(p) => write!(f, "progress beyond its buffers: {p:?}"),
            Mismatch::Stalled(p) => write!(f, "no progress: {p:?}"),
            Mismatch::Leftover(n) => write!(f, "{n} bytes of an incomplete frame left"),
            Mismatch::StackWindow => write!(f, "feed used the whole painted stack window"),
        }
    }
}

/// The feed under test, behind a plain `fn` so the stack probe can call it out of line.
type FeedArgs<'a> = (
    &'a mut AgentEngine,
    &'a [u8],
    &'a mut [u8],
    &'a mut Reputation,
);

fn feed((engine, input, output, handler): FeedArgs<'_>) -> Progress {
    engine.feed(input, output, handler)
}

/// Replays `scenario` through a fresh engine, delivered in segments of `pattern`, with an
/// output buffer of `out_len` bytes.
pub fn converse(
    agent: &mut Agent,
    scenario: &Scenario,
    pattern: &[usize],
    out_len: usize,
) -> Result<Counts, Mismatch> {
    let engine = agent
        .engine
        .insert(agent::new_engine().map_err(Mismatch::Config)?);
    let out_len = out_len.min(agent.output.len());
    let mut link = Link::new(scenario.wire, pattern);
    let mut expected = Expected::new(scenario.replies)?;
    let mut counts = Counts::default();
    let mut filled = 0;
    let close = 'connection: loop {
        let n = link.recv(agent.input.get_mut(filled..).unwrap_or_default());
        if n == 0 {
            if filled != 0 {
                return Err(Mismatch::Leftover(filled));
            }
            break None;
        }
        filled += n;
        counts.bytes_in += n;
        loop {
            let input = agent.input.get(..filled).unwrap_or_default();
            let output = agent.output.get_mut(..out_len).unwrap_or_default();
            let (p, used) = stack::call(feed, (&mut *engine, input, output, &mut agent.handler));
            counts.feeds += 1;
            counts.feed_stack = counts.feed_stack.max(used.ok_or(Mismatch::StackWindow)?);
            if p.consumed > filled || p.written > out_len {
                return Err(Mismatch::Overrun(p));
            }
            expected.check(agent.output.get(..p.written).unwrap_or_default())?;
            counts.bytes_out += p.written;
            agent.input.copy_within(p.consumed..filled, 0);
            filled -= p.consumed;
            match p.flow {
                Flow::NeedInput => break,
                Flow::NeedOutput if p.written == 0 && p.consumed == 0 => {
                    return Err(Mismatch::Stalled(p))
                }
                Flow::NeedOutput => counts.need_output += 1,
                Flow::Close(close) => break 'connection Some(close),
            }
        }
        if filled == agent.input.len() {
            // A full buffer without a whole frame: only a frame larger than the buffer does
            // that, and the engine must have refused its LENGTH already.
            return Err(Mismatch::Stalled(Progress {
                consumed: 0,
                written: 0,
                flow: Flow::NeedInput,
            }));
        }
    };
    if close != scenario.close {
        return Err(Mismatch::WrongClose {
            expected: scenario.close,
            got: close,
        });
    }
    expected.finish()?;
    let acks = scenario.replies.iter().filter(|r| r.is_ack()).count();
    if engine.stats().acks != acks as u64 {
        return Err(Mismatch::AckCount {
            expected: acks,
            got: engine.stats().acks,
        });
    }
    Ok(counts)
}

/// A cursor over the expected replies: the one being compared and how far.
struct Expected {
    replies: &'static [Reply],
    index: usize,
    frame: [u8; REPLY_MAX],
    len: usize,
    offset: usize,
}

impl Expected {
    fn new(replies: &'static [Reply]) -> Result<Self, Mismatch> {
        let mut e = Expected {
            replies,
            index: 0,
            frame: [0; REPLY_MAX],
            len: 0,
            offset: 0,
        };
        e.load()?;
        Ok(e)
    }

    fn load(&mut self) -> Result<(), Mismatch> {
        self.offset = 0;
        self.len = match self.replies.get(self.index) {
            Some(reply) => reply
                .render(&mut self.frame)
                .map_err(|_| Mismatch::Expectation(self.index))?,
            None => 0,
        };
        Ok(())
    }

    /// Compares one batch of output.
    fn check(&mut self, batch: &[u8]) -> Result<(), Mismatch> {
        for &got in batch {
            let Some(&expected) = self
                .frame
                .get(self.offset)
                .filter(|_| self.offset < self.len)
            else {
                return Err(Mismatch::Extra { after: self.index });
            };
            if got != expected {
                return Err(Mismatch::Byte {
                    reply: self.index,
                    offset: self.offset,
                    expected,
                    got,
                });
            }
            self.offset += 1;
            if self.offset == self.len {
                self.index += 1;
                self.load()?;
            }
        }
        if self.offset != 0 {
            return Err(Mismatch::SplitReply {
                reply: self.index,
                offset: self.offset,
            });
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), Mismatch> {
        if self.index == self.replies.len() {
            Ok(())
        } else {
            Err(Mismatch::Missing { got: self.index })
        }
    }
}
