//! Waiting for readiness with a nanosecond deadline.
//!
//! Why it exists: `mio::Poll::poll` hands its timeout to `epoll_wait`, which counts whole
//! milliseconds and rounds up, so a publish scheduled 300 µs ahead went out up to a
//! millisecond late and the report blamed the broker for the generator's own lateness.
//! `epoll_pwait2` (Linux 5.11) takes a `timespec`. The sockets stay registered through mio
//! (`Registry`, tokens, the `Waker`); only the wait itself goes to the kernel directly, on the
//! same epoll descriptor, and the events are copied out into [`Fired`] values (mio stores the
//! token in the event's data word). Where `epoll_pwait2` is missing (`ENOSYS`), `epoll_wait`
//! with the timeout rounded up to a millisecond is used, as mio would.
//!
//! The kernel may still run the timer late by the thread's timer slack (50 µs by default). It
//! is left at the default on purpose: with 1 µs of slack, a thread that sleeps to exact ack
//! deadlines a thousand times a second sometimes waited 0.5 to 2 s for a CPU beside a CPU hog
//! (the sink under `stress-ng --cpu 2`, docs/BENCHMARKS.md), and the 50 µs default did not.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::{Poll, Token};

/// One readiness event, copied out of the kernel's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fired {
    pub token: Token,
    /// Readable, or closed (a read then reports the end of stream or the error).
    pub readable: bool,
    /// Writable, or closed (a write then reports the error).
    pub writable: bool,
    /// The peer closed (FIN/hang-up) or the socket has an error: read until the end of
    /// stream or `WouldBlock`, even after a short read, or the close would be missed.
    pub closed: bool,
}

/// The event buffer of one thread's loop, allocated once.
pub struct PrecisePoll {
    raw: Vec<libc::epoll_event>,
    fired: Vec<Fired>,
    /// `epoll_pwait2` answered ENOSYS once: use `epoll_wait` from then on.
    millisecond_fallback: bool,
}

impl PrecisePoll {
    /// Room for `capacity` events per wait.
    pub fn new(capacity: usize) -> PrecisePoll {
        let capacity = capacity.max(1);
        PrecisePoll {
            raw: vec![libc::epoll_event { events: 0, u64: 0 }; capacity],
            fired: Vec::with_capacity(capacity),
            millisecond_fallback: false,
        }
    }

    /// Wait until something is ready or `timeout` passes (None: no limit). Returns how many
    /// events fired; read them with [`PrecisePoll::fired`]. An interrupted wait fires none.
    pub fn wait(&mut self, poll: &Poll, timeout: Option<Duration>) -> io::Result<usize> {
        self.fired.clear();
        let n = match self.epoll(poll, timeout) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        for e in &self.raw[..n] {
            let bits = e.events as libc::c_int;
            let closed = bits & (libc::EPOLLERR | libc::EPOLLHUP | libc::EPOLLRDHUP) != 0;
            self.fired.push(Fired {
                token: Token(e.u64 as usize),
                readable: bits & (libc::EPOLLIN | libc::EPOLLPRI) != 0 || closed,
                writable: bits & libc::EPOLLOUT != 0 || closed,
                closed,
            });
        }
        Ok(n)
    }

    /// Event `i` of the last wait.
    #[inline]
    pub fn fired(&self, i: usize) -> Fired {
        self.fired[i]
    }

    fn epoll(&mut self, poll: &Poll, timeout: Option<Duration>) -> io::Result<usize> {
        let fd = poll.as_raw_fd();
        let max = self.raw.len().min(libc::c_int::MAX as usize) as libc::c_int;
        if !self.millisecond_fallback {
            let ts = timeout.map(|t| libc::timespec {
                tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                tv_nsec: t.subsec_nanos() as libc::c_long,
            });
            let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
            // SAFETY: `raw` has room for `max` events; `ts_ptr` is null or points to a live
            // timespec; a null sigmask keeps the thread's mask.
            let n = unsafe {
                libc::epoll_pwait2(fd, self.raw.as_mut_ptr(), max, ts_ptr, std::ptr::null())
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ENOSYS) {
                return Err(err);
            }
            self.millisecond_fallback = true;
        }
        let ms = timeout.map_or(-1, |t| {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        });
        // SAFETY: `raw` has room for `max` events.
        let n = unsafe { libc::epoll_wait(fd, self.raw.as_mut_ptr(), max, ms) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::Waker;
    use std::time::Instant;

    #[test]
    fn a_timeout_is_never_cut_short() {
        // How precise the wake-up is, is measured by scripts/capacity.sh (a busy machine can
        // make any wait longer); here only that it never returns early without an event.
        let poll = Poll::new().unwrap();
        let mut waiter = PrecisePoll::new(8);
        for wait_us in [50, 200, 1500] {
            let t = Instant::now();
            let n = waiter
                .wait(&poll, Some(Duration::from_micros(wait_us)))
                .unwrap();
            assert_eq!(n, 0);
            assert!(t.elapsed() >= Duration::from_micros(wait_us));
        }
    }

    #[test]
    fn events_carry_the_token_they_were_registered_with() {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), Token(7)).unwrap();
        waker.wake().unwrap();
        let mut waiter = PrecisePoll::new(8);
        let n = waiter.wait(&poll, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(n, 1);
        assert_eq!(waiter.fired(0).token, Token(7));
        assert!(waiter.fired(0).readable);
    }
}
