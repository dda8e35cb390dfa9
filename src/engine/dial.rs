//! Outgoing TCP connections: source addresses and connect pacing.
//!
//! Why it exists: one (source address, destination) pair has only ~28,000 ephemeral ports, so
//! a host that simulates more devices than that must spread its connections over several
//! source addresses (`--bind`). `std` and `mio` can only `connect`; binding a source address
//! *before* connecting needs the socket to be created by hand, which `socket2` does. And a
//! connection storm (tens of thousands of SYNs at once) is a test of its own, so the rate of
//! TCP connects can be bounded (`--connect-rate`) independently of when clients are spawned.

use std::io;
use std::net::{IpAddr, SocketAddr};

use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};

/// Start a non-blocking connect to `addr`, from `source` (port chosen by the OS) when given.
/// The connect is complete only after the stream is writable, `take_error` is empty and
/// `peer_addr` succeeds (mio's rules), as for `TcpStream::connect`.
pub fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr);
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    defer_port_choice(&socket);
    socket.bind(&SocketAddr::new(source, 0).into())?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// Linux: let `connect`, not `bind`, pick the source port (IP_BIND_ADDRESS_NO_PORT), so one
/// source address can reuse a port towards different destinations instead of reserving it
/// for all of them at bind time. Best effort: without it, binding still works, with fewer ports.
#[cfg(target_os = "linux")]
fn defer_port_choice(socket: &Socket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option value that outlives the call.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn defer_port_choice(_socket: &Socket) {}

/// Spaces one worker's TCP connects evenly: each connect gets the next free slot, at most
/// one per `gap_ns`. Slots are handed out in order, so a backlog of clients waits in the
/// timer heap (one entry each) instead of retrying.
#[derive(Debug, Clone, Copy)]
pub struct ConnectPacer {
    /// Nanoseconds between two connects of this worker; 0 = no pacing.
    gap_ns: u64,
    /// The earliest time (ns since run start) the next connect may start.
    next_slot_ns: u64,
}

impl ConnectPacer {
    /// A pacer for this worker's share of `rate_per_s` connects per second over `workers`.
    pub fn new(rate_per_s: Option<f64>, workers: usize) -> ConnectPacer {
        let gap_ns = match rate_per_s {
            Some(rate) if rate > 0.0 => (1e9 * workers.max(1) as f64 / rate) as u64,
            _ => 0,
        };
        ConnectPacer {
            gap_ns,
            next_slot_ns: 0,
        }
    }

    /// Reserve the next connect slot for a client due at `now_ns`; returns when it may
    /// connect (`now_ns` when it may connect at once).
    pub fn reserve(&mut self, now_ns: u64) -> u64 {
        if self.gap_ns == 0 {
            return now_ns;
        }
        let slot = self.next_slot_ns.max(now_ns);
        self.next_slot_ns = slot + self.gap_ns;
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_rate_every_client_connects_when_due() {
        let mut p = ConnectPacer::new(None, 2);
        assert_eq!(p.reserve(5), 5);
        assert_eq!(p.reserve(5), 5);
    }

    #[test]
    fn a_rate_is_split_over_workers_and_spaces_connects_evenly() {
        // 1,000 connects/s over 2 workers: 2 ms apart in each worker.
        let mut p = ConnectPacer::new(Some(1000.0), 2);
        assert_eq!(p.reserve(0), 0);
        assert_eq!(p.reserve(0), 2_000_000);
        assert_eq!(p.reserve(0), 4_000_000);
        // A client due later than the next free slot is not held back.
        assert_eq!(p.reserve(10_000_000), 10_000_000);
    }
}
