//! Process facts: file-descriptor limit, CPU time, peak memory.

/// Raise the soft RLIMIT_NOFILE to the hard limit. Returns (soft, hard) after.
/// Through the tap each device costs four sockets.
pub fn raise_fd_limit() -> (u64, u64) {
    #[cfg(unix)]
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            // Privileged processes may raise the hard limit too (big fleets need it).
            const WANT: libc::rlim_t = 1 << 20;
            if lim.rlim_max < WANT {
                let raised = libc::rlimit {
                    rlim_cur: WANT,
                    rlim_max: WANT,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
            if lim.rlim_cur < lim.rlim_max {
                let want = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                    lim.rlim_cur = lim.rlim_max;
                }
            }
            return (lim.rlim_cur as u64, lim.rlim_max as u64);
        }
    }
    (0, 0)
}

/// User + system CPU seconds used by this process so far.
pub fn cpu_seconds() -> f64 {
    #[cfg(unix)]
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) == 0 {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            return tv(u.ru_utime) + tv(u.ru_stime);
        }
    }
    0.0
}

/// Peak resident set size in bytes (VmHWM), where the OS tells.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Current resident set size in bytes (VmRSS).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// File descriptors one device costs in this process through the tap: the
/// device's socket, the tap's two, the broker's one.
pub const FDS_PER_DEVICE: u64 = 4;
