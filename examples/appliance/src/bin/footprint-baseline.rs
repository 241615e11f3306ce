//! `footprint-agent` without the engine: the same start-up, static buffers, network stand-in,
//! event loop, console and exit, with each segment echoed instead of answered. What the agent
//! links beyond this is spop-core's engine and codec, and the handler.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;

use spop_appliance::agent;
use spop_appliance::event_loop::serve;
use spop_appliance::link::{Link, Sink};
use spop_appliance::{console, stack, vectors};
use spop_core::{Flow, Progress};

#[entry]
fn main() -> ! {
    static mut INPUT: [u8; agent::INPUT_SIZE] = [0; agent::INPUT_SIZE];
    static mut OUTPUT: [u8; agent::OUTPUT_SIZE] = [0; agent::OUTPUT_SIZE];

    let mut sink = Sink::default();
    for conversation in [
        &vectors::CONVERSATION_26[..],
        &vectors::CONVERSATION_FAULT[..],
    ] {
        let mut link = Link::new(conversation, &[536]);
        serve(&mut link, &mut sink, INPUT, OUTPUT, echo);
    }
    let stack = stack::since_reset();
    console::print("footprint-baseline: stack used since reset: ");
    console::print_number(stack);
    console::print(" bytes; sent ");
    console::print_number(sink.sent);
    console::print(" bytes\n");
    debug::exit(debug::EXIT_SUCCESS);
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Sends back as much of the input as the output holds.
fn echo(input: &[u8], output: &mut [u8]) -> Progress {
    let n = input.len().min(output.len());
    if let (Some(dst), Some(src)) = (output.get_mut(..n), input.get(..n)) {
        dst.copy_from_slice(src);
    }
    let flow = if n < input.len() {
        Flow::NeedOutput
    } else {
        Flow::NeedInput
    };
    Progress {
        consumed: n,
        written: n,
        flow,
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
