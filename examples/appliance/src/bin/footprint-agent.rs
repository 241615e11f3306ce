//! The smallest whole agent, for the footprint: one engine, the handler, a 1 KiB input and a
//! 1 KiB output buffer, serving HAProxy's captured frames through the stand-in network stack
//! with the event loop of spop-core's README. It has no `core::fmt` of its own, so what it links
//! beyond `footprint-baseline` is what the engine and codec cost.
//!
//! Two connections: HAProxy 2.6's conversation, then one that ends on the fault whose
//! AGENT-DISCONNECT takes the most stack, so the stack printed at the end is this agent's worst
//! case. Exits 0 when both ended as they should.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;

use spop_appliance::agent::{self, AgentEngine};
use spop_appliance::event_loop::serve;
use spop_appliance::link::{Link, Sink};
use spop_appliance::reputation::Reputation;
use spop_appliance::{console, stack, vectors};
use spop_core::{Close, Status};

#[entry]
fn main() -> ! {
    static mut INPUT: [u8; agent::INPUT_SIZE] = [0; agent::INPUT_SIZE];
    static mut OUTPUT: [u8; agent::OUTPUT_SIZE] = [0; agent::OUTPUT_SIZE];

    let mut sink = Sink::default();
    let mut closes = [None; 2];
    for (conversation, close) in [
        &vectors::CONVERSATION_26[..],
        &vectors::CONVERSATION_FAULT[..],
    ]
    .into_iter()
    .zip(&mut closes)
    {
        // The engine lives in this frame, so the stack figure below includes it.
        let Ok(mut engine): Result<AgentEngine, _> = agent::new_engine() else {
            break;
        };
        let mut handler = Reputation;
        let mut link = Link::new(conversation, &[536]);
        *close = serve(&mut link, &mut sink, INPUT, OUTPUT, |input, output| {
            engine.feed(input, output, &mut handler)
        });
    }
    let stack = stack::since_reset();
    console::print("footprint-agent: stack used since reset: ");
    console::print_number(stack);
    console::print(" bytes; sent ");
    console::print_number(sink.sent);
    console::print(" bytes\n");
    let ok = closes[0] == Some(Close::PeerDisconnect(Status::Normal))
        && matches!(closes[1], Some(Close::Error(_)));
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
