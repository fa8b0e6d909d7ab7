//! One WebSocket connection: a reader loop (this task) that decodes and
//! handles requests, and a writer task that drains the connection's
//! [`Outbox`](crate::outbox::Outbox) into the socket.
//!
//! The reader owns the session: the user's name and the rooms it joined.
//! Whatever ends the connection (the peer closing, `quit`, a bad frame, the
//! idle sweep, a slow-consumer overflow, shutdown), the reader runs
//! [`Hub::disconnect`] exactly once, so offline notices go out exactly once.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use hubbub_protocol::{
    close, decode_client, names, ClientMsg, ErrorCode, ServerMsg, PROTOCOL_VERSION,
};
use tokio_util::sync::CancellationToken;

use crate::hub::{now_ms, Conn, Hub};
use crate::outbox::{Close, Outbox};

/// How long the writer may take to send a close frame to a peer that is not reading.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Serves one upgraded WebSocket until it closes.
pub async fn run(hub: Arc<Hub>, socket: WebSocket) {
    let _task = hub.tasks.token();
    let conn = hub.connect();
    if hub.shutdown.is_cancelled() {
        conn.outbox.close_after_drain(Close {
            code: close::GOING_AWAY,
            reason: "server shutting down",
        });
    }
    let (sink, mut stream) = socket.split();
    let done = CancellationToken::new();
    let writer = tokio::spawn(write_loop(sink, Arc::clone(&conn), done.clone()));
    let mut session = Session {
        hub: Arc::clone(&hub),
        conn: Arc::clone(&conn),
        name: None,
        rooms: HashSet::new(),
        bucket: TokenBucket::new(hub.config.rate, hub.config.burst),
    };

    loop {
        let frame = tokio::select! {
            _ = done.cancelled() => break,
            frame = stream.next() => frame,
        };
        let Some(frame) = frame else { break };
        hub.touch(&conn);
        match frame {
            Ok(Message::Text(text)) => {
                if session.check_rate() {
                    session.handle(&text);
                }
            }
            Ok(Message::Binary(_)) => {
                if session.check_rate() {
                    session.reply_error(
                        ErrorCode::BinaryUnsupported,
                        "binary frames are not supported; send JSON text",
                    );
                }
            }
            // Pings are answered by the WebSocket layer; a close is answered
            // there too, and the stream ends on the next read.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => {}
            Err(err) => {
                session.read_failed(err);
                break;
            }
        }
        if conn.outbox.is_closing() {
            break;
        }
    }

    hub.disconnect(&conn, session.name.as_deref(), &session.rooms);
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

/// Writes what the outbox hands out, one flush per batch, until a close.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    conn: Arc<Conn>,
    done: CancellationToken,
) {
    let outbox: &Outbox = &conn.outbox;
    let mut frames = VecDeque::new();
    loop {
        let batch = outbox.take(&mut frames).await;
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

/// Requests per second a connection may sustain, with a burst allowance.
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
    /// Requests refused in a row; the flood is cut off past a bound.
    refused: u32,
}

impl TokenBucket {
    fn new(rate: f64, burst: u32) -> TokenBucket {
        let capacity = f64::from(burst.max(1));
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
            refused: 0,
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

struct Session {
    hub: Arc<Hub>,
    conn: Arc<Conn>,
    /// Set by `hello`.
    name: Option<String>,
    /// Rooms this connection is a member of.
    rooms: HashSet<String>,
    bucket: TokenBucket,
}

impl Session {
    /// Applies the rate limit: the first refused request of a run gets
    /// `rate_limited`; a flood that goes on for another burst is closed with 1008.
    fn check_rate(&mut self) -> bool {
        if self.bucket.take() {
            return true;
        }
        let refused = self.bucket.refused;
        if refused == 1 {
            tracing::info!(conn = self.conn.id, "rate limited");
            self.reply_error(ErrorCode::RateLimited, "slow down: too many requests");
        } else if f64::from(refused) > self.bucket.capacity {
            tracing::info!(conn = self.conn.id, "closing a flooding connection");
            self.conn.outbox.close_after_drain(Close {
                code: close::POLICY,
                reason: "flood",
            });
        }
        false
    }

    fn reply_error(&self, code: ErrorCode, message: impl Into<String>) {
        self.conn.send(&ServerMsg::error(code, message));
    }

    fn reply_error_for(
        &self,
        code: ErrorCode,
        message: String,
        room: Option<&str>,
        client_id: Option<String>,
    ) {
        self.conn.send(&ServerMsg::Error {
            code,
            message,
            client_id,
            room: room.map(String::from),
        });
    }

    /// Closes the connection for a read error that has its own close code.
    fn read_failed(&self, err: axum::Error) {
        let inner = err.into_inner();
        let (code, reason) = match inner.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => (close::TOO_BIG, "message too big"),
            Some(tungstenite::Error::Utf8(_)) => (close::INVALID_PAYLOAD, "invalid UTF-8"),
            _ => {
                tracing::debug!(conn = self.conn.id, error = %inner, "read failed");
                return;
            }
        };
        tracing::info!(conn = self.conn.id, error = %inner, code, "closing on a bad frame");
        self.conn.outbox.close_now(Close { code, reason });
    }

    fn handle(&mut self, text: &str) {
        let msg = match decode_client(text) {
            Ok(msg) => msg,
            Err(err) => {
                tracing::info!(conn = self.conn.id, code = %err.code(), "bad request");
                self.reply_error(err.code(), err.to_string());
                return;
            }
        };
        let Some(name) = self.name.clone() else {
            return self.hello(msg);
        };
        match msg {
            ClientMsg::Hello { .. } => self.reply_error(
                ErrorCode::AlreadyHello,
                format!("already said hello as {name:?}"),
            ),
            ClientMsg::Join { room } => self.join(room, &name),
            ClientMsg::Leave { room } => {
                if self.rooms.remove(&room) {
                    self.hub.leave(&room, self.conn.id);
                    self.conn.send(&ServerMsg::Left {
                        room,
                        users: vec![name],
                    });
                } else {
                    self.not_in_room(&room, None);
                }
            }
            ClientMsg::Send {
                room,
                text,
                client_id,
            } => {
                if !self.rooms.contains(&room) {
                    return self.not_in_room(&room, client_id);
                }
                if let Err((code, why)) = self.check_text(&text) {
                    return self.reply_error_for(code, why, Some(&room), client_id);
                }
                if let Some(seq) = self.hub.say(&room, &name, text) {
                    self.conn.send(&ServerMsg::Ack {
                        client_id,
                        room: Some(room),
                        seq: Some(seq),
                    });
                }
            }
            ClientMsg::Direct {
                to,
                text,
                client_id,
            } => {
                if let Err((code, why)) = self
                    .check_text(&text)
                    .and_then(|()| self.hub.direct(&self.conn, &name, &to, text))
                {
                    return self.reply_error_for(code, why, None, client_id);
                }
                self.conn.send(&ServerMsg::Ack {
                    client_id,
                    room: None,
                    seq: None,
                });
            }
            ClientMsg::Rename { name: new } => {
                match self.hub.rename(&self.conn, &name, &new, &self.rooms) {
                    Ok(()) => {
                        self.conn.send(&ServerMsg::Renamed {
                            room: None,
                            from: name,
                            to: new.clone(),
                        });
                        self.name = Some(new);
                    }
                    Err((code, why)) => self.reply_error(code, why),
                }
            }
            ClientMsg::Who { room } => {
                if let Err(why) = names::validate_room(&room) {
                    return self.reply_error_for(ErrorCode::InvalidRoom, why, Some(&room), None);
                }
                let users = self.hub.who(&room);
                self.conn.send(&ServerMsg::Presence { room, users });
            }
            ClientMsg::Rooms => self.conn.send(&ServerMsg::Rooms {
                rooms: self.hub.rooms(),
            }),
            ClientMsg::Typing { room } => {
                if self.rooms.contains(&room) {
                    self.hub.typing(&room, self.conn.id, &name);
                } else {
                    self.not_in_room(&room, None);
                }
            }
            ClientMsg::Ping { id } => self.conn.send(&ServerMsg::Pong { id }),
            ClientMsg::Quit => self.conn.outbox.close_after_drain(Close {
                code: close::NORMAL,
                reason: "bye",
            }),
        }
    }

    /// Handles the first request, which must be `hello` (or `ping`/`quit`).
    fn hello(&mut self, msg: ClientMsg) {
        match msg {
            ClientMsg::Hello { name } => match self.hub.claim_name(&name, &self.conn) {
                Ok(()) => {
                    let config = &self.hub.config;
                    self.conn.send(&ServerMsg::Welcome {
                        user: name.clone(),
                        protocol: PROTOCOL_VERSION,
                        heartbeat_ms: config.heartbeat.as_millis() as u64,
                        idle_timeout_ms: config.idle_timeout.as_millis() as u64,
                        server_time: now_ms(),
                        limits: config.limits(),
                    });
                    tracing::debug!(conn = self.conn.id, user = %name, "hello");
                    self.name = Some(name);
                }
                Err((code, why)) => self.reply_error(code, why),
            },
            ClientMsg::Ping { id } => self.conn.send(&ServerMsg::Pong { id }),
            ClientMsg::Quit => self.conn.outbox.close_after_drain(Close {
                code: close::NORMAL,
                reason: "bye",
            }),
            _ => self.reply_error(
                ErrorCode::HelloRequired,
                "say hello first: {\"type\":\"hello\",\"name\":\"...\"}",
            ),
        }
    }

    fn join(&mut self, room: String, name: &str) {
        if let Err(why) = names::validate_room(&room) {
            return self.reply_error_for(ErrorCode::InvalidRoom, why, Some(&room), None);
        }
        if !self.rooms.contains(&room) && self.rooms.len() >= self.hub.config.max_rooms {
            let why = format!(
                "a connection may be in at most {} rooms",
                self.hub.config.max_rooms
            );
            return self.reply_error_for(ErrorCode::TooManyRooms, why, Some(&room), None);
        }
        self.hub.join(&room, &self.conn, name);
        self.rooms.insert(room);
    }

    fn not_in_room(&self, room: &str, client_id: Option<String>) {
        self.reply_error_for(
            ErrorCode::NotInRoom,
            format!("join {room:?} first"),
            Some(room),
            client_id,
        );
    }

    fn check_text(&self, text: &str) -> Result<(), (ErrorCode, String)> {
        let max = self.hub.config.max_text_bytes;
        if text.trim().is_empty() {
            Err((ErrorCode::EmptyText, "the message is empty".into()))
        } else if text.len() > max {
            Err((
                ErrorCode::TextTooLong,
                format!("the message is longer than {max} bytes"),
            ))
        } else {
            Ok(())
        }
    }
}
