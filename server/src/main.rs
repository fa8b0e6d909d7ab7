//! `hubbub`: run with no arguments, it serves the chat on 127.0.0.1:8080.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// hubbub — a real-time chat server with an embedded web app.
#[derive(Parser)]
#[command(name = "hubbub", version, about)]
struct Cli {
    #[command(flatten)]
    config: hubbub::Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("HUBBUB_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal, plain text for log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let listener = match tokio::net::TcpListener::bind(cli.config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("hubbub: cannot listen on {}: {err}", cli.config.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().expect("bound socket has an address");
    // One plain line on stdout, for people and for scripts that start us.
    let scheme = if cli.config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    println!("hubbub listening on {scheme}://{addr}");
    let gateway = match cli.config.tcp_listen {
        Some(tcp_addr) => match tokio::net::TcpListener::bind(tcp_addr).await {
            Ok(gateway) => {
                let addr = gateway.local_addr().expect("bound socket has an address");
                println!("hubbub tcp gateway on {addr}");
                Some(gateway)
            }
            Err(err) => {
                eprintln!("hubbub: cannot listen on {tcp_addr} (tcp gateway): {err}");
                return std::process::ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // On a worker thread, not this one. glibc gives each thread its own
    // allocator arena and frees memory back to the arena it came from; from
    // here, the accept loop's allocations (each socket's registration with
    // the I/O driver, each HTTP connection's task) grew this thread's arena
    // to the connect storm's high-water mark, beside the workers' arena, and
    // it stayed there: ~150 bytes per idle connection (docs/benchmarks.md,
    // "Idle memory per connection").
    let server = tokio::spawn(hubbub::run_with_gateway(
        listener,
        gateway,
        cli.config,
        shutdown_signal(),
    ));
    match server.await {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(err)) => {
            eprintln!("hubbub: {err}");
            std::process::ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("hubbub: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
