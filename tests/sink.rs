//! The calibration sink, driven over real sockets by hand-rolled clients.
//!
//! Every test starts its own sink on `127.0.0.1:0`, talks to it with a blocking
//! `std::net::TcpStream` whose reads time out, and checks the exact bytes that come back
//! (written out literally, so a bug shared by our encoders and the sink cannot hide).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use mqblast::mqtt;
use mqblast::sink::{self, SinkHandle, SinkOptions};

/// No test waits longer than this for a byte.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

fn start_sink(opts: SinkOptions) -> SinkHandle {
    let opts = SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        quiet: true,
        ..opts
    };
    sink::start(&opts).expect("sink starts")
}

fn two_thread_sink() -> SinkHandle {
    start_sink(SinkOptions {
        threads: 2,
        ..Default::default()
    })
}

fn open(sink: &SinkHandle) -> TcpStream {
    let stream = TcpStream::connect(sink.addr()).expect("connect to the sink");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn connect_frame(client_id: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let connect = mqtt::connect::Connect {
        client_id,
        username: None,
        password: None,
        keep_alive_s: 30,
        clean_session: true,
    };
    mqtt::connect::encode(&mut out, &connect);
    out
}

fn publish_frame(qos: u8, pkid: u16) -> Vec<u8> {
    let mut out = Vec::new();
    mqtt::publish::encode(&mut out, "sensors/1", qos, false, pkid, br#"{"t":21.5}"#);
    out
}

fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    stream
        .read_exact(&mut buf)
        .expect("the sink answers in time");
    buf
}

/// Open a connection and complete the CONNECT / CONNACK exchange.
fn connected(sink: &SinkHandle) -> TcpStream {
    let mut stream = open(sink);
    stream.write_all(&connect_frame("tester")).unwrap();
    assert_eq!(read_n(&mut stream, 4), [0x20, 0x02, 0x00, 0x00]);
    stream
}

/// True once the peer has closed the connection (EOF or reset).
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        ),
    }
}

/// Poll `condition` until it holds or 10 s pass.
fn eventually(condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + READ_TIMEOUT;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn connect_is_answered_with_connack_accepted() {
    let sink = two_thread_sink();
    let _stream = connected(&sink);
    let totals = sink.stop();
    assert_eq!((totals.connections, totals.connects), (1, 1));
    assert_eq!(totals.open_connections, 0);
}

#[test]
fn qos1_publish_is_answered_with_puback_carrying_the_same_packet_id() {
    let sink = two_thread_sink();
    let mut stream = connected(&sink);
    stream.write_all(&publish_frame(1, 0x1234)).unwrap();
    assert_eq!(read_n(&mut stream, 4), [0x40, 0x02, 0x12, 0x34]);
    assert_eq!(sink.totals().publishes, [0, 1, 0]);
}

#[test]
fn qos2_publish_gets_pubrec_and_its_pubrel_gets_pubcomp() {
    let sink = two_thread_sink();
    let mut stream = connected(&sink);
    stream.write_all(&publish_frame(2, 0x0102)).unwrap();
    assert_eq!(read_n(&mut stream, 4), [0x50, 0x02, 0x01, 0x02]);
    let mut pubrel = Vec::new();
    mqtt::ack::encode_pubrel(&mut pubrel, 0x0102);
    stream.write_all(&pubrel).unwrap();
    assert_eq!(read_n(&mut stream, 4), [0x70, 0x02, 0x01, 0x02]);
    assert_eq!(sink.totals().publishes, [0, 0, 1]);
}

#[test]
fn qos0_publish_is_counted_and_not_answered() {
    let sink = two_thread_sink();
    let mut stream = connected(&sink);
    stream.write_all(&publish_frame(0, 0)).unwrap();
    stream.write_all(&[0b1100_0000, 0x00]).unwrap(); // PINGREQ as a marker
    assert_eq!(read_n(&mut stream, 2), [0b1101_0000, 0x00]);
    assert_eq!(sink.totals().publishes, [1, 0, 0]);
}

#[test]
fn subscribe_is_answered_with_suback_granting_the_requested_qos() {
    let sink = two_thread_sink();
    let mut stream = connected(&sink);
    let mut subscribe = Vec::new();
    mqtt::subscribe::encode(&mut subscribe, 7, &[("a/#", 1), ("b", 2), ("c/+", 0)]);
    stream.write_all(&subscribe).unwrap();
    assert_eq!(
        read_n(&mut stream, 7),
        [0x90, 0x05, 0x00, 0x07, 0x01, 0x02, 0x00]
    );
    assert_eq!(sink.totals().subscribes, 1);
}

#[test]
fn unsubscribe_is_answered_with_unsuback() {
    let sink = two_thread_sink();
    let mut stream = connected(&sink);
    // UNSUBSCRIBE (section 3.10): 0b1010_0010, remaining length 5, packet id 9, filter "a".
    stream
        .write_all(&[0xA2, 0x05, 0x00, 0x09, 0x00, 0x01, b'a'])
        .unwrap();
    assert_eq!(read_n(&mut stream, 4), [0xB0, 0x02, 0x00, 0x09]);
}

#[test]
fn pingreq_is_answered_with_pingresp() {
    let sink = two_thread_sink();
    let mut stream = connected(&sink);
    stream.write_all(&[0b1100_0000, 0x00]).unwrap();
    assert_eq!(read_n(&mut stream, 2), [0b1101_0000, 0x00]);
}

#[test]
fn disconnect_makes_the_sink_close_the_connection() {
    let sink = two_thread_sink();
    let mut stream = connected(&sink);
    stream.write_all(&[0b1110_0000, 0x00]).unwrap();
    assert!(closed_by_peer(&mut stream));
    assert!(eventually(|| sink.totals().open_connections == 0));
}

#[test]
fn a_publish_split_into_single_bytes_is_still_acknowledged() {
    let sink = two_thread_sink();
    let mut stream = connected(&sink);
    for byte in publish_frame(1, 42) {
        stream.write_all(&[byte]).unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(read_n(&mut stream, 4), [0x40, 0x02, 0x00, 42]);
}

#[test]
fn ten_thousand_pipelined_qos1_publishes_get_ten_thousand_pubacks_in_order() {
    const PUBLISHES: u16 = 10_000;
    let sink = two_thread_sink();
    let mut stream = connected(&sink);
    let mut frames = Vec::new();
    for pkid in 1..=PUBLISHES {
        frames.extend_from_slice(&publish_frame(1, pkid));
    }
    // Write from another thread so neither side can deadlock on full socket buffers.
    let mut writer = stream.try_clone().unwrap();
    let writing = thread::spawn(move || writer.write_all(&frames));
    let acks = read_n(&mut stream, 4 * usize::from(PUBLISHES));
    writing.join().unwrap().unwrap();
    for (index, ack) in acks.chunks_exact(4).enumerate() {
        let [hi, lo] = (index as u16 + 1).to_be_bytes();
        assert_eq!(ack, [0x40, 0x02, hi, lo], "ack number {index}");
    }
    assert_eq!(sink.totals().publishes[1], u64::from(PUBLISHES));
}

#[test]
fn nine_connections_over_three_workers_are_all_served() {
    let sink = start_sink(SinkOptions {
        threads: 3,
        ..Default::default()
    });
    let mut streams: Vec<TcpStream> = (0..9).map(|_| connected(&sink)).collect();
    for (pkid, stream) in (1u16..).zip(&mut streams) {
        stream.write_all(&publish_frame(1, pkid)).unwrap();
        assert_eq!(read_n(stream, 4), [0x40, 0x02, 0x00, pkid as u8]);
    }
    let totals = sink.stop();
    assert_eq!(
        (totals.connections, totals.connects, totals.publishes[1]),
        (9, 9, 9)
    );
}

#[test]
fn garbage_bytes_close_the_connection_and_the_sink_keeps_serving_others() {
    let sink = two_thread_sink();
    let mut healthy = connected(&sink);
    let mut broken = connected(&sink);
    broken
        .write_all(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00])
        .unwrap();
    assert!(closed_by_peer(&mut broken));
    assert!(eventually(|| sink.totals().malformed == 1));
    healthy.write_all(&publish_frame(1, 5)).unwrap();
    assert_eq!(read_n(&mut healthy, 4), [0x40, 0x02, 0x00, 0x05]);
    let _late = connected(&sink);
}

/// A PUBLISH header announcing `remaining` bytes (none of which follow).
fn publish_header(remaining: usize) -> Vec<u8> {
    let mut out = vec![0x30];
    let mut left = remaining;
    loop {
        let byte = (left % 128) as u8;
        left /= 128;
        if left == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[test]
fn partial_packets_of_many_connections_stay_within_the_memory_bound_and_others_are_served() {
    const BOUND: usize = 4 << 20;
    const PART: usize = 256 << 10;
    const CONNECTIONS: usize = 40;
    let sink = start_sink(SinkOptions {
        threads: 2,
        max_buffered_bytes: BOUND,
        ..Default::default()
    });
    let mut healthy = connected(&sink);
    // Each sends the first 256 KiB of a 1 MiB PUBLISH and waits: 10 MiB held without a bound.
    let mut part = publish_header(1 << 20);
    part.resize(PART, b'x');
    let highest = std::cell::Cell::new(0);
    let mut partial: Vec<TcpStream> = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut stream = connected(&sink);
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let _ = stream.write_all(&part); // a connection closed at the bound refuses the rest
        partial.push(stream);
        highest.set(highest.get().max(sink.totals().buffered_bytes));
    }
    // 16 partial packets of 256 KiB fit in 4 MiB: at least 24 connections are closed.
    let at_least_closed = (CONNECTIONS - BOUND / PART) as u64;
    assert!(
        eventually(|| {
            let totals = sink.totals();
            highest.set(highest.get().max(totals.buffered_bytes));
            totals.over_memory >= at_least_closed
                && totals.open_connections == 1 + CONNECTIONS as u64 - totals.over_memory
        }),
        "{:?}",
        sink.totals()
    );
    assert!(
        highest.get() <= BOUND as u64,
        "{} bytes held",
        highest.get()
    );
    let totals = sink.totals();
    assert!(totals.buffered_bytes <= BOUND as u64, "{totals:?}");
    assert_eq!(totals.malformed, 0);
    // The connections closed at the bound see it; the sink serves the others.
    let closed = partial
        .iter_mut()
        .map(|stream| closed_by_peer_within(stream, Duration::from_millis(200)))
        .filter(|&closed| closed)
        .count();
    assert_eq!(closed as u64, totals.over_memory);
    healthy.write_all(&publish_frame(1, 9)).unwrap();
    assert_eq!(read_n(&mut healthy, 4), [0x40, 0x02, 0x00, 0x09]);
    let mut late = connected(&sink);
    late.write_all(&publish_frame(1, 3)).unwrap();
    assert_eq!(read_n(&mut late, 4), [0x40, 0x02, 0x00, 0x03]);
    // Closing the partial connections gives their bytes back.
    drop(partial);
    assert!(
        eventually(|| sink.totals().buffered_bytes == 0),
        "{:?}",
        sink.totals()
    );
}

/// True when the peer closed the connection within `wait` (a live one times out instead).
fn closed_by_peer_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let closed = closed_by_peer(stream);
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    closed
}

/// A WebSocket upgrade to the sink, answered with 101.
fn ws_opened(sink: &SinkHandle) -> TcpStream {
    let mut stream = open(sink);
    stream
        .write_all(
            b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Protocol: mqtt\r\n\r\n",
        )
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.extend_from_slice(&read_n(&mut stream, 1));
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

#[test]
fn the_websocket_sink_answers_an_empty_close_with_1000_and_an_invalid_code_with_1002() {
    let sink = start_sink(SinkOptions {
        threads: 1,
        websocket: true,
        ..Default::default()
    });
    let key = [0x11, 0x22, 0x33, 0x44];
    for (body, answer) in [
        (&[][..], 1000u16),
        (&[0x03, 0xE7][..], 1002), // 999
        (&[0x03, 0xED][..], 1002), // 1005, which no endpoint may send
        (&[0x03, 0xE9][..], 1001), // a valid code is echoed
    ] {
        let mut stream = ws_opened(&sink);
        let mut frame = vec![0x88, 0x80 | body.len() as u8];
        frame.extend_from_slice(&key);
        frame.extend(body.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        stream.write_all(&frame).unwrap();
        let [hi, lo] = answer.to_be_bytes();
        assert_eq!(
            read_n(&mut stream, 4),
            [0x88, 0x02, hi, lo],
            "close {body:?}"
        );
        assert!(closed_by_peer(&mut stream));
    }
}

#[test]
fn the_sink_listens_on_loopback_unless_told_otherwise() {
    assert!(SinkOptions::default().listen.ip().is_loopback());
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_mqblast"))
        .args(["sink", "--help"])
        .output()
        .expect("mqblast sink --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("[default: 127.0.0.1:1883]") && help.contains("0.0.0.0:1883"),
        "{help}"
    );
}

#[test]
fn a_publish_before_connect_closes_the_connection() {
    let sink = two_thread_sink();
    let mut stream = open(&sink);
    stream.write_all(&publish_frame(1, 1)).unwrap();
    assert!(closed_by_peer(&mut stream));
    assert!(eventually(|| sink.totals().malformed == 1));
}

#[test]
fn ack_delay_holds_the_puback_back_for_at_least_the_delay() {
    let sink = start_sink(SinkOptions {
        threads: 2,
        ack_delay: Duration::from_millis(50),
        ..Default::default()
    });
    let mut stream = connected(&sink); // CONNACK is not delayed (READ_TIMEOUT bounds it).
    let sent = Instant::now();
    stream.write_all(&publish_frame(1, 77)).unwrap();
    assert_eq!(read_n(&mut stream, 4), [0x40, 0x02, 0x00, 77]);
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(50),
        "PUBACK after {waited:?}"
    );
    assert!(waited < Duration::from_secs(1), "PUBACK after {waited:?}");
}

#[test]
fn ack_delay_applies_to_pubrec_and_pubcomp_too() {
    let sink = start_sink(SinkOptions {
        threads: 1,
        ack_delay: Duration::from_millis(50),
        ..Default::default()
    });
    let mut stream = connected(&sink);
    let sent = Instant::now();
    stream.write_all(&publish_frame(2, 3)).unwrap();
    assert_eq!(read_n(&mut stream, 4), [0x50, 0x02, 0x00, 0x03]);
    let mut pubrel = Vec::new();
    mqtt::ack::encode_pubrel(&mut pubrel, 3);
    stream.write_all(&pubrel).unwrap();
    assert_eq!(read_n(&mut stream, 4), [0x70, 0x02, 0x00, 0x03]);
    assert!(
        sent.elapsed() >= Duration::from_millis(100),
        "after {:?}",
        sent.elapsed()
    );
}

#[test]
fn a_stall_holds_back_the_acks_of_publishes_sent_during_it() {
    const PUBLISHES: u16 = 250; // one every 10 ms: 2.5 s, crossing the stalls at 1 s and 2 s
    let sink = start_sink(SinkOptions {
        threads: 2,
        stall: Some(sink::parse_stall("1s:300ms").unwrap()),
        ..Default::default()
    });
    let mut stream = connected(&sink);
    let mut reader = stream.try_clone().unwrap();
    let receiving = thread::spawn(move || {
        let mut received_at = vec![None; usize::from(PUBLISHES) + 1];
        for _ in 0..PUBLISHES {
            let ack = read_n(&mut reader, 4);
            let pkid = u16::from_be_bytes([ack[2], ack[3]]);
            received_at[usize::from(pkid)] = Some(Instant::now());
        }
        received_at
    });
    let mut sent_at = vec![Instant::now(); usize::from(PUBLISHES) + 1];
    for pkid in 1..=PUBLISHES {
        sent_at[usize::from(pkid)] = Instant::now();
        stream.write_all(&publish_frame(1, pkid)).unwrap();
        thread::sleep(Duration::from_millis(10));
    }
    let received_at = receiving.join().unwrap();
    let slowest = (1..=usize::from(PUBLISHES))
        .map(|pkid| received_at[pkid].expect("every publish acked") - sent_at[pkid])
        .max()
        .unwrap();
    assert!(
        slowest >= Duration::from_millis(250),
        "slowest ack took {slowest:?}"
    );
}

#[test]
fn stop_closes_every_connection_and_returns_the_totals() {
    let sink = two_thread_sink();
    let mut stream = connected(&sink);
    stream.write_all(&publish_frame(1, 1)).unwrap();
    read_n(&mut stream, 4);
    let totals = sink.stop();
    assert_eq!(totals.publishes, [0, 1, 0]);
    assert_eq!(totals.open_connections, 0);
    assert!(totals.bytes > 0);
    assert!(closed_by_peer(&mut stream));
}

#[test]
fn run_returns_when_asked_to_stop() {
    let opts = SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        quiet: true,
        ..Default::default()
    };
    let started = Instant::now();
    let totals = sink::run(&opts, &|| started.elapsed() > Duration::from_millis(200)).unwrap();
    assert_eq!(totals, sink::SinkTotals::default());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn run_returns_after_run_for() {
    let opts = SinkOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        quiet: true,
        run_for: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let started = Instant::now();
    sink::run(&opts, &|| false).unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn bad_stall_specs_are_rejected_with_a_reason() {
    assert!(sink::parse_stall("10s").unwrap_err().contains("EVERY:FOR"));
    assert!(sink::parse_stall("1s:2s").unwrap_err().contains("shorter"));
    assert!(sink::parse_stall("1x:1s").is_err());
    assert!(sink::parse_stall("0s:0s").is_err());
}

/// Set the client's socket receive buffer (Linux doubles it and caps it at `rmem_max`).
fn set_receive_buffer(stream: &TcpStream, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket descriptor and a c_int option value of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_RCVBUF)");
}

/// Largest TCP send buffer the kernel autotunes to (`tcp_wmem` max; 4 MiB if unknown).
fn tcp_send_buffer_max_bytes() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|text| text.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20)
}

#[test]
fn a_client_that_does_not_read_its_acks_makes_the_sink_stop_reading_until_it_does() {
    // 7-byte QoS 1 publishes (topic "t", no payload), enough to owe twice as many PUBACK
    // bytes as the client's receive buffer (512 KiB), the sink's socket send buffer and its
    // write buffer can hold together: 2 M publishes (8 MB of acks) with default settings.
    let publishes = (2 * (tcp_send_buffer_max_bytes() + (1 << 20)) / 4).max(2_000_000);
    let sink = two_thread_sink();
    let mut stream = connected(&sink);
    // A fixed receive buffer, so unread acks back up into the sink rather than the client
    // (autotuning would grow it to 32 MiB). It stays above the loopback MSS (64 KiB): a
    // window below one segment makes TCP crawl on persist timers.
    set_receive_buffer(&stream, 256 << 10);
    let mut frames = Vec::with_capacity(7 * publishes);
    for index in 0..publishes {
        let [hi, lo] = ((index % 65_535) as u16 + 1).to_be_bytes();
        frames.extend_from_slice(&[0x32, 0x05, 0x00, 0x01, b't', hi, lo]);
    }
    let mut writer = stream.try_clone().unwrap();
    let writing = thread::spawn(move || writer.write_all(&frames));

    let read_while_ignored = |sink: &SinkHandle| {
        let mut last = u64::MAX;
        for _ in 0..100 {
            thread::sleep(Duration::from_millis(200));
            let now = sink.totals().publishes[1];
            if now == last && now > 0 {
                return now;
            }
            last = now;
        }
        panic!("the sink kept reading a client that never reads ({last} publishes)");
    };
    let plateau = read_while_ignored(&sink);
    assert!(
        plateau < publishes as u64,
        "read all {plateau} without the client reading"
    );

    let acks = read_n(&mut stream, 4 * publishes);
    writing.join().unwrap().unwrap();
    let pubacks = acks
        .chunks_exact(4)
        .filter(|ack| ack[..2] == [0x40, 0x02])
        .count();
    assert_eq!(pubacks, publishes);
    assert_eq!(sink.totals().publishes[1], publishes as u64);
}

/// An MQTT 5 CONNECT, written out literally: "MQTT", level 5, clean start, keep-alive 30,
/// an empty property block, client id "v5".
const CONNECT_V5: [u8; 17] = [
    0x10, 15, 0x00, 0x04, b'M', b'Q', b'T', b'T', 5, 0x02, 0x00, 30, 0x00, 0x00, 0x02, b'v', b'5',
];

/// Open a connection and complete an MQTT 5 CONNECT / CONNACK exchange.
fn connected_v5(sink: &SinkHandle) -> TcpStream {
    let mut stream = open(sink);
    stream.write_all(&CONNECT_V5).unwrap();
    // CONNACK: flags 0, reason 0x00, one property: Topic Alias Maximum 65535.
    assert_eq!(
        read_n(&mut stream, 8),
        [0x20, 0x06, 0x00, 0x00, 0x03, 0x22, 0xFF, 0xFF]
    );
    stream
}

#[test]
fn an_mqtt_5_client_is_answered_in_mqtt_5_with_reason_codes_and_empty_properties() {
    let sink = two_thread_sink();
    let mut stream = connected_v5(&sink);
    // QoS 1 PUBLISH "t", packet id 0x0A0B, property length 0, payload "x".
    stream
        .write_all(&[0x32, 0x07, 0x00, 0x01, b't', 0x0A, 0x0B, 0x00, b'x'])
        .unwrap();
    assert_eq!(read_n(&mut stream, 6), [0x40, 0x04, 0x0A, 0x0B, 0x00, 0x00]);
    // QoS 2 with a Message Expiry property: PUBREC, then PUBCOMP for the PUBREL.
    stream
        .write_all(&[
            0x34, 0x0C, 0x00, 0x01, b't', 0x00, 0x07, 0x05, 0x02, 0x00, 0x00, 0x00, 0x3C, b'x',
        ])
        .unwrap();
    assert_eq!(read_n(&mut stream, 6), [0x50, 0x04, 0x00, 0x07, 0x00, 0x00]);
    stream.write_all(&[0x62, 0x02, 0x00, 0x07]).unwrap();
    assert_eq!(read_n(&mut stream, 6), [0x70, 0x04, 0x00, 0x07, 0x00, 0x00]);
    // SUBSCRIBE id 3, subscription identifier 5, "a/#" with No Local at QoS 1.
    stream
        .write_all(&[
            0x82, 0x0B, 0x00, 0x03, 0x02, 0x0B, 0x05, 0x00, 0x03, b'a', b'/', b'#', 0x05,
        ])
        .unwrap();
    assert_eq!(read_n(&mut stream, 6), [0x90, 0x04, 0x00, 0x03, 0x00, 0x01]);
    // UNSUBSCRIBE id 4 of two filters: UNSUBACK with a success code for each.
    stream
        .write_all(&[
            0xA2, 0x09, 0x00, 0x04, 0x00, 0x00, 0x01, b'a', 0x00, 0x01, b'b',
        ])
        .unwrap();
    assert_eq!(
        read_n(&mut stream, 7),
        [0xB0, 0x05, 0x00, 0x04, 0x00, 0x00, 0x00]
    );
    assert_eq!(sink.totals().publishes, [0, 1, 1]);
}

#[test]
fn mqblast_under_mqtt_5_into_the_sink_counts_every_message() {
    let sink = two_thread_sink();
    let host = sink.addr().to_string();
    for qos in ["0", "1", "2"] {
        let args = [
            "-H",
            &host,
            "--mqtt-version",
            "5",
            "-u",
            "4",
            "--qos",
            qos,
            "--interval",
            "0",
            "--messages",
            "5000",
            "--only-summary",
            "-r",
            "1000",
            "--topic-alias",
        ];
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_mqblast"))
            .args(args)
            .output()
            .expect("mqblast runs");
        assert!(
            output.status.success(),
            "qos {qos}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(eventually(|| sink.totals().publishes == [5000, 5000, 5000]));
}
