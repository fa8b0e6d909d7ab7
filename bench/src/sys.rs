//! What the bench asks of the operating system: the open-file limit, CPU
//! pinning, and a server process's CPU time and resident memory from `/proc`.

use std::io;

/// Raises this process's open-file soft limit to the hard limit and returns
/// `(soft, hard)` after the change. Children (a spawned server) inherit it.
pub fn raise_fd_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Pins this process (and the threads it creates afterwards) to `cpus`.
pub fn pin_to(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Number of CPUs online.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// CPU time and memory of a process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// CPU seconds in user space (the process's own code and libraries).
    pub user_seconds: f64,
    /// CPU seconds in the kernel on the process's behalf. On loopback this
    /// includes the TCP receive path of the peer's sockets, which the kernel
    /// runs in the sender's context.
    pub system_seconds: f64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// Highest resident set size since the process started (VmHWM).
    pub peak_rss_bytes: u64,
}

/// Reads `/proc/PID/stat` (utime, stime) and `/proc/PID/status` (VmRSS, VmHWM).
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields after its ')' are fixed.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("bad /proc stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let ticks = |i: usize| -> u64 { fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0) };
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let user_seconds = ticks(11) as f64 / hz;
    let system_seconds = ticks(12) as f64 / hz;

    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(ProcSample {
        cpu_seconds: user_seconds + system_seconds,
        user_seconds,
        system_seconds,
        rss_bytes: kb("VmRSS:") * 1024,
        peak_rss_bytes: kb("VmHWM:") * 1024,
    })
}

/// The soft "Max open files" limit of another process, if readable.
pub fn fd_limit_of(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// TCP segments this machine has sent (`Tcp: OutSegs` in /proc/net/snmp):
/// on loopback, the server's data segments and the clients' ACKs. Its
/// change over a run shows how well a server batches its writes, which the
/// kernel's share of its CPU follows.
pub fn tcp_out_segments() -> io::Result<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp")?;
    let mut tcp = snmp.lines().filter(|line| line.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return Err(io::Error::other("no Tcp lines in /proc/net/snmp"));
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "OutSegs")
        .and_then(|(_, value)| value.parse().ok())
        .ok_or_else(|| io::Error::other("no Tcp OutSegs in /proc/net/snmp"))
}
