//! The HTTP front door: accepting TCP connections (plain or TLS), serving
//! HTTP/1.1 on them with hyper until they close or upgrade to a WebSocket,
//! and the limits that keep a slow or idle client from holding sockets and
//! file descriptors for free (slowloris).
//!
//! An *HTTP connection* is every accepted TCP connection until it becomes a
//! WebSocket (or closes); from then on `--max-conns-per-ip` and the idle
//! timeout of [`crate::conn`] govern it. Every HTTP connection is bounded:
//!
//! - in number: at most `--max-http-conns-per-ip` from one client address
//!   and `--max-http-conns` in all ([`Gate`]); one more is closed at once,
//!   before any byte is read or a TLS handshake is begun;
//! - in time before each request: its TLS handshake and then each request's
//!   headers must arrive within `--header-timeout` (hyper's
//!   `header_read_timeout`, which also closes an idle keep-alive connection);
//! - in time while it sends a body: `--body-timeout`, extended by one second
//!   for every `--body-min-rate` bytes received ([`TimedBody`]); a body that
//!   trickles slower is cut (the API answers 408).
//!
//! Each refusal and each cut is counted in `/metrics` and logged once.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::PeerAddr;

/// Counts open HTTP connections per client address and in all, and admits
/// a new one only under both caps.
pub struct Gate {
    max_per_ip: usize,
    max_total: usize,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    per_ip: HashMap<IpAddr, PerIp>,
    total: usize,
    /// A refusal for the total cap was logged; no more until a slot frees.
    total_refusal_logged: bool,
}

#[derive(Default)]
struct PerIp {
    open: usize,
    /// A refusal for this address was logged; no more until a slot frees.
    refusal_logged: bool,
}

/// One admitted HTTP connection; dropping it (when the connection closes
/// or upgrades) frees its place.
pub struct HttpSlot {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Gate {
    pub fn new(max_per_ip: usize, max_total: usize) -> Arc<Gate> {
        Arc::new(Gate {
            max_per_ip,
            max_total,
            state: Mutex::new(GateState::default()),
        })
    }

    /// Admits one more HTTP connection from `ip`, or says why not (and
    /// logs the first refusal of a run).
    pub fn admit(self: &Arc<Gate>, ip: IpAddr) -> Option<HttpSlot> {
        let mut state = self.state.lock();
        if state.total >= self.max_total {
            if !state.total_refusal_logged {
                state.total_refusal_logged = true;
                tracing::warn!(
                    max = self.max_total,
                    "refusing connections: too many HTTP connections in all"
                );
            }
            return None;
        }
        let entry = state.per_ip.entry(ip).or_default();
        if entry.open >= self.max_per_ip {
            if !entry.refusal_logged {
                entry.refusal_logged = true;
                tracing::info!(
                    %ip,
                    max = self.max_per_ip,
                    "refusing connections: too many HTTP connections from this address"
                );
            }
            return None;
        }
        entry.open += 1;
        state.total += 1;
        Some(HttpSlot {
            gate: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for HttpSlot {
    fn drop(&mut self) {
        let mut state = self.gate.state.lock();
        state.total -= 1;
        state.total_refusal_logged = false;
        if let Some(entry) = state.per_ip.get_mut(&self.ip) {
            entry.open -= 1;
            entry.refusal_logged = false;
            if entry.open == 0 {
                state.per_ip.remove(&self.ip);
            }
        }
    }
}

/// What every HTTP connection shares.
struct Shared {
    app: Router,
    tls: Option<TlsAcceptor>,
    http: http1::Builder,
    metrics: Arc<Metrics>,
    header_timeout: Duration,
    body_timeout: Duration,
    body_min_rate: u64,
}

/// Accepts connections on `listener` and serves `app` on them until `stop`
/// completes; then asks every HTTP connection to finish the request in
/// flight and close. Returns the tracker of those connections, closed, so
/// the caller can wait for them (bounded).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    config: &Config,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) -> TaskTracker {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    let shared = Arc::new(Shared {
        app,
        tls: tls.map(TlsAcceptor::from),
        http,
        metrics,
        header_timeout: config.header_timeout,
        body_timeout: config.body_timeout,
        body_min_rate: config.body_min_rate,
    });
    let gate = Gate::new(config.max_http_conns_per_ip, config.max_http_conns);
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    tokio::pin!(stop);
    loop {
        let (socket, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, most likely: back off a little
                    // rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = gate.admit(peer.ip()) else {
            Metrics::inc(&shared.metrics.http_refused);
            drop(socket);
            continue;
        };
        // Writes are already coalesced by the server (one write per flush
        // tick); Nagle's algorithm on top would hold a write back until the
        // peer's delayed ACK, tens of milliseconds.
        let _ = socket.set_nodelay(true);
        connections.spawn(connection(
            Arc::clone(&shared),
            socket,
            peer,
            slot,
            closing.clone(),
        ));
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections
}

/// One HTTP connection, from accept to close or upgrade: the TLS handshake
/// if any, then HTTP/1.1. Its slot is freed when this returns.
async fn connection(
    shared: Arc<Shared>,
    socket: TcpStream,
    peer: SocketAddr,
    slot: HttpSlot,
    closing: CancellationToken,
) {
    match &shared.tls {
        None => serve_http(&shared, socket, peer, closing).await,
        Some(acceptor) => {
            match tokio::time::timeout(shared.header_timeout, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => serve_http(&shared, stream, peer, closing).await,
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                Err(_) => {
                    Metrics::inc(&shared.metrics.header_timeouts);
                    tracing::info!(%peer, "connection cut: TLS handshake not done in time");
                }
            }
        }
    }
    drop(slot);
}

/// Serves HTTP/1.1 on `io` until the client closes, a limit cuts it, it
/// upgrades to a WebSocket, or the server shuts down.
async fn serve_http<I>(shared: &Arc<Shared>, io: I, peer: SocketAddr, closing: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Requests begun on this connection: a header timeout before the
    // first is a client that never sent one whole (worth a log line); after
    // it, most likely an idle keep-alive connection (not worth one).
    let begun = Arc::new(AtomicU64::new(0));
    let service = {
        let (shared, begun) = (Arc::clone(shared), Arc::clone(&begun));
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            begun.fetch_add(1, Ordering::Relaxed);
            let mut request = request.map(|body| shared.guard(body, peer));
            request.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
            shared.app.clone().oneshot(request)
        })
    };
    let conn = shared
        .http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = closing.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    match result {
        Ok(()) => {}
        Err(err) if err.is_timeout() => {
            Metrics::inc(&shared.metrics.header_timeouts);
            if begun.load(Ordering::Relaxed) == 0 {
                tracing::info!(%peer, "connection cut: no complete request headers in time");
            } else {
                tracing::debug!(%peer, "idle keep-alive connection closed");
            }
        }
        Err(err) => tracing::debug!(%peer, error = %err, "HTTP connection failed"),
    }
}

impl Shared {
    /// The request body as handlers see it: bounded in time and rate when
    /// there is one.
    fn guard(&self, body: Incoming, peer: SocketAddr) -> Body {
        if http_body::Body::is_end_stream(&body) {
            return Body::new(body);
        }
        Body::new(TimedBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(self.body_timeout)),
            min_rate: self.body_min_rate,
            peer,
            metrics: Arc::clone(&self.metrics),
        })
    }
}

/// Why reading a request body failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body did not keep up with `--body-timeout` and `--body-min-rate`.
    #[error("the request body arrived too slowly")]
    TooSlow,
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// A request body that must arrive by a deadline: `--body-timeout` after
/// the headers, pushed back one second for every `--body-min-rate` bytes
/// received (the rule of Apache's `mod_reqtimeout`). A client sending at
/// the minimum rate or faster never meets it; one that stalls or trickles
/// does, and the body ends with [`BodyError::TooSlow`].
pub struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    /// Bytes per second that earn a second more (0: none).
    min_rate: u64,
    peer: SocketAddr,
    metrics: Arc<Metrics>,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if this.min_rate > 0 && !data.is_empty() {
                        let earned =
                            Duration::from_secs_f64(data.len() as f64 / this.min_rate as f64);
                        if let Some(later) = this.deadline.deadline().checked_add(earned) {
                            this.deadline.as_mut().reset(later);
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(BodyError::Http(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                Metrics::inc(&this.metrics.body_timeouts);
                tracing::info!(peer = %this.peer, "request cut: its body arrived too slowly");
                Poll::Ready(Some(Err(BodyError::TooSlow)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_caps_per_address_and_in_all() {
        let gate = Gate::new(2, 3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = gate.admit(a).expect("first from a");
        let _a2 = gate.admit(a).expect("second from a");
        assert!(
            gate.admit(a).is_none(),
            "third from a is over the per-address cap"
        );
        let _b1 = gate.admit(b).expect("b has its own count");
        assert!(gate.admit(b).is_none(), "four in all is over the total cap");
        drop(a1);
        assert!(gate.admit(a).is_some(), "a freed slot is free again");
    }
}
