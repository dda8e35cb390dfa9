//! The embedded broker: with no `--host`, mqblast starts rumqttd in-process on a loopback
//! ephemeral port, so `cargo run --release` on a fresh clone runs a real test in seconds.
//!
//! It is a convenience for trying mqblast out, not a benchmark target: rumqttd shares the
//! generator's cores, so its numbers say little about a production broker.

use std::net::SocketAddr;
#[cfg(feature = "embedded-broker")]
use std::net::TcpStream;
#[cfg(feature = "embedded-broker")]
use std::time::{Duration, Instant};

/// Start rumqttd on 127.0.0.1 and return its address once it accepts TCP connections.
/// `max_connections` bounds the router's client table (users plus headroom).
#[cfg(feature = "embedded-broker")]
pub fn start(max_connections: usize, max_payload_bytes: usize) -> Result<SocketAddr, String> {
    // rumqttd binds the address it is given and does not report an ephemeral port back, so
    // pick a free one first. Another process could take it in between; then the wait below
    // fails with a clear message instead of running against a stranger.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("embedded broker: cannot find a free loopback port: {e}"))?
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config_toml = format!(
        r#"
id = 0
[router]
id = 0
max_connections = {max_connections}
max_outgoing_packet_count = 1000
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "mqblast-embedded"
listen = "{addr}"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = {max_payload_bytes}
    max_inflight_count = 1000
    dynamic_filters = true
"#
    );
    let config: rumqttd::Config =
        toml::from_str(&config_toml).map_err(|e| format!("embedded broker config: {e}"))?;
    std::thread::Builder::new()
        .name("mqblast-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                eprintln!("embedded broker stopped: {e}");
            }
        })
        .map_err(|e| format!("embedded broker: cannot start its thread: {e}"))?;
    wait_until_listening(addr, Duration::from_secs(10))?;
    Ok(addr)
}

#[cfg(not(feature = "embedded-broker"))]
pub fn start(_max_connections: usize, _max_payload_bytes: usize) -> Result<SocketAddr, String> {
    Err(
        "no --host given and this build has no embedded broker (feature \"embedded-broker\"): \
         pass -H host:port"
            .to_string(),
    )
}

#[cfg(feature = "embedded-broker")]
fn wait_until_listening(addr: SocketAddr, limit: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(format!(
                "embedded broker did not start listening on {addr} within {limit:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
