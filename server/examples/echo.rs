//! `cargo run -p hubbub --example echo [ADDR]`: the echo server of
//! `hubbub::echo` (the chat server's own WebSocket layer, every message sent
//! back as it came) on ADDR (default 127.0.0.1:9001; port 0 picks a free
//! one). It prints `hubbub echo listening on ws://ADDR` once it listens and
//! stops on Ctrl-C. scripts/autobahn.sh runs the Autobahn testsuite against it.

use std::net::SocketAddr;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("HUBBUB_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let addr = std::env::args().nth(1);
    let addr: SocketAddr = match addr.as_deref().unwrap_or("127.0.0.1:9001").parse() {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("echo: usage: echo [ADDR], e.g. 127.0.0.1:9001: {err}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("echo: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().expect("bound socket has an address");
    println!("hubbub echo listening on ws://{addr}");
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match hubbub::echo::run(listener, hubbub::echo::config(), stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echo: {err}");
            ExitCode::FAILURE
        }
    }
}
