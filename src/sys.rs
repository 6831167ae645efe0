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
            #[allow(
                clippy::unnecessary_cast,
                reason = "rlim_t is not u64 on every platform"
            )]
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

/// Open file descriptors of this process (Linux; None elsewhere).
pub fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// OS threads of this process (Linux; None elsewhere).
pub fn threads() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Threads:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// File descriptors one virtual device costs in this process: none with the
/// embedded broker (device → tap → broker in-process), one with an external
/// broker (the tap's socket to it).
pub fn fds_per_device(external_broker: bool) -> u64 {
    external_broker as u64
}

/// Memory one virtual device costs publishing at 1 Hz, with its share of the
/// capture (client, tap, broker; `bench --devices 3000`: 296 MiB peak RSS,
/// README Benchmarks). Idle, it is about 64 KiB.
pub const BYTES_PER_DEVICE: u64 = 100 * 1024;

/// How many virtual devices this process can hold through the tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// The open-file limit after raising it as far as allowed.
    pub fd_limit: u64,
    pub fds_per_device: u64,
    /// Devices the descriptors allow (64 kept back; u64::MAX when devices need none).
    pub by_fds: u64,
    /// Bytes of memory available (0: unknown).
    pub mem_available: u64,
    /// Devices the available memory allows (u64::MAX: unknown).
    pub by_memory: u64,
}

impl Capacity {
    pub fn devices(&self) -> u64 {
        self.by_fds.min(self.by_memory)
    }

    /// Why `n` devices do not fit, and what to do; None when they do.
    pub fn refuse(&self, n: u64) -> Option<String> {
        if n <= self.devices() {
            return None;
        }
        let limit = if self.by_fds <= self.by_memory {
            format!(
                "the open-file limit is {} and with an external broker each device costs {} descriptor(s)",
                self.fd_limit, self.fds_per_device
            )
        } else {
            format!(
                "{} MiB of memory is available and each device costs about {} KiB",
                self.mem_available / (1024 * 1024),
                BYTES_PER_DEVICE / 1024
            )
        };
        Some(format!(
            "{n} devices do not fit in one process on this machine: about {} can ({limit}). \
             Run fewer devices per scenario, or run it as shards on several machines against one broker \
             (`run --shard 1/2 --broker mqtt://host:port` on one, `--shard 2/2` on the next, …; \
             `merge` their recordings)",
            self.devices()
        ))
    }
}

/// This machine's capacity for virtual devices with the embedded broker.
pub fn device_capacity() -> Capacity {
    device_capacity_for(false)
}

/// This machine's capacity for virtual devices (raises the open-file limit first).
pub fn device_capacity_for(external_broker: bool) -> Capacity {
    let (soft, _) = raise_fd_limit();
    let fds_per_device = fds_per_device(external_broker);
    let by_fds = if soft == 0 || fds_per_device == 0 {
        u64::MAX
    } else {
        soft.saturating_sub(64) / fds_per_device
    };
    let mem_available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s
                .lines()
                .find(|l| l.starts_with("MemAvailable:"))?
                .to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024);
    let by_memory = if mem_available == 0 {
        u64::MAX
    } else {
        mem_available / BYTES_PER_DEVICE
    };
    Capacity {
        fd_limit: soft,
        fds_per_device,
        by_fds,
        mem_available,
        by_memory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_refuses_what_does_not_fit_and_says_what_to_do() {
        // An external broker: one descriptor a device.
        let c = Capacity {
            fd_limit: 20_000,
            fds_per_device: 1,
            by_fds: 20_000 - 64,
            mem_available: 8 << 30,
            by_memory: (8 << 30) / BYTES_PER_DEVICE,
        };
        assert_eq!(c.devices(), 19_936);
        assert!(c.refuse(19_936).is_none());
        let why = c.refuse(1_000_000).expect("a million does not fit");
        assert!(why.contains("about 19936 can"), "{why}");
        assert!(why.contains("open-file limit is 20000"), "{why}");
        assert!(why.contains("--shard") && why.contains("merge"), "{why}");
        // The embedded broker: memory is the limit.
        let m = Capacity {
            fds_per_device: 0,
            by_fds: u64::MAX,
            ..c
        };
        assert_eq!(m.devices(), (8 << 30) / BYTES_PER_DEVICE);
        let why = m.refuse(1_000_000).expect("does not fit in 8 GiB");
        assert!(why.contains("8192 MiB of memory"), "{why}");
    }

    #[test]
    fn in_process_devices_cost_no_descriptors() {
        assert_eq!(fds_per_device(false), 0);
        assert_eq!(device_capacity().by_fds, u64::MAX);
    }
}
