//! Test support, compiled only with the `alloc-probe` feature: marks which code runs on an
//! executor thread, so that a test's counting allocator can tell this crate's per-connection
//! code (which must allocate nothing per frame) from glommio's reads and writes (which do).
//! Without the feature, [`ours`] and [`theirs`] return their future unchanged.

#[cfg(feature = "alloc-probe")]
mod imp {
    use std::cell::Cell;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    thread_local! {
        static OURS: Cell<bool> = const { Cell::new(false) };
    }

    /// Whether this thread is running this crate's per-connection code right now (outside
    /// glommio's I/O futures). Callable from a global allocator.
    pub fn in_our_code() -> bool {
        OURS.try_with(Cell::get).unwrap_or(false)
    }

    /// A future polled with the mark set to `ours`.
    pub struct Marked<F> {
        inner: F,
        ours: bool,
    }

    impl<F: Future + Unpin> Future for Marked<F> {
        type Output = F::Output;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let this = self.get_mut();
            let previous = OURS.with(|o| o.replace(this.ours));
            let poll = Pin::new(&mut this.inner).poll(cx);
            OURS.with(|o| o.set(previous));
            poll
        }
    }

    /// Marks a connection task as ours (boxed once per connection, in test builds only).
    pub fn ours<F: Future>(future: F) -> Marked<Pin<Box<F>>> {
        Marked {
            inner: Box::pin(future),
            ours: true,
        }
    }

    /// Marks one of glommio's I/O futures as not ours.
    pub fn theirs<F: Future + Unpin>(future: F) -> Marked<F> {
        Marked {
            inner: future,
            ours: false,
        }
    }
}

#[cfg(not(feature = "alloc-probe"))]
mod imp {
    pub fn ours<F>(future: F) -> F {
        future
    }

    pub fn theirs<F>(future: F) -> F {
        future
    }
}

pub use imp::*;
