//! The web UI in a real headless Chromium, driven through WebDriver (Debian's chromedriver):
//! open the page, start a test against mosquitto, see the charts and the statistics table
//! fill, raise the users from 5 to 20 and see 20 connected, stop, download the report. The
//! browser's console must stay free of errors and the page must request nothing outside its
//! own origin (from Chromium's performance log). A screenshot is kept in
//! target/test-artifacts/webui.png.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use common::web::start_web;

const WAIT: Duration = Duration::from_secs(40);
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session.
struct Browser {
    driver: Driver,
    session: String,
}

fn webdriver(method: &str, url: &str, body: Option<&Value>) -> Value {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-m",
        "60",
        "-X",
        method,
        "-H",
        "Content-Type: application/json",
    ]);
    if let Some(body) = body {
        cmd.args(["--data-binary", &body.to_string()]);
    }
    let out = cmd.arg(url).output().expect("curl runs");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

impl Browser {
    fn start(chromium: &str, profile: &std::path::Path) -> Browser {
        let port = common::free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + WAIT;
        while webdriver("GET", &format!("{}/status", driver.base), None)["value"]["ready"] != true {
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--disable-extensions", "--no-first-run",
                         "--window-size=1280,1600",
                         format!("--user-data-dir={}", profile.display())],
            }
        }}});
        let created = webdriver(
            "POST",
            &format!("{}/session", driver.base),
            Some(&capabilities),
        );
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        Browser { driver, session }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.driver.base, self.session);
        let reply = webdriver(method, &url, body.as_ref());
        assert!(reply["value"].get("error").is_none(), "{path}: {reply}");
        reply["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn text(&self, id: &str) -> String {
        let script = format!("return document.getElementById('{id}').textContent;");
        self.script(&script)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn wait_until(&self, what: &str, done: impl Fn(&Browser) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn log(&self, kind: &str) -> Vec<Value> {
        let entries = self.call("POST", "/se/log", Some(json!({"type": kind})));
        entries.as_array().cloned().unwrap_or_default()
    }

    fn screenshot(&self) -> Vec<u8> {
        let data = self.call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64 screenshot"))
            .expect("screenshot decodes")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.driver.base, self.session);
        let _ = webdriver("DELETE", &url, None);
    }
}

fn artifacts_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// (document, URL) of every request in the performance log (Network.requestWillBeSent).
fn requests_seen(performance: &[Value]) -> Vec<(String, String)> {
    performance
        .iter()
        .filter_map(|entry| serde_json::from_str::<Value>(entry["message"].as_str()?).ok())
        .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
        .map(|m| {
            let params = &m["message"]["params"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&params["documentURL"]),
                text(&params["request"]["url"]),
            )
        })
        .collect()
}

#[test]
fn the_web_ui_in_chromium_starts_a_test_raises_users_to_20_stops_and_downloads_the_report() {
    let chromium =
        common::find_program("chromium").or_else(|| common::find_program("chromium-browser"));
    let driver = common::find_program("chromedriver");
    let (Some(chromium), Some(_)) = (chromium, driver) else {
        if std::env::var("MQBLAST_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("chromium or chromedriver not found (scripts/test.sh installs them)");
        }
        eprintln!("SKIPPED: no chromium/chromedriver on PATH (scripts/test.sh installs them)");
        return;
    };
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let web = start_web(&[
        "-H",
        &host,
        "-u",
        "5",
        "-r",
        "50",
        "--interval",
        "100ms",
        "--run-time",
        "10m",
    ]);
    let profile = common::TempDir::new("webui-chromium");
    let browser = Browser::start(&chromium.display().to_string(), profile.path());
    browser.open(&format!("{}/", web.base));
    assert_eq!(browser.text("state"), "ready");
    // Record what the server answers to the page's own calls (its buttons' POSTs).
    browser.script(
        "window.answers = []; const f = window.fetch; window.fetch = async (path, init) => { const r = await f(path, init); window.answers.push(String(path) + ' ' + ((init || {}).method || 'GET') + ' ' + r.status); return r; }; return 0;",
    );
    let answered = |b: &Browser, call: &str| {
        b.script("return window.answers;")
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == call))
    };

    browser.type_into("#user_count", "5");
    browser.click("#start");
    browser.wait_until("5 connected users", |b| b.text("users") == "5");
    browser.wait_until("charts and table", |b| {
        let charts = b.script(
            "return document.querySelectorAll('#charts svg polyline, #charts svg path').length;",
        );
        let rows = b.script("return document.querySelectorAll('#stats table tr').length;");
        charts.as_u64() > Some(0) && rows.as_u64() > Some(2)
    });
    let (head, _) = stats_cells(&browser);
    assert!(
        head.contains(&"# requests".to_string()) && !head.contains(&"# device points".to_string()),
        "a run without gateways has no points column: {head:?}"
    );

    browser.type_into("#user_count", "20");
    browser.click("#start");
    browser.wait_until("20 connected users", |b| {
        b.text("users") == "20" && b.text("target") == "20"
    });
    browser.wait_until("the users chart at 20", |b| b.text("state") == "running");
    std::thread::sleep(Duration::from_secs(2));
    let shot = browser.screenshot();
    assert!(shot.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(artifacts_dir().join("webui.png"), &shot).expect("screenshot saved");

    browser.click("#reset");
    browser.wait_until("Reset stats answered 200", |b| {
        answered(b, "/stats/reset POST 200")
    });
    assert_eq!(browser.text("message"), "", "no error shown");
    assert!(answered(&browser, "/swarm POST 200"), "Start answered 200");

    browser.click("#stop");
    browser.wait_until("stopped", |b| b.text("state") == "stopped");
    assert!(answered(&browser, "/stop POST 200"), "Stop answered 200");
    let report = browser.script(
        "var r = new XMLHttpRequest(); r.open('GET', document.getElementById('report').href, false); r.send(); return [r.status, r.responseText];",
    );
    assert_eq!(report[0], 200);
    let html = report[1].as_str().unwrap_or_default();
    assert!(
        html.contains("<svg") && html.contains("Aggregated"),
        "the report downloads"
    );

    let console = browser.log("browser");
    let errors: Vec<&Value> = console.iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    let seen = requests_seen(&browser.log("performance"));
    let from_page: Vec<&String> = seen
        .iter()
        .filter(|(document, _)| document.starts_with(&web.base))
        .map(|(_, url)| url)
        .collect();
    assert!(
        from_page.len() > 3,
        "the performance log saw the page's requests"
    );
    for url in &from_page {
        assert!(
            url.starts_with(&web.base) || url.starts_with("data:"),
            "the page requested outside its origin: {url}"
        );
    }
    // Nothing at all went to the network elsewhere (the browser's own chrome:// pages aside).
    for (_, url) in &seen {
        let network = url.starts_with("http://") || url.starts_with("https://");
        assert!(
            !network || url.starts_with(&web.base),
            "network request: {url}"
        );
    }
    drop(browser);
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

#[test]
fn the_web_ui_after_stop_keeps_the_last_users_and_shows_the_logs_and_exceptions_views() {
    let chromium =
        common::find_program("chromium").or_else(|| common::find_program("chromium-browser"));
    let driver = common::find_program("chromedriver");
    let (Some(chromium), Some(_)) = (chromium, driver) else {
        if std::env::var("MQBLAST_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("chromium or chromedriver not found (scripts/test.sh installs them)");
        }
        eprintln!("SKIPPED: no chromium/chromedriver on PATH (scripts/test.sh installs them)");
        return;
    };
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let web = start_web(&["-H", &host, "-u", "2", "-r", "50", "--interval", "100ms"]);
    let profile = common::TempDir::new("webui-chromium-logs");
    let browser = Browser::start(&chromium.display().to_string(), profile.path());
    browser.open(&format!("{}/", web.base));
    let value = |b: &Browser, id: &str| {
        b.script(&format!("return document.getElementById('{id}').value;"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    browser.click("#start");
    browser.wait_until("2 connected users", |b| b.text("users") == "2");
    browser.type_into("#user_count", "4");
    browser.click("#start");
    browser.wait_until("4 connected users", |b| b.text("users") == "4");
    let points = |b: &Browser| {
        b.script("return document.querySelectorAll('#charts svg').length;")
            .as_u64()
            .unwrap_or(0)
    };
    browser.wait_until("charts", |b| points(b) > 0);
    browser.click("#logs_view summary");
    browser.wait_until("the start logged", |b| {
        b.text("logs").contains("test started")
    });
    browser.click("#reset");
    browser.wait_until("the reset logged", |b| {
        b.text("logs").contains("statistics reset")
    });
    assert!(
        points(&browser) > 0,
        "the charts are still drawn after the reset"
    );
    browser.click("#stop");
    browser.wait_until("stopped", |b| b.text("state") == "stopped");
    assert_eq!(
        value(&browser, "user_count"),
        "4",
        "the field keeps the last target"
    );
    browser.wait_until("the stop logged", |b| {
        let logs = b.text("logs");
        logs.contains("users 2 -> 4 at 50/s") && logs.contains("test stopped (Stop) at 4 users")
    });

    // A reload keeps it too (the page is rendered with the target the test ended at).
    browser.open(&format!("{}/", web.base));
    browser.wait_until("stopped after reload", |b| b.text("state") == "stopped");
    assert_eq!(value(&browser, "user_count"), "4");

    browser.click("#exceptions_view summary");
    assert_eq!(browser.text("exception_count"), "0");
    let headers = browser.script(
        "return Array.from(document.querySelectorAll('#exceptions_view th')).map(t => t.textContent).join(',');",
    );
    assert_eq!(headers, "Count,Message,Traceback,Nodes");
    let link = browser.script(
        "var r = new XMLHttpRequest(); r.open('GET', '/exceptions/csv', false); r.send(); return [r.status, r.responseText];",
    );
    assert_eq!(link[0], 200);
    assert_eq!(link[1], "Count,Message,Traceback,Nodes\r\n");

    let console = browser.log("browser");
    let errors: Vec<&Value> = console.iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    drop(browser);
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}

/// The cells of the page's request statistics table: (head, rows), as the browser shows them.
fn stats_cells(browser: &Browser) -> (Vec<String>, Vec<Vec<String>>) {
    let found = browser.script(
        "const t = document.querySelector('#stats table'); if (!t) { return [[], []]; } return [Array.from(t.querySelectorAll('thead th')).map(h => h.textContent), Array.from(t.querySelectorAll('tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))];",
    );
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let rows = found[1]
        .as_array()
        .map(|rows| rows.iter().map(strings).collect());
    (strings(&found[0]), rows.unwrap_or_default())
}

#[test]
fn a_gateway_run_in_the_web_ui_shows_its_device_points_as_its_json_counts_them() {
    let chromium =
        common::find_program("chromium").or_else(|| common::find_program("chromium-browser"));
    let driver = common::find_program("chromedriver");
    let (Some(chromium), Some(_)) = (chromium, driver) else {
        if std::env::var("MQBLAST_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("chromium or chromedriver not found (scripts/test.sh installs them)");
        }
        eprintln!("SKIPPED: no chromium/chromedriver on PATH (scripts/test.sh installs them)");
        return;
    };
    let broker = common::Mosquitto::start();
    let host = broker.addr();
    let web = start_web(&[
        "-H",
        &host,
        "-u",
        "2",
        "-r",
        "50",
        "--gateway",
        "--devices-per-gateway",
        "5",
        "--gateway-mode",
        "batched",
        "--interval",
        "200ms",
        "--run-time",
        "3s",
    ]);
    let profile = common::TempDir::new("webui-chromium-gateway");
    let browser = Browser::start(&chromium.display().to_string(), profile.path());
    browser.open(&format!("{}/", web.base));
    browser.click("#start");
    browser.wait_until("the run's end", |b| b.text("state") == "stopped");

    // The final numbers: /stats/requests as the page's own origin serves them.
    let requests = browser.script(
        "var r = new XMLHttpRequest(); r.open('GET', '/stats/requests', false); r.send(); return JSON.parse(r.responseText);",
    );
    let points_of = |name: &str| {
        requests["stats"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == name))
            .map(|r| r["device_points"].clone())
            .unwrap_or_else(|| panic!("no {name} row: {requests}"))
    };
    let telemetry = points_of("gateway telemetry").as_u64().expect("points");
    assert!(
        telemetry >= 10,
        "2 gateways of 5 devices for 3 s: {requests}"
    );
    assert_eq!(points_of("Aggregated"), telemetry, "{requests}");
    assert_eq!(points_of("gateway connect"), Value::Null, "not a point row");

    // The page's table shows the same, once it has refreshed after the end.
    browser.wait_until("the table's points equal the JSON's", |b| {
        let (head, rows) = stats_cells(b);
        let Some(column) = head.iter().position(|h| h == "# device points") else {
            return false;
        };
        let cell = |name: &str| {
            rows.iter()
                .find(|r| r.get(1).is_some_and(|n| n == name))
                .and_then(|r| r.get(column).cloned())
        };
        cell("gateway telemetry") == Some(telemetry.to_string())
            && cell("Aggregated") == Some(telemetry.to_string())
            && cell("gateway connect") == Some(String::new())
    });
    let (head, _) = stats_cells(&browser);
    assert_eq!(
        head[2..5],
        ["# requests", "# fails", "# device points"],
        "beside the message count"
    );

    let console = browser.log("browser");
    let errors: Vec<&Value> = console.iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    drop(browser);
    web.running.signal(libc::SIGINT);
    web.running.wait(WAIT);
}
