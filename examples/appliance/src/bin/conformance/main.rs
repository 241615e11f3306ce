//! spop-core's engine on a Cortex-M4, checked against HAProxy's own bytes: every captured
//! conversation of `scenarios` is replayed through a fresh engine under every way of cutting the
//! byte stream and every output buffer size, each reply compared byte for byte. Then the main
//! 2.6 conversation is cut in two at every byte. Reports through semihosting; exits 0 only when
//! everything matched, so `qemu-system-arm` passes the verdict on as its exit status.
//!
//! It also measures the worst-case stack of `Engine::feed` over all of those calls (painted
//! window, see `spop_appliance::stack`).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

mod converse;
mod expect;
mod scenarios;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;

use spop_appliance::agent::{self, AgentEngine};
use spop_appliance::reputation::Reputation;
use spop_appliance::stack;

use converse::{converse, Agent, Counts};
use scenarios::{OUTPUT_SIZES, PATTERNS, SCENARIOS};

/// Sums what passing connections did.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    total: Counts,
    /// The most stack one feed used since the last [`Tally::take_stack`].
    stack: usize,
}

impl Tally {
    fn record(
        &mut self,
        what: &str,
        how: &str,
        out_len: usize,
        result: Result<Counts, converse::Mismatch>,
    ) {
        match result {
            Ok(c) => {
                self.passed += 1;
                self.total.feeds += c.feeds;
                self.total.need_output += c.need_output;
                self.total.bytes_in += c.bytes_in;
                self.total.bytes_out += c.bytes_out;
                self.total.feed_stack = self.total.feed_stack.max(c.feed_stack);
                self.stack = self.stack.max(c.feed_stack);
            }
            Err(mismatch) => {
                self.failed += 1;
                // Only the first few in full: one fault tends to fail many runs alike.
                if self.failed <= 20 {
                    hprintln!(
                        "FAIL {} | {} | output {} B: {}",
                        what,
                        how,
                        out_len,
                        mismatch
                    );
                }
            }
        }
    }

    fn take_stack(&mut self) -> usize {
        core::mem::take(&mut self.stack)
    }

    fn check(&mut self, what: &str, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            hprintln!("FAIL {}", what);
        }
    }
}

#[entry]
fn main() -> ! {
    static mut AGENT: Agent = Agent {
        engine: None,
        handler: Reputation,
        input: [0; agent::INPUT_SIZE],
        output: [0; agent::OUTPUT_SIZE],
    };
    let agent: &'static mut Agent = AGENT;
    let mut tally = Tally::default();

    let (agreed, cases) = expect::self_check();
    hprintln!(
        "expected-frame builders vs captured agent frames: {}/{} identical",
        agreed,
        cases
    );
    tally.check(
        "expected-frame builders disagree with captured frames",
        agreed == cases,
    );

    for scenario in &SCENARIOS {
        let before = tally.failed;
        for (how, pattern) in &PATTERNS {
            for &out_len in &OUTPUT_SIZES {
                let result = converse(agent, scenario, pattern, out_len);
                tally.record(scenario.name, how, out_len, result);
            }
        }
        let verdict = if tally.failed == before {
            "ok  "
        } else {
            "FAIL"
        };
        hprintln!(
            "{} {} (feed stack {} B)",
            verdict,
            scenario.name,
            tally.take_stack()
        );
    }

    // The main conversation cut once at every byte (then delivered in whatever fits), with an
    // output buffer that holds two ACKs.
    let main = &SCENARIOS[0];
    let length: usize = main.wire.iter().map(|f| f.len()).sum();
    let before = tally.failed;
    tally.take_stack();
    for cut in 1..length {
        let result = converse(agent, main, &[cut, usize::MAX], 300);
        tally.record(main.name, "cut in two", 300, result);
    }
    let verdict = if tally.failed == before {
        "ok  "
    } else {
        "FAIL"
    };
    hprintln!(
        "{} cut in two at each of its {} byte boundaries (feed stack {} B)",
        verdict,
        length - 1,
        tally.take_stack()
    );

    tally.check(
        "no feed ever filled the output: batching against a small buffer went untested",
        tally.total.need_output > 0,
    );

    let t = &tally.total;
    hprintln!(
        "{} feeds, {} stopped by a full output; {} bytes in, {} bytes out",
        t.feeds,
        t.need_output,
        t.bytes_in,
        t.bytes_out
    );
    hprintln!(
        "stack high-water of Engine::feed (handler included): {} bytes (painted window {} bytes)",
        t.feed_stack,
        stack::WINDOW
    );
    hprintln!(
        "size_of: Engine<0> {} B, Engine<{}> {} B, handler {} B, input {} B, output {} B",
        core::mem::size_of::<spop_core::Engine<0>>(),
        agent::FRAG,
        core::mem::size_of::<AgentEngine>(),
        core::mem::size_of::<Reputation>(),
        agent::INPUT_SIZE,
        agent::OUTPUT_SIZE
    );
    hprintln!(
        "conformance: {} passed, {} failed",
        tally.passed,
        tally.failed
    );
    debug::exit(if tally.failed == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}
