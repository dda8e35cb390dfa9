//! The ThingsBoard-like platform of the request/answer tests: `tests/platform/tb_platform.py`
//! (Python, paho-mqtt, from the tests' virtualenv) and one mosquitto per device.
//!
//! Why one broker per device: ThingsBoard routes `v1/devices/me/...` per connection, a plain
//! broker has one topic space for all, and mosquitto 2.0.11's per-listener `mount_point` keeps
//! its prefix on what it delivers (eclipse-mosquitto/mosquitto#2244). mqblast spreads its
//! clients over its hosts (client i uses host i mod N), so with `-H` set to
//! [`Platform::hosts`] device i is alone on broker i, and speaks ThingsBoard's topics as is.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Mosquitto, Summary, TempDir};

/// The tests' Python: the Locust virtualenv's (`MQBLAST_LOCUST_VENV`, as scripts/test.sh
/// sets it, else target/locust-venv), which has paho-mqtt.
pub fn python() -> PathBuf {
    let venv = std::env::var_os("MQBLAST_LOCUST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/locust-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "no Python in {} (scripts/test.sh makes the virtualenv with paho-mqtt)",
        venv.display()
    );
    python
}

/// A running platform and its brokers; killed on drop.
pub struct Platform {
    pub brokers: Vec<Mosquitto>,
    child: Option<Child>,
    dir: TempDir,
}

impl Platform {
    /// `devices` brokers and the platform connected to all of them, subscribed before this
    /// returns. `args` are tb_platform.py's options (`--server-rpc 5`, ...).
    pub fn start(devices: usize, args: &[&str]) -> Platform {
        let brokers: Vec<Mosquitto> = (0..devices).map(|_| Mosquitto::start()).collect();
        let ports: Vec<String> = brokers.iter().map(|b| b.port.to_string()).collect();
        let dir = TempDir::new("platform");
        let ready = dir.path().join("ready");
        let script = format!(
            "{}/tests/platform/tb_platform.py",
            env!("CARGO_MANIFEST_DIR")
        );
        let child = Command::new(python())
            .arg(script)
            .args(["--ports", &ports.join(",")])
            .args(["--ready-file", &ready.display().to_string()])
            .args([
                "--out",
                &dir.path().join("counts.json").display().to_string(),
            ])
            .args(["--run-for", "600"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr")).unwrap(),
            ))
            .spawn()
            .expect("starting tb_platform.py");
        let mut platform = Platform {
            brokers,
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            if let Some(status) = platform.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("tb_platform.py exited ({status}):\n{}", platform.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "tb_platform.py not ready in 30 s:\n{}",
                platform.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        platform
    }

    /// mqblast's `-H`: device i's broker is host i.
    pub fn hosts(&self) -> String {
        let hosts: Vec<String> = self.brokers.iter().map(Mosquitto::addr).collect();
        hosts.join(",")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Stop the platform (SIGTERM) after `settle` (answers still on their way), and read its
    /// counts: `{"devices": {"0": {...}, ...}, "gateway_points": {...}, ...}`.
    pub fn stop(mut self, settle: Duration) -> serde_json::Value {
        std::thread::sleep(settle);
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("tb_platform.py did not stop in 30 s:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "tb_platform.py: {status}\n{}",
            self.stderr()
        );
        let text = std::fs::read_to_string(self.dir.path().join("counts.json"))
            .unwrap_or_else(|e| panic!("tb_platform.py wrote no counts ({e}):\n{}", self.stderr()));
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A count of device `device` in the platform's counts (0 when absent).
pub fn device_count(counts: &serde_json::Value, device: usize, name: &str) -> u64 {
    counts["devices"][device.to_string()][name]
        .as_u64()
        .unwrap_or(0)
}

/// After a flood of `flood` requests at one responder: every request was received, and each
/// was answered, dropped at the full answer queue or lost at the end (the bound held, so some
/// were answered and some dropped). Returns the answered count, to check against the
/// platform's own.
pub fn assert_flood_accounted(summary: &Summary, flood: u64) -> u64 {
    let answered = summary.u64("rpc_responder.ok");
    let dropped =
        summary.errors_starting_with("RPC request dropped: the device's answer queue was full");
    let lost = summary.errors_starting_with("RPC answer dropped");
    assert_eq!(
        summary.u64("rpc_responder.requests"),
        flood,
        "every request received: {}",
        summary.text()
    );
    assert_eq!(answered + dropped + lost, flood, "{:?}", summary.errors());
    assert!(
        dropped > 0 && answered > 0,
        "bounded: {:?}",
        summary.errors()
    );
    answered
}
