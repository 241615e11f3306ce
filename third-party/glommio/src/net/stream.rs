// Unless explicitly stated otherwise all files in this repository are licensed
// under the MIT/Apache-2.0 License, at your convenience
//
// This product includes software developed at Datadog (https://www.datadoghq.com/). Copyright 2020 Datadog, Inc.
//
use crate::{
    reactor::Reactor,
    sys::{self, DmaBuffer, Source, SourceType},
};
use futures_lite::ready;
use nix::sys::socket::MsgFlags;
use std::{
    cell::Cell,
    io,
    net::Shutdown,
    os::unix::io::{AsRawFd, FromRawFd, RawFd},
    rc::{Rc, Weak},
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

type Result<T> = crate::Result<T, ()>;

/// Root trait for socket stream receive buffer
pub trait RxBuf {
    fn read(&mut self, buf: &mut [u8]) -> usize;
    fn peek(&self, buf: &mut [u8]) -> usize;
    fn is_empty(&self) -> bool;
    fn as_bytes(&self) -> &[u8];
    fn consume(&mut self, amt: usize);
    fn buffer_size(&self) -> usize;
    fn handle_result(&mut self, result: usize);
    fn unfilled(&mut self) -> &mut [u8];
}

#[derive(Debug, Default)]
pub struct NonBuffered;

impl RxBuf for NonBuffered {
    fn read(&mut self, _buf: &mut [u8]) -> usize {
        0
    }

    fn peek(&self, _buf: &mut [u8]) -> usize {
        0
    }

    fn is_empty(&self) -> bool {
        true
    }

    fn as_bytes(&self) -> &[u8] {
        &[]
    }

    fn consume(&mut self, _amt: usize) {}

    fn buffer_size(&self) -> usize {
        0
    }

    fn handle_result(&mut self, _result: usize) {}

    fn unfilled(&mut self) -> &mut [u8] {
        &mut []
    }
}

/// Trait for receive buffer implementations
pub trait Buffered: RxBuf {}

/// Non-shared fixed sized receive buffer allocated
/// when buffered stream is created
#[derive(Debug)]
pub struct Preallocated {
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    cap: usize,
}

impl Preallocated {
    const DEFAULT_BUFFER_SIZE: usize = 8192;

    /// Creates a fixed sized receive buffer
    pub fn new(size: usize) -> Self {
        Self {
            buf: vec![0; size],
            tail: 0,
            head: 0,
            cap: size,
        }
    }
}

impl Default for Preallocated {
    fn default() -> Self {
        Self::new(Self::DEFAULT_BUFFER_SIZE)
    }
}

impl Preallocated {
    fn len(&self) -> usize {
        self.tail - self.head
    }
}

impl Buffered for Preallocated {}

impl RxBuf for Preallocated {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let sz = std::cmp::min(self.len(), buf.len());
        if sz > 0 {
            buf[..sz].copy_from_slice(&self.buf[self.head..self.head + sz]);
            self.head += sz;
        }
        sz
    }

    fn peek(&self, buf: &mut [u8]) -> usize {
        let sz = std::cmp::min(self.len(), buf.len());
        if sz > 0 {
            buf[..sz].copy_from_slice(&self.buf[self.head..self.head + sz]);
        }
        sz
    }

    fn is_empty(&self) -> bool {
        self.head >= self.tail
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.head..self.tail]
    }

    fn consume(&mut self, amt: usize) {
        self.head += std::cmp::min(self.len(), amt);
    }

    fn buffer_size(&self) -> usize {
        self.cap
    }

    fn handle_result(&mut self, result: usize) {
        self.tail += result;
    }

    fn unfilled(&mut self) -> &mut [u8] {
        if self.len() == 0 {
            self.head = 0;
            self.tail = 0;
        }
        &mut self.buf[self.tail..]
    }
}

#[derive(Debug)]
struct Timeout {
    id: u64,
    timeout: Cell<Option<Duration>>,
    timer: Cell<Option<Instant>>,
}

impl Timeout {
    fn new(id: u64) -> Self {
        Self {
            id,
            timeout: Cell::new(None),
            timer: Cell::new(None),
        }
    }

    fn get(&self) -> Option<Duration> {
        self.timeout.get()
    }

    fn set(&self, dur: Option<Duration>) -> Result<()> {
        if let Some(dur) = dur.as_ref() {
            if dur.as_nanos() == 0 {
                return Err(io::Error::from_raw_os_error(libc::EINVAL).into());
            }
        }
        self.timeout.set(dur);
        Ok(())
    }

    fn maybe_set_timer(&self, reactor: &Reactor, waker: &Waker) {
        if let Some(timeout) = self.timeout.get() {
            if self.timer.get().is_none() {
                let deadline = Instant::now() + timeout;
                reactor.insert_timer(self.id, deadline, waker.clone());
                self.timer.set(Some(deadline));
            }
        }
    }

    fn cancel_timer(&self, reactor: &Reactor) {
        if self.timer.take().is_some() {
            reactor.remove_timer(self.id);
        }
    }

    fn check(&self, reactor: &Reactor) -> io::Result<()> {
        if let Some(deadline) = self.timer.get() {
            if !reactor.timer_exists(&(deadline, self.id)) {
                reactor.remove_timer(self.id);
                self.timer.take();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "Operation timed out",
                ));
            }
        }
        Ok(())
    }
}

/// PATCH(spoa): the largest receive or send one operation asks for.
const MAX_OP_BYTES: usize = 64 << 10;

/// PATCH(spoa): one socket operation (a receive or a send) done through the ring: its source is
/// made once per stream and queued again for each operation; the source holds the buffer the
/// kernel reads or writes, so a stream dropped with an operation in flight leaves that buffer to
/// the reactor, which frees it when the (cancelled) operation completes.
#[derive(Debug, Default)]
struct RingOp {
    source: Option<Source>,
    /// Queued and not yet taken: its result is the next one to return.
    in_flight: bool,
}

#[derive(Debug)]
pub(crate) struct NonBufferedStream<S> {
    reactor: Weak<Reactor>,
    stream: S,
    source_tx: Option<Source>,
    write_timeout: Timeout,
    read_timeout: Timeout,
    /// PATCH(spoa): receives and sends are ring operations (IORING_OP_RECV / IORING_OP_SEND)
    /// rather than a `recv`/`send` syscall first and a poll when it would block.
    rx: RingOp,
    tx: RingOp,
    /// PATCH(spoa): bytes of the last receive not yet returned (the caller's buffer was
    /// smaller than what arrived): `rx_left.0..rx_left.1` of the receive source's buffer.
    rx_left: (usize, usize),
    /// PATCH(spoa): write-behind (`set_write_behind`): a write copies its bytes into the send
    /// source's buffer and returns at once; the next read sends them in one chain with its
    /// receive (`Reactor::queue_send_then_recv`), and `poll_flush` / `poll_close` send them
    /// alone.
    write_behind: bool,
    /// PATCH(spoa): bytes written behind, not yet queued: the first `tx_pending` of the send
    /// source's buffer.
    tx_pending: usize,
    /// PATCH(spoa): the send in flight is chained before the receive in flight: the chain's
    /// one completion is the receive source's (see `settle_chain`).
    tx_chained: bool,
    /// PATCH(spoa): the length of the chained send.
    tx_chain_len: usize,
    /// PATCH(spoa): the last chained send lacked room in the socket: what it left goes out
    /// alone, bounded by the write timeout, before the next receive (see `poll_read`).
    tx_blocked: bool,
    /// PATCH(spoa): a write asked the kernel to cancel the chain's receive (see
    /// `poll_tx_idle`).
    rx_cancelled: bool,
    /// PATCH(spoa): the last error a read, write or flush returned was that of bytes written
    /// behind (see `take_write_behind_failed`).
    tx_failed: bool,
    /// PATCH(spoa): change 17: a receive chained behind a reply arms its poll first
    /// (`IORING_RECVSEND_POLL_FIRST`) when the last receive drained the socket; only set where
    /// the kernel takes the flag (`set_receive_poll_first`).
    rx_poll_first: bool,
    /// PATCH(spoa): change 17: the length the receive in flight asked for.
    rx_asked: usize,
    /// PATCH(spoa): change 17: the last receive returned fewer bytes than it asked for, so it
    /// most likely left the socket empty.
    rx_drained: bool,
    /// PATCH(spoa): change 17: receives queued with `IORING_RECVSEND_POLL_FIRST`.
    rx_polled_first: u64,
}

impl<S: AsRawFd> NonBufferedStream<S> {
    fn init(&mut self) {
        // PATCH(spoa): no early poll: reads are ring receives (see `poll_read`).
    }

    pub(crate) fn try_peek(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        super::yolo_peek(self.stream.as_raw_fd(), buf)
    }

    pub(crate) async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let source = self.reactor.upgrade().unwrap().recv(
            self.stream.as_raw_fd(),
            buf.len(),
            MsgFlags::MSG_PEEK,
        );

        let sz = source.collect_rw().await?;
        match source.extract_source_type() {
            SourceType::SockRecv(mut src) => {
                buf[0..sz].copy_from_slice(&src.take().unwrap().as_bytes()[0..sz]);
            }
            _ => unreachable!(),
        }
        Ok(sz)
    }

    /// PATCH(spoa): a receive through the ring, into the buffer of the stream's receive source,
    /// copied into `buf` when it completes. Bytes that do not fit in `buf` are returned by the
    /// next calls.
    pub(crate) fn poll_read(
        &mut self,
        cx: &Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let reactor = self.reactor.upgrade().unwrap();
        let reactor = reactor.as_ref();
        if self.rx_left.0 < self.rx_left.1 {
            let source = self.rx.source.as_ref().unwrap();
            return Poll::Ready(Ok(copy_received(&mut self.rx_left, source, buf)));
        }
        if self.tx_chained {
            // A failed send leaves its error to the receive (returned below); one that lacked
            // room ends the chain without a receive.
            let _ = self.settle_chain(reactor);
        }
        if self.tx_blocked && !self.rx.in_flight {
            let flushed = ready!(self.poll_flush(cx));
            self.tx_blocked = false;
            poll_err!(flushed);
        }
        let fd = self.stream.as_raw_fd();
        let source = self
            .rx
            .source
            .get_or_insert_with(|| reactor.socket_source(fd, SourceType::SockRecv(None)));
        if self.rx.in_flight {
            if let Some(result) = source.take_result() {
                self.rx.in_flight = false;
                self.rx_cancelled = false;
                self.read_timeout.cancel_timer(reactor);
                let received = poll_err!(result);
                self.rx_drained = received < self.rx_asked;
                self.rx_left = (0, received);
                let source = self.rx.source.as_ref().unwrap();
                return Poll::Ready(Ok(copy_received(&mut self.rx_left, source, buf)));
            }
            poll_err!(self.read_timeout.check(reactor));
        } else if self.tx_pending > 0 && !self.tx.in_flight {
            let tx = self.tx.source.as_ref().unwrap();
            self.rx_asked = buf.len().min(MAX_OP_BYTES);
            // Change 17: the peer answers a reply, so what the receive waits for is usually
            // not there yet when the socket was drained: the kernel arms the poll at once
            // rather than first trying a receive that finds nothing.
            let poll_first = self.rx_poll_first && self.rx_drained;
            self.rx_polled_first += u64::from(poll_first);
            reactor.queue_send_then_recv(tx, self.tx_pending, source, self.rx_asked, poll_first);
            self.tx_chain_len = self.tx_pending;
            self.tx_pending = 0;
            self.tx.in_flight = true;
            self.tx_chained = true;
            self.rx.in_flight = true;
        } else {
            self.rx_asked = buf.len().min(MAX_OP_BYTES);
            reactor.queue_recv(source, self.rx_asked);
            self.rx.in_flight = true;
        }
        source.add_waiter_single(cx.waker());
        self.read_timeout.maybe_set_timer(reactor, cx.waker());
        Poll::Pending
    }

    /// PATCH(spoa): change 13: asks the kernel to cancel the receive in flight, if any. The
    /// next read returns its outcome: the bytes it received if it completed first, else an
    /// error `ECANCELED`; no byte the kernel received is lost either way. A receive chained
    /// behind a send can only be cancelled once the send went out and the kernel issued it: a
    /// cancellation that came too early finds nothing, so call again until the read (or a
    /// flush, which waits for the chain) returns.
    pub(crate) fn cancel_read(&mut self) {
        if !self.rx.in_flight {
            return;
        }
        if let (Some(reactor), Some(source)) = (self.reactor.upgrade(), self.rx.source.as_ref()) {
            reactor.cancel_in_kernel_even_queued(source);
            if self.tx_chained {
                // As `poll_tx_idle`'s own cancellation: its outcome is taken with the chain's.
                self.rx_cancelled = true;
            }
        }
    }

    /// PATCH(spoa): change 13: whether the stream holds nothing of its own: no receive or send
    /// in flight, no received byte not yet returned, nothing written behind. Its descriptor can
    /// then be handed to another process without losing or duplicating a byte.
    pub(crate) fn is_quiescent(&self) -> bool {
        !self.rx.in_flight
            && !self.tx.in_flight
            && self.tx_pending == 0
            && self.rx_left.0 >= self.rx_left.1
    }

    /// PATCH(spoa): change 13: whether a receive is in flight (its outcome is the next read's).
    pub(crate) fn is_reading(&self) -> bool {
        self.rx.in_flight
    }

    /// PATCH(spoa): change 17: asks for `IORING_RECVSEND_POLL_FIRST` on receives chained
    /// behind a reply when the last receive drained the socket; returns whether it is in
    /// effect (never where the kernel lacks the flag).
    pub(crate) fn set_receive_poll_first(&mut self, on: bool) -> bool {
        self.rx_poll_first = on && sys::recv_poll_first_supported();
        self.rx_poll_first
    }

    /// PATCH(spoa): change 17: receives queued with `IORING_RECVSEND_POLL_FIRST` so far.
    pub(crate) fn receives_polled_first(&self) -> u64 {
        self.rx_polled_first
    }

    /// PATCH(spoa): turns write-behind on or off (see the field).
    pub(crate) fn set_write_behind(&mut self, on: bool) {
        self.write_behind = on;
    }

    /// PATCH(spoa): the outcome of the send of a send-then-receive chain, once the chain is
    /// over (`None` before). The receive's completion means the send went out whole. A
    /// completion of the send's own means it went out in part (a count, or `EAGAIN` for
    /// none: the socket lacked room), and then what it left goes back to the head of the
    /// bytes written behind, `tx_blocked` is set and the receive, cancelled by the kernel, is
    /// no longer in flight; or it means the send failed, and then its error is returned and
    /// left to the receive for `poll_read`.
    fn settle_chain(&mut self, reactor: &Reactor) -> Option<io::Result<()>> {
        let tx = self.tx.source.as_ref().unwrap();
        if tx.is_queued() {
            return None;
        }
        self.tx.in_flight = false;
        self.tx_chained = false;
        let sent = match tx.take_result() {
            None => return Some(Ok(())),
            Some(Ok(sent)) => sent,
            Some(Err(e)) if e.raw_os_error() == Some(libc::EAGAIN) => 0,
            Some(Err(e)) => {
                self.tx_failed = true;
                // Bytes written behind since cannot follow bytes that were not sent.
                self.tx_pending = 0;
                return Some(Err(e));
            }
        };
        if let SourceType::SockSend(held) = &mut *tx.source_type_mut() {
            held.as_bytes_mut().copy_within(sent..self.tx_chain_len, 0);
        }
        self.tx_pending = self.tx_chain_len - sent;
        self.tx_blocked = true;
        // `process_one_event` failed the receive with `EAGAIN`: it never ran.
        let _ = self.rx.source.as_ref().unwrap().take_result();
        self.rx.in_flight = false;
        self.rx_cancelled = false;
        self.read_timeout.cancel_timer(reactor);
        Some(Ok(()))
    }

    /// PATCH(spoa): whether the error the last read, write or flush returned was that of
    /// bytes written behind (their send failed, or the write timeout cut it short), rather
    /// than the operation's own; cleared by the call.
    pub(crate) fn take_write_behind_failed(&mut self) -> bool {
        std::mem::take(&mut self.tx_failed)
    }

    /// PATCH(spoa): write-behind: waits until no send is in flight (a chained one, or one
    /// `poll_flush` or a full buffer queued), so the send buffer can be written.
    fn poll_tx_idle(&mut self, cx: &Context<'_>, reactor: &Reactor) -> Poll<io::Result<()>> {
        while self.tx.in_flight {
            if self.tx_chained {
                if let Some(result) = self.settle_chain(reactor) {
                    self.write_timeout.cancel_timer(reactor);
                    if std::mem::take(&mut self.rx_cancelled)
                        && self.rx.source.as_ref().unwrap().take_error()
                    {
                        // Our cancellation (or a failed receive, which the write will meet):
                        // no read is under way any more. A receive that completed first
                        // keeps its bytes for the next read.
                        self.rx.in_flight = false;
                        self.read_timeout.cancel_timer(reactor);
                    }
                    poll_err!(result);
                    continue;
                }
                // A write while the chain's receive may be waiting for the peer (the read was
                // given up: a read timeout, the stop): cancel that receive so the write can go.
                // The send before it never waits for room, so the kernel finds it at once.
                let rx = self.rx.source.as_ref().unwrap();
                if !self.rx_cancelled {
                    reactor.cancel_in_kernel(rx);
                    self.rx_cancelled = true;
                }
                if let Err(e) = self.write_timeout.check(reactor) {
                    self.tx_failed = true;
                    return Poll::Ready(Err(e));
                }
                // The chain's one completion wakes the receive source's waiter.
                rx.add_waiter_single(cx.waker());
                self.write_timeout.maybe_set_timer(reactor, cx.waker());
                return Poll::Pending;
            }
            let source = self.tx.source.as_ref().unwrap();
            if let Some(result) = source.take_result() {
                self.tx.in_flight = false;
                self.write_timeout.cancel_timer(reactor);
                self.tx_failed = result.is_err();
                if self.tx_failed {
                    self.tx_pending = 0;
                }
                let sent = poll_err!(result);
                if let SourceType::SockSend(held) = &mut *source.source_type_mut() {
                    held.as_bytes_mut().copy_within(sent..self.tx_pending, 0);
                }
                self.tx_pending -= sent;
                continue;
            }
            if let Err(e) = self.write_timeout.check(reactor) {
                // The send stays in flight: its result is taken by the next call.
                self.tx_failed = true;
                return Poll::Ready(Err(e));
            }
            source.add_waiter_single(cx.waker());
            self.write_timeout.maybe_set_timer(reactor, cx.waker());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// PATCH(spoa): write-behind: queues the bytes written behind as a send of their own.
    fn queue_pending(&mut self, cx: &Context<'_>, reactor: &Reactor) {
        let source = self.tx.source.as_ref().unwrap();
        reactor.queue_send(source, self.tx_pending);
        self.tx.in_flight = true;
        source.add_waiter_single(cx.waker());
        self.write_timeout.maybe_set_timer(reactor, cx.waker());
    }

    /// PATCH(spoa): write-behind: copies what fits of `buf` after the bytes already written
    /// behind.
    fn poll_write_behind(&mut self, cx: &Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let reactor = self.reactor.upgrade().unwrap();
        let reactor = reactor.as_ref();
        loop {
            poll_err!(ready!(self.poll_tx_idle(cx, reactor)));
            if self.tx_pending < MAX_OP_BYTES {
                break;
            }
            self.queue_pending(cx, reactor);
        }
        let len = buf.len().min(MAX_OP_BYTES - self.tx_pending);
        let end = self.tx_pending + len;
        let fd = self.stream.as_raw_fd();
        let source = self.tx.source.get_or_insert_with(|| {
            let buf = DmaBuffer::new(end.max(4096)).expect("failed to allocate buffer");
            reactor.socket_source(fd, SourceType::SockSend(buf))
        });
        if let SourceType::SockSend(held) = &mut *source.source_type_mut() {
            if held.len() < end {
                let size = end.max(held.len() * 2).min(MAX_OP_BYTES);
                let mut grown = DmaBuffer::new(size).expect("failed to allocate buffer");
                grown.as_bytes_mut()[..self.tx_pending]
                    .copy_from_slice(&held.as_bytes()[..self.tx_pending]);
                *held = grown;
            }
            held.as_bytes_mut()[self.tx_pending..end].copy_from_slice(&buf[..len]);
        }
        self.tx_pending = end;
        Poll::Ready(Ok(len))
    }

    /// PATCH(spoa): write-behind: sends what was written behind, and waits until it is sent.
    pub(crate) fn poll_flush(&mut self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        if !self.write_behind {
            return Poll::Ready(Ok(()));
        }
        let reactor = self.reactor.upgrade().unwrap();
        let reactor = reactor.as_ref();
        loop {
            poll_err!(ready!(self.poll_tx_idle(cx, reactor)));
            if self.tx_pending == 0 {
                return Poll::Ready(Ok(()));
            }
            self.queue_pending(cx, reactor);
        }
    }

    /// PATCH(spoa): a send through the ring, of `buf` copied into the buffer of the stream's
    /// send source. After `Poll::Pending`, call again with the same bytes: the result is that
    /// of the send under way.
    pub(crate) fn poll_write(&mut self, cx: &Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.write_behind {
            return self.poll_write_behind(cx, buf);
        }
        let reactor = self.reactor.upgrade().unwrap();
        let reactor = reactor.as_ref();
        let len = buf.len().min(MAX_OP_BYTES);
        if self.tx.in_flight {
            let source = self.tx.source.as_ref().unwrap();
            if let Some(result) = source.take_result() {
                self.tx.in_flight = false;
                self.write_timeout.cancel_timer(reactor);
                return Poll::Ready(result);
            }
            poll_err!(self.write_timeout.check(reactor));
        } else {
            let fd = self.stream.as_raw_fd();
            let source = self.tx.source.get_or_insert_with(|| {
                let buf = DmaBuffer::new(len.max(4096)).expect("failed to allocate buffer");
                reactor.socket_source(fd, SourceType::SockSend(buf))
            });
            if let SourceType::SockSend(held) = &mut *source.source_type_mut() {
                if held.len() < len {
                    *held = DmaBuffer::new(len).expect("failed to allocate buffer");
                }
                held.as_bytes_mut()[..len].copy_from_slice(&buf[..len]);
            }
            reactor.queue_send(source, len);
            self.tx.in_flight = true;
        }
        let source = self.tx.source.as_ref().unwrap();
        source.add_waiter_single(cx.waker());
        self.write_timeout.maybe_set_timer(reactor, cx.waker());
        Poll::Pending
    }

    pub(crate) fn poll_close(&mut self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        // PATCH(spoa): what was written behind goes out first.
        poll_err!(ready!(self.poll_flush(cx)));
        self.source_tx.take();
        Poll::Ready(sys::shutdown(self.stream.as_raw_fd(), Shutdown::Write))
    }

    /// io_uring has support for shutdown now, but it is not in any released
    /// kernel. Even with my "let's use latest" policy it would be crazy to
    /// mandate a kernel that doesn't even exist. So in preparation for that
    /// we'll sync-emulate this but already on an async wrapper
    pub(crate) fn poll_shutdown(
        &self,
        _cx: &mut Context<'_>,
        how: Shutdown,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(sys::shutdown(self.stream.as_raw_fd(), how))
    }
}

/// PATCH(spoa): copies what is left of the last receive (`left` of the buffer of the receive
/// source, whose operation completed) into `buf`.
fn copy_received(left: &mut (usize, usize), source: &Source, buf: &mut [u8]) -> usize {
    let stype = source.source_type();
    let received = match &*stype {
        SourceType::SockRecv(Some(held)) => held.as_bytes(),
        _ => &[],
    };
    let n = (left.1 - left.0).min(buf.len());
    buf[..n].copy_from_slice(&received[left.0..left.0 + n]);
    left.0 += n;
    n
}

#[derive(Debug)]
pub(crate) struct GlommioStream<S, B> {
    stream: NonBufferedStream<S>,
    rx_buf: B,
    rx_done: Cell<bool>,
}

impl<S> From<socket2::Socket> for GlommioStream<S, NonBuffered>
where
    S: AsRawFd + From<socket2::Socket> + Unpin,
{
    fn from(socket: socket2::Socket) -> Self {
        let reactor = crate::executor().reactor();
        let mut stream = NonBufferedStream {
            reactor: Rc::downgrade(&reactor),
            stream: socket.into(),
            source_tx: None,
            write_timeout: Timeout::new(reactor.register_timer()),
            read_timeout: Timeout::new(reactor.register_timer()),
            rx: RingOp::default(),
            tx: RingOp::default(),
            rx_left: (0, 0),
            write_behind: false,
            tx_pending: 0,
            tx_chained: false,
            tx_chain_len: 0,
            tx_blocked: false,
            rx_cancelled: false,
            tx_failed: false,
            rx_poll_first: false,
            rx_asked: 0,
            rx_drained: false,
            rx_polled_first: 0,
        };
        stream.init();
        GlommioStream {
            stream,
            rx_buf: NonBuffered,
            rx_done: Cell::new(false),
        }
    }
}

impl<S: AsRawFd> AsRawFd for GlommioStream<S, NonBuffered> {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.stream.as_raw_fd()
    }
}

impl<S> FromRawFd for GlommioStream<S, NonBuffered>
where
    S: AsRawFd + FromRawFd + From<socket2::Socket> + Unpin,
{
    unsafe fn from_raw_fd(fd: RawFd) -> Self {
        let socket = socket2::Socket::from_raw_fd(fd);
        GlommioStream::from(socket)
    }
}

impl<S> GlommioStream<S, NonBuffered> {
    pub(crate) fn buffered_with<B: Buffered>(self, rx_buf: B) -> GlommioStream<S, B> {
        GlommioStream {
            stream: self.stream,
            rx_buf,
            rx_done: self.rx_done,
        }
    }
}

impl<S: AsRawFd, B: RxBuf> GlommioStream<S, B> {
    /// Receives data on the socket from the remote address to which it is
    /// connected, without removing that data from the queue.
    ///
    /// On success, returns the number of bytes peeked.
    /// Successive calls return the same data. This is accomplished by passing
    /// `MSG_PEEK` as a flag to the underlying `recv` system call.
    pub(crate) async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut pos = self.rx_buf.peek(buf);
        if pos < buf.len() && !self.rx_done.get() {
            if let Some(result) = self.stream.try_peek(&mut buf[pos..]) {
                match result {
                    Err(e) => return Err(e),
                    Ok(len) => {
                        pos += len;
                        if len == 0 {
                            self.rx_done.set(true);
                        }
                    }
                }
            }
        }
        if pos > 0 || self.rx_done.get() {
            return Ok(pos);
        }
        self.stream.peek(buf).await
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.rx_buf.is_empty() {
            if buf.len() >= self.rx_buf.buffer_size() {
                return self.stream.poll_read(cx, buf);
            }
            if !self.rx_done.get() {
                poll_err!(ready!(self.poll_replenish_buffer(cx)));
            }
        }
        Poll::Ready(Ok(self.rx_buf.read(buf)))
    }

    fn poll_replenish_buffer(&mut self, cx: &Context<'_>) -> Poll<io::Result<usize>> {
        let result = poll_err!(ready!(self.stream.poll_read(cx, self.rx_buf.unfilled())));
        self.rx_buf.handle_result(result);
        if result == 0 {
            self.rx_done.set(true);
        }
        Poll::Ready(Ok(result))
    }

    pub(crate) fn poll_write(&mut self, cx: &Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.stream.poll_write(cx, buf)
    }

    pub(crate) fn poll_flush(&mut self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        // PATCH(spoa): sends what was written behind.
        self.stream.poll_flush(cx)
    }

    /// PATCH(spoa): see `NonBufferedStream::set_write_behind`.
    pub(crate) fn set_write_behind(&mut self, on: bool) {
        self.stream.set_write_behind(on)
    }

    /// PATCH(spoa): see `NonBufferedStream::set_receive_poll_first`.
    pub(crate) fn set_receive_poll_first(&mut self, on: bool) -> bool {
        self.stream.set_receive_poll_first(on)
    }

    /// PATCH(spoa): see `NonBufferedStream::receives_polled_first`.
    pub(crate) fn receives_polled_first(&self) -> u64 {
        self.stream.receives_polled_first()
    }

    /// PATCH(spoa): see `NonBufferedStream::cancel_read`.
    pub(crate) fn cancel_read(&mut self) {
        self.stream.cancel_read()
    }

    /// PATCH(spoa): see `NonBufferedStream::is_quiescent`; nothing buffered here either.
    pub(crate) fn is_quiescent(&self) -> bool {
        self.rx_buf.is_empty() && self.stream.is_quiescent()
    }

    /// PATCH(spoa): see `NonBufferedStream::is_reading`.
    pub(crate) fn is_reading(&self) -> bool {
        self.stream.is_reading()
    }

    /// PATCH(spoa): see `NonBufferedStream::take_write_behind_failed`.
    pub(crate) fn take_write_behind_failed(&mut self) -> bool {
        self.stream.take_write_behind_failed()
    }

    pub(crate) fn poll_close(&mut self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_close(cx)
    }

    pub(crate) fn poll_shutdown(
        &self,
        cx: &mut Context<'_>,
        how: Shutdown,
    ) -> Poll<io::Result<()>> {
        self.stream.poll_shutdown(cx, how)
    }

    pub(crate) fn set_write_timeout(&self, dur: Option<Duration>) -> Result<()> {
        self.stream.write_timeout.set(dur)
    }

    pub(crate) fn set_read_timeout(&self, dur: Option<Duration>) -> Result<()> {
        self.stream.read_timeout.set(dur)
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        self.stream.write_timeout.get()
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        self.stream.read_timeout.get()
    }

    pub(crate) fn stream(&self) -> &S {
        &self.stream.stream
    }
}

impl<S: AsRawFd, B: Buffered> GlommioStream<S, B> {
    pub(crate) fn poll_fill_buf(&mut self, cx: &Context<'_>) -> Poll<io::Result<&[u8]>> {
        if self.rx_buf.is_empty() {
            poll_err!(ready!(self.poll_replenish_buffer(cx)));
        }
        Poll::Ready(Ok(self.rx_buf.as_bytes()))
    }

    pub(crate) fn consume(&mut self, amt: usize) {
        self.rx_buf.consume(amt);
    }
}
