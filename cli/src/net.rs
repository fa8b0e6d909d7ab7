//! The connection: one task that owns the WebSocket and reconnects by
//! itself. Transport only: what to say (`hello`, the rejoins and resends
//! after `welcome`) is decided by [`crate::app::App`] with the client core.
//!
//! The rest of the client talks to it through two channels: [`Request`]s
//! in, [`NetEvent`]s out. Each connection reports [`NetEvent::Open`] (the
//! app answers with `hello`), then every server frame. Until the current
//! connection is welcomed only `hello` and `quit` are written; anything else
//! meant for an older connection is dropped, as the app keeps what matters
//! (the pending ledger, the resume tracker) and resends it after `welcome`.
//!
//! Uploads ([`Request::Upload`]) run on tasks of their own, beside the
//! socket, whatever its state; each reports [`NetEvent::Uploaded`].
//!
//! Reconnecting: the core's [`Backoff`] (exponential, full jitter, capped),
//! reset once a connection is welcomed. A close code that says "do not
//! reconnect" (1000, 4500–4999) ends the task. A link silent for 2.5
//! heartbeat intervals counts as dead.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hubbub_client::{close_why, Backoff};
use hubbub_protocol::{close, Attachment, ClientMsg, ServerMsg};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::upload::{self, UploadJob};

/// How long connecting and `hello` may take before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `quit` waits for the server to close.
const QUIT_GRACE: Duration = Duration::from_secs(2);

/// Where to connect and how patiently.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    /// First reconnect delay bound; doubles per failed attempt.
    pub retry_base: Duration,
    /// Largest reconnect delay bound.
    pub retry_max: Duration,
    /// Seeds the reconnect jitter.
    pub seed: u64,
}

/// What the rest of the client asks of the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Write this frame on the current connection (`quit` also ends the task).
    Frame(ClientMsg),
    /// Drop the current connection and try again after a backoff.
    Reconnect { why: String },
    /// Upload this file over HTTP; [`NetEvent::Uploaded`] tells how it went.
    Upload(UploadJob),
}

/// What the connection tells the rest of the client.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// Connecting; `attempt` failed tries since the last welcome.
    Connecting { attempt: u32 },
    /// The socket is open: say `hello`.
    Open,
    /// The connection was lost; the next try is after `retry_in`.
    Lost {
        why: String,
        attempt: u32,
        retry_in: Duration,
    },
    /// The connection ended for good (quit, or a close that says do not reconnect).
    Ended { why: String },
    /// A frame from the server.
    Server(ServerMsg),
    /// An upload finished: the file as the server keeps it, or why not.
    Uploaded {
        job: UploadJob,
        result: Result<Attachment, String>,
    },
}

/// How one connection ended.
enum Outcome {
    /// Try again (after a backoff).
    Lost(String),
    /// Stop for good.
    Done(String),
}

/// A seed for jitter and ids: the clock and the process id, mixed.
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    (nanos ^ u64::from(std::process::id()).rotate_left(32)) | 1
}

/// xorshift64, as a fraction in `[0, 1)`: jitter needs spread, not
/// cryptography.
fn next_random(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs the connection until the user quits or the server says not to
/// come back. Ends when `requests` closes, too.
pub async fn run(
    opts: Options,
    mut requests: mpsc::UnboundedReceiver<Request>,
    events: mpsc::UnboundedSender<NetEvent>,
) {
    let emit = |event| {
        let _ = events.send(event);
    };
    let uploads = Uploads {
        base: upload::http_base(&opts.url),
        events: events.clone(),
    };
    let mut backoff = Backoff::new(
        opts.retry_base.as_millis() as u64,
        opts.retry_max.as_millis() as u64,
    );
    let mut rng = opts.seed | 1;
    loop {
        emit(NetEvent::Connecting {
            attempt: backoff.attempt(),
        });
        let why = match connection(&opts.url, &mut requests, &emit, &uploads, &mut backoff).await {
            Outcome::Done(why) => {
                emit(NetEvent::Ended { why });
                return;
            }
            Outcome::Lost(why) => why,
        };
        let attempt = backoff.attempt();
        let retry_in = Duration::from_millis(backoff.next_delay_ms(next_random(&mut rng)));
        emit(NetEvent::Lost {
            why,
            attempt,
            retry_in,
        });
        let until = Instant::now() + retry_in;
        // While waiting only a quit matters; the app keeps the rest.
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                request = requests.recv() => match request {
                    None | Some(Request::Frame(ClientMsg::Quit)) => {
                        emit(NetEvent::Ended { why: "bye".into() });
                        return;
                    }
                    Some(Request::Upload(job)) => uploads.start(job),
                    Some(Request::Frame(_) | Request::Reconnect { .. }) => {}
                },
            }
        }
    }
}

/// Starts uploads, each on its own task.
struct Uploads {
    /// The server's HTTP origin, from its WebSocket URL.
    base: Result<String, String>,
    events: mpsc::UnboundedSender<NetEvent>,
}

impl Uploads {
    fn start(&self, job: UploadJob) {
        let base = self.base.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let result = match base {
                Ok(base) => upload::upload(&base, job.token.as_deref(), &job.path).await,
                Err(why) => Err(why),
            };
            let _ = events.send(NetEvent::Uploaded { job, result });
        });
    }
}

/// One connection, from connecting to its end.
async fn connection(
    url: &str,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    emit: &impl Fn(NetEvent),
    uploads: &Uploads,
    backoff: &mut Backoff,
) -> Outcome {
    let connect = tokio_tungstenite::connect_async(url);
    let mut ws = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(err)) => return Outcome::Lost(format!("cannot connect: {err}")),
        Err(_) => return Outcome::Lost("cannot connect: timed out".into()),
    };
    let encode = |msg: &ClientMsg| Message::text(serde_json::to_string(msg).expect("serializes"));
    emit(NetEvent::Open);
    let mut welcomed = false;
    let mut silent_limit = CONNECT_TIMEOUT;
    let mut deadline = Instant::now() + silent_limit;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                return Outcome::Lost("the server went silent".into());
            }
            request = requests.recv() => {
                let msg = match request {
                    None => ClientMsg::Quit,
                    Some(Request::Reconnect { why }) => {
                        let _ = ws.close(None).await;
                        return Outcome::Lost(why);
                    }
                    Some(Request::Upload(job)) => {
                        uploads.start(job);
                        continue;
                    }
                    Some(Request::Frame(msg)) => msg,
                };
                let quit = matches!(msg, ClientMsg::Quit);
                if !(welcomed || quit || matches!(msg, ClientMsg::Hello { .. })) {
                    continue; // meant for an older connection
                }
                if ws.send(encode(&msg)).await.is_err() {
                    return if quit {
                        Outcome::Done("bye".into())
                    } else {
                        Outcome::Lost("connection lost".into())
                    };
                }
                if quit {
                    let _ = tokio::time::timeout(QUIT_GRACE, async {
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    return Outcome::Done("bye".into());
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
                        let why = close_why(code, &reason);
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
                if let ServerMsg::Welcome { heartbeat_ms, .. } = &msg {
                    welcomed = true;
                    backoff.reset();
                    silent_limit = Duration::from_millis(heartbeat_ms.saturating_mul(5) / 2)
                        .max(Duration::from_secs(1));
                    deadline = Instant::now() + silent_limit;
                }
                emit(NetEvent::Server(msg));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_spread_over_the_unit_interval() {
        let mut state = 0x9E37_79B9_7F4A_7C15;
        let draws: Vec<f64> = (0..1000).map(|_| next_random(&mut state)).collect();
        assert!(draws.iter().all(|r| (0.0..1.0).contains(r)));
        assert!(draws.iter().any(|r| *r < 0.1) && draws.iter().any(|r| *r > 0.9));
    }
}
