//! Output for the footprint builds through semihosting, without `core::fmt`: those builds carry
//! only what an appliance without a console would, so whatever formatting code they contain is
//! there because the engine needs it.

use cortex_m_semihosting::hio;

/// Writes `text` to the host's stdout; output is best effort (there is nothing to do if the host
/// is gone).
pub fn print(text: &str) {
    if let Ok(mut out) = hio::hstdout() {
        let _ = out.write_all(text.as_bytes());
    }
}

/// Writes `n` in decimal.
pub fn print_number(mut n: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(slot) = digits.get_mut(start) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    let text = digits.get(start..).unwrap_or_default();
    print(core::str::from_utf8(text).unwrap_or("?"));
}
