//! `hubbub-chat`: a terminal client for hubbub.
//!
//! Speaks the WebSocket protocol through the shared crate. On a terminal it
//! is a full-screen view (messages, who is online, an input line and a
//! status line); with piped stdin/stdout, or `--plain`, it reads commands as
//! lines and prints one line per event, so it can be scripted and tested.
//!
//! - [`net`]: the connection: the WebSocket and reconnecting with backoff.
//! - [`app`]: state, no I/O; commands, rendering, resume and the pending
//!   ledger come from the client core (`hubbub-client`).
//! - [`upload`]: `/upload`, a file streamed to the server over HTTP.
//! - [`plain`] and [`tui`]: the two front ends.

mod app;
mod net;
mod plain;
mod tui;
mod upload;

use std::io::IsTerminal;
use std::time::Duration;

use clap::Parser;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// hubbub-chat — chat on a hubbub server from a terminal.
#[derive(Parser, Debug)]
#[command(name = "hubbub-chat", version, about)]
struct Cli {
    /// The server's WebSocket URL.
    #[arg(long, env = "HUBBUB_URL", default_value = "ws://127.0.0.1:8080/ws")]
    url: String,

    /// Your name (asked for when missing).
    #[arg(long, env = "HUBBUB_NAME")]
    name: Option<String>,

    /// Rooms to join at start (repeatable); the first is the current one.
    #[arg(long = "room", default_value = "lobby")]
    rooms: Vec<String>,

    /// Plain lines even on a terminal (automatic when stdin or stdout is not one).
    #[arg(long)]
    plain: bool,

    /// Upper bound of the first reconnect delay; it doubles per failed try.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    retry_base: Duration,

    /// Largest reconnect delay.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    retry_max: Duration,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let plain = cli.plain || !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();

    let name = match cli.name.clone() {
        Some(name) => name,
        None => {
            println!("* what is your name?");
            match stdin.next_line().await {
                Ok(Some(line)) if !line.trim().is_empty() => line.trim().to_string(),
                _ => {
                    eprintln!("hubbub-chat: no name given (use --name)");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
    };

    let (request_tx, request_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let seed = net::random_seed();
    let opts = net::Options {
        url: cli.url.clone(),
        retry_base: cli.retry_base,
        retry_max: cli.retry_max,
        seed,
    };
    let connection = tokio::spawn(net::run(opts, request_rx, event_tx));
    // Ids unlike another client's of the same user: a few hex digits of the seed.
    let id_prefix = format!("{:06x}", (seed >> 20) & 0xff_ffff);
    let app = app::App::new(&cli.url, &name, &cli.rooms, &id_prefix);
    let result = if plain {
        plain::run(app, stdin, request_tx, event_rx).await
    } else {
        drop(stdin);
        tui::run(app, request_tx, event_rx).await
    };
    connection.abort();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hubbub-chat: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
