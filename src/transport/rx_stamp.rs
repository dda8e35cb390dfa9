//! Kernel receive timestamps: when bytes reached this host, not when we got round to reading.
//!
//! Why it exists: a response time taken when the loop reads the acknowledgement includes our
//! own wakeup: the scheduler's delay, a CPU hog beside us, the other sockets handled first in
//! the same wakeup. That is the generator's lateness, not the broker's. With `SO_TIMESTAMPNS`
//! the kernel stamps every arriving packet (on loopback: when the peer's send queued it; on a
//! network: when the driver received it) and `recvmsg` hands back the stamp of the last
//! segment read. The engine times an ack from that stamp, clamped to never be later than the
//! read, so its figures are the broker's answer and the readers can batch their wakeups
//! without moving what they report.
//!
//! Bound: one read that takes several segments carries only the last one's stamp, so the
//! earlier acks in it are timed a little late. On a lossy network a retransmitted earlier
//! segment can arrive after a later one and lend its older stamp to the read; on loopback,
//! where segments are never lost, a stamp is never earlier than the bytes' arrival. Where the option or the stamp is
//! missing (another kernel, a TLS record assembled over several reads), the caller falls back
//! to the time of the read. The stamps are in `CLOCK_REALTIME`; [`RealClock`] maps them onto
//! a monotonic run clock.

use std::io;
use std::os::fd::RawFd;

/// `SO_TIMESTAMPNS_NEW` (Linux 5.1+, 64-bit `timespec`), then the old option on older kernels.
/// The values are asm-generic's (x86_64, aarch64, riscv64); other architectures get none.
#[cfg(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )
))]
const OPTIONS: [libc::c_int; 2] = [64, 35];
#[cfg(not(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )
)))]
const OPTIONS: [libc::c_int; 0] = [];

/// Room for one `cmsghdr` with a 16-byte timespec (and a second one, should a kernel add one).
const CONTROL_BYTES: usize = 64;

/// Ask the kernel to stamp what arrives on `fd`. Returns false when it cannot (the reads then
/// carry no stamp); that is never an error for the connection.
pub fn enable(fd: RawFd) -> bool {
    let on: libc::c_int = 1;
    OPTIONS.iter().any(|&option| {
        // SAFETY: `on` outlives the call and its size is passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) == 0
        }
    })
}

/// One `recvmsg` into `buf`: the byte count and the arrival time of the last segment read
/// (ns since the Unix epoch), when the kernel attached one. No allocation.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64 elements keep the control buffer aligned for `cmsghdr`.
    let mut control = [0u64; CONTROL_BYTES / 8];
    // SAFETY: an all-zero msghdr is valid (no name, no iovecs, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = CONTROL_BYTES as _;
    // SAFETY: `msg` points at `iov` (into `buf`) and `control`, all live for the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((n as usize, stamp_of(&msg)))
}

/// The timestamp control message of a `recvmsg` result, if any.
fn stamp_of(msg: &libc::msghdr) -> Option<u64> {
    if msg.msg_controllen == 0 || msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return None;
    }
    // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes of well-formed
    // control messages; CMSG_FIRSTHDR/NXTHDR stay within them.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            let is_stamp =
                header.cmsg_level == libc::SOL_SOCKET && OPTIONS.contains(&header.cmsg_type);
            let len_ok = header.cmsg_len as usize
                >= libc::CMSG_LEN(std::mem::size_of::<[i64; 2]>() as u32) as usize;
            if is_stamp && len_ok {
                let ts: [i64; 2] = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                let (sec, nsec) = (ts[0], ts[1]);
                if sec <= 0 || !(0..1_000_000_000).contains(&nsec) {
                    return None;
                }
                return Some(sec as u64 * 1_000_000_000 + nsec as u64);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// Maps `CLOCK_REALTIME` stamps onto a run clock (ns since some monotonic start). The offset
/// between the two is sampled at every wakeup (one vDSO clock read), so a step of the wall
/// clock is followed within one wakeup; a stamp that would map after the read is clamped to
/// the read, so an ack is never timed later than without a stamp.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealClock {
    /// Realtime ns minus run-clock ns, at the last sample.
    offset_ns: i128,
}

impl RealClock {
    /// Sample the offset now: the wall clock first, then the run clock (`run_now_ns`, which
    /// returns it), so any delay between the two reads makes the offset smaller and the mapped
    /// arrivals later, never earlier. Returns the run clock's reading.
    pub fn sample(&mut self, run_now_ns: impl FnOnce() -> u64) -> u64 {
        let real_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let run_ns = run_now_ns();
        self.offset_ns = real_ns - i128::from(run_ns);
        run_ns
    }

    /// The run-clock time of a realtime stamp, never after `read_ns` (when it was read);
    /// `read_ns` itself when there is no stamp. Callers also fall back to `read_ns` when the
    /// result is before the packet could have been sent (a wall-clock step, a bogus stamp).
    pub fn arrival_ns(&self, stamp: Option<u64>, read_ns: u64) -> u64 {
        match stamp {
            Some(real) => {
                let run = i128::from(real) - self.offset_ns;
                run.clamp(0, i128::from(read_ns)) as u64
            }
            None => read_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    #[test]
    fn a_read_carries_when_the_bytes_arrived_not_when_they_were_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert!(enable(client.as_raw_fd()));
        wait_until_reads_are_stamped(&mut server, &client);
        let start = Instant::now();
        let mut clock = RealClock::default();
        clock.sample(|| 0);
        server.write_all(b"\x40\x02\x00\x01").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let read_ns = start.elapsed().as_nanos() as u64;
        let mut buf = [0u8; 16];
        let (n, stamp) = recv(client.as_raw_fd(), &mut buf).unwrap();
        // Probe bytes still in flight may come first.
        let packet = buf[..n].trim_ascii_start();
        assert_eq!(packet, b"\x40\x02\x00\x01");
        let arrived = clock.arrival_ns(stamp, read_ns);
        assert!(stamp.is_some(), "the kernel attached no timestamp");
        // The stamp is from before the 50 ms sleep ended; the sleep is a lower bound on the
        // gap however loaded the machine is.
        assert!(
            read_ns - arrived >= 50_000_000,
            "arrived {arrived} read {read_ns}"
        );
    }

    /// Linux turns receive timestamps on for the whole stack from a work queue after the
    /// first socket asks (`net_enable_timestamp`): on a loaded machine the first packets after
    /// `enable` may arrive before that and carry no stamp (the engine then uses the read time).
    /// Probe until a read is stamped, for at most 30 s.
    fn wait_until_reads_are_stamped(server: &mut TcpStream, client: &TcpStream) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 16];
        loop {
            server.write_all(b" ").unwrap();
            std::thread::sleep(Duration::from_millis(10));
            match recv(client.as_raw_fd(), &mut buf) {
                Ok((n, Some(_))) if n >= 1 => return,
                Ok(_) => {}
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
            }
            assert!(
                Instant::now() < deadline,
                "the kernel attached no timestamp in 30 s"
            );
        }
    }

    #[test]
    fn without_a_stamp_the_read_time_is_used_and_a_stamp_is_never_later_than_the_read() {
        let mut clock = RealClock::default();
        assert_eq!(clock.sample(|| 1_000), 1_000);
        assert_eq!(clock.arrival_ns(None, 5_000), 5_000);
        let far_future = u64::MAX / 2;
        assert_eq!(clock.arrival_ns(Some(far_future), 5_000), 5_000);
        assert_eq!(clock.arrival_ns(Some(1), 5_000), 0);
    }

    #[test]
    fn a_socket_without_the_option_reads_without_a_stamp() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"abc").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut buf = [0u8; 16];
        let (n, stamp) = recv(client.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(n, 3);
        // Another socket of this process may have turned stamping on globally, but this one
        // did not ask: the kernel attaches none.
        assert_eq!(stamp, None);
    }
}
