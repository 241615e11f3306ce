//! One executor's connections: each is a local task driving a [`runtime_std::Session`] exactly
//! as runtime-std's connection threads do, with glommio's async reads and writes.

use std::cell::RefCell;
use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use runtime_std::{limited_warn, report, End, LogLimiter, ServerConfig, Session, Step};
use spop_core::{Capabilities, Close, ConfigError, Error, Handler};

use crate::alloc_probe::{ours, theirs};
use crate::server::Shared;
use crate::stop::Stop;

/// Handlers that panic: at most this many lines a second.
static PANIC_WARNINGS: LogLimiter = LogLimiter::new(5);

/// What one executor's connections share: its handler, the configuration, its stop signal.
pub(crate) struct Worker<H> {
    pub(crate) index: usize,
    /// Borrowed for one [`Session::process`] call at a time, never across an await.
    pub(crate) handler: RefCell<H>,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stop: Stop,
}

/// Counts a connection as live on its executor and in the server until its task ends or is
/// dropped (at the shutdown timeout). The acceptor counted it when it handed it out.
pub(crate) struct Live {
    pub(crate) shared: Arc<Shared>,
    pub(crate) worker: usize,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shared.disconnected(self.worker);
    }
}

impl<H: Handler + 'static> Worker<H> {
    /// Serves `stream` on this executor.
    pub(crate) fn start(self: &Rc<Self>, stream: TcpStream, peer: SocketAddr, id: u64, live: Live) {
        let worker = Rc::clone(self);
        if self
            .config
            .engine
            .capabilities
            .contains(Capabilities::FRAGMENTATION)
        {
            glommio::spawn_local(ours(connection::<H, { runtime_std::FRAGMENT_CAPACITY }>(
                stream, peer, id, worker, live,
            )))
            .detach();
        } else {
            glommio::spawn_local(ours(connection::<H, 0>(stream, peer, id, worker, live))).detach();
        }
    }
}

async fn connection<H: Handler, const FRAG: usize>(
    mut stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    worker: Rc<Worker<H>>,
    _live: Live,
) {
    log::debug!("{peer}: connection #{id} opened (worker {})", worker.index);
    let hint = worker.handler.borrow().ack_size_hint();
    let mut session = match new_session::<FRAG>(worker.config.engine, hint) {
        Ok(session) => session,
        Err(e) => {
            log::error!("{peer}: {e}");
            return;
        }
    };
    let slot = worker.stop.register();
    let end = drive(&mut stream, peer, id, &mut session, &worker, slot).await;
    worker.stop.release(slot);
    let _ = stream.shutdown(Shutdown::Both).await;
    report(peer, id, &session, end);
}

/// On the heap: with fragmentation the engine holds its reassembly buffer inline, and the
/// connection future stays small either way. Out of line so the big temporary never sits in a
/// future.
#[inline(never)]
fn new_session<const FRAG: usize>(
    config: spop_core::Config,
    hint: Option<usize>,
) -> Result<Box<Session<FRAG>>, ConfigError> {
    Session::<FRAG>::new(config, hint).map(Box::new)
}

async fn drive<H: Handler, const FRAG: usize>(
    stream: &mut TcpStream,
    peer: SocketAddr,
    id: u64,
    session: &mut Session<FRAG>,
    worker: &Worker<H>,
    slot: usize,
) -> End {
    let config = &worker.config;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(config.write_timeout);
    let mut read_timeout: Option<Duration> = None;
    // Once the executor stops: the read side is shut, what was received is still read and
    // answered, then end-of-input brings AGENT-DISCONNECT 0.
    let mut draining = false;

    loop {
        let wanted = session.read_timeout(config);
        if wanted != read_timeout {
            let _ = stream.set_read_timeout(wanted);
            read_timeout = wanted;
        }

        let read = if draining {
            theirs(stream.read(session.read_buf())).await.map(Some)
        } else {
            let stop = worker.stop.wait(slot);
            future::or(
                async { theirs(stream.read(session.read_buf())).await.map(Some) },
                async {
                    stop.await;
                    Ok(None)
                },
            )
            .await
        };
        let n = match read {
            Ok(None) => {
                draining = true;
                let _ = stream.shutdown(Shutdown::Read).await;
                continue;
            }
            Ok(Some(0)) => {
                if draining || worker.shared.stopping.load(Ordering::SeqCst) {
                    session.shutdown();
                    let _ = theirs(stream.write_all(session.output())).await;
                    break End::Closed(Close::Shutdown);
                }
                break End::Eof;
            }
            Ok(Some(n)) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                session.abort(Error::Timeout);
                let _ = theirs(stream.write_all(session.output())).await;
                break End::Closed(Close::Error(Error::Timeout));
            }
            Err(e) => break End::Io(e),
        };
        session.commit_read(n);
        let step = loop {
            let Some(step) = process(session, &worker.handler) else {
                limited_warn!(
                    PANIC_WARNINGS,
                    "{peer}: connection #{id}: the handler panicked; closing this connection"
                );
                break Err(io::Error::other("the handler panicked"));
            };
            if !session.output().is_empty() {
                if let Err(e) = theirs(stream.write_all(session.output())).await {
                    break Err(e);
                }
                let len = session.output().len();
                session.consume_output(len);
            }
            if step != Step::NeedOutput {
                break Ok(step);
            }
        };
        if let Some(end) = End::after_batch(step) {
            break end;
        }
    }
}

/// One [`Session::process`] with the executor's handler. A panicking handler ends only this
/// connection (`None`), not the executor and every connection on it.
fn process<H: Handler, const FRAG: usize>(
    session: &mut Session<FRAG>,
    handler: &RefCell<H>,
) -> Option<Step> {
    let mut handler = handler.try_borrow_mut().ok()?;
    panic::catch_unwind(AssertUnwindSafe(|| session.process(&mut *handler))).ok()
}
