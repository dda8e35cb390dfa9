//! Driving `mqblast --web` from tests: start it on a free port, wait until it answers, and
//! make HTTP requests with curl (a real HTTP client; scripts/test.sh installs it).

use std::process::Command;
use std::time::{Duration, Instant};

use super::{free_port, mqblast_command, spawn, Running};

/// A `mqblast --web` process and its base URL.
pub struct WebRun {
    pub running: Running,
    pub base: String,
    pub auth: Option<String>,
}

/// A reply: status code and body.
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Start `mqblast --web` with `args` on a free loopback port and wait until it serves.
pub fn start_web(args: &[&str]) -> WebRun {
    start_web_with_auth(args, None)
}

pub fn start_web_with_auth(args: &[&str], auth: Option<&str>) -> WebRun {
    let port = free_port().to_string();
    let mut all = vec!["--web", "--web-port", &port, "--only-summary"];
    all.extend_from_slice(args);
    if let Some(auth) = auth {
        all.extend_from_slice(&["--web-auth", auth]);
    }
    let web = WebRun {
        running: spawn(mqblast_command(&all)),
        base: format!("http://127.0.0.1:{port}"),
        auth: auth.map(str::to_string),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while web.get("/stats/requests").status == 0 {
        assert!(Instant::now() < deadline, "the web UI never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    web
}

impl WebRun {
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, &[])
    }

    /// POST a form-encoded body, as Locust's UI does.
    pub fn post_form(&self, path: &str, form: &str) -> Reply {
        let header = "Content-Type: application/x-www-form-urlencoded";
        self.request("POST", path, Some(form), &[header])
    }

    pub fn post_json(&self, path: &str, json: &str) -> Reply {
        self.request(
            "POST",
            path,
            Some(json),
            &["Content-Type: application/json"],
        )
    }

    /// POST a `multipart/form-data` form (`curl -F name=value`).
    pub fn post_multipart(&self, path: &str, fields: &[&str]) -> Reply {
        let mut cmd = self.curl("POST", &[]);
        for field in fields {
            cmd.args(["-F", field]);
        }
        self.send(cmd, path)
    }

    /// Any request; status 0 when nothing answered.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>, headers: &[&str]) -> Reply {
        let mut cmd = self.curl(method, headers);
        if let Some(body) = body {
            cmd.args(["--data-binary", body]);
        }
        self.send(cmd, path)
    }

    fn curl(&self, method: &str, headers: &[&str]) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-m", "10", "-X", method, "-w", "\n%{http_code}"]);
        if let Some(auth) = &self.auth {
            cmd.args(["-u", auth]);
        }
        for h in headers {
            cmd.args(["-H", h]);
        }
        cmd
    }

    fn send(&self, mut cmd: Command, path: &str) -> Reply {
        cmd.arg(format!("{}{path}", self.base));
        let out = cmd
            .output()
            .expect("curl runs (scripts/test.sh installs it)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        Reply {
            status: status.trim().parse().unwrap_or(0),
            body: body.to_string(),
        }
    }

    /// Poll `/stats/requests` until `done` holds (or fail after `limit`).
    pub fn wait_for(
        &self,
        limit: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let stats = self.get("/stats/requests").json();
            if done(&stats) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "condition never held; last: {stats}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `num_requests` of the row named `prefix...` in `/stats/requests`.
pub fn row_requests(stats: &serde_json::Value, prefix: &str) -> u64 {
    stats["stats"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        })
        .and_then(|r| r["num_requests"].as_u64())
        .unwrap_or(0)
}
