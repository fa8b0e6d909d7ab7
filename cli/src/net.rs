//! The connection: one task that owns the WebSocket, says `hello`, and
//! reconnects by itself.
//!
//! The rest of the client talks to it through two channels: [`ClientMsg`]
//! requests in, [`NetEvent`]s out. It remembers what a new connection needs
//! to pick up where the last one stopped: the name, the rooms and the last
//! `seq` seen in each (rejoined with `since`, so the server sends exactly
//! what was missed), and the `send`s not acknowledged yet (sent again with
//! the same `client_id`, which the server does not store twice).
//!
//! Reconnecting: exponential backoff with full jitter (a random delay
//! between zero and `base * 2^attempt`, capped), reset once a connection is
//! welcomed. A close code that says "do not reconnect" (1000, 4500–4999)
//! ends the task. A link silent for 2.5 heartbeat intervals counts as dead.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hubbub_protocol::{close, ClientMsg, ErrorCode, ServerMsg};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Most unacknowledged `send`s kept for sending again after a reconnect.
const MAX_UNACKED: usize = 500;
/// How long connecting and `hello` may take before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `quit` waits for the server to close.
const QUIT_GRACE: Duration = Duration::from_secs(2);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub name: String,
    /// Rooms to join once welcomed.
    pub rooms: Vec<String>,
    /// First reconnect delay bound; doubles per failed attempt.
    pub retry_base: Duration,
    /// Largest reconnect delay bound.
    pub retry_max: Duration,
}

/// What the connection tells the rest of the client.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// Connecting (attempt 1 is the first try after a loss).
    Connecting { attempt: u32 },
    /// Connected and welcomed.
    Connected,
    /// The connection was lost; the next try is after `retry_in`.
    Disconnected { why: String, retry_in: Duration },
    /// The connection ended for good (quit, or a close that says do not reconnect).
    Ended { why: String },
    /// A frame from the server.
    Server(ServerMsg),
}

/// How one connection ended.
enum Outcome {
    /// Try again (after a backoff).
    Lost(String),
    /// Stop for good.
    Done(String),
}

struct Net {
    opts: Options,
    /// Rooms to be in, with the last `seq` seen in each (0: none yet).
    rooms: BTreeMap<String, u64>,
    /// `send`s not acknowledged yet, oldest first.
    unacked: VecDeque<(String, ClientMsg)>,
    next_id: u64,
    welcomed_once: bool,
    events: mpsc::UnboundedSender<NetEvent>,
    rng: u64,
}

/// Runs the connection until the user quits or the server says not to
/// come back. Ends when `requests` closes, too.
pub async fn run(
    opts: Options,
    mut requests: mpsc::UnboundedReceiver<ClientMsg>,
    events: mpsc::UnboundedSender<NetEvent>,
) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id()).rotate_left(32);
    let mut net = Net {
        rooms: opts.rooms.iter().map(|r| (r.clone(), 0)).collect(),
        opts,
        unacked: VecDeque::new(),
        next_id: 1,
        welcomed_once: false,
        events,
        rng: seed | 1,
    };
    let mut attempt: u32 = 0;
    loop {
        net.emit(NetEvent::Connecting { attempt });
        let why = match net.connection(&mut requests, &mut attempt).await {
            Outcome::Done(why) => {
                net.emit(NetEvent::Ended { why });
                return;
            }
            Outcome::Lost(why) => why,
        };
        let retry_in = net.backoff(attempt);
        attempt = attempt.saturating_add(1);
        net.emit(NetEvent::Disconnected { why, retry_in });
        let until = Instant::now() + retry_in;
        // While waiting, requests still count: rooms to join, text to send.
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                request = requests.recv() => match request {
                    None | Some(ClientMsg::Quit) => {
                        net.emit(NetEvent::Ended { why: "bye".into() });
                        return;
                    }
                    Some(request) => {
                        net.track_request(request);
                    }
                },
            }
        }
    }
}

impl Net {
    fn emit(&self, event: NetEvent) {
        let _ = self.events.send(event);
    }

    /// Full jitter: uniform in [0, min(max, base * 2^attempt)].
    fn backoff(&mut self, attempt: u32) -> Duration {
        let bound = self
            .opts
            .retry_base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.opts.retry_max);
        // xorshift64: jitter needs spread, not cryptography.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        bound.mul_f64(fraction)
    }

    /// Records a request and returns what to send for it now (`None`: nothing,
    /// e.g. a `send` that waits for the next connection).
    fn track_request(&mut self, request: ClientMsg) -> Option<ClientMsg> {
        match request {
            ClientMsg::Hello { ref name } => self.opts.name = name.clone(),
            ClientMsg::Join { ref room, .. } => {
                let since = *self.rooms.entry(room.clone()).or_insert(0);
                return Some(ClientMsg::Join {
                    room: room.clone(),
                    since: (since > 0).then_some(since),
                });
            }
            ClientMsg::Leave { ref room } => {
                self.rooms.remove(room);
            }
            ClientMsg::Send {
                room,
                text,
                client_id,
            } => {
                let client_id = client_id.unwrap_or_else(|| {
                    self.next_id += 1;
                    format!("c-{}-{}", self.rng % 1_000_000, self.next_id)
                });
                let msg = ClientMsg::Send {
                    room,
                    text,
                    client_id: Some(client_id.clone()),
                };
                if self.unacked.len() >= MAX_UNACKED {
                    self.unacked.pop_front();
                }
                self.unacked.push_back((client_id, msg.clone()));
                return Some(msg);
            }
            _ => {}
        }
        Some(request)
    }

    /// Learns from a server frame what a reconnect needs.
    fn track_frame(&mut self, msg: &ServerMsg) {
        match msg {
            ServerMsg::Welcome { user, .. } => self.opts.name = user.clone(),
            ServerMsg::Renamed { room: None, to, .. } => self.opts.name = to.clone(),
            ServerMsg::Message { room, seq, .. } => self.saw(room, *seq),
            ServerMsg::History { room, messages, .. } => {
                if let Some(last) = messages.last() {
                    self.saw(room, last.seq);
                }
            }
            ServerMsg::Ack {
                client_id: Some(id),
                ..
            } => self.unacked.retain(|(c, _)| c != id),
            ServerMsg::Error {
                client_id: Some(id),
                ..
            } => self.unacked.retain(|(c, _)| c != id),
            ServerMsg::LeaveOk { room } => {
                self.rooms.remove(room);
            }
            ServerMsg::Error {
                code: ErrorCode::InvalidRoom | ErrorCode::TooManyRooms,
                room: Some(room),
                ..
            } => {
                self.rooms.remove(room);
            }
            _ => {}
        }
    }

    fn saw(&mut self, room: &str, seq: u64) {
        if let Some(last) = self.rooms.get_mut(room) {
            *last = (*last).max(seq);
        }
    }

    /// One connection, from connecting to its end.
    async fn connection(
        &mut self,
        requests: &mut mpsc::UnboundedReceiver<ClientMsg>,
        attempt: &mut u32,
    ) -> Outcome {
        let connect = tokio_tungstenite::connect_async(self.opts.url.as_str());
        let mut ws = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(err)) => return Outcome::Lost(format!("cannot connect: {err}")),
            Err(_) => return Outcome::Lost("cannot connect: timed out".into()),
        };
        let send = |msg: &ClientMsg| Message::text(serde_json::to_string(msg).expect("serializes"));
        if ws
            .send(send(&ClientMsg::Hello {
                name: self.opts.name.clone(),
            }))
            .await
            .is_err()
        {
            return Outcome::Lost("connection lost".into());
        }
        let mut welcomed = false;
        // Requests made before `welcome` wait for it, in order.
        let mut waiting: Vec<ClientMsg> = Vec::new();
        let mut silent_limit = CONNECT_TIMEOUT;
        let mut deadline = Instant::now() + silent_limit;
        loop {
            let outgoing: Vec<ClientMsg> = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    return Outcome::Lost("the server went silent".into());
                }
                request = requests.recv() => {
                    let Some(request) = request else {
                        let _ = ws.send(send(&ClientMsg::Quit)).await;
                        return Outcome::Done("bye".into());
                    };
                    if matches!(request, ClientMsg::Quit) && welcomed {
                        let _ = ws.send(send(&ClientMsg::Quit)).await;
                        let _ = tokio::time::timeout(QUIT_GRACE, async {
                            while let Some(Ok(_)) = ws.next().await {}
                        }).await;
                        return Outcome::Done("bye".into());
                    }
                    let hello = matches!(request, ClientMsg::Hello { .. });
                    let Some(request) = self.track_request(request) else { continue };
                    if welcomed || hello {
                        vec![request]
                    } else {
                        waiting.push(request);
                        Vec::new()
                    }
                }
                frame = ws.next() => {
                    deadline = Instant::now() + silent_limit;
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(frame))) => {
                            let (code, reason) = frame
                                .map(|f| (u16::from(f.code), f.reason.to_string()))
                                .unwrap_or((1005, String::new()));
                            let why = if reason.is_empty() {
                                format!("closed ({code})")
                            } else {
                                format!("{reason} ({code})")
                            };
                            return if close::should_reconnect(code) {
                                Outcome::Lost(why)
                            } else {
                                Outcome::Done(why)
                            };
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(err)) => return Outcome::Lost(format!("connection lost: {err}")),
                        None => return Outcome::Lost("connection lost".into()),
                    };
                    let Ok(msg) = serde_json::from_str::<ServerMsg>(&text) else {
                        continue; // a newer server's frame this client does not know
                    };
                    self.track_frame(&msg);
                    let mut outgoing = Vec::new();
                    match &msg {
                        ServerMsg::Welcome { heartbeat_ms, .. } => {
                            welcomed = true;
                            self.welcomed_once = true;
                            *attempt = 0;
                            silent_limit = Duration::from_millis(heartbeat_ms.saturating_mul(5) / 2)
                                .max(Duration::from_secs(1));
                            deadline = Instant::now() + silent_limit;
                            self.emit(NetEvent::Connected);
                            // Rejoin, resend what was not acknowledged, then what waited.
                            for (room, since) in &self.rooms {
                                outgoing.push(ClientMsg::Join {
                                    room: room.clone(),
                                    since: (*since > 0).then_some(*since),
                                });
                            }
                            outgoing.extend(self.unacked.iter().map(|(_, m)| m.clone()));
                            for request in waiting.drain(..) {
                                // Joins, leaves and sends are in `rooms` and `unacked` already.
                                if !matches!(
                                    request,
                                    ClientMsg::Join { .. } | ClientMsg::Leave { .. } | ClientMsg::Send { .. }
                                ) {
                                    outgoing.push(request);
                                }
                            }
                        }
                        ServerMsg::Error {
                            code: ErrorCode::NameTaken | ErrorCode::InvalidName,
                            ..
                        } if !welcomed => {
                            if self.welcomed_once {
                                // Our old connection may not be gone yet: try again later.
                                return Outcome::Lost("the name is not free yet".into());
                            }
                            if waiting.iter().any(|r| matches!(r, ClientMsg::Quit)) {
                                return Outcome::Done("bye".into());
                            }
                        }
                        _ => {}
                    }
                    self.emit(NetEvent::Server(msg));
                    outgoing
                }
            };
            for msg in outgoing {
                let quit = matches!(msg, ClientMsg::Quit);
                if ws.send(send(&msg)).await.is_err() {
                    return Outcome::Lost("connection lost".into());
                }
                if quit {
                    let _ = tokio::time::timeout(QUIT_GRACE, async {
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    return Outcome::Done("bye".into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_under_a_growing_cap() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut net = Net {
            opts: Options {
                url: String::new(),
                name: "a".into(),
                rooms: vec![],
                retry_base: Duration::from_millis(100),
                retry_max: Duration::from_secs(2),
            },
            rooms: BTreeMap::new(),
            unacked: VecDeque::new(),
            next_id: 0,
            welcomed_once: false,
            events: tx,
            rng: 0x9E37_79B9_7F4A_7C15,
        };
        for attempt in 0..40 {
            let bound =
                Duration::from_millis(100 * (1u64 << attempt.min(20))).min(Duration::from_secs(2));
            let delays: Vec<Duration> = (0..50).map(|_| net.backoff(attempt)).collect();
            assert!(delays.iter().all(|d| *d <= bound), "{attempt}: {delays:?}");
            assert!(delays.iter().any(|d| *d < bound / 2), "jittered");
        }
    }
}
