//! Server metrics: counters kept as relaxed atomics on the hot path, and
//! their Prometheus text format (version 0.0.4), hand-written — a dozen
//! series do not need a metrics library. Gauges (connections, rooms,
//! queued bytes) are computed when scraped, so they cost nothing between
//! scrapes. The endpoints are [`crate::ops`]'s.
//!
//! Counting a delivery is one `fetch_add` on a shared counter per frame
//! queued; everything else counts per request or per batch.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds (seconds) of the storage-write latency histogram buckets.
const STORE_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Counters of one server. Shared by the hub, every outbox and the persist
/// thread; all updates are `Relaxed` (they are statistics, not synchronization).
#[derive(Debug, Default)]
pub struct Metrics {
    /// WebSocket (and gateway) connections accepted since start.
    pub connections_total: AtomicU64,
    /// Client frames received (every request, valid or not).
    pub requests: AtomicU64,
    /// Room messages accepted (`send` given a seq).
    pub messages_in: AtomicU64,
    /// Frames handed to connection writers (each member's copy of a room
    /// message counts once): the fan-out volume. Counted per batch.
    pub deliveries: AtomicU64,
    /// Bytes of those frames.
    pub delivered_bytes: AtomicU64,
    /// Socket writes by WebSocket writers (`send` calls that took bytes):
    /// with `deliveries`, how well writes coalesce.
    pub socket_writes: AtomicU64,
    /// Connections closed with 4001: their socket took nothing for
    /// `write_timeout`, or their outbox (frames other than room messages)
    /// overflowed.
    pub slow_consumers: AtomicU64,
    /// Store reads by connections catching up after falling behind a
    /// room's in-memory log (one per page).
    pub catch_up_reads: AtomicU64,
    /// Requests refused by the per-connection rate limit.
    pub rate_limited: AtomicU64,
    /// Storage transactions (group commits) and the messages in them.
    pub store_writes: AtomicU64,
    pub store_messages: AtomicU64,
    /// Storage transactions that failed (and were retried).
    pub store_errors: AtomicU64,
    /// HTTP connections closed at accept: past `--max-http-conns-per-ip`
    /// or `--max-http-conns`.
    pub http_refused: AtomicU64,
    /// HTTP connections cut for not finishing a TLS handshake or a
    /// request's headers within `--header-timeout` (idle keep-alive
    /// connections included).
    pub header_timeouts: AtomicU64,
    /// Requests cut because the body was slower than `--body-timeout` and
    /// `--body-min-rate` allow.
    pub body_timeouts: AtomicU64,
    /// Storage write latency: count per bucket of [`STORE_BUCKETS`] (not
    /// cumulative; made cumulative when exposed) and the sum in µs.
    store_buckets: [AtomicU64; STORE_BUCKETS.len()],
    store_micros: AtomicU64,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Adds one to `counter`.
    #[inline]
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one storage transaction of `messages` messages that took `took`.
    pub fn store_write(&self, messages: usize, took: Duration) {
        Metrics::inc(&self.store_writes);
        self.store_messages
            .fetch_add(messages as u64, Ordering::Relaxed);
        self.store_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = STORE_BUCKETS.iter().position(|&le| secs <= le) {
            Metrics::inc(&self.store_buckets[i]);
        }
    }

    /// The Prometheus text exposition, with the gauges given by the caller.
    pub fn render(&self, gauges: &Gauges) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::with_capacity(4096);
        let mut series = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        series(
            "hubbub_connections",
            "gauge",
            "Open connections.",
            gauges.connections as u64,
        );
        series(
            "hubbub_rooms",
            "gauge",
            "Rooms with at least one member.",
            gauges.rooms as u64,
        );
        series(
            "hubbub_queued_bytes",
            "gauge",
            "Bytes waiting in outbound queues.",
            gauges.queued_bytes as u64,
        );
        series(
            "hubbub_connections_total",
            "counter",
            "Connections accepted.",
            get(&self.connections_total),
        );
        series(
            "hubbub_requests_total",
            "counter",
            "Client frames received.",
            get(&self.requests),
        );
        series(
            "hubbub_messages_in_total",
            "counter",
            "Room messages accepted.",
            get(&self.messages_in),
        );
        series(
            "hubbub_deliveries_total",
            "counter",
            "Frames handed to connection writers (messages out, one per member).",
            get(&self.deliveries),
        );
        series(
            "hubbub_delivered_bytes_total",
            "counter",
            "Bytes of frames handed to connection writers.",
            get(&self.delivered_bytes),
        );
        series(
            "hubbub_socket_writes_total",
            "counter",
            "Socket writes by WebSocket connection writers.",
            get(&self.socket_writes),
        );
        series(
            "hubbub_slow_consumers_total",
            "counter",
            "Connections closed as slow consumers (4001): a socket that took nothing for write_timeout, or an outbox overflow.",
            get(&self.slow_consumers),
        );
        series(
            "hubbub_catch_up_reads_total",
            "counter",
            "Store reads of catch-up pages, each shared by a room's readers behind its in-memory log.",
            get(&self.catch_up_reads),
        );
        series(
            "hubbub_rate_limited_total",
            "counter",
            "Requests refused by the rate limit.",
            get(&self.rate_limited),
        );
        series(
            "hubbub_store_messages_total",
            "counter",
            "Messages written to storage.",
            get(&self.store_messages),
        );
        series(
            "hubbub_store_errors_total",
            "counter",
            "Storage writes that failed and were retried.",
            get(&self.store_errors),
        );
        series(
            "hubbub_http_refused_total",
            "counter",
            "HTTP connections closed at accept: too many from one address or in all.",
            get(&self.http_refused),
        );
        series(
            "hubbub_http_header_timeouts_total",
            "counter",
            "HTTP connections closed: TLS handshake or request headers not done in time, or idle.",
            get(&self.header_timeouts),
        );
        series(
            "hubbub_http_body_timeouts_total",
            "counter",
            "Requests cut: the body arrived slower than the body timeout and minimum rate allow.",
            get(&self.body_timeouts),
        );
        let name = "hubbub_store_write_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Latency of storage writes (one group commit each).\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (le, bucket) in STORE_BUCKETS.iter().zip(&self.store_buckets) {
            cumulative += get(bucket);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = get(&self.store_writes);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", get(&self.store_micros) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

/// Values measured when scraped.
#[derive(Debug, Default)]
pub struct Gauges {
    pub connections: usize,
    pub rooms: usize,
    pub queued_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new();
        Metrics::inc(&metrics.deliveries);
        metrics.store_write(3, Duration::from_micros(700));
        let text = metrics.render(&Gauges {
            connections: 2,
            ..Gauges::default()
        });
        assert!(text.contains("# TYPE hubbub_connections gauge\nhubbub_connections 2\n"));
        assert!(text.contains("hubbub_deliveries_total 1\n"));
        assert!(text.contains("hubbub_store_messages_total 3\n"));
        assert!(text.contains("hubbub_store_write_seconds_bucket{le=\"0.0005\"} 0\n"));
        assert!(text.contains("hubbub_store_write_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("hubbub_store_write_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("hubbub_store_write_seconds_count 1\n"));
    }
}
