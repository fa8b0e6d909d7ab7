//! One WebSocket connection: a reader loop (this task) that feeds frames to
//! the [`Session`], and a writer task that drains the connection's
//! [`Outbox`](crate::outbox::Outbox) into the socket.
//!
//! Whatever ends the connection (the peer closing, `quit`, a bad frame, the
//! idle sweep, a slow-consumer overflow, shutdown), the reader ends the
//! session exactly once, so offline notices go out exactly once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hubbub_protocol::close;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::hub::{Account, Conn, Hub, IpSlot};
use crate::outbox::Close;
use crate::session::Session;

/// How long the writer may take to send a close frame, and how long we wait
/// for the peer's answer to it.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Serves one upgraded WebSocket until it closes.
pub async fn run(hub: Arc<Hub>, socket: WebSocket, account: Option<Account>, _slot: IpSlot) {
    let _task = hub.tasks.token();
    let conn = hub.connect_as(account);
    let (sink, mut stream) = socket.split();
    let done = CancellationToken::new();
    let writer = tokio::spawn(write_loop(
        sink,
        Arc::clone(&conn),
        hub.config.write_coalesce,
        done.clone(),
    ));
    let mut session = Session::new(Arc::clone(&hub), Arc::clone(&conn));

    loop {
        let frame = tokio::select! {
            _ = done.cancelled() => break,
            frame = stream.next() => frame,
        };
        let Some(frame) = frame else { break };
        hub.touch(&conn);
        match frame {
            Ok(Message::Text(text)) => session.on_text(&text).await,
            Ok(Message::Binary(_)) => session.on_binary(),
            // Pings are answered by the WebSocket layer; a close is answered
            // there too, and the stream ends on the next read.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => {}
            Err(err) => {
                read_failed(&conn, err);
                break;
            }
        }
        if conn.outbox.is_closing() {
            break;
        }
    }

    session.end();
    conn.outbox.close_after_drain(Close {
        code: close::NORMAL,
        reason: "",
    });
    let _ = writer.await;
    // The closing handshake: give the peer a moment to read what was sent
    // and answer our close frame, rather than resetting the connection
    // under data it has not read yet.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

/// Closes the connection for a read error that has its own close code.
fn read_failed(conn: &Conn, err: axum::Error) {
    let inner = err.into_inner();
    let (code, reason) = match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => (close::TOO_BIG, "message too big"),
        Some(tungstenite::Error::Utf8(_)) => (close::INVALID_PAYLOAD, "invalid UTF-8"),
        _ => {
            tracing::debug!(conn = conn.id, error = %inner, "read failed");
            return;
        }
    };
    tracing::info!(conn = conn.id, error = %inner, code, "closing on a bad frame");
    conn.outbox.close_now(Close { code, reason });
}

/// Writes what the outbox hands out, one flush per batch, until a close.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    conn: Arc<Conn>,
    coalesce: Duration,
    done: CancellationToken,
) {
    let outbox = &conn.outbox;
    let mut frames = VecDeque::new();
    // When this connection last wrote frames.
    let mut last_write: Option<Instant> = None;
    loop {
        let mut batch = outbox.take(&mut frames).await;
        // Write coalescing: a connection that wrote less than `coalesce` ago
        // is under sustained traffic; let what follows gather until then and
        // write it all at once, so a busy connection costs one write per
        // `coalesce` rather than one per message (the kernel's send path is
        // most of the cost of a delivery). A quiet connection writes at once.
        if let Some(until) = last_write.map(|at| at + coalesce) {
            if batch.close.is_none() && Instant::now() < until {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = outbox.aborted() => {}
                }
                if let Some(more) = outbox.take_now(&mut frames) {
                    batch.ping |= more.ping;
                    batch.close = more.close;
                }
            }
        }
        let wrote = !frames.is_empty();
        let write = async {
            for frame in frames.drain(..) {
                sink.feed(Message::Text(frame)).await?;
            }
            if batch.ping {
                sink.feed(Message::Ping(Default::default())).await?;
            }
            sink.flush().await
        };
        let close = tokio::select! {
            result = write => match result {
                Ok(()) => batch.close,
                Err(_) => break,
            },
            // Closing without draining: the reason is in the outbox.
            _ = outbox.aborted() => outbox.close_reason(),
        };
        frames.clear();
        if wrote && !coalesce.is_zero() {
            last_write = Some(Instant::now());
        }
        if let Some(close) = close {
            let frame = CloseFrame {
                code: close.code,
                reason: Utf8Bytes::from_static(close.reason),
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
            break;
        }
    }
    done.cancel();
}
