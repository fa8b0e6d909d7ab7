//! Server settings: every limit and interval, from flags or `HUBBUB_*`
//! environment variables, with the documented defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hubbub_protocol::Limits;

use crate::store::{MemoryStore, PgStore, Retention, SqliteStore, Store, StoreError};

/// How the server runs. Field docs are the `--help` text; the README's
/// configuration table repeats them.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "HUBBUB_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Also accept plain line-based TCP (`nc HOST PORT`, telnet) on this
    /// address: the raw TCP gateway. Off unless set.
    #[arg(long, env = "HUBBUB_TCP_LISTEN")]
    pub tcp_listen: Option<SocketAddr>,

    /// How often the server pings each connection and sends a `heartbeat` frame.
    #[arg(long, env = "HUBBUB_HEARTBEAT", default_value = "25s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,

    /// A connection that sends nothing (not even a pong) for this long is closed with 4000.
    #[arg(long, env = "HUBBUB_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// Largest WebSocket message accepted; larger closes the connection with 1009.
    #[arg(long, env = "HUBBUB_MAX_FRAME_BYTES", default_value_t = Limits::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// Longest message text in bytes; longer is refused with `text_too_long`.
    #[arg(long, env = "HUBBUB_MAX_TEXT_BYTES", default_value_t = Limits::DEFAULT_MAX_TEXT_BYTES)]
    pub max_text_bytes: usize,

    /// Most rooms one connection may be in; one more is refused with `too_many_rooms`.
    #[arg(long, env = "HUBBUB_MAX_ROOMS", default_value_t = Limits::DEFAULT_MAX_ROOMS)]
    pub max_rooms: usize,

    /// Most private conversations one connection may be in (apart from
    /// `--max-rooms`); also the most a `conversations` answer lists.
    #[arg(long, env = "HUBBUB_MAX_CONVERSATIONS", default_value_t = Limits::DEFAULT_MAX_CONVERSATIONS)]
    pub max_conversations: usize,

    /// Most bytes of frames other than room messages (acks, presence,
    /// errors) waiting for one client; past it the client
    /// is closed with 4001. Room messages do not count: a connection reads
    /// them from its rooms' logs at its own pace.
    #[arg(long, env = "HUBBUB_QUEUE_BYTES", default_value_t = 1024 * 1024)]
    pub queue_bytes: usize,

    /// Requests per second one connection may sustain (token bucket).
    #[arg(long, env = "HUBBUB_RATE", default_value_t = 20.0)]
    pub rate: f64,

    /// Requests one connection may send in a burst above the sustained rate.
    #[arg(long, env = "HUBBUB_BURST", default_value_t = 40)]
    pub burst: u32,

    /// Online/offline notices of one room are coalesced into at most one
    /// frame per this interval (the first change after a quiet spell goes out at once).
    #[arg(long, env = "HUBBUB_PRESENCE_INTERVAL", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub presence_interval: Duration,

    /// On SIGINT/SIGTERM, how long to wait for connections to drain before exiting.
    #[arg(long, env = "HUBBUB_SHUTDOWN_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Where messages are stored: `sqlite` (durable, in --data-dir) or
    /// `memory` (lost on restart).
    #[arg(long, env = "HUBBUB_STORE", value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,

    /// A PostgreSQL database (`postgres://user:password@host:port/db`, or
    /// `key=value` pairs) that keeps messages and accounts instead of
    /// SQLite; --store and --data-dir are then unused. One hubbub node per
    /// database for now (a second one refuses to start). Without TLS: use
    /// a Unix socket (`host=/run/postgresql`) or a trusted network.
    #[arg(long, env = "HUBBUB_DATABASE", conflicts_with = "store")]
    pub database: Option<String>,

    /// Share the --database with other nodes started with --cluster: room
    /// messages, history, resume and retries work across nodes (see the
    /// README's Deployment for what is still per node).
    #[arg(long, env = "HUBBUB_CLUSTER", requires = "database")]
    pub cluster: bool,

    /// This node's name in a cluster (default: random, new at each start).
    #[arg(long, env = "HUBBUB_NODE_ID")]
    pub node_id: Option<String>,

    /// A cluster node silent this long is taken for dead: its users go
    /// offline on the other nodes (within this plus a third of it).
    #[arg(long, env = "HUBBUB_NODE_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub node_ttl: Duration,

    /// Directory for the SQLite database (`hubbub.db`), created if missing.
    #[arg(long, env = "HUBBUB_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Messages sent to a joiner as the room's latest history.
    #[arg(long, env = "HUBBUB_HISTORY", default_value_t = 50)]
    pub history: usize,

    /// Committed messages each active room keeps in memory (its log): what
    /// members are served from, and history on join. A member further
    /// behind catches up from the store.
    #[arg(long, env = "HUBBUB_ROOM_LOG", default_value_t = 1000)]
    pub room_log: usize,

    /// Close a connection whose socket takes nothing for this long while
    /// something waits to be written (4001); a slow reader that still makes
    /// progress is never closed.
    #[arg(long, env = "HUBBUB_WRITE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// The room directory (`rooms`) lists rooms with someone online and
    /// rooms with a message newer than this (`0s`: only rooms with someone online).
    #[arg(long, env = "HUBBUB_DIRECTORY_AGE", default_value = "7days", value_parser = humantime::parse_duration)]
    pub directory_age: Duration,

    /// How long after sending its author may edit a message (`edit`;
    /// later gets `edit_window_passed`). Deleting has no window.
    #[arg(long, env = "HUBBUB_EDIT_WINDOW", default_value = "1h", value_parser = humantime::parse_duration)]
    pub edit_window: Duration,

    /// Keep at most this many messages per room (default: all).
    #[arg(long, env = "HUBBUB_RETENTION_COUNT")]
    pub retention_count: Option<u64>,

    /// Drop messages older than this (default: never), e.g. `30days`.
    #[arg(long, env = "HUBBUB_RETENTION_AGE", value_parser = humantime::parse_duration)]
    pub retention_age: Option<Duration>,

    /// How often retention runs (with one of the two above).
    #[arg(long, env = "HUBBUB_RETENTION_INTERVAL", default_value = "1min", value_parser = positive_duration)]
    pub retention_interval: Duration,

    /// Whether people may chat without an account (`on`/`off`). Guests
    /// pick a name in `hello`; a registered name is never theirs to take.
    #[arg(long, env = "HUBBUB_GUESTS", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub guests: bool,

    /// How long a login lasts; a socket whose session expires is closed with 1008.
    #[arg(long, env = "HUBBUB_SESSION_TTL", default_value = "30days", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,

    /// Origins (e.g. `https://chat.example.com`) allowed to open WebSockets
    /// and call the API from a browser, besides the server's own origin.
    /// Comma-separated in the environment variable.
    #[arg(
        long = "allowed-origin",
        env = "HUBBUB_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Most open connections from one IP address (WebSocket and TCP).
    #[arg(long, env = "HUBBUB_MAX_CONNS_PER_IP", default_value_t = 64)]
    pub max_conns_per_ip: usize,

    /// Most open connections of one signed-in user.
    #[arg(long, env = "HUBBUB_MAX_CONNS_PER_USER", default_value_t = 16)]
    pub max_conns_per_user: usize,

    /// Largest file one upload may carry, in bytes; larger is refused
    /// (`file_too_large`) as soon as its Content-Length or its bytes say so.
    #[arg(long, env = "HUBBUB_MAX_FILE_BYTES", default_value_t = Limits::DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,

    /// Uploads one user may start per minute (a burst of as many, then one
    /// every 60/N seconds); one more is refused with `too_many_uploads`.
    #[arg(long, env = "HUBBUB_UPLOADS_PER_MINUTE", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub uploads_per_minute: u32,

    /// Bytes of files one user may have uploaded in all; an upload past
    /// it is refused with `quota_exceeded`.
    #[arg(long, env = "HUBBUB_MAX_UPLOAD_BYTES_PER_USER", default_value_t = 1024 * 1024 * 1024)]
    pub max_upload_bytes_per_user: u64,

    /// Most files one message (`send` or `direct`) may carry; more is
    /// refused with `too_many_files`.
    #[arg(long, env = "HUBBUB_MAX_FILES_PER_MESSAGE", default_value_t = Limits::DEFAULT_MAX_FILES_PER_MESSAGE,
          value_parser = at_least_one)]
    pub max_files_per_message: usize,

    /// How long an upload that no message carries is kept: an upload never
    /// sent, and the files of messages retention dropped, are deleted
    /// (their bytes too, once no file has them) when older than this.
    #[arg(long, env = "HUBBUB_UNSENT_FILE_TTL", default_value = "1day", value_parser = positive_duration)]
    pub unsent_file_ttl: Duration,

    /// Most HTTP connections (every accepted connection until it upgrades to
    /// a WebSocket, TLS handshake included) from one client address; one more
    /// is closed at once. Behind a proxy this counts the proxy's connections.
    #[arg(long, env = "HUBBUB_MAX_HTTP_CONNS_PER_IP", default_value_t = 32)]
    pub max_http_conns_per_ip: usize,

    /// Most HTTP connections (not yet upgraded to WebSocket) in all.
    #[arg(long, env = "HUBBUB_MAX_HTTP_CONNS", default_value_t = 1024)]
    pub max_http_conns: usize,

    /// A client must finish its TLS handshake, and then each request's
    /// headers, within this long, else the connection is closed; an idle
    /// keep-alive connection is closed after it too.
    #[arg(long, env = "HUBBUB_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// A request body must arrive within this long after its headers, plus
    /// one second for every --body-min-rate bytes received; a body that
    /// stalls or trickles slower is cut (408).
    #[arg(long, env = "HUBBUB_BODY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// Minimum request body rate in bytes per second: each this many bytes
    /// received earn the body one more second (0: the body gets --body-timeout, no more).
    #[arg(long, env = "HUBBUB_BODY_MIN_RATE", default_value_t = 1024)]
    pub body_min_rate: u64,

    /// Take the client address from the last `X-Forwarded-For` entry (set
    /// this only behind a reverse proxy that writes that header).
    #[arg(long, env = "HUBBUB_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,

    /// PEM certificate chain: serve https and wss directly (with --tls-key).
    #[arg(long, env = "HUBBUB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "HUBBUB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Group commit window: after a commit, the persist thread gathers
    /// messages for this long before the next one (one fsync for all of
    /// them); after a quiet spell it commits at once. Bounds the latency
    /// it adds to an ack under load; 0 commits as soon as it can.
    #[arg(long, env = "HUBBUB_COMMIT_WINDOW", default_value = "5ms", value_parser = humantime::parse_duration)]
    pub commit_window: Duration,

    /// Write coalescing: a connection that just wrote gathers what follows
    /// until the next flush tick (one every this long) and writes it all at
    /// once; a quiet connection writes at once. Bounds the added latency; 0
    /// turns it off. See docs/benchmarks.md for the trade-off.
    #[arg(long, env = "HUBBUB_WRITE_COALESCE", default_value = "20ms", value_parser = humantime::parse_duration)]
    pub write_coalesce: Duration,
}

/// Parses `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
fn on_off(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("expected on or off, not {value:?}")),
    }
}

/// A count above zero.
fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(err) => Err(err.to_string()),
    }
}

/// A duration above zero, as humantime writes it (`90s`, `1day`).
fn positive_duration(value: &str) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(d) if d.is_zero() => Err("must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(err) => Err(err.to_string()),
    }
}

/// Which [`crate::store::Store`] keeps messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Memory,
}

impl Config {
    /// What retention the store applies.
    pub fn retention(&self) -> Retention {
        Retention {
            max_count: self.retention_count,
            max_age: self.retention_age,
        }
    }

    /// Opens the store this configuration names.
    pub fn open_store(&self) -> Result<Arc<dyn Store>, StoreError> {
        if let Some(url) = &self.database {
            // The blocking client runs a runtime of its own: open it off
            // any async worker.
            let store = std::thread::scope(|scope| {
                scope
                    .spawn(|| PgStore::open(url, self.cluster))
                    .join()
                    .expect("opening the database does not panic")
            })?;
            return Ok(Arc::new(store));
        }
        Ok(match self.store {
            StoreKind::Sqlite => Arc::new(SqliteStore::open(&self.data_dir)?),
            StoreKind::Memory => Arc::new(MemoryStore::default()),
        })
    }

    /// The limits clients are told about in `welcome`.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame_bytes,
            max_text_bytes: self.max_text_bytes,
            max_rooms: self.max_rooms,
            max_conversations: self.max_conversations,
            max_history: Limits::DEFAULT_MAX_HISTORY,
            max_files_per_message: self.max_files_per_message,
            max_file_bytes: self.max_file_bytes,
            edit_window_ms: self.edit_window.as_millis() as u64,
            ..Limits::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        use clap::Parser;

        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            config: Config,
        }
        // Parse an empty command line so the defaults live in one place: the
        // attributes above. Environment variables still apply.
        Defaults::parse_from(["hubbub"]).config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::default();
        assert_eq!(config.heartbeat, Duration::from_secs(25));
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.max_frame_bytes, 64 * 1024);
        assert_eq!(config.limits().max_rooms, 50);
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        assert_eq!(config.body_timeout, Duration::from_secs(10));
        assert_eq!(config.body_min_rate, 1024);
        assert_eq!(config.max_http_conns_per_ip, 32);
        assert_eq!(config.max_http_conns, 1024);
        assert_eq!(config.max_file_bytes, 25 * 1024 * 1024);
        assert_eq!(config.uploads_per_minute, 20);
        assert_eq!(config.max_upload_bytes_per_user, 1 << 30);
        assert_eq!(
            config.limits().edit_window_ms,
            Limits::DEFAULT_EDIT_WINDOW_MS
        );
    }
}
