//! The event loop of spop-core's README, on the stand-in network stack: receive into the fixed
//! input buffer, feed until input is needed, send each batch whole, stop when told. Generic over
//! the feed so that the footprint baseline runs this same loop around an echo.

use spop_core::{Close, Flow, Progress};

use crate::link::{Link, Sink};

/// Serves one connection; returns why it closed, `None` when the peer closed first.
pub fn serve(
    link: &mut Link<'_>,
    sink: &mut Sink,
    input: &mut [u8],
    output: &mut [u8],
    mut feed: impl FnMut(&[u8], &mut [u8]) -> Progress,
) -> Option<Close> {
    let mut filled = 0;
    loop {
        let n = link.recv(input.get_mut(filled..).unwrap_or_default());
        if n == 0 {
            return None;
        }
        filled += n;
        loop {
            let p = feed(input.get(..filled).unwrap_or_default(), output);
            sink.send(output.get(..p.written).unwrap_or_default());
            let consumed = p.consumed.min(filled);
            input.copy_within(consumed..filled, 0);
            filled -= consumed;
            match p.flow {
                Flow::NeedInput => break,
                Flow::NeedOutput => continue,
                Flow::Close(close) => return Some(close),
            }
        }
    }
}
