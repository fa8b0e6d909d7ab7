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
//! The WebSocket client is a minimal one of its own ([`Ws`]) and frames are
//! classified by scanning, not by JSON decoding, so that the bench spends its
//! core reading sockets rather than in framework and serde overhead: one
//! read handles every frame it brought. The per-connection state is the
//! socket, a 4 KiB read buffer and a few counters.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::LazyLock;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::MissedTickBehavior;

use crate::stats::{record_latency, Shared};

/// Source addresses the clients are spread over (127.0.0.1 to .64, round
/// robin). Linux offers ~28,000 ephemeral ports per source address, and the
/// sockets of a previous run linger in TIME_WAIT for a minute: with one
/// address, back-to-back runs of 10,000 clients ran out of ports.
const SOURCES: usize = 64;

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
    /// The server's addresses (a cluster's nodes): client i uses i mod N.
    pub addrs: Vec<SocketAddr>,
    pub clients: usize,
    pub rooms: usize,
    pub senders: usize,
    /// Time between two messages of one sender.
    pub period: Duration,
    /// Filler appended to each message text.
    pub pad: String,
    /// With `Some`, every message text is exactly this many bytes (the pad
    /// is cut to fit after sender, seq and due time).
    pub text_bytes: Option<usize>,
    /// Burst mode: each sender sends this many messages at once when the
    /// load phase starts, instead of on a clock.
    pub burst: Option<u32>,
    pub name_prefix: String,
}

impl Plan {
    /// Clients in room `k` (client `i` joins room `i % rooms`).
    pub fn room_size(&self, k: usize) -> usize {
        (self.clients + self.rooms - 1 - k) / self.rooms
    }

    /// Senders in room `k` (sender `s` is client `s`).
    pub fn senders_in_room(&self, k: usize) -> usize {
        if k >= self.senders {
            0
        } else {
            (self.senders + self.rooms - 1 - k) / self.rooms
        }
    }
}

impl Plan {
    /// The `send` frame for message `seq` of client `i` in `room`, due at
    /// `due_us`: the text is "SENDER SEQ DUE PAD".
    fn send_frame(&self, i: usize, room: usize, seq: u32, due_us: u64) -> String {
        let head = format!("{i} {seq} {due_us} ");
        let pad = match self.text_bytes {
            Some(len) => &self.pad[..len.saturating_sub(head.len()).min(self.pad.len())],
            None => &self.pad[..],
        };
        format!(r#"{{"type":"send","room":"r{room}","text":"{head}{pad}"}}"#)
    }

    /// Messages every member of room `k` should receive in burst mode.
    pub fn burst_expected(&self, k: usize) -> u64 {
        self.burst
            .map_or(0, |n| u64::from(n) * self.senders_in_room(k) as u64)
    }
}

/// How a client's connection came to an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The run told it to stop.
    ByRun,
    /// The server closed it, or the socket failed.
    ByServer,
}

/// Bytes one client reads into at a time; grown only for a larger frame.
const READ_BUFFER: usize = 4096;

/// A minimal WebSocket client connection (RFC 6455): the bench needs text
/// frames, pings and close, and must read a million frames a second on one
/// core, so frames are parsed in place from one small buffer and every read
/// processes all the frames it brought. Client frames are masked with an
/// all-zero key (a valid mask that leaves the payload as it is).
struct Ws {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

/// One frame found in the read buffer.
struct Frame {
    opcode: u8,
    payload: std::ops::Range<usize>,
}

impl Ws {
    /// Does the opening handshake on a connected stream.
    async fn handshake(mut stream: TcpStream, addr: SocketAddr) -> Result<Ws, String> {
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: aHViYnViLWJlbmNoLWtleQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let mut ws = Ws {
            stream,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
        };
        loop {
            if let Some(at) = memchr::memmem::find(&ws.buf[..ws.end], b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&ws.buf[..at]).to_string();
                if !head.starts_with("HTTP/1.1 101") {
                    return Err(format!(
                        "handshake refused: {}",
                        head.lines().next().unwrap_or("")
                    ));
                }
                ws.start = at + 4;
                return Ok(ws);
            }
            if ws.end == ws.buf.len() {
                return Err("handshake: response too long".into());
            }
            let n = ws
                .stream
                .read(&mut ws.buf[ws.end..])
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            if n == 0 {
                return Err("handshake: connection closed".into());
            }
            ws.end += n;
        }
    }

    /// Makes room and reads what the server sent next; `false` at end of
    /// stream.
    async fn read_more(&mut self) -> std::io::Result<bool> {
        self.compact();
        let end = self.end;
        let n = self.stream.read(&mut self.buf[end..]).await?;
        self.end += n;
        Ok(n > 0)
    }

    /// Writes one masked frame.
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(&encode(opcode, payload)).await
    }

    /// The next complete frame in the buffer, if any.
    fn parse(&mut self) -> Option<Frame> {
        let bytes = &self.buf[self.start..self.end];
        if bytes.len() < 2 {
            return None;
        }
        let opcode = bytes[0] & 0x0f;
        let (len, header) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 if bytes.len() >= 10 => (
                u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes")) as usize,
                10,
            ),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if bytes.len() < header + len {
            // Make room for the rest of this frame.
            if header + len > self.buf.len() {
                self.buf.resize(header + len, 0);
            }
            return None;
        }
        let payload = self.start + header..self.start + header + len;
        self.start += header + len;
        Some(Frame { opcode, payload })
    }

    /// Moves unparsed bytes to the front so the next read has room; shrinks
    /// a buffer grown for a large frame once it is no longer needed.
    fn compact(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > READ_BUFFER {
                self.buf.truncate(READ_BUFFER);
                self.buf.shrink_to_fit();
            }
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

/// A client frame: FIN, `opcode`, masked with the zero key.
fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(payload);
    out
}

const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

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
    shared.open(i);
    let mut client = Client::new(i, &plan, ws);
    if phase
        .wait_for(|p| *p != Phase::Connect)
        .await
        .map_or(true, |p| *p == Phase::Stop)
    {
        return;
    }
    let join = format!(r#"{{"type":"join","room":"r{}"}}"#, client.room);
    if client.ws.send(TEXT, join.as_bytes()).await.is_err() {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
        shared.end(i);
        return;
    }
    if client.serve(&plan, &shared, &mut phase).await == Ended::ByServer {
        shared.end(i);
    }
}

/// Connects from 127.0.0.(1 + i % 64) and says hello.
async fn connect(i: usize, plan: &Plan) -> Result<Ws, String> {
    let addr = plan.addrs[i % plan.addrs.len()];
    let socket = match addr {
        SocketAddr::V4(_) => {
            let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
            let last = 1 + i % SOURCES;
            let source = Ipv4Addr::new(127, 0, 0, last.min(254) as u8);
            socket
                .bind(SocketAddr::new(IpAddr::V4(source), 0))
                .map_err(|e| format!("bind {source}: {e}"))?;
            socket
        }
        SocketAddr::V6(_) => TcpSocket::new_v6().map_err(|e| format!("socket: {e}"))?,
    };
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut ws = Ws::handshake(stream, addr).await?;
    let hello = format!(r#"{{"type":"hello","name":"{}{i}"}}"#, plan.name_prefix);
    ws.send(TEXT, hello.as_bytes())
        .await
        .map_err(|e| format!("hello: {e}"))?;
    loop {
        while let Some(frame) = ws.parse() {
            let payload = &ws.buf[frame.payload];
            match frame.opcode {
                TEXT => match kind(std::str::from_utf8(payload).unwrap_or("")) {
                    "welcome" => {
                        ws.compact();
                        return Ok(ws);
                    }
                    "error" => {
                        return Err(format!(
                            "hello refused: {}",
                            String::from_utf8_lossy(payload)
                        ))
                    }
                    _ => {}
                },
                CLOSE => return Err("closed before welcome".into()),
                _ => {}
            }
        }
        if !ws.read_more().await.map_err(|e| format!("read: {e}"))? {
            return Err("closed before welcome".into());
        }
    }
}

/// Opens `count` connections that say hello, join a room, see their join
/// answered and close again, `concurrency` at a time. Run before the
/// memory baseline, so that what the server pays once (code paged in, the
/// runtime's and the allocator's first growth, SQLite's cache) is not
/// counted per connection.
pub async fn warm_up(plan: Arc<Plan>, count: usize, concurrency: usize) -> Result<(), String> {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..count {
        let (plan, gate) = (Arc::clone(&plan), Arc::clone(&gate));
        tasks.spawn(async move {
            let _permit = gate.acquire().await.expect("never closed");
            warm_up_one(&plan, k).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| format!("warm-up task: {e}"))??;
    }
    Ok(())
}

async fn warm_up_one(plan: &Plan, k: usize) -> Result<(), String> {
    // Indices past every real client: names and sources of their own.
    let mut ws = connect(WARM_UP_BASE + k, plan).await?;
    let join = format!(r#"{{"type":"join","room":"r{}"}}"#, k % plan.rooms.max(1));
    ws.send(TEXT, join.as_bytes())
        .await
        .map_err(|e| format!("join: {e}"))?;
    ws.send(TEXT, br#"{"type":"ping","id":1}"#)
        .await
        .map_err(|e| format!("ping: {e}"))?;
    // Requests are answered in order: the pong follows the join.
    loop {
        while let Some(frame) = ws.parse() {
            let text = std::str::from_utf8(&ws.buf[frame.payload]).unwrap_or("");
            if frame.opcode == TEXT && kind(text) == "pong" {
                let _ = ws.send(CLOSE, &1000u16.to_be_bytes()).await;
                return Ok(());
            }
        }
        if !ws
            .read_more()
            .await
            .map_err(|e| format!("warm-up read: {e}"))?
        {
            return Err("warm-up: closed early".to_string());
        }
    }
}

/// Client index of the first warm-up connection.
const WARM_UP_BASE: usize = 1_000_000;

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

/// What reading one buffer-full asks of the connection.
enum After {
    Continue,
    /// Answer a ping with this payload.
    Pong(Vec<u8>),
    /// The server closed (with this code) or the socket failed.
    Closed(Option<u16>),
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

    async fn serve(
        &mut self,
        plan: &Plan,
        shared: &Shared,
        phase: &mut watch::Receiver<Phase>,
    ) -> Ended {
        let sender = self.i < plan.senders;
        let mut ticker: Option<(tokio::time::Interval, Instant)> = None;
        let mut seq: u32 = 0;
        // Burst mode: frames not yet written, and how far the writes got.
        // They are written alongside reading, so that a sender whose burst
        // is still going out keeps taking its deliveries.
        let mut outgoing: Vec<u8> = Vec::new();
        let mut written = 0;
        loop {
            // Frames that arrived with the handshake or the welcome.
            match self.drain_frames(plan, shared) {
                After::Continue => {}
                After::Pong(payload) => {
                    if self.ws.send(PONG, &payload).await.is_err() {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        return Ended::ByServer;
                    }
                    continue;
                }
                After::Closed(code) => {
                    match code {
                        Some(code) => *shared.closes.lock().entry(code).or_default() += 1,
                        None => {
                            shared.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    return Ended::ByServer;
                }
            }
            let tick = async {
                match ticker.as_mut() {
                    Some((interval, _)) => interval.tick().await,
                    None => std::future::pending().await,
                }
            };
            let Ws {
                stream, buf, end, ..
            } = &mut self.ws;
            let (mut reader, mut writer) = stream.split();
            tokio::select! {
                changed = phase.changed() => {
                    let now = *phase.borrow_and_update();
                    match (changed, now) {
                        (Err(_), _) | (_, Phase::Stop) => return Ended::ByRun,
                        (_, Phase::Load { .. }) if sender && plan.burst.is_some() => {
                            let due_us = shared.now_us();
                            for _ in 0..plan.burst.unwrap_or(0) {
                                seq += 1;
                                let text = plan.send_frame(self.i, self.room, seq, due_us);
                                outgoing.extend_from_slice(&encode(TEXT, text.as_bytes()));
                                shared.sent.fetch_add(1, Ordering::Relaxed);
                                shared.sent_per_room[self.room].fetch_add(1, Ordering::Relaxed);
                            }
                        }
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
                wrote = writer.write(&outgoing[written..]), if written < outgoing.len() => match wrote {
                    Ok(n) if n > 0 => {
                        written += n;
                        if written == outgoing.len() {
                            outgoing = Vec::new();
                            written = 0;
                        }
                    }
                    _ => {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        return Ended::ByServer;
                    }
                },
                due = tick => {
                    let end = ticker.as_ref().map(|(_, end)| *end).unwrap_or(due.into_std());
                    if due.into_std() >= end {
                        ticker = None;
                        continue;
                    }
                    seq += 1;
                    let due_us = due.into_std().saturating_duration_since(shared.base).as_micros() as u64;
                    let text = plan.send_frame(self.i, self.room, seq, due_us);
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                    shared.sent_per_room[self.room].fetch_add(1, Ordering::Relaxed);
                    if self.ws.send(TEXT, text.as_bytes()).await.is_err() {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        return Ended::ByServer;
                    }
                }
                read = reader.read(&mut buf[*end..]) => match read {
                    Ok(n) if n > 0 => *end += n,
                    _ => {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        return Ended::ByServer;
                    }
                },
            }
        }
    }

    /// Handles every complete frame in the buffer.
    fn drain_frames(&mut self, plan: &Plan, shared: &Shared) -> After {
        let mut after = After::Continue;
        while let Some(frame) = self.ws.parse() {
            let payload = frame.payload.clone();
            match frame.opcode {
                TEXT => {
                    let Ws { buf, .. } = &self.ws;
                    let text = std::str::from_utf8(&buf[payload]).unwrap_or("");
                    let me = Me {
                        i: self.i,
                        room: self.room,
                    };
                    on_text(text, plan, shared, me, &mut self.known, &mut self.last);
                    if !self.converged && self.known >= self.room_size {
                        self.converged = true;
                        shared.converged.fetch_add(1, Ordering::Relaxed);
                    }
                }
                PING => {
                    after = After::Pong(self.ws.buf[payload].to_vec());
                    break;
                }
                CLOSE => {
                    let p = &self.ws.buf[payload];
                    let code = if p.len() >= 2 {
                        u16::from_be_bytes([p[0], p[1]])
                    } else {
                        1005
                    };
                    return After::Closed(Some(code));
                }
                _ => {}
            }
        }
        self.ws.compact();
        if self.ws.end == self.ws.buf.len() {
            // A frame larger than the buffer: parse() grew it; if it did not,
            // the peer is misbehaving.
            return After::Closed(None);
        }
        after
    }
}

/// Who received a frame: client `i` in `room`.
#[derive(Clone, Copy)]
struct Me {
    i: usize,
    room: usize,
}

/// Handles one text frame of client `me`.
fn on_text(text: &str, plan: &Plan, shared: &Shared, me: Me, known: &mut usize, last: &mut [u32]) {
    let room = me.room;
    match kind(text) {
        "message" => on_message(text, plan, shared, me, last),
        "ack" => {
            shared.acks.fetch_add(1, Ordering::Relaxed);
        }
        "heartbeat" => {
            shared.heartbeats.fetch_add(1, Ordering::Relaxed);
        }
        "presence" => {
            // The answer to our join: the snapshot of announced members.
            *known = count_users(text);
            shared.joined.fetch_add(1, Ordering::Relaxed);
            shared.room_members[room].fetch_add(1, Ordering::Relaxed);
        }
        "joined" => *known += count_users(text),
        "left" => *known = known.saturating_sub(count_users(text)),
        "error" => {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            let code = field(text, "code").unwrap_or("?").to_string();
            *shared.error_codes.lock().entry(code).or_default() += 1;
        }
        _ => {}
    }
}

/// Accounts one room message: latency from its due time, duplicates, gaps.
fn on_message(text: &str, plan: &Plan, shared: &Shared, me: Me, last: &mut [u32]) {
    static TEXT_KEY: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(br#""text":""#));
    let now = shared.now_us();
    let Some(at) = TEXT_KEY.find(text.as_bytes()) else {
        return;
    };
    let mut body = &text.as_bytes()[at + 8..];
    let mut number = || -> Option<u64> {
        let digits = body.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 19 {
            return None;
        }
        let value = body[..digits]
            .iter()
            .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
        body = &body[(digits + 1).min(body.len())..];
        Some(value)
    };
    let (Some(sender), Some(seq), Some(due_us)) = (number(), number(), number()) else {
        return; // not a bench message
    };
    let slot = (sender as usize) / plan.rooms;
    let Some(last) = last.get_mut(slot) else {
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
    shared.received[me.i].fetch_add(1, Ordering::Relaxed);
    record_latency(now.saturating_sub(due_us));
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
    fn texts_are_cut_to_text_bytes_and_bursts_counted_per_room() {
        let mut plan = Plan {
            addrs: vec!["127.0.0.1:1".parse().unwrap()],
            clients: 10,
            rooms: 3,
            senders: 4,
            period: Duration::from_millis(1),
            pad: "x".repeat(16384),
            text_bytes: Some(16384),
            burst: Some(40),
            name_prefix: "b".into(),
        };
        let frame = plan.send_frame(3, 0, 17, 123_456);
        let text = field(&frame, "text").unwrap();
        assert_eq!(text.len(), 16384);
        assert!(text.starts_with("3 17 123456 xxx"));
        // Room 0 has senders 0 and 3; rooms 1 and 2 one each.
        assert_eq!(plan.burst_expected(0), 80);
        assert_eq!(plan.burst_expected(2), 40);
        plan.text_bytes = None;
        plan.pad = "yy".into();
        let frame = plan.send_frame(1, 1, 1, 9);
        assert_eq!(field(&frame, "text"), Some("1 1 9 yy"));
    }

    #[test]
    fn rooms_and_senders_are_spread_evenly() {
        let plan = Plan {
            addrs: vec!["127.0.0.1:1".parse().unwrap()],
            clients: 10,
            rooms: 3,
            senders: 4,
            period: Duration::from_millis(1),
            pad: String::new(),
            text_bytes: None,
            burst: None,
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
