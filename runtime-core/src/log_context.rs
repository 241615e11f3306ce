//! Which connection the current thread is serving, for log lines that cannot say it themselves.
//!
//! The engine's per-frame debug lines (`spop-core` has no idea of connections) and a handler's
//! own lines are written while a runtime drives one connection's [`Session`](crate::Session);
//! on the uring runtime one thread serves many connections in turn, so without this their
//! lines could not be told apart. A runtime marks the connection around each
//! [`Session::next`](crate::Session::next) with [`serving`]; a logger adds [`current`] to
//! records that carry no `connection` of their own. Setting it is a thread-local write, no
//! lock and no allocation.

use std::cell::Cell;

thread_local! {
    static CURRENT: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` with connection `id` as the thread's current connection, then restores the one
/// before (so a nested call, or a panic caught above, leaves no stale id behind).
pub fn serving<R>(id: u64, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(id))));
    f()
}

/// The connection this thread is serving, if a runtime said so.
pub fn current() -> Option<u64> {
    CURRENT.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_is_current_only_while_it_is_served() {
        assert_eq!(current(), None);
        let inside = serving(7, current);
        assert_eq!(inside, Some(7));
        assert_eq!(current(), None);
    }

    #[test]
    fn a_nested_connection_gives_the_outer_one_back() {
        serving(1, || {
            serving(2, || assert_eq!(current(), Some(2)));
            assert_eq!(current(), Some(1));
        });
    }

    #[test]
    fn a_panic_leaves_no_connection_behind() {
        let caught = std::panic::catch_unwind(|| serving(3, || panic!("handler")));
        assert!(caught.is_err());
        assert_eq!(current(), None);
    }
}
