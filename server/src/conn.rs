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
//! - **Writing** takes everything queued in the connection's
//!   [`Outbox`](crate::outbox::Outbox) (shared, serialize-once payloads),
//!   and copies header + payload of as many frames as fit into a per-thread
//!   scratch buffer for one `write`. A partly written frame stays queued with
//!   how much of it went out. A connection that just wrote defers further
//!   wake-ups to the hub's flush tick ([`Flusher`](crate::outbox::Flusher),
//!   every `write_coalesce`), so a busy connection costs one wake-up and one
//!   write per tick, not one per message; a quiet one writes at once.
//! - **Closing**: whatever ends the connection (the peer's close, `quit`, a
//!   bad frame, the idle sweep, a slow-consumer overflow, shutdown), the
//!   session ends exactly once, as soon as the close begins, so offline
//!   notices go out exactly once and promptly. Our close frame follows what
//!   was queued (or, for an abort, only the frame being written), then we
//!   wait a moment for the peer's answer before closing the socket.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::hub::{Account, Conn, Hub, IpSlot};
use crate::outbox::{Close, Frame};
use crate::session::Session;
use crate::ws::{self, FrameError, OpCode, Upgraded};
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

/// Most bytes of pongs waiting to be written: each ping read before the
/// next write gets its own pong (as Autobahn case 2.10 checks); past this,
/// only the latest is answered (as RFC 6455 allows), so a ping flood
/// cannot grow the queue.
const MAX_PONG_BYTES: usize = 4096;

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
        io,
        session: Some(handler),
        request: None,
        inbuf: Vec::new(),
        fragments: None,
        out: VecDeque::new(),
        written: 0,
        pong: None,
        timer: None,
        phase: Phase::Open,
        peer_closed: false,
        _task: task,
        _slot: slot,
    }
}

/// A request that may wait (for the store); it hands the handler back.
pub type Request<H> = Pin<Box<dyn Future<Output = H> + Send>>;

/// The bytes of a frame on the wire: its header (made on the fly for a
/// message; empty for a control frame, which carries its own) and payload.
fn wire_parts<'a>(frame: &'a Frame, header: &mut [u8; ws::MAX_SERVER_HEADER]) -> (usize, &'a [u8]) {
    match frame {
        Frame::Text(text) => (
            ws::encode_header(OpCode::Text, text.len(), header),
            text.as_bytes(),
        ),
        Frame::Binary(data) => (ws::encode_header(OpCode::Binary, data.len(), header), data),
        Frame::Raw(raw) => (0, raw),
    }
}

fn wire_len(frame: &Frame) -> usize {
    match frame {
        Frame::Text(text) => ws::header_len(text.len()) + text.len(),
        Frame::Binary(data) => ws::header_len(data.len()) + data.len(),
        Frame::Raw(raw) => raw.len(),
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
    io: Upgraded,
    /// The message handler (the chat session); `None` while a request is
    /// in flight (it owns the handler).
    session: Option<H>,
    request: Option<Request<H>>,
    /// Bytes read but not handled yet; empty (unallocated) when idle.
    inbuf: Vec<u8>,
    /// A fragmented message being assembled: its opcode, its bytes so far,
    /// and how many of them are known to be UTF-8 (text is checked as each
    /// fragment arrives, so a bad one fails at once, not at the end).
    fragments: Option<Box<(OpCode, Vec<u8>, usize)>>,
    /// Frames to write; empty (unallocated) when idle.
    out: VecDeque<Frame>,
    /// Bytes of the first frame of `out` already written.
    written: usize,
    /// Pong frames (back to back) answering the peer's pings, not yet
    /// queued; at most [`MAX_PONG_BYTES`].
    pong: Option<Bytes>,
    /// The close deadline; only while closing.
    timer: Option<Pin<Box<Sleep>>>,
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
                    if let Some(request) = this.request.as_mut() {
                        let session = std::task::ready!(request.as_mut().poll(cx));
                        this.request = None;
                        this.session = Some(session);
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
                        this.timer = None;
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
        if let Some(request) = self.request.as_mut() {
            if let Poll::Ready(session) = request.as_mut().poll(cx) {
                self.request = None;
                self.session = Some(session);
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
        if let Some(session) = self.session.take() {
            session.end();
        }
    }

    /// Sets the timer to fire `after` from now.
    fn set_timer(&mut self, after: Duration) {
        let deadline = Instant::now() + after;
        match self.timer.as_mut() {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    /// Whether the timer has fired (if not, `cx` is woken when it does).
    fn timer_fired(&mut self, cx: &mut Context<'_>) -> bool {
        match self.timer.as_mut() {
            Some(timer) => timer.as_mut().poll(cx).is_ready(),
            None => true,
        }
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
            if self.request.is_some() || done {
                return Step::Blocked;
            }
            if !self.inbuf.is_empty() {
                let mut buf = std::mem::take(&mut self.inbuf);
                let used = match self.handle_bytes(cx, &mut buf) {
                    Ok(used) => used,
                    Err(end) => return end,
                };
                buf.drain(..used);
                if !buf.is_empty() {
                    self.inbuf = buf;
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
                self.hub.touch(&self.conn);
                if self.inbuf.is_empty() {
                    // The common case: handle the frames where they landed and
                    // keep only what is left over.
                    let used = self.handle_bytes(cx, &mut scratch[..n])?;
                    self.inbuf.extend_from_slice(&scratch[used..n]);
                } else {
                    self.inbuf.extend_from_slice(&scratch[..n]);
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
        while self.request.is_none() {
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
        self.inbuf = Vec::new();
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
                if self.phase == Phase::Open {
                    let pong = ws::control_frame(OpCode::Pong, payload);
                    self.pong = Some(match self.pong.take() {
                        Some(earlier) if earlier.len() + pong.len() <= MAX_PONG_BYTES => {
                            [earlier, pong].concat().into()
                        }
                        _ => pong,
                    });
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
        let Some(mut session) = self.session.take() else {
            return Ok(());
        };
        let Some(text) = text else {
            session.on_binary(payload);
            self.session = Some(session);
            return Ok(());
        };
        let mut request = session.on_text(text.to_owned());
        match request.as_mut().poll(cx) {
            Poll::Ready(session) => self.session = Some(session),
            Poll::Pending => self.request = Some(request),
        }
        Ok(())
    }

    // ---- writing ----

    /// Writes what is queued until the socket is full or nothing is left;
    /// sends the close frame when a close was asked for.
    fn write(&mut self, cx: &mut Context<'_>) -> Step {
        loop {
            // Take more only once what was taken is written: while the
            // socket is full, frames wait in the outbox, where its byte
            // limit catches a slow consumer. An abort is taken at once.
            let aborted = self.phase == Phase::Open && self.conn.outbox.is_aborted();
            if self.phase == Phase::Open && (self.out.is_empty() || aborted) {
                match self.conn.outbox.poll_take(cx, &mut self.out) {
                    Poll::Ready(batch) => {
                        if batch.ping {
                            self.out.push_back(Frame::Raw(Bytes::from_static(&PING)));
                        }
                        if let Some(close) = batch.close {
                            self.begin_close(close);
                        }
                    }
                    Poll::Pending if self.out.is_empty() && self.pong.is_none() => {
                        // Idle: hold nothing while waiting.
                        self.out = VecDeque::new();
                        self.conn.outbox.release();
                        return Step::Blocked;
                    }
                    Poll::Pending => {}
                }
            }
            if let Some(pong) = self.pong.take() {
                // Between frames: after the one being written, if any.
                let at = usize::from(self.written > 0).min(self.out.len());
                self.out.insert(at, Frame::Raw(pong));
            }
            if self.out.is_empty() {
                return match self.phase {
                    Phase::Closing => self.close_sent(cx),
                    _ => Step::Blocked,
                };
            }
            let wrote = WRITE_SCRATCH.with_borrow_mut(|scratch| {
                let len = fill(&self.out, self.written, scratch);
                Pin::new(&mut self.io).poll_write(cx, &scratch[..len])
            });
            match wrote {
                Poll::Pending => {
                    // Woken by the socket, or by an abort (overflow, idle).
                    self.conn.outbox.register(cx.waker());
                    return Step::Blocked;
                }
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Step::Ended(false),
                Poll::Ready(Ok(n)) => advance(&mut self.out, &mut self.written, n),
            }
            if self.out.is_empty() {
                // TLS keeps records until flushed; plain TCP returns at once.
                match Pin::new(&mut self.io).poll_flush(cx) {
                    Poll::Pending => return Step::Blocked,
                    Poll::Ready(Err(_)) => return Step::Ended(false),
                    Poll::Ready(Ok(())) => {}
                }
                if self.phase == Phase::Open && !self.hub.config.write_coalesce.is_zero() {
                    // Coalesce: what arrives next waits for the flush tick.
                    self.hub.flusher.add(&self.conn);
                    self.conn.outbox.register(cx.waker());
                    return Step::Blocked;
                }
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
    /// what is queued, or, for an abort, after the frame being written.
    fn begin_close(&mut self, close: Close) {
        let aborted = self.conn.outbox.is_aborted();
        if aborted {
            let keep = usize::from(self.written > 0);
            self.out.truncate(keep);
        }
        self.out
            .push_back(Frame::Raw(ws::close_frame(close.code, close.reason)));
        self.phase = Phase::Closing;
        self.set_timer(if aborted { CLOSE_GRACE } else { DRAIN_GRACE });
        self.pong = None;
        self.fragments = None;
        if self.request.is_none() {
            self.end_session();
        }
    }
}

/// Copies as much of the frames in `out` as fits into `buf`, starting
/// `written` bytes into the first (where the last write stopped); returns
/// how many bytes it copied.
fn fill(out: &VecDeque<Frame>, written: usize, buf: &mut [u8]) -> usize {
    let mut len = 0;
    let mut skip = written;
    let mut header = [0; ws::MAX_SERVER_HEADER];
    for frame in out {
        let (header_len, payload) = wire_parts(frame, &mut header);
        for part in [&header[..header_len], payload] {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            let part = &part[skip..];
            skip = 0;
            let n = part.len().min(buf.len() - len);
            buf[len..len + n].copy_from_slice(&part[..n]);
            len += n;
            if len == buf.len() {
                return len;
            }
        }
    }
    len
}

/// Drops the frames that `n` more written bytes completed, and moves
/// `written` along the first of the rest.
fn advance(out: &mut VecDeque<Frame>, written: &mut usize, mut n: usize) {
    while n > 0 {
        let Some(front) = out.front() else { break };
        let left = wire_len(front) - *written;
        if n < left {
            *written += n;
            return;
        }
        n -= left;
        *written = 0;
        out.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::Utf8Bytes;

    /// Writes `frames` through writes of the given sizes (cycled), as a
    /// socket that takes a little at a time would.
    fn write_in_pieces(frames: &[Frame], sizes: &[usize], scratch: usize) -> Vec<u8> {
        let mut out: VecDeque<Frame> = frames.iter().cloned().collect();
        let mut written = 0;
        let mut wire = Vec::new();
        let mut buf = vec![0; scratch];
        for size in sizes.iter().cycle() {
            if out.is_empty() {
                break;
            }
            let len = fill(&out, written, &mut buf);
            let n = len.min(*size);
            wire.extend_from_slice(&buf[..n]);
            advance(&mut out, &mut written, n);
        }
        wire
    }

    #[test]
    fn partial_writes_put_every_frame_on_the_wire_whole_and_in_order() {
        let text = |s: String| Frame::Text(Utf8Bytes::from(s));
        let frames = vec![
            text("a".into()),
            Frame::Raw(Bytes::from_static(&PING)),
            text("b".repeat(300)),
            text(String::new()),
            text("c".repeat(70_000)),
            Frame::Raw(ws::close_frame(1000, "bye")),
        ];
        let mut expected = Vec::new();
        let mut header = [0; ws::MAX_SERVER_HEADER];
        for frame in &frames {
            let (len, payload) = wire_parts(frame, &mut header);
            expected.extend_from_slice(&header[..len]);
            expected.extend_from_slice(payload);
        }
        for sizes in [&[usize::MAX][..], &[1], &[3, 7, 1000], &[65_536, 2]] {
            for scratch in [16, 1024, SCRATCH] {
                let wire = write_in_pieces(&frames, sizes, scratch);
                assert!(wire == expected, "writes of {sizes:?}, scratch {scratch}");
            }
        }
    }
}
