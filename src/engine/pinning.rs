//! Which cores, if any, the worker threads are pinned to (`--pin`).
//!
//! Why it exists: a pinned worker cannot move away from a core that a neighbour process is
//! busy on, so on a shared box pinning turns someone else's load into this run's schedule lag;
//! on cores the process was given for itself, pinning keeps caches warm and workers apart.
//! `owned` pins only in the second case, judged from what the process can see: an allowed CPU
//! set narrower than the machine's (taskset, a cpuset) and no cgroup CPU quota smaller than
//! that set. docs/BENCHMARKS.md has the measurements behind the default.

use core_affinity::CoreId;

use crate::plan::Pin;

/// The cores to pin workers to, in order (worker w gets `cores[w % len]`); empty: none.
pub fn cores_for(pin: Pin) -> Vec<CoreId> {
    let allowed = core_affinity::get_core_ids().unwrap_or_default();
    let pinned = match pin {
        Pin::Never => false,
        Pin::Always => true,
        Pin::Owned => owns_its_cores(allowed.len(), online_cpus(), cgroup_cpu_quota()),
    };
    if pinned {
        allowed
    } else {
        Vec::new()
    }
}

/// The process owns its cores when it was narrowed to fewer than the machine has and no CPU
/// quota takes away part of them.
fn owns_its_cores(allowed: usize, online: usize, quota_cpus: Option<f64>) -> bool {
    allowed > 0 && allowed < online && quota_cpus.is_none_or(|q| q >= allowed as f64)
}

fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(0)
}

/// The cgroup v2 CPU quota in CPUs (`cpu.max`: "QUOTA PERIOD", or "max ..." for none).
fn cgroup_cpu_quota() -> Option<f64> {
    let text = std::fs::read_to_string("/sys/fs/cgroup/cpu.max").ok()?;
    parse_cpu_max(&text)
}

fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota: f64 = fields.next()?.parse().ok()?;
    let period: f64 = fields.next()?.parse().ok()?;
    (period > 0.0).then(|| quota / period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_owns_its_cores_only_when_narrowed_and_not_throttled() {
        assert!(!owns_its_cores(16, 16, None), "the whole machine is shared");
        assert!(owns_its_cores(4, 16, None), "taskset/cpuset gave it four");
        assert!(owns_its_cores(4, 16, Some(4.0)));
        assert!(!owns_its_cores(4, 16, Some(2.5)), "a quota below the set");
        assert!(!owns_its_cores(0, 16, None));
    }

    #[test]
    fn cpu_max_reads_quota_over_period_and_max_as_none() {
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max(""), None);
    }

    #[test]
    fn never_pins_nothing_and_always_pins_every_allowed_core() {
        assert!(cores_for(Pin::Never).is_empty());
        let allowed = core_affinity::get_core_ids().unwrap_or_default();
        assert_eq!(cores_for(Pin::Always).len(), allowed.len());
    }
}
