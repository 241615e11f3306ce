//! Stack high-water marks, measured by painting: fill unused stack with a known word, run the
//! code, and find the lowest word that lost its paint. Measured on the real code path, with the
//! real handler, so it holds whatever the optimizer inlined.
//!
//! The only `unsafe` of the example lives here: reading and writing stack memory that no Rust
//! object owns at that moment (below the stack pointer, or anywhere under the stack's top).

#![allow(unsafe_code)]

use core::hint::black_box;

use cortex_m_rt::STACK_PAINT_VALUE;

/// How far below the caller [`call`] paints: twice the 1 KiB goal for `Engine::feed`, so an
/// overshoot is measured rather than only detected.
pub const WINDOW: usize = 2048;

extern "C" {
    /// The top of the stack (the initial SP), from cortex-m-rt's `link.x`.
    static _stack_start: u32;
    /// The lowest address the stack may reach (the end of `.bss` and `.uninit`).
    static _stack_end: u32;
}

fn stack_top() -> usize {
    core::ptr::addr_of!(_stack_start) as usize
}

fn stack_floor() -> usize {
    core::ptr::addr_of!(_stack_end) as usize
}

/// Bytes of stack used since reset (cortex-m-rt's `paint-stack` painted all of it): from the top
/// of the stack down to the lowest word that lost its paint.
pub fn since_reset() -> usize {
    stack_top() - lowest_touched(stack_floor(), stack_top())
}

/// Runs `f(arg)` and returns its result with the bytes of stack it used below this call's frame,
/// or `None` when it reached the bottom of the painted window ([`WINDOW`] bytes, less if the
/// stack's floor is nearer).
///
/// `f` is called through an opaque pointer, so it cannot be inlined into this frame, where its
/// locals would sit above the mark. Nothing else runs meanwhile: the example enables no
/// interrupt, so no exception frame lands in the window.
#[inline(never)]
pub fn call<A, R>(f: fn(A) -> R, arg: A) -> (R, Option<usize>) {
    let f = black_box(f);
    let sp = cortex_m::register::msp::read() as usize;
    let floor = sp.saturating_sub(WINDOW).max(stack_floor());
    let mut addr = floor;
    while addr < sp {
        // SAFETY: [floor, sp) is below the stack pointer and above the stack's floor: stack
        // memory that no live frame or static uses. The loop itself calls nothing, so it keeps
        // all its state in registers and in this function's frame, which is above `sp`.
        unsafe { (addr as *mut u32).write_volatile(STACK_PAINT_VALUE) };
        addr += 4;
    }
    let result = f(arg);
    let lowest = lowest_touched(floor, sp);
    let used = sp - lowest;
    (result, (lowest > floor).then_some(used))
}

/// The lowest word in `[floor, top)` whose paint is gone, `top` when all of it is intact.
fn lowest_touched(floor: usize, top: usize) -> usize {
    let mut addr = floor;
    while addr < top {
        // SAFETY: a word-aligned address inside RAM's stack area (`floor` and `top` are the
        // linker's aligned stack bounds or an SP derived from them); reading it has no effect.
        let word = unsafe { (addr as *const u32).read_volatile() };
        if word != STACK_PAINT_VALUE {
            return addr;
        }
        addr += 4;
    }
    top
}
