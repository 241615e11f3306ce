//! The connection engine on arbitrary input. The first byte selects how the bytes arrive and how
//! the engine is configured; the rest is fed to two engines, one without and one with fragment
//! reassembly. Whatever comes in, the output must be a well-formed agent conversation (at most one
//! AGENT-HELLO first, then ACKs, at most one AGENT-DISCONNECT with the status of the close reason,
//! then nothing), and a closed engine must write nothing more. The checks live in
//! `spop-core/tests/common/mod.rs`, shared with the property tests.
//!
//! Selector byte: bits 0-3 chunk size (see `CHUNKS`), bit 4 prepend haproxy-hello.hex, bit 5
//! chunk sizes vary (cycle through `CHUNKS` from the selected one), bit 6 agent cap 256 instead of
//! 65532, bit 7 output buffer of 170 bytes (just room for an AGENT-DISCONNECT) instead of 70000.
#![no_main]

#[path = "../../spop-core/tests/common/mod.rs"]
mod common;

use common::{check_conversation, converse_chunks, hex, Greedy};
use libfuzzer_sys::fuzz_target;
use spop_core::{Capabilities, Config, Engine};

const CHUNKS: [usize; 16] = [0, 1, 2, 3, 4, 5, 7, 8, 11, 13, 16, 31, 64, 127, 256, 1024];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let first = usize::from(selector & 0x0f);
    let chunks: Vec<usize> = if selector & 0x20 != 0 {
        CHUNKS
            .iter()
            .cycle()
            .skip(first)
            .take(16)
            .copied()
            .collect()
    } else {
        vec![CHUNKS[first]]
    };
    let cap = if selector & 0x40 != 0 { 256 } else { 65532 };
    let out_len = if selector & 0x80 != 0 { 170 } else { 70_000 };
    let mut input = Vec::with_capacity(rest.len() + 133);
    if selector & 0x10 != 0 {
        input.extend(hex(include_str!(
            "../../spop-core/tests/vectors/haproxy-hello.hex"
        )));
    }
    input.extend_from_slice(rest);

    let mut plain: Engine = Engine::new(Config {
        max_frame_size: cap,
        capabilities: Capabilities::PIPELINING | Capabilities::ASYNC,
    })
    .expect("config");
    let c = converse_chunks(&mut plain, &input, &chunks, out_len, &mut Greedy);
    check_conversation(&mut plain, &c, cap, out_len, &mut Greedy);

    let mut fragmenting: Engine<1024> = Engine::new(Config {
        max_frame_size: cap,
        capabilities: Capabilities::PIPELINING | Capabilities::FRAGMENTATION,
    })
    .expect("config");
    let c = converse_chunks(&mut fragmenting, &input, &chunks, out_len, &mut Greedy);
    check_conversation(&mut fragmenting, &c, cap, out_len, &mut Greedy);
});
