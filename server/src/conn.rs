//! One WebSocket connection as one small state machine: a single task that
//! reads, handles and writes, and holds no buffer while it is idle.
//!
//! - **Reading** goes into a per-thread scratch buffer; frames are parsed and
//!   unmasked in place, and each whole message goes to the connection's
//!   [`Handler`]: the chat [`Session`], or the echo server's
//!   ([`crate::echo`], for conformance testing). Bytes are kept per
//!   connection only while a frame is incomplete, or when frames arrive
//!   behind a request that waits for the store (reading pauses until it is
//!   done, so requests are handled in order).
//! - **Writing** fills a per-thread scratch buffer from the connection's
//!   [`Feed`]: its outbox's frames, then its rooms' messages past its
//!   cursor in each room's log (each made once per room, ready to write):
//!   a commit's frames as one shared slice of the room's buffer
//!   ([`crate::room`], "Shared runs"), not copied, the rest copied; as much
//!   as a scratch buffer's worth, for one (vectored) `write`. What the
//!   socket does not take is kept (`spill`) and written first next time; that is the only
//!   per-connection write buffer, and only while the socket is full. A
//!   connection that just wrote waits for the hub's flush tick
//!   ([`Flusher`](crate::outbox::Flusher), every `write_coalesce`), so a
//!   busy connection costs one wake-up and one write per tick, not one per
//!   message; a quiet one writes at once. A socket that takes nothing for
//!   `write_timeout` is closed by the hub's sweep (4001); a slow one that
//!   keeps taking is never closed: it catches up from the store if the log
//!   moves past it.
//! - **Closing**: whatever ends the connection (the peer's close, `quit`, a
//!   bad frame, the idle sweep, a slow-consumer overflow, shutdown), the
//!   session ends exactly once, as soon as the close begins, so offline
//!   notices go out exactly once and promptly. Our close frame follows what
//!   was queued (or, for an abort, only what the socket was already handed), then we
//!   wait a moment for the peer's answer before closing the socket.

use std::cell::RefCell;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::feed::{Feed, Fill};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::outbox::{Batch, Close};
use crate::registry::{Account, Conn, IpSlot};
use crate::room::{Sink, Wire};
use crate::session::Session;
use crate::ws::{self, FrameError, OpCode, Socket, Upgraded};
use tokio_util::task::task_tracker::TaskTrackerToken;

/// How long we wait for the peer's answer to our close frame, and how long
/// an aborted connection may take to send its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long a connection closing after what is queued may take to write it
/// (a peer that stopped reading would otherwise hold it open).
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Socket reads one poll of a connection may make before it lets other
/// tasks run.
const READS_PER_POLL: usize = 16;

/// Size of the per-thread read and write scratch buffers.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    static READ_SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
    static WRITE_SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// A ping frame without payload.
static PING: [u8; 2] = [0x89, 0x00];

/// Who handles a connection's whole messages (reassembled from fragments,
/// text checked to be UTF-8): the chat [`Session`], or the echo server's
/// [`Echo`](crate::echo::Echo). Replies go to the connection's outbox.
pub trait Handler: Send + Sized + Unpin + 'static {
    /// Handles one text message. The future may wait (for the store): the
    /// connection reads nothing more until it hands the handler back.
    fn on_text(self, text: String) -> Request<Self>;
    /// Handles one binary message.
    fn on_binary(&mut self, data: &[u8]);
    /// The connection is over (called exactly once, as its close begins).
    fn end(self);
}

impl Handler for Session {
    fn on_text(mut self, text: String) -> Request<Self> {
        Box::pin(async move {
            Session::on_text(&mut self, &text).await;
            self
        })
    }

    /// The chat protocol has no binary messages: answered with an error.
    fn on_binary(&mut self, _data: &[u8]) {
        Session::on_binary(self);
    }

    fn end(self) {
        Session::end(self);
    }
}

/// Serves one upgraded chat WebSocket until it closes.
///
/// The connection is its own future (no `async fn` around it): an idle
/// connection costs the fields of [`Connection`] plus tokio's task header,
/// and nothing it held while it was busy.
pub fn run(hub: Arc<Hub>, io: Upgraded, account: Option<Account>, slot: IpSlot) -> Connection {
    let conn = hub.connect_as(account);
    let session = Session::new(Arc::clone(&hub), Arc::clone(&conn));
    serve(hub, conn, io, session, slot)
}

/// Serves one upgraded WebSocket of the registered `conn`, whose messages
/// go to `handler`, until it closes.
pub fn serve<H: Handler>(
    hub: Arc<Hub>,
    conn: Arc<Conn>,
    io: Upgraded,
    handler: H,
    slot: IpSlot,
) -> Connection<H> {
    let task = hub.tasks.token();
    Connection {
        hub,
        conn,
        io: io.socket,
        handler: Turn::Ready(handler),
        inbuf: (!io.pre.is_empty()).then(|| Box::new(io.pre.to_vec())),
        fragments: None,
        feed: Feed::default(),
        spill: Vec::new(),
        spilled: 0,
        ping: false,
        looked_again: false,
        closing: None,
        phase: Phase::Open,
        peer_closed: false,
        _task: task,
        _slot: slot,
    }
}

/// A request that may wait (for the store); it hands the handler back.
pub type Request<H> = Pin<Box<dyn Future<Output = H> + Send>>;

/// Who has the handler: the connection, or a request in flight (which
/// hands it back when done). One field of two variants rather than two
/// options: it packs into the handler's own size, and this is paid per
/// connection.
enum Turn<H> {
    /// The connection has it.
    Ready(H),
    /// A request in flight has it (`Some`), or it has ended (`None`).
    Away(Option<Request<H>>),
}

impl<H> Turn<H> {
    fn is_busy(&self) -> bool {
        matches!(self, Turn::Away(Some(_)))
    }
}

pin_project_lite::pin_project! {
    /// What only a closing connection holds, in one box: our close frame
    /// until it is written, and the deadline of the close.
    struct Closing {
        frame: Option<Close>,
        #[pin]
        timer: Sleep,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// Writing what is left, then our close frame, before the timer fires.
    Closing,
    /// Our close frame is out; waiting for the peer's until the timer fires.
    CloseSent,
    /// Shutting the socket down after a clean close (bounded by the timer).
    ShuttingDown,
    /// Over; the session ends once a request in flight hands it back.
    Ended,
}

/// How one side (read or write) of a poll went.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Did something; there may be more to do.
    Progress,
    /// Nothing more to do until woken.
    Blocked,
    /// The connection is over; `true` if it closed cleanly.
    Ended(bool),
}

/// One WebSocket connection; see the module docs.
pub struct Connection<H: Handler = Session> {
    hub: Arc<Hub>,
    conn: Arc<Conn>,
    io: Socket,
    /// The message handler (the chat session), or the request in flight
    /// that owns it.
    handler: Turn<H>,
    /// Bytes read but not handled yet (an incomplete frame, or frames
    /// behind a request that waits); `None` when idle.
    /// Boxed: 8 bytes of the task rather than 24 while idle, for one more
    /// allocation only while bytes are held.
    #[allow(clippy::box_collection)]
    inbuf: Option<Box<Vec<u8>>>,
    /// A fragmented message being assembled: its opcode, its bytes so far,
    /// and how many of them are known to be UTF-8 (text is checked as each
    /// fragment arrives, so a bad one fails at once, not at the end).
    fragments: Option<Box<(OpCode, Vec<u8>, usize)>>,
    /// What to write: the outbox and the cursors in the rooms' logs.
    feed: Feed,
    /// Bytes filled but not yet taken by the socket (or a frame larger than
    /// the scratch buffer, or a pong, which goes out between two frames);
    /// empty (unallocated) while the socket keeps up.
    spill: Vec<u8>,
    /// How much of `spill` is written (a frame is at most
    /// `max_frame_bytes`, well below 4 GiB; 32 bits pack beside the flags).
    spilled: u32,
    /// A ping the hub asked for that did not fit yet.
    ping: bool,
    /// The writer said it waits ([`crate::outbox::Outbox::wait`]) and is
    /// looking for work once more before it sleeps.
    looked_again: bool,
    /// Only while closing: our close frame (written after what must
    /// precede it) and the close deadline.
    closing: Option<Pin<Box<Closing>>>,
    phase: Phase,
    /// The peer sent its close frame (or bytes we refused).
    peer_closed: bool,
    /// Keeps shutdown waiting for this connection.
    _task: TaskTrackerToken,
    /// Counts against the peer's per-IP connection cap.
    _slot: IpSlot,
}

impl<H: Handler> Future for Connection<H> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match this.phase {
                Phase::ShuttingDown => {
                    let shut = Pin::new(&mut this.io).poll_shutdown(cx).is_ready();
                    if !shut && !this.timer_fired(cx) {
                        return Poll::Pending;
                    }
                    this.phase = Phase::Ended;
                }
                Phase::Ended => {
                    // A request in flight finishes first: it may have joined
                    // a room the session must leave.
                    if let Turn::Away(Some(request)) = &mut this.handler {
                        let session = std::task::ready!(request.as_mut().poll(cx));
                        this.handler = Turn::Ready(session);
                    }
                    this.end_session();
                    return Poll::Ready(());
                }
                Phase::Open | Phase::Closing | Phase::CloseSent => {
                    let Poll::Ready(clean) = this.drive(cx) else {
                        return Poll::Pending;
                    };
                    if clean {
                        this.set_timer(CLOSE_GRACE);
                        this.phase = Phase::ShuttingDown;
                    } else {
                        this.closing = None;
                        this.phase = Phase::Ended;
                    }
                }
            }
        }
    }
}

impl<H: Handler> Connection<H> {
    /// Reads, handles and writes until blocked; `Ready(clean)` when the
    /// connection is over.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if let Turn::Away(Some(request)) = &mut self.handler {
            if let Poll::Ready(session) = request.as_mut().poll(cx) {
                self.handler = Turn::Ready(session);
                if self.phase != Phase::Open {
                    self.end_session();
                }
            }
        }
        // One read (at most a scratch buffer's worth), then write what it
        // produced, and again: a peer that sends without pause must not
        // keep its own replies from being written.
        let mut reads = 0;
        loop {
            let read = self.read(cx);
            if let Step::Ended(clean) = read {
                return Poll::Ready(clean);
            }
            if let Step::Ended(clean) = self.write(cx) {
                return Poll::Ready(clean);
            }
            if read == Step::Blocked {
                break;
            }
            reads += 1;
            if reads == READS_PER_POLL {
                // Maybe more to read: let other connections run first.
                cx.waker().wake_by_ref();
                break;
            }
        }
        // Bound the close: a peer that neither reads nor answers is dropped.
        if self.phase != Phase::Open && self.timer_fired(cx) {
            return Poll::Ready(false);
        }
        Poll::Pending
    }

    /// Ends the session (leaves every room, frees the name) once.
    fn end_session(&mut self) {
        match std::mem::replace(&mut self.handler, Turn::Away(None)) {
            Turn::Ready(session) => session.end(),
            // Not ours to end yet: the request hands it back first.
            busy @ Turn::Away(Some(_)) => self.handler = busy,
            Turn::Away(None) => {}
        }
    }

    /// Sets the close timer to fire `after` from now.
    fn set_timer(&mut self, after: Duration) {
        let deadline = Instant::now() + after;
        match self.closing.as_mut() {
            Some(closing) => closing.as_mut().project().timer.reset(deadline),
            None => {
                self.closing = Some(Box::pin(Closing {
                    frame: None,
                    timer: tokio::time::sleep_until(deadline),
                }))
            }
        }
    }

    /// Whether the close timer has fired (if not, `cx` is woken when it
    /// does).
    fn timer_fired(&mut self, cx: &mut Context<'_>) -> bool {
        match self.closing.as_mut() {
            Some(closing) => closing.as_mut().project().timer.poll(cx).is_ready(),
            None => true,
        }
    }

    /// Takes our close frame, to write it.
    fn take_close_frame(&mut self) -> Option<Close> {
        self.closing.as_mut()?.as_mut().project().frame.take()
    }

    // ---- reading ----

    /// Handles what is buffered, then reads once from the socket and handles
    /// that; `Blocked` when the socket has nothing or a request is waiting
    /// for the store.
    fn read(&mut self, cx: &mut Context<'_>) -> Step {
        loop {
            // After the peer's close frame (or bytes we refused) there is
            // nothing more to read.
            let done = self.peer_closed && self.phase != Phase::CloseSent;
            if self.handler.is_busy() || done {
                return Step::Blocked;
            }
            if let Some(mut buf) = self.inbuf.take() {
                let used = match self.handle_bytes(cx, &mut buf) {
                    Ok(used) => used,
                    Err(end) => return end,
                };
                buf.drain(..used);
                if !buf.is_empty() {
                    self.inbuf = Some(buf);
                    if used > 0 {
                        continue;
                    }
                }
            }
            let read = READ_SCRATCH.with_borrow_mut(|scratch| {
                let mut buf = ReadBuf::new(scratch);
                match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                    Poll::Pending => return Err(Step::Blocked),
                    Poll::Ready(Err(err)) => {
                        tracing::debug!(conn = self.conn.id, error = %err, "read failed");
                        return Err(Step::Ended(false));
                    }
                    Poll::Ready(Ok(())) => {}
                }
                let n = buf.filled().len();
                if n == 0 {
                    // The peer closed its side, with or without a close frame.
                    let clean = self.phase == Phase::CloseSent;
                    return Err(Step::Ended(clean));
                }
                self.conn.touch(self.hub.clock.stamp());
                if let Some(inbuf) = self.inbuf.as_mut() {
                    inbuf.extend_from_slice(&scratch[..n]);
                } else {
                    // The common case: handle the frames where they landed and
                    // keep only what is left over.
                    let used = self.handle_bytes(cx, &mut scratch[..n])?;
                    if used < n {
                        self.inbuf = Some(Box::new(scratch[used..n].to_vec()));
                    }
                }
                Ok(())
            });
            return match read {
                Ok(()) => Step::Progress,
                Err(step) => step,
            };
        }
    }

    /// Handles the complete frames at the start of `data` (unmasking them in
    /// place); returns how many bytes it used. Stops early when a request
    /// must wait for the store.
    fn handle_bytes(&mut self, cx: &mut Context<'_>, data: &mut [u8]) -> Result<usize, Step> {
        let mut at = 0;
        while !self.handler.is_busy() {
            let header = match ws::parse_header(&data[at..], self.hub.config.max_frame_bytes) {
                Ok(Some(header)) => header,
                Ok(None) => break,
                Err(err) => return Err(self.fail(err)),
            };
            let end = at + header.len + header.payload_len;
            if end > data.len() {
                break;
            }
            let payload = &mut data[at + header.len..end];
            ws::unmask(payload, header.mask);
            at = end;
            if let Err(err) = self.on_frame(cx, header, payload) {
                return Err(self.fail(err));
            }
            if self.peer_closed {
                if self.phase == Phase::CloseSent {
                    return Err(Step::Ended(true));
                }
                // Nothing the peer sends after its close frame counts.
                return Ok(data.len());
            }
        }
        Ok(at)
    }

    /// Closes the connection for bytes that are not valid WebSocket, after
    /// the replies to the frames before them (what is queued is written).
    fn fail(&mut self, err: FrameError) -> Step {
        let (code, reason) = err.close();
        tracing::info!(conn = self.conn.id, error = %err, code, "closing on a bad frame");
        self.conn.outbox.close_after_drain(Close { code, reason });
        // Whatever else the peer sent is not looked at.
        self.inbuf = None;
        self.peer_closed = true;
        Step::Blocked
    }

    fn on_frame(
        &mut self,
        cx: &mut Context<'_>,
        header: ws::Header,
        payload: &mut [u8],
    ) -> Result<(), FrameError> {
        match header.opcode {
            OpCode::Text | OpCode::Binary => {
                if self.fragments.is_some() {
                    return Err(FrameError::Protocol(
                        "a new message inside a fragmented one",
                    ));
                }
                if header.fin {
                    self.on_message(cx, header.opcode, payload)?;
                } else {
                    let checked = match header.opcode {
                        OpCode::Text => ws::check_utf8_prefix(payload)?,
                        _ => 0,
                    };
                    self.fragments = Some(Box::new((header.opcode, payload.to_vec(), checked)));
                }
            }
            OpCode::Continuation => {
                let Some(mut fragments) = self.fragments.take() else {
                    return Err(FrameError::Protocol(
                        "a continuation with nothing to continue",
                    ));
                };
                let (opcode, message, checked) = &mut *fragments;
                if message.len() + payload.len() > self.hub.config.max_frame_bytes {
                    return Err(FrameError::TooBig);
                }
                message.extend_from_slice(payload);
                if *opcode == OpCode::Text {
                    *checked += ws::check_utf8_prefix(&message[*checked..])?;
                }
                if header.fin {
                    self.on_message(cx, *opcode, message)?;
                } else {
                    self.fragments = Some(fragments);
                }
            }
            OpCode::Ping => {
                // After the whole frames already filled: between frames. A
                // peer that pings without reading gets no more than the
                // spill can hold (RFC 6455 lets us skip all but the last).
                if self.phase == Phase::Open && self.spill.len() < SCRATCH {
                    let pong = ws::control_frame(OpCode::Pong, payload);
                    self.spill.extend_from_slice(&pong);
                }
            }
            OpCode::Pong => {}
            OpCode::Close => {
                let code = ws::check_close_payload(payload)?;
                self.peer_closed = true;
                self.conn
                    .outbox
                    .close_after_drain(Close { code, reason: "" });
            }
        }
        Ok(())
    }

    /// A whole message: to the handler, once text is known to be UTF-8.
    fn on_message(
        &mut self,
        cx: &mut Context<'_>,
        opcode: OpCode,
        payload: &mut [u8],
    ) -> Result<(), FrameError> {
        let text = if opcode == OpCode::Text {
            Some(std::str::from_utf8(payload).map_err(|_| FrameError::InvalidUtf8)?)
        } else {
            None
        };
        // After a close has begun (quit, a flood, shutdown), nothing more is
        // handled.
        if self.phase != Phase::Open || self.conn.outbox.is_closing() {
            return Ok(());
        }
        let Turn::Ready(session) = &mut self.handler else {
            return Ok(());
        };
        let Some(text) = text else {
            session.on_binary(payload);
            return Ok(());
        };
        let Turn::Ready(session) = std::mem::replace(&mut self.handler, Turn::Away(None)) else {
            unreachable!("matched just above");
        };
        let mut request = session.on_text(text.to_owned());
        self.handler = match request.as_mut().poll(cx) {
            Poll::Ready(session) => Turn::Ready(session),
            Poll::Pending => Turn::Away(Some(request)),
        };
        Ok(())
    }

    // ---- writing ----

    /// Writes what is due until the socket is full or nothing is left;
    /// sends the close frame when a close was asked for.
    fn write(&mut self, cx: &mut Context<'_>) -> Step {
        loop {
            // An abort (timeouts, overflow) starts the close at once: the
            // close frame follows what the socket was already handed, and
            // the close timer bounds how long that may take.
            if self.phase == Phase::Open && self.conn.outbox.is_aborted() {
                let close = self.conn.outbox.close_reason().unwrap_or(Close {
                    code: hubbub_protocol::close::GOING_AWAY,
                    reason: "",
                });
                self.begin_close(close);
            }
            // What the socket did not take goes first.
            if (self.spilled as usize) < self.spill.len() {
                let unwritten = &self.spill[self.spilled as usize..];
                match Pin::new(&mut self.io).poll_write(cx, unwritten) {
                    Poll::Pending => {
                        // Woken by the socket, or by an abort (timeouts, overflow).
                        self.conn.stalled(self.hub.clock.stamp());
                        self.conn.outbox.register(cx.waker());
                        return Step::Blocked;
                    }
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Step::Ended(false),
                    Poll::Ready(Ok(n)) => {
                        self.conn.progressed();
                        Metrics::inc(&self.hub.metrics.socket_writes);
                        self.spilled += n as u32;
                        if self.spilled as usize == self.spill.len() {
                            self.spill = Vec::new();
                            self.spilled = 0;
                        }
                        continue;
                    }
                }
            }
            match self.phase {
                Phase::Open | Phase::Closing => {}
                _ => return Step::Blocked,
            }
            let step = WRITE_SCRATCH.with_borrow_mut(|scratch| self.fill_and_write(cx, scratch));
            if let Some(step) = step {
                return step;
            }
        }
    }

    /// Fills the scratch buffer from the feed and writes it. `None`: go on.
    fn fill_and_write(&mut self, cx: &mut Context<'_>, scratch: &mut [u8]) -> Option<Step> {
        let mut control = Batch::default();
        let mut sink = WsSink::new(scratch, &mut self.spill);
        if self.ping && sink.raw(&PING) {
            self.ping = false;
        }
        let fill = match self.phase {
            Phase::Open => {
                self.feed
                    .poll_fill(cx, &self.hub, &self.conn, &mut sink, true, &mut control)
            }
            // Draining before the close frame: the outbox only, and nothing
            // at all after an abort.
            Phase::Closing
                if self.closing.as_ref().is_some_and(|c| c.frame.is_some())
                    && !self.conn.outbox.is_aborted() =>
            {
                self.feed
                    .poll_fill(cx, &self.hub, &self.conn, &mut sink, false, &mut control)
            }
            _ => Fill::Drained,
        };
        if control.ping && !sink.raw(&PING) {
            self.ping = true;
        }
        let WsSink {
            len,
            shared,
            shared_len,
            ..
        } = sink;
        if let Some(close) = control.close {
            if self.phase == Phase::Open {
                self.begin_close(close);
            }
        }
        if len == 0 && shared.is_empty() {
            if !self.spill.is_empty() {
                return None; // a frame larger than the scratch buffer
            }
            if fill != Fill::Drained {
                return Some(Step::Blocked); // the store wakes us
            }
            if self.phase == Phase::Closing {
                return Some(match self.take_close_frame() {
                    // Everything before it is out: now our close frame.
                    Some(close) => {
                        self.spill = ws::close_frame(close.code, close.reason).to_vec();
                        return None;
                    }
                    None => self.close_sent(cx),
                });
            }
            // TLS keeps records until flushed; plain TCP returns at once.
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Pending => return Some(Step::Blocked),
                Poll::Ready(Err(_)) => return Some(Step::Ended(false)),
                Poll::Ready(Ok(())) => {}
            }
            if !self.looked_again {
                // Say we wait, then look once more: what is committed or
                // queued from now on wakes us.
                self.feed.wait(&self.conn);
                self.conn.outbox.wait(cx.waker());
                self.looked_again = true;
                return None;
            }
            // Idle: hold nothing while waiting.
            self.looked_again = false;
            self.feed.release();
            self.conn.outbox.release();
            return Some(Step::Blocked);
        }
        if std::mem::take(&mut self.looked_again) {
            self.conn.outbox.resume();
        }
        let parts = gather(&scratch[..len], &shared);
        let written = if shared.is_empty() {
            Pin::new(&mut self.io).poll_write(cx, &scratch[..len])
        } else {
            Pin::new(&mut self.io).poll_write_vectored(cx, &parts)
        };
        match written {
            Poll::Pending => {
                spill_from(&mut self.spill, &parts, 0);
                self.conn.stalled(self.hub.clock.stamp());
                self.conn.outbox.register(cx.waker());
                Some(Step::Blocked)
            }
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Some(Step::Ended(false)),
            Poll::Ready(Ok(n)) => {
                self.conn.progressed();
                Metrics::inc(&self.hub.metrics.socket_writes);
                if n < len + shared_len {
                    spill_from(&mut self.spill, &parts, n);
                    return None;
                }
                let coalesce = !self.hub.config.write_coalesce.is_zero();
                if fill == Fill::Drained && self.phase == Phase::Open && coalesce {
                    // Coalesce: what arrives next waits for the flush tick.
                    if let Poll::Ready(Err(_)) = Pin::new(&mut self.io).poll_flush(cx) {
                        return Some(Step::Ended(false));
                    }
                    self.hub.flusher.add(self.conn.clone());
                    self.conn.outbox.register(cx.waker());
                    return Some(Step::Blocked);
                }
                None
            }
        }
    }

    /// Our close frame is out.
    fn close_sent(&mut self, cx: &mut Context<'_>) -> Step {
        if let Poll::Ready(Err(_)) = Pin::new(&mut self.io).poll_flush(cx) {
            return Step::Ended(false);
        }
        if self.peer_closed {
            // The peer closed first (or broke the protocol): we are done.
            return Step::Ended(true);
        }
        self.phase = Phase::CloseSent;
        self.set_timer(CLOSE_GRACE);
        Step::Blocked
    }

    /// Starts closing: the session ends now; the close frame goes after
    /// what is queued in the outbox, or, for an abort, after what was
    /// already handed to the socket.
    fn begin_close(&mut self, close: Close) {
        let aborted = self.conn.outbox.is_aborted();
        self.phase = Phase::Closing;
        self.set_timer(if aborted { CLOSE_GRACE } else { DRAIN_GRACE });
        if let Some(closing) = self.closing.as_mut() {
            *closing.as_mut().project().frame = Some(close);
        }
        self.fragments = None;
        self.end_session();
    }
}

/// Most slices of the rooms' logs one write sends.
const MAX_SHARED: usize = 16;

/// Slices of the rooms' logs ([`Sink::shared`]) a write sends as they are,
/// each with where it goes between the scratch buffer's frames (its
/// length then).
type Shared = SmallVec<[(usize, Bytes); 4]>;

/// The writer's sink: whole frames into the scratch buffer, and slices of
/// the rooms' logs beside them, written in order by one vectored write of
/// at most a scratch buffer's worth (so what a full socket leaves in the
/// spill stays as bounded as without slices); a frame larger than that
/// goes alone (and ends the fill).
struct WsSink<'a> {
    buf: &'a mut [u8],
    len: usize,
    spill: &'a mut Vec<u8>,
    shared: Shared,
    /// Bytes in `shared`.
    shared_len: usize,
}

impl<'a> WsSink<'a> {
    fn new(buf: &'a mut [u8], spill: &'a mut Vec<u8>) -> WsSink<'a> {
        WsSink {
            buf,
            len: 0,
            spill,
            shared: Shared::new(),
            shared_len: 0,
        }
    }

    /// Takes the parts of one frame if they fit.
    fn put(&mut self, header: &[u8], payload: &[u8]) -> bool {
        if !self.spill.is_empty() {
            return false;
        }
        let n = header.len() + payload.len();
        if self.len + self.shared_len + n <= self.buf.len() {
            self.buf[self.len..self.len + header.len()].copy_from_slice(header);
            self.buf[self.len + header.len()..self.len + n].copy_from_slice(payload);
            self.len += n;
            true
        } else if self.len == 0 && self.shared.is_empty() {
            self.spill.reserve_exact(n);
            self.spill.extend_from_slice(header);
            self.spill.extend_from_slice(payload);
            true
        } else {
            false
        }
    }
}

impl Sink for WsSink<'_> {
    fn raw(&mut self, frame: &[u8]) -> bool {
        self.put(&[], frame)
    }

    fn message(&mut self, wire: &Wire) -> bool {
        self.put(&[], &wire.bytes)
    }

    fn text(&mut self, text: &tungstenite::Utf8Bytes) -> bool {
        let mut header = [0; ws::MAX_SERVER_HEADER];
        let len = ws::encode_header(OpCode::Text, text.len(), &mut header);
        self.put(&header[..len], text.as_bytes())
    }

    fn takes_shared(&self) -> bool {
        true
    }

    fn shared(&mut self, bytes: Bytes, frames: u64) -> bool {
        let alone = self.len == 0 && self.shared.is_empty();
        let fits = self.len + self.shared_len + bytes.len() <= self.buf.len();
        if !self.spill.is_empty()
            || self.shared.len() == MAX_SHARED
            || !(fits || (alone && frames == 1))
        {
            return false;
        }
        self.shared_len += bytes.len();
        self.shared.push((self.len, bytes));
        true
    }
}

/// What a write sends, in order: the scratch buffer's frames (`scratch`)
/// with the shared slices between them where they were taken.
fn gather<'a>(scratch: &'a [u8], shared: &'a Shared) -> SmallVec<[IoSlice<'a>; 9]> {
    let mut parts = SmallVec::new();
    let mut at = 0;
    for (to, bytes) in shared {
        if *to > at {
            parts.push(IoSlice::new(&scratch[at..*to]));
            at = *to;
        }
        parts.push(IoSlice::new(bytes));
    }
    if scratch.len() > at || parts.is_empty() {
        parts.push(IoSlice::new(&scratch[at..]));
    }
    parts
}

/// Keeps what a write of `parts` left unwritten past its first `written`
/// bytes, to write first next time.
fn spill_from(spill: &mut Vec<u8>, parts: &[IoSlice<'_>], mut written: usize) {
    for part in parts {
        if written >= part.len() {
            written -= part.len();
            continue;
        }
        spill.extend_from_slice(&part[written..]);
        written = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::Utf8Bytes;

    /// An idle connection is its task and its [`Conn`]: these sizes are
    /// its memory (docs/benchmarks.md, "Idle memory per connection").
    /// tokio keeps a task as one allocation of its future plus 96 bytes of
    /// header and trailer, aligned to 128 bytes on x86_64: a connection of
    /// at most 288 bytes makes a 384-byte task, one byte more a 512-byte one.
    /// A `Conn` of at most 136 bytes is a 152-byte `Arc`, which the system
    /// allocator keeps in a 160-byte chunk.
    #[test]
    fn an_idle_connection_fits_its_memory_budget() {
        use std::mem::size_of;
        assert!(
            size_of::<Connection<Session>>() <= 288,
            "Connection is {} bytes: its task no longer fits 384 bytes",
            size_of::<Connection<Session>>()
        );
        assert!(
            size_of::<Conn>() <= 136,
            "Conn is {} bytes: past a 160-byte allocation",
            size_of::<Conn>()
        );
    }

    #[test]
    fn the_sink_takes_whole_frames_and_spills_only_a_frame_larger_than_the_buffer() {
        let mut buf = vec![0; 16];
        let mut spill = Vec::new();
        let mut sink = WsSink::new(&mut buf, &mut spill);
        assert!(sink.text(&Utf8Bytes::from_static("12345678")));
        assert_eq!(sink.len, 10, "2 bytes of header, 8 of text");
        assert!(!sink.text(&Utf8Bytes::from_static("12345678")), "no room");
        assert!(sink.raw(&PING));
        assert_eq!(sink.len, 12);

        let mut sink = WsSink::new(&mut buf, &mut spill);
        let big = "x".repeat(100);
        assert!(sink.text(&Utf8Bytes::from(big.clone())), "alone, it spills");
        assert!(!sink.raw(&PING), "after a spill the fill ends");
        assert_eq!(sink.len, 0);
        assert_eq!(spill.len(), 2 + 100);
        assert_eq!(&spill[2..], big.as_bytes());
    }

    #[test]
    fn shared_slices_go_out_in_order_between_the_copied_frames_and_the_unwritten_rest_is_kept() {
        let mut buf = vec![0; 64];
        let mut spill = Vec::new();
        let mut sink = WsSink::new(&mut buf, &mut spill);
        assert!(sink.raw(b"aa"));
        assert!(sink.shared(Bytes::from_static(b"BBB"), 1));
        assert!(sink.shared(Bytes::from_static(b"CC"), 1));
        assert!(sink.raw(b"dd"));
        let WsSink {
            len,
            shared,
            shared_len,
            ..
        } = sink;
        assert_eq!((len, shared_len), (4, 5));
        let parts = gather(&buf[..len], &shared);
        let sent: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(sent, b"aaBBBCCdd");
        // The socket took 4 bytes: the other 5 wait, in order.
        spill_from(&mut spill, &parts, 4);
        assert_eq!(spill, b"BCCdd");
        drop(parts);
        // Nothing more is taken while something waits.
        let mut sink = WsSink::new(&mut buf, &mut spill);
        assert!(!sink.shared(Bytes::from_static(b"E"), 1));
        assert!(!sink.raw(b"e"));
    }

    #[test]
    fn one_write_takes_at_most_a_buffer_of_shared_and_copied_bytes_in_a_bounded_number_of_slices() {
        let mut buf = vec![0; 16];
        let mut spill = Vec::new();
        let mut sink = WsSink::new(&mut buf, &mut spill);
        assert!(sink.raw(b"0123456789"));
        assert!(
            !sink.shared(Bytes::from_static(b"abcdefg"), 1),
            "past the buffer"
        );
        assert!(sink.shared(Bytes::from_static(b"abcdef"), 2));
        assert!(!sink.raw(b"x"), "copies count the shared bytes too");
        // A frame larger than the buffer goes alone; a larger run does not.
        let mut sink = WsSink::new(&mut buf, &mut spill);
        assert!(!sink.shared(Bytes::from(vec![0; 17]), 2));
        assert!(sink.shared(Bytes::from(vec![0; 17]), 1));
        assert!(!sink.shared(Bytes::from_static(b"x"), 1));
        let mut buf = vec![0; 64];
        let mut sink = WsSink::new(&mut buf, &mut spill);
        for _ in 0..MAX_SHARED {
            assert!(sink.shared(Bytes::from_static(b"x"), 1));
        }
        assert!(!sink.shared(Bytes::from_static(b"x"), 1), "past the slices");
        assert!(sink.raw(b"y"), "copies still fit");
    }
}
