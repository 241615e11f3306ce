//! The one agent every firmware here runs: its buffers, its engine and how that engine is
//! configured. Sized for a small Cortex-M part, and chosen so the handshake reply is the exact
//! AGENT-HELLO that HAProxy 2.6 accepted in the captures (`agent-hello-frag.hex`).

use spop_core::{Capabilities, Config, ConfigError, Engine};

/// The receive buffer: several pipelined NOTIFYs, or one frame of `MAX_FRAME_SIZE` plus the start
/// of the next.
pub const INPUT_SIZE: usize = 1024;

/// The transmit buffer: a batch of ACKs per write.
pub const OUTPUT_SIZE: usize = 1024;

/// The protocol's minimum max-frame-size. HAProxy 2.x fragments larger NOTIFYs for us (the
/// engine reassembles them in `FRAG` bytes); HAProxy 3.x does not fragment, so its messages must
/// stay under 256 bytes, which `check-client-ip` (34 to 46 bytes) does.
pub const MAX_FRAME_SIZE: u32 = 256;

/// Reassembly capacity for a fragmented NOTIFY: two full fragments' payloads and more (the
/// captured three-fragment NOTIFY is 486 bytes).
pub const FRAG: usize = 512;

/// The engine of one connection.
pub type AgentEngine = Engine<FRAG>;

/// What the agent announces: pipelining, async and fragmentation, at `MAX_FRAME_SIZE`.
pub fn config() -> Config {
    Config {
        max_frame_size: MAX_FRAME_SIZE,
        capabilities: Capabilities::PIPELINING | Capabilities::ASYNC | Capabilities::FRAGMENTATION,
    }
}

/// A fresh connection's engine.
pub fn new_engine() -> Result<AgentEngine, ConfigError> {
    Engine::new(config())
}
