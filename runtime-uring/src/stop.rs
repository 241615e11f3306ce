//! An executor-local stop signal that every connection task can wait on without allocating.
//!
//! A stop has stages: the first asks connections to stop (hand themselves over to the next
//! agent, or drain), the second, with a hand-over, to drain those that could not be handed over
//! in time.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::task::{Poll, Waker};

/// Raised a stage when the executor stops accepting, and again when a hand-over phase ends;
/// wakes every connection task waiting on it.
///
/// Each connection takes a slot at its start (the only allocation, amortised), and its waiting
/// future only refreshes the stored waker when the task's waker changed: waiting on it once per
/// read costs no allocation.
#[derive(Default)]
pub(crate) struct Stop {
    stage: Cell<u8>,
    slots: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl Stop {
    /// A slot for one connection's waker.
    pub(crate) fn register(&self) -> usize {
        if let Some(slot) = self.free.borrow_mut().pop() {
            return slot;
        }
        let mut slots = self.slots.borrow_mut();
        slots.push(None);
        slots.len() - 1
    }

    /// Gives a slot back when its connection ends.
    pub(crate) fn release(&self, slot: usize) {
        if let Some(waker) = self.slots.borrow_mut().get_mut(slot) {
            *waker = None;
        }
        self.free.borrow_mut().push(slot);
    }

    /// The stages raised so far (0 before the stop).
    pub(crate) fn stage(&self) -> u8 {
        self.stage.get()
    }

    /// Raises the stage: every waiting connection is woken.
    pub(crate) fn trigger(&self) {
        self.stage.set(self.stage.get().saturating_add(1));
        let wakers: Vec<Waker> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Resolves once the stage is above `seen`.
    pub(crate) fn wait(&self, slot: usize, seen: u8) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.stage.get() > seen {
                return Poll::Ready(());
            }
            if let Some(stored) = self.slots.borrow_mut().get_mut(slot) {
                match stored {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => *stored = Some(cx.waker().clone()),
                }
            }
            Poll::Pending
        })
    }
}
