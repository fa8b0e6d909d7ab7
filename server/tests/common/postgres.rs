//! A throwaway PostgreSQL server for one test: `initdb` into a temp dir,
//! started on a free loopback port with its socket in that dir, stopped
//! (immediate mode) and removed when dropped. Nothing else listens for the
//! tests.
//!
//! PostgreSQL refuses to run as root: as root, `initdb` and `pg_ctl` run as
//! the `postgres` user that Debian's package creates, on a dir it owns.
//! The binaries are found in `$HUBBUB_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian keeps them off PATH), else PATH.
//! `scripts/setup.sh --postgres` installs them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

impl Postgres {
    /// Starts a fresh server; panics, saying what is missing, if it cannot.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("hubbub-pg-")
            .tempdir_in("/tmp")
            .expect("a temp dir");
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let mut pg = Postgres {
            dir,
            bin,
            port: 0,
            as_postgres,
        };
        pg.run_pg(
            "initdb",
            &[
                "-D",
                pg.data().to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale",
                "C",
            ],
        );
        // A free port can be taken between asking and binding: try again.
        for attempt in 0.. {
            pg.port = free_port();
            if pg.pg_ctl_start() {
                return pg;
            }
            assert!(
                attempt < 3,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(pg.dir.path().join("log")).unwrap_or_default()
            );
        }
        unreachable!()
    }

    /// A new empty database named `name`; returns its URL.
    pub fn database(&self, name: &str) -> String {
        self.psql(
            "postgres",
            &["-q", "-c", &format!("CREATE DATABASE {name}")],
        );
        self.url(name)
    }

    /// One value from `sql` run in `database` (psql's unaligned output).
    pub fn query(&self, database: &str, sql: &str) -> String {
        self.psql(database, &["-tAc", sql])
    }

    /// Runs psql on `database` with `args`; its output, trimmed.
    fn psql(&self, database: &str, args: &[&str]) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", database])
            .args(args)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server (fast: connections are cut, as a crash would).
    pub fn stop(&self) {
        assert!(self.pg_ctl_stop(), "pg_ctl stop failed");
    }

    /// Starts it again on the same port, after [`Postgres::stop`].
    pub fn restart(&self) {
        assert!(self.pg_ctl_start(), "pg_ctl start failed");
    }

    /// Where the cluster's files are.
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server on `self.port`, its socket and log in the temp dir.
    fn pg_ctl_start(&self) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let (data, log) = (self.data(), self.dir.path().join("log"));
        self.try_run_pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        )
    }

    /// Stops the server in immediate mode.
    fn pg_ctl_stop(&self) -> bool {
        let data = self.data();
        self.try_run_pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
    }

    fn run_pg(&self, tool: &str, args: &[&str]) {
        assert!(self.try_run_pg(tool, args), "{tool} {args:?} failed");
    }

    fn try_run_pg(&self, tool: &str, args: &[&str]) -> bool {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        if !out.status.success() {
            eprintln!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = self.pg_ctl_stop();
        }
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("run a command");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where `initdb` and `pg_ctl` are.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HUBBUB_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(bin) = found.pop() {
        return bin;
    }
    let on_path = Command::new("pg_config").arg("--bindir").output();
    match on_path {
        Ok(out) if out.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
        _ => panic!(
            "PostgreSQL's server binaries (initdb, pg_ctl) are missing: \
             run scripts/setup.sh --postgres (Debian package postgresql), \
             or set HUBBUB_PG_BIN"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}
