//! One simulated client: a tokio task owning one WebSocket.
//!
//! It connects (from `127.0.0.x` so that large runs do not run out of
//! ephemeral ports), says `hello`, waits for the join phase, joins its room,
//! then reads until told to stop. A sender also sends on a fixed clock (open
//! loop): message `k` of sender `j` is due at `start + offset_j + k * period`
//! whether or not earlier ones were answered, and its text carries that due
//! time, so a server that falls behind shows up as latency rather than
//! slowing the load (no coordinated omission).
//!
//! Frames are classified by scanning, not by full JSON decoding, so that the
//! bench spends its core on reading sockets rather than on serde; the per
//! connection state is the socket, a 4 KiB read buffer and a few counters.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio::sync::{watch, Semaphore};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::stats::{record_latency, Shared};

/// Connections per source address (127.0.0.1, then .2, …): well under the
/// ~28,000 ephemeral ports Linux offers per address pair.
const CLIENTS_PER_SOURCE: usize = 20_000;

/// How long one client may take to connect and be welcomed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the run is doing now; every client watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Join,
    /// Senders send from `start` until `end`.
    Load {
        start: Instant,
        end: Instant,
    },
    Stop,
}

/// What every client needs to know about the run.
pub struct Plan {
    pub addr: SocketAddr,
    pub clients: usize,
    pub rooms: usize,
    pub senders: usize,
    /// Time between two messages of one sender.
    pub period: Duration,
    /// Filler appended to each message text.
    pub pad: String,
    pub name_prefix: String,
}

impl Plan {
    /// Clients in room `k` (client `i` joins room `i % rooms`).
    pub fn room_size(&self, k: usize) -> usize {
        (self.clients + self.rooms - 1 - k) / self.rooms
    }

    /// Senders in room `k` (sender `s` is client `s`).
    fn senders_in_room(&self, k: usize) -> usize {
        if k >= self.senders {
            0
        } else {
            (self.senders + self.rooms - 1 - k) / self.rooms
        }
    }
}

type Ws = WebSocketStream<tokio::net::TcpStream>;

/// Runs client `i` until the phase is `Stop` or the server closes it.
pub async fn run(
    i: usize,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    gate: Arc<Semaphore>,
) {
    let ws = {
        let _permit = gate.acquire().await;
        match tokio::time::timeout(CONNECT_TIMEOUT, connect(i, &plan)).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(err)) => {
                if shared.connect_failed.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("client {i}: {err}");
                }
                return;
            }
            Err(_) => {
                shared.connect_failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    };
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let mut client = Client::new(i, &plan, ws);
    if phase
        .wait_for(|p| *p != Phase::Connect)
        .await
        .map_or(true, |p| *p == Phase::Stop)
    {
        return;
    }
    let join = format!(r#"{{"type":"join","room":"r{}"}}"#, client.room);
    if client.ws.send(Message::text(join)).await.is_err() {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    client.serve(&plan, &shared, &mut phase).await;
}

/// Connects from 127.0.0.(1 + i / 20000) and says hello.
async fn connect(i: usize, plan: &Plan) -> Result<Ws, String> {
    let socket = match plan.addr {
        SocketAddr::V4(_) => {
            let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
            let last = 1 + i / CLIENTS_PER_SOURCE;
            let source = Ipv4Addr::new(127, 0, 0, last.min(254) as u8);
            socket
                .bind(SocketAddr::new(IpAddr::V4(source), 0))
                .map_err(|e| format!("bind {source}: {e}"))?;
            socket
        }
        SocketAddr::V6(_) => TcpSocket::new_v6().map_err(|e| format!("socket: {e}"))?,
    };
    let stream = socket
        .connect(plan.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", plan.addr))?;
    let _ = stream.set_nodelay(true);
    // Small buffers: 10,000 clients must fit in the bench too.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20));
    let url = format!("ws://{}/ws", plan.addr);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let hello = format!(r#"{{"type":"hello","name":"{}{i}"}}"#, plan.name_prefix);
    ws.send(Message::text(hello))
        .await
        .map_err(|e| format!("hello: {e}"))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => match kind(&text) {
                "welcome" => return Ok(ws),
                "error" => return Err(format!("hello refused: {}", text.as_str())),
                _ => {}
            },
            Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}")),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("read: {e}")),
            None => return Err("closed before welcome".into()),
        }
    }
}

struct Client {
    i: usize,
    room: usize,
    ws: Ws,
    /// Members of the room this client knows are online.
    known: usize,
    /// Members it should end up knowing.
    room_size: usize,
    converged: bool,
    /// Last seq seen from each sender of the room (by the sender's index in
    /// the room), for duplicate and gap accounting.
    last: Box<[u32]>,
}

impl Client {
    fn new(i: usize, plan: &Plan, ws: Ws) -> Client {
        let room = i % plan.rooms;
        Client {
            i,
            room,
            ws,
            known: 0,
            room_size: plan.room_size(room),
            converged: false,
            last: vec![0; plan.senders_in_room(room)].into_boxed_slice(),
        }
    }

    async fn serve(&mut self, plan: &Plan, shared: &Shared, phase: &mut watch::Receiver<Phase>) {
        let sender = self.i < plan.senders;
        let mut ticker: Option<(tokio::time::Interval, Instant)> = None;
        let mut seq: u32 = 0;
        loop {
            let tick = async {
                match ticker.as_mut() {
                    Some((interval, _)) => interval.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = phase.changed() => {
                    let now = *phase.borrow_and_update();
                    match (changed, now) {
                        (Err(_), _) | (_, Phase::Stop) => return,
                        (_, Phase::Load { start, end }) if sender => {
                            // Stagger the senders evenly over one period.
                            let offset = plan.period.mul_f64(self.i as f64 / plan.senders as f64);
                            let mut interval = tokio::time::interval_at((start + offset).into(), plan.period);
                            interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
                            ticker = Some((interval, end));
                        }
                        _ => {}
                    }
                }
                due = tick => {
                    let end = ticker.as_ref().map(|(_, end)| *end).unwrap_or(due.into_std());
                    if due.into_std() >= end {
                        ticker = None;
                        continue;
                    }
                    seq += 1;
                    let due_us = due.into_std().saturating_duration_since(shared.base).as_micros() as u64;
                    let text = format!(
                        r#"{{"type":"send","room":"r{}","text":"{} {} {} {}"}}"#,
                        self.room, self.i, seq, due_us, plan.pad
                    );
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    shared.sent_per_room[self.room].fetch_add(1, Ordering::Relaxed);
                    if self.ws.send(Message::text(text)).await.is_err() {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                frame = self.ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.on_text(&text, plan, shared),
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                        *shared.closes.lock().entry(code).or_default() += 1;
                        return;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                },
            }
        }
    }

    fn on_text(&mut self, text: &str, plan: &Plan, shared: &Shared) {
        match kind(text) {
            "message" => self.on_message(text, plan, shared),
            "ack" => {
                shared.acks.fetch_add(1, Ordering::Relaxed);
            }
            "heartbeat" => {
                shared.heartbeats.fetch_add(1, Ordering::Relaxed);
            }
            "presence" => {
                // The answer to our join: the snapshot of announced members.
                self.known = count_users(text);
                shared.joined.fetch_add(1, Ordering::Relaxed);
                shared.room_members[self.room].fetch_add(1, Ordering::Relaxed);
                self.check_converged(shared);
            }
            "joined" => {
                self.known += count_users(text);
                self.check_converged(shared);
            }
            "left" => self.known = self.known.saturating_sub(count_users(text)),
            "error" => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                let code = field(text, "code").unwrap_or("?").to_string();
                *shared.error_codes.lock().entry(code).or_default() += 1;
            }
            _ => {}
        }
    }

    fn check_converged(&mut self, shared: &Shared) {
        if !self.converged && self.known >= self.room_size {
            self.converged = true;
            shared.converged.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_message(&mut self, text: &str, plan: &Plan, shared: &Shared) {
        let now = shared.now_us();
        let Some(body) = field(text, "text") else {
            return;
        };
        let mut parts = body.split(' ').map(|p| p.parse::<u64>().ok());
        let (Some(Some(sender)), Some(Some(seq)), Some(Some(due_us))) =
            (parts.next(), parts.next(), parts.next())
        else {
            return; // not a bench message
        };
        let slot = (sender as usize) / plan.rooms;
        let Some(last) = self.last.get_mut(slot) else {
            return;
        };
        let seq = seq as u32;
        if seq <= *last {
            shared.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if seq > *last + 1 {
            shared
                .gaps
                .fetch_add(u64::from(seq - *last - 1), Ordering::Relaxed);
        }
        *last = seq;
        shared.delivered.fetch_add(1, Ordering::Relaxed);
        record_latency(now.saturating_sub(due_us));
    }
}

/// The `type` of a server frame: serde writes the tag first, so this is a
/// prefix check rather than a parse.
fn kind(text: &str) -> &str {
    text.strip_prefix(r#"{"type":""#)
        .and_then(|rest| rest.split_once('"'))
        .map_or("", |(kind, _)| kind)
}

/// The value of string field `name` (the first occurrence; bench texts and
/// protocol codes contain no escapes).
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = text.find(&key)? + key.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// How many names a `presence`/`joined`/`left` frame lists. Names cannot
/// hold quotes, so this counts quotes rather than decoding the array.
fn count_users(text: &str) -> usize {
    let Some(start) = text.find(r#""users":["#) else {
        return 0;
    };
    let list = &text[start + 9..];
    let list = &list[..list.find(']').unwrap_or(list.len())];
    list.bytes().filter(|&b| b == b'"').count() / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_server_frames() {
        let msg =
            r#"{"type":"message","room":"r0","seq":3,"from":"b1","text":"1 2 345 xx","sent_at":5}"#;
        assert_eq!(kind(msg), "message");
        assert_eq!(field(msg, "text"), Some("1 2 345 xx"));
        let joined = r#"{"type":"joined","room":"r0","users":["a","b.c","d-1"]}"#;
        assert_eq!(kind(joined), "joined");
        assert_eq!(count_users(joined), 3);
        assert_eq!(
            count_users(r#"{"type":"presence","room":"r0","users":[]}"#),
            0
        );
        assert_eq!(kind(r#"{"type":"heartbeat"}"#), "heartbeat");
    }

    #[test]
    fn rooms_and_senders_are_spread_evenly() {
        let plan = Plan {
            addr: "127.0.0.1:1".parse().unwrap(),
            clients: 10,
            rooms: 3,
            senders: 4,
            period: Duration::from_millis(1),
            pad: String::new(),
            name_prefix: "b".into(),
        };
        assert_eq!(
            (0..3).map(|k| plan.room_size(k)).collect::<Vec<_>>(),
            [4, 3, 3]
        );
        assert_eq!(
            (0..3).map(|k| plan.senders_in_room(k)).collect::<Vec<_>>(),
            [2, 1, 1]
        );
    }
}
