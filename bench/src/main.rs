//! `hubbub-bench`: hubbub's load generator.
//!
//! Opens N real WebSocket clients to a hubbub server on loopback, joins them
//! to R rooms, has S of them send at a fixed total rate for a duration (open
//! loop), and reports loss, duplicates, throughput and send-to-receive
//! latency (HDR histogram), plus the server's CPU time and memory when its
//! pid is known. `--idle` measures resident bytes per idle connection and
//! the server's CPU while the connections idle (heartbeats). `--burst`
//! has every sender send N messages at once and checks that every member
//! that stayed connected got every one.
//!
//! The server may be hubbub or a peer to compare with (`--spawn-cmd`, e.g.
//! the Bun server in `bench/peer/`): the bench needs only `hello`, `join`,
//! `send` and `ping` and the frames that answer them.
//!
//! The server's default limits are below what a bench needs: 20 requests/s
//! per connection (a sender sends more) and 64 connections per IP address
//! (the clients come from a few 127.0.0.x). Start it with them raised, e.g.
//! `hubbub --rate 1000000 --burst 1000000 --max-conns-per-ip 1000000`, or
//! let `--spawn-server` do it.
//!
//! See docs/benchmarks.md for the scenarios and their figures.

mod client;
mod stats;
mod sys;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};

use client::{Phase, Plan};
use stats::Shared;

/// Most clients one run may open.
const MAX_CLIENTS: usize = 200_000;
/// Longest a load or idle phase may last.
const MAX_DURATION: Duration = Duration::from_secs(600);

/// hubbub-bench — load generator for the hubbub chat server (loopback only).
///
/// Example: one room of 1000 clients, 10 senders, 1000 messages/s in total
/// for 10 s, against a server started with raised limits
/// (`hubbub --rate 1000000 --burst 1000000 --max-conns-per-ip 1000000`):
///
///   hubbub-bench --clients 1000 --senders 10 --rate 1000 --duration 10s --server-pid $(pidof hubbub)
#[derive(Parser, Debug)]
#[command(name = "hubbub-bench", version, verbatim_doc_comment)]
struct Args {
    /// Server address (must be a loopback address). Repeat it (or give a
    /// comma-separated list) for the nodes of a cluster: client i connects
    /// to address i mod N.
    #[arg(long, default_value = "127.0.0.1:8080", value_delimiter = ',')]
    addr: Vec<SocketAddr>,

    /// Clients to connect (each says hello and joins one room).
    #[arg(long, short = 'n', default_value_t = 1000)]
    clients: usize,

    /// Rooms; client i joins room `r{i % rooms}`.
    #[arg(long, short = 'r', default_value_t = 1)]
    rooms: usize,

    /// Clients that send (the first S; sender s sends in room `r{s % rooms}`).
    #[arg(long, short = 's', default_value_t = 10)]
    senders: usize,

    /// Messages per second, all senders together (open loop: sends follow the
    /// clock, not the acks).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,

    /// How long the senders send (or, with --idle, how long the connections idle).
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Bytes of filler text per message (on top of sender, seq and timestamp).
    #[arg(long, default_value_t = 16)]
    pad: usize,

    /// Idle mode: connect, hello, join, then send nothing; report resident
    /// bytes per connection (server RSS delta / N) and the server's CPU while idle.
    #[arg(long)]
    idle: bool,

    /// After the senders stop, how long to wait for outstanding deliveries.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    drain: Duration,

    /// How long to wait for every client to learn every member of its room.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    join_timeout: Duration,

    /// Connections that connect, join and leave before the memory baseline
    /// is taken (0: none), so one-off costs are not counted per connection.
    #[arg(long, default_value_t = 100)]
    warm_up: usize,

    /// Connections being opened at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,

    /// Name prefix of the bench users (names are PREFIX0, PREFIX1, …).
    #[arg(long, default_value = "b")]
    name_prefix: String,

    /// The server's pid, to report its CPU seconds and resident memory.
    /// Repeat it for the nodes of a cluster: their figures are summed.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,

    /// Start this hubbub binary on 127.0.0.1 (a free port), pinned with
    /// `taskset` to --server-cpu, with the rate limit raised and a fresh
    /// data directory under $TMPDIR; the bench pins itself to --bench-cpu.
    /// The server is stopped (SIGTERM) and its data removed at the end.
    #[arg(long, value_name = "PATH")]
    spawn_server: Option<String>,

    /// Start this command instead of hubbub, e.g. a peer server to compare
    /// with: `--spawn-cmd "bun bench/peer/bun-server.js"`. Split at white
    /// space; `--listen 127.0.0.1:0` and every --server-arg are appended;
    /// its first line on stdout must end in `listening on http://ADDR`.
    /// Pinned, measured and stopped like --spawn-server.
    #[arg(long, value_name = "COMMAND", conflicts_with = "spawn_server")]
    spawn_cmd: Option<String>,

    /// Extra argument for the spawned server (repeatable), e.g. `--server-arg=--heartbeat=1s`.
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,

    /// CPU the spawned server is pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,

    /// CPU the bench pins itself to (with --spawn-server, or alone with --pin).
    #[arg(long, default_value_t = 1)]
    bench_cpu: usize,

    /// Pin the bench to --bench-cpu even without --spawn-server.
    #[arg(long)]
    pin: bool,

    /// Bench runtime threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,

    /// Burst mode: instead of --rate for --duration, each of the --senders
    /// sends N messages at once (40 is the default rate limit's burst);
    /// reports whether every member that stayed connected got every message,
    /// how many the server closed, and the time until everything was
    /// delivered (at most --drain).
    #[arg(long, value_name = "N", conflicts_with = "idle")]
    burst: Option<u32>,

    /// Make every message text exactly this many bytes (16384 is the default
    /// max_text_bytes); otherwise a text is sender, seq and due time plus
    /// --pad bytes.
    #[arg(long, value_name = "BYTES")]
    text_bytes: Option<usize>,

    /// Print the summary as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Default)]
struct Latency {
    count: u64,
    mean_us: f64,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
}

#[derive(Serialize, Default)]
struct Server {
    /// File name of the spawned program ("hubbub", "bun"), if spawned.
    program: Option<String>,
    pid: u32,
    /// CPU seconds the server used during the measured phase.
    cpu_seconds: f64,
    /// … of which in user space: the server's own code. On loopback the
    /// kernel part includes the receiving sockets' TCP work, which the
    /// kernel charges to the sender, so user time is where servers differ.
    user_seconds: f64,
    /// … of which in the kernel.
    system_seconds: f64,
    /// cpu_seconds / wall seconds of the phase.
    cpu_fraction: f64,
    rss_bytes: u64,
    rss_baseline_bytes: u64,
    /// Highest RSS of the server's life so far (VmHWM), at the end of the run.
    peak_rss_bytes: u64,
    /// (RSS after all clients joined − RSS before they connected, after the
    /// warm-up) / connected.
    rss_per_connection: Option<f64>,
    deliveries_per_cpu_second: Option<f64>,
    deliveries_per_user_cpu_second: Option<f64>,
}

/// Burst mode's findings, per member.
#[derive(Serialize, Default)]
struct Burst {
    /// Messages each sender sent at once.
    per_sender: u32,
    /// Bytes of each message text.
    text_bytes: Option<usize>,
    /// Members that received every message of their room.
    members_complete: u64,
    /// Members whose connection the server closed (e.g. 4001, slow
    /// consumer) or that failed, during the run.
    members_closed: u64,
    /// Members still connected at the end that missed messages: a healthy
    /// member that misses anything is a lost message.
    members_short: u64,
    /// Messages those members missed, in total …
    short_messages: u64,
    /// … and the most one member missed.
    worst_member_short: u64,
    /// From the burst until every member had every message or was closed
    /// (none: not within --drain).
    drain_s: Option<f64>,
}

#[derive(Serialize, Default)]
struct Summary {
    mode: &'static str,
    clients: usize,
    rooms: usize,
    senders: usize,
    rate: f64,
    duration_s: f64,
    connected: u64,
    connect_failed: u64,
    connect_s: f64,
    /// From the join phase start until every client had its `presence`.
    all_joined_s: Option<f64>,
    /// … until every client knew every member of its room.
    presence_converged_s: Option<f64>,
    sent: u64,
    expected: u64,
    delivered: u64,
    lost: u64,
    loss_pct: f64,
    duplicates: u64,
    gaps: u64,
    acks: u64,
    deliveries_per_s: f64,
    latency: Latency,
    heartbeats: u64,
    errors: std::collections::BTreeMap<String, u64>,
    closes: std::collections::BTreeMap<u16, u64>,
    dropped: u64,
    burst: Option<Burst>,
    server: Option<Server>,
    /// CPU seconds the bench itself used during the measured phase (if it
    /// is near the wall time of one core, the bench was the bottleneck).
    bench_cpu_seconds: f64,
    /// /proc/loadavg when the run ended: other work on the machine skews figures.
    loadavg: String,
    /// TCP segments the machine sent during the measured phase (the
    /// server's data segments and the clients' ACKs; see
    /// [`sys::tcp_out_segments`]).
    tcp_segments: Option<u64>,
    /// Deliveries per such segment: how well the server batches writes.
    deliveries_per_tcp_segment: Option<f64>,
}

fn main() -> std::process::ExitCode {
    let mut args = Args::parse();
    if let Err(why) = check(&args) {
        eprintln!("hubbub-bench: {why}");
        return std::process::ExitCode::from(2);
    }
    match sys::raise_fd_limit() {
        Ok((soft, hard)) => {
            let need = args.clients as u64 + 64;
            if soft < need {
                eprintln!(
                    "hubbub-bench: the open-file limit is {soft} (hard limit {hard}) but {} clients need about {need}.\n\
                     Raise the hard limit (e.g. `ulimit -Hn 1048576` as root, or nofile in /etc/security/limits.conf) and retry.",
                    args.clients
                );
                return std::process::ExitCode::from(2);
            }
        }
        Err(err) => eprintln!("hubbub-bench: cannot read the open-file limit: {err}"),
    }

    let mut child = None;
    let mut program = None;
    if let Some((path, program_args)) = to_spawn(&args) {
        match spawn_server(&path, program_args, &args) {
            Ok((c, addr)) => {
                eprintln!(
                    "started {path} (pid {}) on {addr}, pinned to cpu {}",
                    c.id(),
                    args.server_cpu
                );
                args.addr = vec![addr];
                args.server_pid = vec![c.id()];
                child = Some(c);
                program = std::path::Path::new(&path)
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned());
            }
            Err(err) => {
                eprintln!("hubbub-bench: cannot start {path}: {err}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if (child.is_some() || args.pin) && args.bench_cpu < sys::cpu_count() {
        if let Err(err) = sys::pin_to(&[args.bench_cpu]) {
            eprintln!("hubbub-bench: cannot pin to cpu {}: {err}", args.bench_cpu);
        }
    }
    if let Some(&pid) = args.server_pid.first() {
        match sys::fd_limit_of(pid) {
            Some(limit) if limit < args.clients as u64 + 64 => eprintln!(
                "warning: the server's open-file limit is {limit}; start it after `ulimit -n {}`",
                args.clients + 1024
            ),
            _ => {}
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut summary = runtime.block_on(run(&args));
    if let Some(server) = summary.server.as_mut() {
        server.program = program;
    }
    // Dropping thousands of sockets at once is quick; don't wait on tasks.
    runtime.shutdown_timeout(Duration::from_secs(1));

    if let Some(mut child) = child {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        if args.spawn_server.is_some() {
            let _ = std::fs::remove_dir_all(data_dir());
        }
    }

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("summary serializes")
        );
    } else {
        print_table(&summary);
    }
    std::process::ExitCode::SUCCESS
}

/// Refuses runs that would leave loopback or not stop by themselves.
fn check(args: &Args) -> Result<(), String> {
    if let Some(addr) = args.addr.iter().find(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "{addr} is not a loopback address; the bench only loads a server on this machine"
        ));
    }
    if args.addr.is_empty() {
        return Err("--addr needs an address".into());
    }
    if args.clients == 0 || args.clients > MAX_CLIENTS {
        return Err(format!("--clients must be 1..={MAX_CLIENTS}"));
    }
    if args.rooms == 0 || args.rooms > args.clients {
        return Err("--rooms must be 1..=clients".into());
    }
    if args.senders > args.clients {
        return Err("--senders must be at most --clients".into());
    }
    if args.duration > MAX_DURATION || args.drain > MAX_DURATION {
        return Err(format!(
            "--duration and --drain are capped at {MAX_DURATION:?}"
        ));
    }
    if !(args.rate > 0.0 && args.rate <= 10_000_000.0) {
        return Err("--rate must be in (0, 10000000]".into());
    }
    if args.name_prefix.is_empty() || args.name_prefix.len() > 16 {
        return Err("--name-prefix must be 1–16 characters".into());
    }
    if args.burst.is_some_and(|n| !(1..=100_000).contains(&n)) {
        return Err("--burst must be 1..=100000".into());
    }
    if args
        .text_bytes
        .is_some_and(|n| !(32..=1 << 20).contains(&n))
    {
        return Err("--text-bytes must be 32..=1048576 (room for sender, seq and due time)".into());
    }
    if args
        .spawn_cmd
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        return Err("--spawn-cmd is empty".into());
    }
    Ok(())
}

/// The spawned server's data directory.
fn data_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hubbub-bench-{}", std::process::id()))
}

/// The program to start and its arguments, from --spawn-server (hubbub,
/// with its limits raised and a data directory of its own) or --spawn-cmd
/// (any server that takes `--listen`).
fn to_spawn(args: &Args) -> Option<(String, Vec<String>)> {
    let listen = ["--listen".to_string(), "127.0.0.1:0".into()];
    if let Some(path) = &args.spawn_server {
        let mut program_args = listen.to_vec();
        program_args.extend([
            "--rate".into(),
            "1000000".into(),
            "--burst".into(),
            "1000000".into(),
            // The bench's clients all come from 127.0.0.x.
            "--max-conns-per-ip".into(),
            "1000000".into(),
            // A fresh SQLite database of its own, removed at the end.
            "--data-dir".into(),
            data_dir().display().to_string(),
        ]);
        return Some((path.clone(), program_args));
    }
    let mut words = args
        .spawn_cmd
        .as_deref()?
        .split_whitespace()
        .map(String::from);
    let program = words.next()?;
    let mut program_args: Vec<String> = words.collect();
    program_args.extend(listen);
    Some((program, program_args))
}

/// Starts `path` with `program_args` and every --server-arg, pinned to
/// `--server-cpu`; returns it and the address its first line announces.
fn spawn_server(
    path: &str,
    mut server_args: Vec<String>,
    args: &Args,
) -> std::io::Result<(Child, SocketAddr)> {
    server_args.extend(args.server_arg.iter().cloned());
    let pinned = Command::new("taskset").arg("--version").output().is_ok();
    let mut command = if pinned {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(args.server_cpu.to_string()).arg(path);
        c
    } else {
        eprintln!("warning: taskset not found; the server is not pinned");
        Command::new(path)
    };
    let mut child = command
        .args(&server_args)
        .env(
            "HUBBUB_LOG",
            std::env::var("HUBBUB_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .split_once("listening on http://")
        .and_then(|(_, a)| a.parse().ok());
    match addr {
        Some(addr) => Ok((child, addr)),
        None => {
            let _ = child.kill();
            Err(std::io::Error::other(format!(
                "unexpected first line {line:?}"
            )))
        }
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The processes' figures, summed (the nodes of a cluster); `None` if
/// there are none or one cannot be read.
fn sample(pids: &[u32]) -> Option<sys::ProcSample> {
    let mut sum: Option<sys::ProcSample> = None;
    for &pid in pids {
        let one = sys::sample(pid).ok()?;
        sum = Some(match sum {
            None => one,
            Some(s) => sys::ProcSample {
                cpu_seconds: s.cpu_seconds + one.cpu_seconds,
                user_seconds: s.user_seconds + one.user_seconds,
                system_seconds: s.system_seconds + one.system_seconds,
                rss_bytes: s.rss_bytes + one.rss_bytes,
                peak_rss_bytes: s.peak_rss_bytes + one.peak_rss_bytes,
            },
        });
    }
    sum
}

/// Waits until `done()` or `timeout`, printing a progress line each second.
async fn wait_until(
    what: &str,
    timeout: Duration,
    shared: &Shared,
    pid: &[u32],
    done: impl Fn() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    let mut last_print = start;
    let mut last_delivered = Shared::get(&shared.delivered);
    let mut last_cpu = sample(pid).map(|s| s.cpu_seconds);
    loop {
        if done() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Instant::now();
        if now - last_print >= Duration::from_secs(1) {
            let dt = (now - last_print).as_secs_f64();
            let delivered = Shared::get(&shared.delivered);
            let server = sample(pid);
            let cpu = match (server, last_cpu) {
                (Some(s), Some(c)) => format!(
                    " server cpu={:.0}% rss={:.1}MB",
                    (s.cpu_seconds - c) / dt * 100.0,
                    s.rss_bytes as f64 / 1e6
                ),
                _ => String::new(),
            };
            last_cpu = server.map(|s| s.cpu_seconds);
            let p99 = stats::latencies().value_at_quantile(0.99);
            eprintln!(
                "[{what} {:>5.1}s] connected={} joined={} converged={} sent={} delivered={} ({:.0}/s) p99={:.1}ms{cpu}",
                start.elapsed().as_secs_f64(),
                Shared::get(&shared.connected),
                Shared::get(&shared.joined),
                Shared::get(&shared.converged),
                Shared::get(&shared.sent),
                delivered,
                (delivered - last_delivered) as f64 / dt,
                p99 as f64 / 1000.0,
            );
            last_delivered = delivered;
            last_print = now;
        }
    }
}

async fn run(args: &Args) -> Summary {
    let senders = if args.idle { 0 } else { args.senders };
    let plan = Arc::new(Plan {
        addrs: args.addr.clone(),
        clients: args.clients,
        rooms: args.rooms,
        senders,
        period: Duration::from_secs_f64(senders.max(1) as f64 / args.rate),
        pad: "x".repeat(args.pad.max(args.text_bytes.unwrap_or(0))),
        text_bytes: args.text_bytes,
        burst: args.burst,
        name_prefix: args.name_prefix.clone(),
    });
    let shared = Arc::new(Shared::new(args.rooms, args.clients));
    let pid: &[u32] = &args.server_pid;
    let burst = args.burst.is_some() && senders > 0;
    let mut summary = Summary {
        mode: match (args.idle, burst) {
            (true, _) => "idle",
            (false, true) => "burst",
            (false, false) => "load",
        },
        clients: args.clients,
        rooms: args.rooms,
        senders,
        rate: if senders > 0 && !burst {
            args.rate
        } else {
            0.0
        },
        duration_s: if burst { 0.0 } else { secs(args.duration) },
        ..Summary::default()
    };
    if args.warm_up > 0 {
        client::warm_up(Arc::clone(&plan), args.warm_up, args.connect_concurrency)
            .await
            .map_err(|e| format!("warm-up failed: {e}"))
            .unwrap_or_else(|e| eprintln!("{e}"));
        // Let the server finish with their departures before measuring.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let baseline = sample(pid);

    // Connect and hello.
    let (phase_tx, phase_rx) = watch::channel(Phase::Connect);
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        tasks.push(tokio::spawn(client::run(
            i,
            Arc::clone(&plan),
            Arc::clone(&shared),
            phase_rx.clone(),
            Arc::clone(&gate),
        )));
    }
    let n = args.clients as u64;
    let connect = wait_until("connect", Duration::from_secs(300), &shared, pid, || {
        Shared::get(&shared.connected) + Shared::get(&shared.connect_failed) >= n
    })
    .await;
    summary.connect_s = secs(connect.unwrap_or_default());
    let connected = Shared::get(&shared.connected);
    summary.connected = connected;
    summary.connect_failed = Shared::get(&shared.connect_failed);

    // Join, all at once.
    let _ = phase_tx.send(Phase::Join);
    let join_start = Instant::now();
    let all_joined = wait_until("join", args.join_timeout, &shared, pid, || {
        Shared::get(&shared.joined) >= connected
    })
    .await;
    summary.all_joined_s = all_joined.map(secs);
    // Clients that failed to connect leave their rooms short: convergence
    // cannot be reached, so don't wait for it.
    let remaining = if summary.connect_failed > 0 {
        Duration::ZERO
    } else {
        args.join_timeout.saturating_sub(join_start.elapsed())
    };
    let converged = wait_until("presence", remaining, &shared, pid, || {
        Shared::get(&shared.converged) >= connected
    })
    .await;
    summary.presence_converged_s = converged.map(|_| secs(join_start.elapsed()));

    // Let the last presence notices drain before measuring memory or load.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = sample(pid);
    let bench_before = sample(&[std::process::id()]);
    let segments_before = sys::tcp_out_segments().ok();
    let phase_start = Instant::now();
    let mut drained = None;
    if args.idle {
        let end = phase_start + args.duration;
        wait_until("idle", args.duration, &shared, pid, || {
            Instant::now() >= end
        })
        .await;
    } else if burst {
        // Every sender sends its burst as soon as it hears of the phase.
        let now = Instant::now();
        let _ = phase_tx.send(Phase::Load {
            start: now,
            end: now,
        });
        drained = wait_until("burst", args.drain, &shared, pid, || {
            (0..args.clients).all(|i| match shared.state[i].load(Ordering::Relaxed) {
                stats::OPEN => {
                    Shared::get(&shared.received[i]) >= plan.burst_expected(i % plan.rooms)
                }
                _ => true,
            })
        })
        .await;
    } else if senders > 0 {
        let start = Instant::now() + Duration::from_millis(50);
        let end = start + args.duration;
        let _ = phase_tx.send(Phase::Load { start, end });
        let total = args.duration + Duration::from_millis(50);
        wait_until("load", total, &shared, pid, || Instant::now() >= end).await;
        wait_until("drain", args.drain, &shared, pid, || {
            Shared::get(&shared.delivered) >= shared.expected()
        })
        .await;
    }
    let phase_wall = phase_start.elapsed();
    let after = sample(pid);
    if let (Some(before), Ok(after)) = (segments_before, sys::tcp_out_segments()) {
        summary.tcp_segments = Some(after.saturating_sub(before));
    }
    if let (Some(b), Some(a)) = (bench_before, sample(&[std::process::id()])) {
        summary.bench_cpu_seconds = ((a.cpu_seconds - b.cpu_seconds) * 1000.0).round() / 1000.0;
    }
    let _ = phase_tx.send(Phase::Stop);
    drop(tasks); // detached; the runtime shutdown drops them

    summary.sent = Shared::get(&shared.sent);
    summary.expected = shared.expected();
    summary.delivered = Shared::get(&shared.delivered);
    summary.lost = summary.expected.saturating_sub(summary.delivered);
    summary.loss_pct = if summary.expected > 0 {
        summary.lost as f64 * 100.0 / summary.expected as f64
    } else {
        0.0
    };
    summary.duplicates = Shared::get(&shared.duplicates);
    summary.deliveries_per_tcp_segment = summary
        .tcp_segments
        .filter(|&n| n > 0 && summary.delivered > 0)
        .map(|n| (summary.delivered as f64 / n as f64 * 100.0).round() / 100.0);
    summary.gaps = Shared::get(&shared.gaps);
    summary.acks = Shared::get(&shared.acks);
    summary.deliveries_per_s = match (senders, burst) {
        (0, _) => 0.0,
        (_, true) => summary.delivered as f64 / phase_wall.as_secs_f64(),
        (_, false) => summary.delivered as f64 / args.duration.as_secs_f64(),
    };
    if burst {
        summary.burst = Some(burst_findings(&plan, &shared, args, drained));
    }
    let hist = stats::latencies();
    summary.latency = Latency {
        count: hist.len(),
        mean_us: (hist.mean() * 10.0).round() / 10.0,
        p50_us: hist.value_at_quantile(0.50),
        p90_us: hist.value_at_quantile(0.90),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
    };
    summary.heartbeats = Shared::get(&shared.heartbeats);
    summary.errors = shared.error_codes.lock().clone();
    summary.closes = shared.closes.lock().clone();
    summary.dropped = Shared::get(&shared.dropped);
    if let (Some(&pid), Some(base), Some(before), Some(after)) =
        (pid.first(), baseline, before, after)
    {
        let cpu = after.cpu_seconds - before.cpu_seconds;
        let user = after.user_seconds - before.user_seconds;
        let ms = |s: f64| (s * 1000.0).round() / 1000.0;
        summary.server = Some(Server {
            program: None,
            pid,
            cpu_seconds: ms(cpu),
            user_seconds: ms(user),
            system_seconds: ms(after.system_seconds - before.system_seconds),
            cpu_fraction: (cpu / phase_wall.as_secs_f64() * 10000.0).round() / 10000.0,
            rss_bytes: after.rss_bytes,
            rss_baseline_bytes: base.rss_bytes,
            peak_rss_bytes: after.peak_rss_bytes,
            rss_per_connection: (connected > 0).then(|| {
                ((before.rss_bytes as f64 - base.rss_bytes as f64) / connected as f64).round()
            }),
            deliveries_per_cpu_second: (senders > 0 && cpu > 0.0)
                .then(|| (summary.delivered as f64 / cpu).round()),
            deliveries_per_user_cpu_second: (senders > 0 && user > 0.0)
                .then(|| (summary.delivered as f64 / user).round()),
        });
    }
    summary.loadavg = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    summary
}

/// Burst mode: per member, whether it got every message of its room, was
/// closed, or is connected and short.
fn burst_findings(plan: &Plan, shared: &Shared, args: &Args, drained: Option<Duration>) -> Burst {
    let mut burst = Burst {
        per_sender: args.burst.unwrap_or(0),
        text_bytes: args.text_bytes,
        drain_s: drained.map(secs),
        ..Burst::default()
    };
    for i in 0..args.clients {
        match shared.state[i].load(Ordering::Relaxed) {
            stats::OPEN => {
                let expect = plan.burst_expected(i % plan.rooms);
                let short = expect.saturating_sub(Shared::get(&shared.received[i]));
                if short == 0 {
                    burst.members_complete += 1;
                } else {
                    burst.members_short += 1;
                    burst.short_messages += short;
                    burst.worst_member_short = burst.worst_member_short.max(short);
                }
            }
            stats::ENDED => burst.members_closed += 1,
            _ => {}
        }
    }
    burst
}

fn print_table(s: &Summary) {
    let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
    let rows: Vec<(&str, String)> = vec![
        ("mode", s.mode.to_string()),
        (
            "clients / rooms / senders",
            format!("{} / {} / {}", s.clients, s.rooms, s.senders),
        ),
        (
            "rate, duration",
            format!("{} msg/s, {} s", s.rate, s.duration_s),
        ),
        (
            "connected",
            format!(
                "{} ({} failed) in {:.2} s",
                s.connected, s.connect_failed, s.connect_s
            ),
        ),
        (
            "all joined",
            s.all_joined_s
                .map_or("timed out".into(), |t| format!("{t:.2} s")),
        ),
        (
            "presence converged",
            s.presence_converged_s
                .map_or("timed out".into(), |t| format!("{t:.2} s")),
        ),
        ("sent", s.sent.to_string()),
        ("expected deliveries", s.expected.to_string()),
        ("delivered", s.delivered.to_string()),
        ("lost", format!("{} ({:.4} %)", s.lost, s.loss_pct)),
        ("duplicates", s.duplicates.to_string()),
        ("deliveries/s", format!("{:.0}", s.deliveries_per_s)),
        ("latency p50", ms(s.latency.p50_us)),
        ("latency p90", ms(s.latency.p90_us)),
        ("latency p99", ms(s.latency.p99_us)),
        ("latency p99.9", ms(s.latency.p999_us)),
        ("latency max", ms(s.latency.max_us)),
        ("heartbeats received", s.heartbeats.to_string()),
        ("server errors", format!("{:?}", s.errors)),
        ("server closes", format!("{:?}", s.closes)),
        ("dropped", s.dropped.to_string()),
    ];
    let mut rows = rows;
    if let Some(b) = &s.burst {
        rows.push((
            "burst",
            format!(
                "{} messages per sender at once, text {}",
                b.per_sender,
                b.text_bytes
                    .map_or("sender, seq, due + pad".into(), |n| format!("{n} B"))
            ),
        ));
        rows.push(("members complete", b.members_complete.to_string()));
        rows.push(("members closed by server", b.members_closed.to_string()));
        rows.push((
            "members connected but short",
            format!(
                "{} (missing {} messages, at most {} per member)",
                b.members_short, b.short_messages, b.worst_member_short
            ),
        ));
        rows.push((
            "time to drain",
            b.drain_s
                .map_or("not within --drain".into(), |t| format!("{t:.2} s")),
        ));
    }
    if let Some(server) = &s.server {
        if let Some(program) = &server.program {
            rows.push(("server", program.clone()));
        }
        rows.push((
            "server cpu",
            format!(
                "{:.3} s ({:.1} % of a core): user {:.3} s, system {:.3} s",
                server.cpu_seconds,
                server.cpu_fraction * 100.0,
                server.user_seconds,
                server.system_seconds
            ),
        ));
        rows.push((
            "server rss",
            format!(
                "{:.1} MB (baseline {:.1} MB, peak {:.1} MB)",
                server.rss_bytes as f64 / 1e6,
                server.rss_baseline_bytes as f64 / 1e6,
                server.peak_rss_bytes as f64 / 1e6
            ),
        ));
        if let Some(per) = server.rss_per_connection {
            rows.push(("server rss / connection", format!("{per:.0} B")));
        }
        if let Some(per) = server.deliveries_per_cpu_second {
            rows.push(("deliveries / server cpu-s", format!("{per:.0}")));
        }
        if let Some(per) = server.deliveries_per_user_cpu_second {
            rows.push(("deliveries / server user cpu-s", format!("{per:.0}")));
        }
    }
    if let Some(segments) = s.tcp_segments {
        let per = s
            .deliveries_per_tcp_segment
            .map_or(String::new(), |per| format!(" ({per:.2} deliveries each)"));
        rows.push(("tcp segments (loopback)", format!("{segments}{per}")));
    }
    rows.push(("bench cpu", format!("{:.3} s", s.bench_cpu_seconds)));
    rows.push(("load average", s.loadavg.clone()));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        println!("{key:<width$}  {value}");
    }
}
