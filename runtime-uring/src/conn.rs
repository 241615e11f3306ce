//! One executor's connections: each is a local task running the shared [`Session`] loop with
//! glommio's async reads and writes.

use std::cell::RefCell;
use std::net::Shutdown;
use std::ops::ControlFlow;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use runtime_core::handoff::HandOver;
use runtime_core::log_context;
use runtime_core::session::{self, Next, Serve, Session, SocketTimeout};
use runtime_core::{report, End, Live, Peer, ServerConfig};
use spop_core::{Handler, Handshake};

use crate::alloc_probe::{ours, theirs};
use crate::server::Shared;
use crate::stop::Stop;

/// What one executor's connections share: its handler, the configuration, its stop signal.
pub(crate) struct Worker<H> {
    pub(crate) index: usize,
    /// Borrowed for one [`Session::next`] call at a time, never across an await.
    pub(crate) handler: RefCell<H>,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stop: Stop,
    /// Receives after a reply arm their poll first where the kernel can
    /// ([`UringOptions::receive_poll_first`](crate::UringOptions::receive_poll_first)).
    pub(crate) receive_poll_first: bool,
}

impl<H: Handler + 'static> Worker<H> {
    /// Serves `stream` on this executor: an accepted connection, or one handed over with the
    /// `handshake` its previous agent completed.
    pub(crate) fn start(
        self: &Rc<Self>,
        stream: TcpStream,
        peer: Peer,
        live: Live,
        handshake: Option<Handshake>,
    ) {
        log::debug!(
            peer:% = peer, connection = live.id(), worker = self.index;
            "{peer}: connection #{} opened (worker {})",
            live.id(),
            self.index
        );
        let hint = self.handler.borrow().ack_size_hint();
        let id = live.id();
        let conn = Connection {
            stream,
            peer,
            worker: Rc::clone(self),
            live,
        };
        if let Err(e) = session::open(&self.config, hint, handshake, Instant::now(), conn) {
            log::error!("connection #{id}: {e}");
        }
    }
}

/// A connection about to become a task.
struct Connection<H> {
    /// A TCP or a Unix socket, both through glommio's `TcpStream` (see `server::adopt`).
    stream: TcpStream,
    peer: Peer,
    worker: Rc<Worker<H>>,
    live: Live,
}

impl<H: Handler + 'static> Serve for Connection<H> {
    type Output = ();

    fn serve<const FRAG: usize>(self, session: Box<Session<FRAG>>) {
        glommio::spawn_local(ours(self.run(session))).detach();
    }
}

impl<H: Handler + 'static> Connection<H> {
    async fn run<const FRAG: usize>(mut self, mut session: Box<Session<FRAG>>) {
        let worker = Rc::clone(&self.worker);
        let slot = worker.stop.register();
        if let Peer::Ip(_) = self.peer {
            let _ = self.stream.set_nodelay(true);
        }
        // A reply is sent with the read that follows it, one `io_uring_enter` for both; a send
        // that finds too little room leaves the rest to a plain send before the read, bounded
        // by the write deadline set at the write (PATCHES.md change 11).
        self.stream.set_write_behind(true);
        // The receive queued with a reply arms its poll at once when the socket was drained:
        // HAProxy's next frame answers that reply (glommio change 17).
        self.stream
            .set_receive_poll_first(worker.receive_poll_first);
        let (mut read_timeout, mut write_timeout) =
            (SocketTimeout::default(), SocketTimeout::default());
        let hands_over = worker.shared.at_stop.get();
        let id = self.live.id();
        let mut phase = Phase::Serving;
        // One clock read per read or write: the instant an I/O completed is the session's `now`
        // until the next one completes.
        let mut now = Instant::now();
        let end = loop {
            let next = match worker.handler.try_borrow_mut() {
                Ok(mut handler) => log_context::serving(id, || session.next(&mut *handler, now)),
                Err(_) => {
                    session.fail(std::io::Error::other("the executor's handler is in use"));
                    continue;
                }
            };
            match next {
                Next::Read => {
                    if phase == Phase::HandingOver && session.can_hand_over() {
                        match self
                            .hand_over_at_boundary(&mut session, hands_over, &mut now)
                            .await
                        {
                            ControlFlow::Break(end) => break end,
                            ControlFlow::Continue(next) => {
                                phase = next;
                                continue;
                            }
                        }
                    }
                    if let Some(t) = read_timeout.update(session.poll_timeout(), now) {
                        let _ = self.stream.set_read_timeout(t);
                    }
                    let read = self.read_or_stop(session.read_buf(), slot, phase).await;
                    now = Instant::now();
                    let Some(result) = read else {
                        phase = self
                            .stopped(&mut session, hands_over.is_some(), phase)
                            .await;
                        continue;
                    };
                    if matches!(&result, Err(e) if e.raw_os_error() == Some(libc::ECANCELED))
                        && hands_over.is_some()
                    {
                        // The receive the hand-over cancelled, which got nothing.
                        continue;
                    }
                    if matches!(result, Ok(0)) && worker.shared.stopping.load(Ordering::SeqCst) {
                        session.drain();
                    }
                    match result {
                        Err(e) if self.stream.take_write_behind_failed() => {
                            session.on_written_behind_failed(e)
                        }
                        result => session.on_read(result, now),
                    }
                }
                Next::Write => {
                    if let Some(t) = write_timeout.update(session.poll_timeout(), now) {
                        let _ = self.stream.set_write_timeout(t);
                    }
                    let result = theirs(self.stream.write(session.output())).await;
                    now = Instant::now();
                    match result {
                        Err(e) if self.stream.take_write_behind_failed() => {
                            session.on_written_behind_failed(e)
                        }
                        result => session.on_write(result, now),
                    }
                }
                Next::Close(end) => break end,
            }
        };
        worker.stop.release(slot);
        // Uncounted before the peer sees the close: a peer that reconnects at once is not
        // refused at max-connections by its own old connection.
        drop(self.live);
        if let End::HandedOver = end {
            // Closed without a word and without shutdown(): the socket lives on in the service
            // manager's store.
            drop(self.stream);
            report(&self.peer, id, &session, end);
            return;
        }
        if worker.shared.stopping.load(Ordering::SeqCst) {
            worker.shared.at_stop.ended();
        }
        if !session.written_behind_failed() {
            // What was written behind (the last replies, an AGENT-DISCONNECT) goes out first.
            let _ = theirs(self.stream.flush()).await;
        }
        let _ = self.stream.shutdown(Shutdown::Both).await;
        report(&self.peer, id, &session, end);
    }
}

impl<H> Connection<H> {
    /// Reads into `buf`; `None` if the stop's next stage for `phase` came first (stage 1 ends
    /// a plain read, stage 2 a read while handing over; a draining read waits for its data).
    async fn read_or_stop(
        &mut self,
        buf: &mut [u8],
        slot: usize,
        phase: Phase,
    ) -> Option<std::io::Result<usize>> {
        if phase == Phase::Draining {
            return Some(theirs(self.stream.read(buf)).await);
        }
        let stop = self
            .worker
            .stop
            .wait(slot, u8::from(phase == Phase::HandingOver));
        let stream = &mut self.stream;
        future::or(async { Some(theirs(stream.read(buf)).await) }, async {
            stop.await;
            None
        })
        .await
    }

    /// The stop woke a read in `phase`: with a hand-over, its first stage starts the hand-over
    /// phase; otherwise, or at its second stage, the connection drains.
    async fn stopped<const FRAG: usize>(
        &mut self,
        session: &mut Session<FRAG>,
        hands_over: bool,
        phase: Phase,
    ) -> Phase {
        if hands_over && phase == Phase::Serving && self.worker.stop.stage() == 1 {
            Phase::HandingOver
        } else {
            self.drain(session).await
        }
    }

    /// In the hand-over phase, at a frame boundary: hands the connection to the service
    /// manager (`Break(End::HandedOver)`: close it without a word). The socket must hold
    /// nothing of ours first: replies written behind go out, a receive in flight is cancelled
    /// and its outcome read; bytes it got are given to the session (`now` is when), and the
    /// boundary is looked for again. If the hand-over fails or its phase ends first, the
    /// connection drains as without one. `Continue` with the phase to go on in.
    async fn hand_over_at_boundary<const FRAG: usize>(
        &mut self,
        session: &mut Session<FRAG>,
        hand_over: Option<&HandOver>,
        now: &mut Instant,
    ) -> ControlFlow<End, Phase> {
        match settle(&mut self.stream, session.read_buf(), &self.worker.stop).await {
            Settled::Quiescent => {
                if let (Some(hand_over), Some(handshake)) = (hand_over, session.handshake()) {
                    if hand_over
                        .hand_over(self.stream.as_fd(), &handshake, self.live.id())
                        .is_ok()
                    {
                        return ControlFlow::Break(End::HandedOver);
                    }
                }
            }
            Settled::Received(result) => {
                *now = Instant::now();
                session.on_read(result, *now);
                return ControlFlow::Continue(Phase::HandingOver);
            }
            Settled::WriteFailed(e) => {
                session.on_written_behind_failed(e);
                return ControlFlow::Continue(Phase::HandingOver);
            }
            Settled::Abandoned => {}
        }
        ControlFlow::Continue(self.drain(session).await)
    }

    /// The stop's last stage for this connection: the read side is shut, the session answers
    /// what it has received and then says goodbye.
    async fn drain<const FRAG: usize>(&mut self, session: &mut Session<FRAG>) -> Phase {
        session.drain();
        let _ = self.stream.shutdown(Shutdown::Read).await;
        Phase::Draining
    }
}

/// Where a connection stands in its executor's stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No stop yet.
    Serving,
    /// The stop's first stage, with a hand-over: the connection hands itself over at its next
    /// frame boundary, its socket left untouched (a shutdown would end it for the next agent
    /// too).
    HandingOver,
    /// The read side is shut: what was received is still read and answered, then
    /// end-of-input brings AGENT-DISCONNECT 0.
    Draining,
}

/// How often a hand-over asks the kernel again to cancel a receive it has not found yet. Still
/// needed with sends that never wait (PATCHES.md change 11): in five runs of the HAProxy restart
/// test (about 185 connections this runtime handed over), one cancellation found nothing the
/// first time.
const CANCEL_RETRY: Duration = Duration::from_millis(2);

/// What [`settle`] came to.
enum Settled {
    /// Nothing of the agent's is pending on the socket: it can be handed over.
    Quiescent,
    /// The receive in flight got bytes before its cancellation: serve them first.
    Received(std::io::Result<usize>),
    /// Replies written behind could not be sent.
    WriteFailed(std::io::Error),
    /// The hand-over phase ended first (the stop's second stage).
    Abandoned,
}

/// Brings a stream at a frame boundary to rest for a hand-over: what was written behind is
/// sent, and a receive in flight is cancelled (asked again every [`CANCEL_RETRY`] until the
/// kernel finds it) and its outcome read into `buf`.
async fn settle(stream: &mut TcpStream, buf: &mut [u8], stop: &Stop) -> Settled {
    loop {
        if stop.stage() >= 2 {
            return Settled::Abandoned;
        }
        if stream.is_quiescent() {
            return Settled::Quiescent;
        }
        stream.cancel_read();
        // `None`: nothing yet (ask the kernel again), or flushed with nothing left to read.
        let step = future::or(
            async {
                match theirs(stream.flush()).await {
                    Err(e) => Some(Err(e)),
                    // A receive in flight, or bytes of an earlier one not yet returned.
                    Ok(()) if !stream.is_quiescent() => Some(theirs(stream.read(buf)).await),
                    Ok(()) => None,
                }
            },
            async {
                glommio::timer::sleep(CANCEL_RETRY).await;
                None
            },
        )
        .await;
        match step {
            None => {}
            Some(Err(e)) if e.raw_os_error() == Some(libc::ECANCELED) => {}
            Some(Err(e)) if stream.take_write_behind_failed() => return Settled::WriteFailed(e),
            Some(result) => return Settled::Received(result),
        }
    }
}
