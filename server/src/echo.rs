//! An echo server on the chat server's own WebSocket layer, for conformance
//! testing (scripts/autobahn.sh runs the Autobahn testsuite against it).
//!
//! Every connection goes through exactly what a chat connection does: the
//! upgrade and frame codec of [`crate::ws`], and [`crate::conn`]'s state
//! machine (fragments, pings, UTF-8 checks, the close handshake, the
//! outbox and the write path). Only the [`Handler`] differs: [`Echo`] sends
//! each whole message back as it came, text as text and binary as binary.
//! There is no heartbeat and no idle sweep: a conformance client decides
//! when a connection ends.
//! It is not part of the `hubbub` binary; `cargo run -p hubbub --example
//! echo` starts it.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tungstenite::Utf8Bytes;

use crate::conn::{self, Handler, Request};
use crate::hub::Hub;
use crate::registry::Conn;
use crate::ws::WsUpgrade;
use crate::{Config, PeerAddr};

/// Largest message the echo server takes: Autobahn's largest (case 9.1.6,
/// 9.2.6) is 16 MiB.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Sends each message of one connection back to it.
pub struct Echo {
    hub: Arc<Hub>,
    conn: Arc<Conn>,
}

impl Handler for Echo {
    fn on_text(self, text: String) -> Request<Self> {
        self.conn.outbox.push(&Utf8Bytes::from(text));
        Box::pin(std::future::ready(self))
    }

    fn on_binary(&mut self, data: &[u8]) {
        self.conn.outbox.push_binary(data);
    }

    fn end(self) {
        self.hub.disconnect(&self.conn, None, &[]);
    }
}

/// The settings the echo server runs with: the defaults, except messages
/// up to [`MAX_MESSAGE_BYTES`] (with room for a few queued echoes of that
/// size), no write coalescing (each echo goes out at once, as a
/// conformance client waiting for it expects), and a memory store (the
/// hub wants one; nothing is stored).
pub fn config() -> Config {
    Config {
        max_frame_bytes: MAX_MESSAGE_BYTES,
        queue_bytes: 4 * MAX_MESSAGE_BYTES,
        write_coalesce: std::time::Duration::ZERO,
        store: crate::config::StoreKind::Memory,
        ..Config::default()
    }
}

/// Upgrades a request on any path to an echo connection.
async fn upgrade(
    ws: WsUpgrade,
    State(hub): State<Arc<Hub>>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
) -> Response {
    let Some(slot) = hub.registry.admit_ip(peer.ip()) else {
        return crate::auth::ApiError::TooManyConnections.into_response();
    };
    ws.on_upgrade(move |io| {
        let conn = hub.connect();
        let echo = Echo {
            hub: Arc::clone(&hub),
            conn: Arc::clone(&conn),
        };
        conn::serve(hub, conn, io, echo, slot)
    })
}

/// Serves the echo server on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = config.open_store().map_err(std::io::Error::other)?;
    let hub = Hub::new(config, store);
    let flusher = tokio::spawn(Arc::clone(&hub.flusher).run(hub.config.write_coalesce));
    let app = Router::new().fallback(upgrade).with_state(Arc::clone(&hub));
    // Open connections are closed with 1001 when `shutdown` completes.
    let closing = Arc::clone(&hub);
    let stop = async move {
        shutdown.await;
        closing.begin_shutdown();
    };
    let metrics = Arc::clone(&hub.metrics);
    let http_conns = crate::http::serve(listener, app, None, &hub.config, metrics, stop).await;
    let deadline = tokio::time::Instant::now() + hub.config.shutdown_timeout;
    let _ = tokio::time::timeout_at(deadline, http_conns.wait()).await;
    if tokio::time::timeout_at(deadline, hub.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("echo connections still open after the shutdown timeout");
    }
    flusher.abort();
    Ok(())
}
