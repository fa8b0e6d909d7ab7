//! The hubbub server: an axum HTTP server whose `/ws` endpoint joins clients
//! to the [`hub::Hub`], plus the embedded web app at `/`.
//!
//! - [`config`]: every setting and limit, from flags and environment.
//! - [`hub`]: rooms, direct messages, names across a cluster, shutdown.
//! - [`registry`]: who is connected here: connections, users, addresses.
//! - [`timers`]: the clock, heartbeat, idle and write timeouts.
//! - [`room`]: one room's log, members and presence.
//! - [`feed`]: how a connection pulls room messages (catch-up included).
//! - [`pages`]: catch-up pages read from the store, shared per room.
//! - [`cluster`]: other nodes' commits, presence, names and signals.
//! - [`ws`]: the WebSocket upgrade and frame codec.
//! - [`conn`]: one WebSocket connection as one task: read, handle, write.
//! - [`session`]: what each request does, whatever the transport.
//! - [`outbox`]: the byte-bounded per-connection queue.
//! - [`metrics`]: counters and their text format.
//! - [`ops`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`persist`]: group commit of room messages, then fan-out.
//! - [`store`]: where messages and accounts are kept (SQLite, PostgreSQL
//!   or memory), behind narrow traits.
//! - [`auth`]: accounts, sessions, origin checks; who an upgrade is.
//! - [`conversation`]: private conversations (stored direct messages).
//! - [`checks`]: what edits, deletions, reactions, replies and mentions are checked against.
//! - [`files`]: uploads and downloads of files (`/api/files`).
//! - [`assets`]: the web bundle.
//! - [`tcp`]: the raw TCP gateway for `nc` and telnet (`--tcp-listen`).
//! - [`tls`]: https and wss with rustls (`--tls-cert`, `--tls-key`).
//! - [`http`]: accepting connections and serving HTTP on them, with the
//!   caps and timeouts that keep slow clients from holding sockets.
//! - [`echo`]: an echo server on the same WebSocket layer, for the Autobahn
//!   conformance suite (not part of the `hubbub` binary).
//!
//! [`run`] serves until a shutdown future completes, then closes every
//! connection with 1001 and waits (bounded) for them to drain.

pub mod assets;
pub mod auth;
pub mod checks;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod conversation;
pub mod echo;
pub mod feed;
pub mod files;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod ops;
pub mod outbox;
pub mod pages;
pub mod persist;
pub mod registry;
pub mod room;
pub mod session;
pub mod store;
pub mod tcp;
pub mod timers;
pub mod tls;
pub mod ws;

use std::future::Future;
use std::sync::Arc;

use std::net::SocketAddr;

use auth::{ApiError, AppState};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;

pub use config::Config;
use hub::Hub;

/// The HTTP routes, over a shared hub.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .merge(auth::routes())
        .merge(files::routes())
        .layer(DefaultBodyLimit::max(auth::API_BODY_LIMIT))
        .fallback(assets::serve)
        // Headers every response carries unless it set its own (the web
        // app's pages bring their own Content-Security-Policy).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(AppState::new(hub))
}

/// The address of the peer of an HTTP connection, plain or TLS (handlers
/// take it as `ConnectInfo<PeerAddr>`; [`http`] puts it on every request).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// `GET /ws`: checks the origin, who the caller is and the connection caps
/// before upgrading (a refused upgrade never becomes a socket).
async fn ws_upgrade(
    ws: ws::WsUpgrade,
    State(hub): State<Arc<Hub>>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let config = &hub.config;
    auth::check_origin(config, &headers)?;
    let account = auth::identify(&hub, &headers).await?;
    match &account {
        None if !config.guests => return Err(ApiError::Unauthorized),
        Some(account)
            if hub.connections_anywhere(&account.name).await? >= config.max_conns_per_user =>
        {
            return Err(ApiError::TooManyConnections)
        }
        _ => {}
    }
    let ip = auth::client_ip(config, peer, &headers);
    let slot = hub
        .registry
        .admit_ip(ip)
        .ok_or(ApiError::TooManyConnections)?;
    Ok(ws.on_upgrade(move |socket| conn::run(hub, socket, account, slot)))
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
    mut config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Where HTTP really is (port 0 bound to a free one): the gateway's file
    // links point there.
    config.listen = listener.local_addr()?;
    let shutdown_timeout = config.shutdown_timeout;
    let store = config.open_store().map_err(std::io::Error::other)?;
    let hub = Hub::new(config, Arc::clone(&store));
    if store.node_presence().is_none() {
        // A lone node's guests went with its last run, and so do their
        // private conversations.
        let dropped = hub
            .with_store(|store| store.drop_guest_conversations())
            .await
            .map_err(std::io::Error::other)?;
        if !dropped.is_empty() {
            tracing::info!(
                conversations = dropped.len(),
                "the last run's guests' conversations deleted"
            );
        }
    }
    // Nodes sharing the store: their commits land in our room logs.
    let cluster = cluster::Cluster::start(&hub, store).map_err(std::io::Error::other)?;
    let heartbeat = tokio::spawn(timers::run(Arc::clone(&hub)));
    let collector = tokio::spawn(files::collect(Arc::clone(&hub)));
    let flusher = tokio::spawn(Arc::clone(&hub.flusher).run(hub.config.write_coalesce));
    // Stops accepting when the hub begins shutting down; its connections
    // are closed (1001) with the others and tracked by `hub.tasks`.
    let gateway =
        gateway.map(|listener| tokio::spawn(tcp::accept_loop(Arc::clone(&hub), listener)));
    let closing = Arc::clone(&hub);
    let stop = async move {
        shutdown.await;
        tracing::info!("shutting down");
        closing.begin_shutdown();
    };
    let app = router(Arc::clone(&hub));
    let tls = match (&hub.config.tls_cert, &hub.config.tls_key) {
        (Some(cert), Some(key)) => {
            Some(tls::server_config(cert, key).map_err(std::io::Error::other)?)
        }
        _ => None,
    };
    let metrics = Arc::clone(&hub.metrics);
    let http_conns = http::serve(listener, app, tls, &hub.config, metrics, stop).await;
    // One deadline for both: HTTP requests in flight and WebSockets.
    let deadline = tokio::time::Instant::now() + shutdown_timeout;
    if tokio::time::timeout_at(deadline, http_conns.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = http_conns.len(),
            "HTTP requests still in flight after the shutdown timeout"
        );
    }
    if tokio::time::timeout_at(deadline, hub.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = hub.registry.count(),
            "connections still open after the shutdown timeout"
        );
    }
    heartbeat.abort();
    collector.abort();
    flusher.abort();
    if let Some(thread) = cluster.and_then(cluster::Cluster::stop) {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
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
