//! The operator's endpoints, for monitoring and load balancers:
//!
//! - `GET /metrics`: [`crate::metrics`] in Prometheus text format.
//! - `GET /healthz`: 200 while the process serves HTTP.
//! - `GET /readyz`: 200 while accepting work; 503 once shutdown has begun
//!   (so a load balancer stops sending new clients before connections
//!   close), while the store's writes fail, or when it does not answer a
//!   ping within 2 s (PostgreSQL unreachable).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::hub::Hub;

/// `GET /metrics`.
pub async fn metrics(State(hub): State<Arc<Hub>>) -> Response {
    let body = hub.metrics.render(&hub.gauges());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `GET /healthz`: the process is up and serving HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 503 once shutdown has begun.
pub async fn readyz(State(hub): State<Arc<Hub>>) -> Response {
    if hub.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    if hub.persist.is_failing() {
        return (StatusCode::SERVICE_UNAVAILABLE, "storage failing\n").into_response();
    }
    let ping = hub.with_store(|store| store.ping());
    match tokio::time::timeout(READY_PING_TIMEOUT, ping).await {
        Ok(Ok(())) => "ready\n".into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "storage unreachable\n").into_response(),
    }
}

/// How long `/readyz` waits for the store to answer.
const READY_PING_TIMEOUT: Duration = Duration::from_secs(2);
