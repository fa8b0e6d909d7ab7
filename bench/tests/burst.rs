//! The bench binary against a real hubbub server on 127.0.0.1:0: what its
//! summary says must be what happened. Small runs (tens of clients, a few
//! hundred kilobytes), bounded by the bench's own --drain.

use std::net::SocketAddr;
use std::process::Command;

use hubbub::Config;
use serde_json::Value;

/// A hubbub server on its own runtime thread, with the limits a bench needs
/// raised and `tweak` applied; stops when the test process ends.
fn start_server(tweak: impl FnOnce(&mut Config)) -> (SocketAddr, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: data.path().to_path_buf(),
        rate: 1_000_000.0,
        burst: 1_000_000,
        max_conns_per_ip: 1_000_000,
        ..Config::default()
    };
    tweak(&mut config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            hubbub::run(listener, config, std::future::pending()).await
        })
    });
    (addr, data)
}

/// Runs the bench with `args` (split at spaces) against `addr`; its JSON summary.
fn bench(addr: SocketAddr, args: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_hubbub-bench"))
        .args(["--addr", &addr.to_string(), "--json", "--warm-up", "0"])
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_burst_reaches_every_member_once() {
    let (addr, _data) = start_server(|_| {});
    // 3 senders × 10 messages of 2000 bytes into a room of 30.
    let s = bench(
        addr,
        "--clients 30 --senders 3 --burst 10 --text-bytes 2000 --drain 20s",
    );
    assert_eq!(s["mode"], "burst");
    assert_eq!(s["sent"], 30);
    assert_eq!(s["delivered"], 900, "{s}");
    assert_eq!(s["duplicates"], 0);
    let b = &s["burst"];
    assert_eq!(b["members_complete"], 30, "{b}");
    assert_eq!(b["members_closed"], 0);
    assert_eq!(b["members_short"], 0);
    assert!(b["drain_s"].as_f64().is_some(), "not drained: {b}");
}
