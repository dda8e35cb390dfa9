//! The open-files limit, because every simulated device is one socket.
//!
//! A run of N users needs N sockets in this process (2N when the embedded broker holds the
//! other ends), plus a few descriptors for the process itself. Linux distributions ship a soft
//! limit of 1024 with a much higher hard limit, so mqblast raises the soft limit to the hard
//! one at start-up and `config` refuses a plan that still would not fit, instead of failing with
//! EMFILE in the middle of the ramp-up.

use std::io;

/// Descriptors kept back for the process itself: stdio, the epoll instances and wakers of the
/// workers, the embedded broker's listener, report files.
pub const RESERVED_FDS: u64 = 64;

/// Raise the soft RLIMIT_NOFILE to the hard limit and return the new soft limit.
///
/// When the kernel refuses (macOS rejects an unlimited hard limit, for example), the current
/// soft limit is returned unchanged: the plan check then decides with that.
#[cfg(unix)]
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut limit = get_nofile()?;
    if limit.rlim_cur < limit.rlim_max {
        let wanted = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `wanted` is a valid, initialised rlimit that outlives the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
            limit = wanted;
        }
    }
    Ok(rlim_to_u64(limit.rlim_cur))
}

/// Grow this process's descriptor table now to hold `count` descriptors (capped at the soft
/// limit), before the threads that open sockets start.
///
/// Why: the kernel grows the table by doubling as descriptors are opened, and in a process
/// with several threads each growth waits for an RCU grace period (`expand_fdtable` calls
/// `synchronize_rcu`) while every other thread that opens a descriptor waits for it. During a
/// ramp that stalled both workers for 10 to 25 ms at 256, 512, 1,024... connections each: a
/// schedule lag the broker would have been blamed for (docs/BENCHMARKS.md, "Capacity"). The
/// table never shrinks, so growing it once up front (8 bytes and 2 bits per descriptor) removes
/// the stalls. Best effort: on failure the table grows as before.
#[cfg(unix)]
pub fn reserve_descriptors(count: u64) {
    let limit = nofile_limit().unwrap_or(0);
    let highest = count
        .min(limit.saturating_sub(1))
        .min(libc::c_int::MAX as u64);
    if highest < 64 {
        return;
    }
    let Ok(null) = std::fs::File::open("/dev/null") else {
        return;
    };
    use std::os::fd::AsRawFd;
    // SAFETY: duplicating an open descriptor to the lowest free number >= `highest`, then
    // closing that duplicate; no other descriptor is touched.
    unsafe {
        let fd = libc::fcntl(
            null.as_raw_fd(),
            libc::F_DUPFD_CLOEXEC,
            highest as libc::c_int,
        );
        if fd >= 0 {
            libc::close(fd);
        }
    }
}

#[cfg(not(unix))]
pub fn reserve_descriptors(_count: u64) {}

/// The current soft open-files limit, without changing it.
#[cfg(unix)]
pub fn nofile_limit() -> io::Result<u64> {
    get_nofile().map(|limit| rlim_to_u64(limit.rlim_cur))
}

#[cfg(unix)]
fn get_nofile() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every Unix
fn rlim_to_u64(value: libc::rlim_t) -> u64 {
    if value == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        value as u64
    }
}

/// Without rlimits there is nothing to raise: report "no limit" and let the OS decide.
#[cfg(not(unix))]
pub fn raise_nofile_limit() -> io::Result<u64> {
    Ok(u64::MAX)
}

#[cfg(not(unix))]
pub fn nofile_limit() -> io::Result<u64> {
    Ok(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_the_limit_never_lowers_it() {
        let before = nofile_limit().unwrap();
        let after = raise_nofile_limit().unwrap();
        assert!(after >= before);
        assert_eq!(nofile_limit().unwrap(), after);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_descriptor_table_is_grown_up_front() {
        let limit = raise_nofile_limit().unwrap();
        let wanted = 4_000.min(limit.saturating_sub(1));
        reserve_descriptors(wanted);
        // The kernel reports the table's size as FDSize (it only grows).
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let fd_size: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("FDSize:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(fd_size > wanted, "FDSize {fd_size}, wanted {wanted}");
    }

    #[test]
    fn the_limit_leaves_room_for_the_reserved_descriptors() {
        assert!(nofile_limit().unwrap() > RESERVED_FDS);
    }
}
