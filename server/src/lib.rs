//! The hubbub server: an axum HTTP server whose `/ws` endpoint joins clients
//! to the [`hub::Hub`], plus the embedded web app at `/`.
//!
//! - [`config`]: every setting and limit, from flags and environment.
//! - [`hub`]: rooms, presence, fan-out, heartbeat, shutdown.
//! - [`conn`]: one WebSocket connection: decode, handle, write.
//! - [`session`]: what each request does, whatever the transport.
//! - [`outbox`]: the byte-bounded per-connection queue.
//! - [`metrics`]: counters, `/metrics`, `/healthz`, `/readyz`.
//! - [`persist`]: group commit of room messages, then fan-out.
//! - [`store`]: where messages are kept (SQLite or memory).
//! - [`auth`]: accounts, sessions, origin checks; who an upgrade is.
//! - [`assets`]: the web bundle.
//! - [`tcp`]: the raw TCP gateway for `nc` and telnet (`--tcp-listen`).
//!
//! [`run`] serves until a shutdown future completes, then closes every
//! connection with 1001 and waits (bounded) for them to drain.

pub mod assets;
pub mod auth;
pub mod config;
pub mod conn;
pub mod hub;
pub mod metrics;
pub mod outbox;
pub mod persist;
pub mod session;
pub mod store;
pub mod tcp;

use std::future::Future;
use std::sync::Arc;

use std::net::SocketAddr;

use auth::{ApiError, AppState};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

pub use config::Config;
use hub::Hub;

/// The HTTP routes, over a shared hub.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/metrics", get(metrics::serve))
        .route("/healthz", get(metrics::healthz))
        .route("/readyz", get(metrics::readyz))
        .merge(auth::routes())
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .fallback(assets::serve)
        .with_state(AppState::new(hub))
}

/// Largest request body the HTTP API reads.
const API_BODY_LIMIT: usize = 16 * 1024;

/// `GET /ws`: checks the origin, who the caller is and the connection caps
/// before upgrading (a refused upgrade never becomes a socket), then
/// upgrades with small buffers and the frame limit.
async fn ws_upgrade(
    ws: WebSocketUpgrade,
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let config = &hub.config;
    auth::check_origin(config, &headers)?;
    let account = auth::identify(&hub, &headers).await?;
    match &account {
        None if !config.guests => return Err(ApiError::Unauthorized),
        Some(account) if hub.connections_of(&account.name) >= config.max_conns_per_user => {
            return Err(ApiError::TooManyConnections)
        }
        _ => {}
    }
    let ip = auth::client_ip(config, peer, &headers);
    let slot = hub.admit_ip(ip).ok_or(ApiError::TooManyConnections)?;
    Ok(ws
        .read_buffer_size(config.ws_read_buffer)
        .write_buffer_size(config.ws_write_buffer)
        .max_message_size(config.max_frame_bytes)
        .max_frame_size(config.max_frame_bytes)
        .on_upgrade(move |socket| conn::run(hub, socket, account, slot)))
}

/// Serves on `listener` until `shutdown` completes, then shuts down
/// gracefully: stop accepting, close every connection with 1001 after what
/// is queued for it, and wait up to `config.shutdown_timeout` for them.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with_gateway(listener, None, config, shutdown).await
}

/// [`run`], plus the raw TCP gateway ([`tcp`]) on `gateway` when given.
/// The caller binds both listeners (`config.tcp_listen` says where the
/// gateway should be), so port 0 works and it can tell the addresses.
pub async fn run_with_gateway(
    listener: TcpListener,
    gateway: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shutdown_timeout = config.shutdown_timeout;
    let store = config.open_store().map_err(std::io::Error::other)?;
    let hub = Hub::new(config, store);
    let heartbeat = tokio::spawn(Arc::clone(&hub).heartbeat_loop());
    // Stops accepting when the hub begins shutting down; its connections
    // are closed (1001) with the others and tracked by `hub.tasks`.
    let gateway =
        gateway.map(|listener| tokio::spawn(tcp::accept_loop(Arc::clone(&hub), listener)));
    let closing = Arc::clone(&hub);
    let app = router(Arc::clone(&hub)).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down");
            closing.begin_shutdown();
        })
        .await?;
    if tokio::time::timeout(shutdown_timeout, hub.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = hub.connection_count(),
            "connections still open after the shutdown timeout"
        );
    }
    heartbeat.abort();
    if let Some(gateway) = gateway {
        gateway.abort();
    }
    // Commit what is still queued before exiting (bounded like the rest).
    if let Some(persist) = hub.persist.stop() {
        let joined = tokio::task::spawn_blocking(move || persist.join());
        if tokio::time::timeout(shutdown_timeout, joined)
            .await
            .is_err()
        {
            tracing::warn!("messages still uncommitted after the shutdown timeout");
        }
    }
    Ok(())
}
