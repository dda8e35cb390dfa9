//! Reports rendered from result files: Locust's CSV layout byte for byte, the HDR interval log
//! read back with the hdrhistogram crate's reader, exact merges of randomly split runs, and an
//! HTML report that is identical when re-rendered from the saved file and loads in a real
//! headless Chromium with no console errors and no network requests.
//!
//! Runs are built by driving the real merger with synthetic worker intervals, so the results
//! have the same shape as a real run's without needing a broker (tests/reports_e2e.rs runs
//! the binary against mosquitto).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use mqblast::report::merge::{merge, Input};
use mqblast::report::result::{from_json, to_text, RunResult};
use mqblast::report::{csv, hlog, html};
use mqblast::stats::{
    channels, merger::metric_names, ClientRef, Failure, Interval, Merger, MergerConfig, Metric,
    Summary, MAX_ERROR_EXAMPLES,
};
use serde_json::json;

/// One recorded sample: absolute second of the run (1-based), what and how long.
#[derive(Clone, Copy)]
struct Sample {
    second: u64,
    metric: Metric,
    us: u64,
}

/// Deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WALL0_S: u64 = 1_700_000_000;

/// A run that started `offset_s` seconds after WALL0 and lasted until absolute second
/// `seconds`, recording `samples` and `failures` through the merger.
fn run_of(samples: &[Sample], failures: &[Failed], offset_s: u64, seconds: u64) -> Summary {
    let workers = 1;
    let (_tx, rx, recycle) = channels(workers);
    let (recycle_tx, _recycle_rx): (Vec<_>, Vec<_>) = recycle.into_iter().unzip();
    let started_at = Instant::now();
    let cfg = MergerConfig {
        request_type: "MQTT".to_string(),
        metric_names: metric_names(1, "v1/devices/me/telemetry"),
        stream_names: Vec::new(),
        target_users: 10,
        only_summary: true,
        qos: 1,
        started_at,
        started_wall: UNIX_EPOCH + Duration::from_secs(WALL0_S + offset_s),
        audit: None,
    };
    let mut merger = Merger::new(cfg, workers, rx, recycle_tx);
    for relative in 1..=seconds - offset_s {
        let absolute = relative + offset_s;
        let at = started_at + Duration::from_millis(relative * 1000);
        let mut interval = Interval::new(0, at);
        for s in samples.iter().filter(|s| s.second == absolute) {
            interval.latency[s.metric.index()].saturating_record(s.us);
            if s.metric == Metric::Publish {
                interval.lag.saturating_record(s.us / 10 + 1);
                interval.sent += 1;
            }
        }
        let mut kinds = 0;
        for &(_, failure, client) in failures.iter().filter(|(s, _, _)| *s == absolute) {
            let kind = match interval.failures[..kinds]
                .iter()
                .position(|(f, _)| *f == failure)
            {
                Some(kind) => kind,
                None => {
                    interval.failures[kinds] = (failure, 0);
                    kinds += 1;
                    kinds - 1
                }
            };
            interval.failures[kind].1 += 1;
            interval.examples[kind].add(ClientRef {
                subscriber: false,
                index: client,
            });
        }
        interval.failure_kinds = kinds;
        interval.connected = 5;
        interval.last = relative == seconds - offset_s;
        merger.absorb(interval);
    }
    merger.run_with_output(Vec::new())
}

fn random_samples(rng: &mut Rng, count: usize, seconds: u64) -> Vec<Sample> {
    (0..count)
        .map(|_| {
            let metric = if rng.below(10) == 0 {
                Metric::Connect
            } else {
                Metric::Publish
            };
            // Mostly sub-millisecond to tens of milliseconds, with a long tail.
            let scale = [1, 10, 100, 1000][rng.below(4) as usize];
            Sample {
                second: 1 + rng.below(seconds),
                metric,
                us: 50 + rng.below(2000) * scale,
            }
        })
        .collect()
}

/// A failure: absolute second of the run, why, and the index of the client it happened to.
type Failed = (u64, Failure, u64);

fn random_failures(rng: &mut Rng, count: usize, seconds: u64) -> Vec<Failed> {
    let kinds = [
        Failure::AckTimeout,
        Failure::ConnackRefused(5),
        Failure::ConnectTimeout,
    ];
    (0..count)
        .map(|_| {
            let second = 1 + rng.below(seconds);
            (second, kinds[rng.below(3) as usize], rng.below(16))
        })
        .collect()
}

/// The result as a file would hold it (through JSON text and back).
fn saved(summary: Summary) -> RunResult {
    let (result, _) =
        RunResult::round_trip(summary, json!({"users": 10, "password": "<redacted>"}))
            .expect("round trip");
    result
}

fn sample_result() -> RunResult {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let samples = random_samples(&mut rng, 3000, 12);
    let failures = random_failures(&mut rng, 40, 12);
    saved(run_of(&samples, &failures, 0, 12))
}

fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

#[test]
fn csv_headers_and_column_order_are_byte_equal_to_locusts() {
    // Typed from Locust 2.47's stats.py (StatsCSV / StatsCSVFileWriter), written with Python's
    // csv module: comma separated, "\r\n" line ends.
    let percentiles = "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";
    let stats_header = format!(
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,{percentiles}\r\n"
    );
    let history_header = format!(
        "Timestamp,User Count,Type,Name,Requests/s,Failures/s,{percentiles},Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size\r\n"
    );
    let failures_header = "Method,Name,Error,Occurrences,First Seen,Last Seen,Example Clients\r\n";
    let exceptions_header = "Count,Message,Traceback,Nodes\r\n";

    let result = sample_result();
    let dir = tempdir("csv");
    let prefix = dir.join("out");
    csv::write_csv(&prefix, &result.summary, false).expect("write csv");
    let read = |suffix: &str| {
        std::fs::read_to_string(dir.join(format!("out_{suffix}.csv"))).expect("csv written")
    };
    let stats = read("stats");
    let history = read("stats_history");
    let failures = read("failures");
    assert!(stats.starts_with(&stats_header), "{stats}");
    assert!(history.starts_with(&history_header), "{history}");
    assert!(failures.starts_with(failures_header), "{failures}");
    assert_eq!(read("exceptions"), exceptions_header);

    // Stats: connect, publish, then Aggregated with an empty Type; final whole-run numbers.
    let rows: Vec<Vec<&str>> = stats
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[2][..2], &["", "Aggregated"]);
    assert_eq!(rows[1][1], "publish:1:v1/devices/me/telemetry");
    let publish = result.summary.metric(Metric::Publish);
    assert_eq!(rows[1][2], publish.requests.to_string());
    assert_eq!(rows[1][3], publish.failures.to_string());
    assert_eq!(rows[2][2], result.summary.requests().to_string());
    let p99_ms = publish.latency_us.value_at_quantile(0.99) as f64 / 1000.0;
    assert_eq!(
        rows[1][11 + 7].parse::<f64>().unwrap(),
        p99_ms,
        "exact p99 in ms"
    );
    for row in &rows {
        assert_eq!(row.len(), 22);
    }

    // History: one Aggregated row per second; with full history, one row per metric too.
    assert_eq!(history.lines().count(), 1 + 12);
    let full = csv::history_csv(&result.summary, true).unwrap();
    assert_eq!(full.lines().count(), 1 + 12 * 3);
    let last: Vec<&str> = history.lines().last().unwrap().split(',').collect();
    assert_eq!(last.len(), 24);
    assert_eq!(last[2..4], ["", "Aggregated"]);
    assert_eq!(
        last[17],
        result.summary.requests().to_string(),
        "total so far at the end"
    );
    assert_eq!(last[0], (WALL0_S + 12).to_string());

    // Failures: one row per reason, with the metric's row name.
    let failure_rows = failures.lines().count() - 1;
    assert_eq!(failure_rows, result.summary.errors.len());
    assert!(failures.contains("MQTT,connect,CONNACK refused: 5 (not authorized),"));
}

#[test]
fn interval_log_reads_back_with_the_hdrhistogram_reader_and_yields_the_recorded_counts() {
    let result = sample_result();
    let summary = &result.summary;
    let bytes = hlog::hlog_bytes(summary).expect("interval log");
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    let mut intervals = 0;
    let mut publish_all: Histogram<u64> = Histogram::new(3).unwrap();
    for entry in IntervalLogIterator::new(&bytes) {
        let LogEntry::Interval(interval) = entry.expect("a valid log line") else {
            continue;
        };
        intervals += 1;
        let tag = interval.tag().expect("tagged").as_str().to_string();
        assert_eq!(interval.duration(), Duration::from_secs(1));
        let raw = base64_decode(interval.encoded_histogram());
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut raw.as_slice())
            .expect("V2 histogram");
        if tag == "publish" {
            publish_all.add(&h).unwrap();
        }
        *counts.entry(tag).or_insert(0) += h.len();
    }
    assert_eq!(intervals, 3 * summary.timeline.len());
    assert_eq!(counts["publish"], summary.metric(Metric::Publish).ok);
    assert_eq!(counts["connect"], summary.metric(Metric::Connect).ok);
    assert_eq!(counts["lag"], summary.lag_us.len());
    assert_eq!(
        publish_all.value_at_quantile(0.99),
        summary
            .metric(Metric::Publish)
            .latency_us
            .value_at_quantile(0.99)
    );
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("#[StartTime: 1700000000.000"));
    assert!(text.contains("\"StartTimestamp\",\"Interval_Length\""));
}

#[test]
fn merging_random_splits_of_one_run_gives_exactly_the_counts_and_percentiles_of_the_whole() {
    let seconds = 8;
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (sample_count, failure_count) = (1500 + rng.below(1500), rng.below(30));
        let samples = random_samples(&mut rng, sample_count as usize, seconds);
        let failures = random_failures(&mut rng, failure_count as usize, seconds);
        let whole = saved(run_of(&samples, &failures, 0, seconds)).summary;

        // k parts; part 0 starts with the run, the others up to 3 s later (wall-clock).
        let k = 2 + rng.below(4) as usize;
        let offsets: Vec<u64> = (0..k)
            .map(|j| if j == 0 { 0 } else { rng.below(4) })
            .collect();
        let mut part_samples = vec![Vec::new(); k];
        let mut part_failures = vec![Vec::new(); k];
        let pick = |second: u64, rng: &mut Rng| loop {
            let j = rng.below(k as u64) as usize;
            if offsets[j] < second {
                return j;
            }
        };
        for s in &samples {
            part_samples[pick(s.second, &mut rng)].push(*s);
        }
        for f in &failures {
            part_failures[pick(f.0, &mut rng)].push(*f);
        }
        let inputs: Vec<Input> = (0..k)
            .map(|j| Input {
                label: format!("host{j}"),
                result: saved(run_of(
                    &part_samples[j],
                    &part_failures[j],
                    offsets[j],
                    seconds,
                )),
            })
            .collect();
        let merged = merge(inputs).expect("merge");
        // Through the file format once more, as `mqblast merge -o` writes it.
        let merged = from_json(&serde_json::from_str(&to_text(&merged)).unwrap())
            .expect("merged file loads")
            .summary;

        let context = format!("seed {seed}, k {k}, offsets {offsets:?}");
        for metric in Metric::ALL {
            let (m, w) = (merged.metric(metric), whole.metric(metric));
            assert_eq!(
                (m.requests, m.failures, m.ok),
                (w.requests, w.failures, w.ok),
                "{context}"
            );
            assert_eq!(
                m.latency_us, w.latency_us,
                "{context}: {metric:?} histogram"
            );
            for q in [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
                assert_eq!(
                    m.latency_us.value_at_quantile(q),
                    w.latency_us.value_at_quantile(q),
                    "{context}: {metric:?} q {q}"
                );
            }
        }
        assert_eq!(merged.lag_us, whole.lag_us, "{context}");
        assert_eq!(merged.sent, whole.sent, "{context}");
        assert!(
            (merged.duration_s - whole.duration_s).abs() < 1e-6,
            "{context}"
        );
        assert_eq!(merged.started_at, whole.started_at, "{context}");
        assert_eq!(
            merged.errors_by_reason(),
            whole.errors_by_reason(),
            "{context}"
        );
        assert_eq!(merged.timeline.len(), whole.timeline.len(), "{context}");
        for (m, w) in merged.timeline.iter().zip(&whole.timeline) {
            assert_eq!(
                (
                    m.second,
                    m.publish_ok,
                    m.publish_failures,
                    m.connect_ok,
                    m.connect_failures
                ),
                (
                    w.second,
                    w.publish_ok,
                    w.publish_failures,
                    w.connect_ok,
                    w.connect_failures
                ),
                "{context}"
            );
            assert_eq!(
                (
                    m.publish_p50_us,
                    m.publish_p95_us,
                    m.publish_p99_us,
                    m.lag_max_us
                ),
                (
                    w.publish_p50_us,
                    w.publish_p95_us,
                    w.publish_p99_us,
                    w.lag_max_us
                ),
                "{context}"
            );
            assert_eq!(m.histogram(Metric::Publish), w.histogram(Metric::Publish));
        }
        for error in &merged.errors {
            let clients: std::collections::BTreeSet<String> = failures
                .iter()
                .filter(|f| f.1.describe() == error.reason)
                .map(|f| format!("client {}", f.2))
                .collect();
            let named: std::collections::BTreeSet<String> =
                error.examples.iter().map(|e| e.client_id.clone()).collect();
            assert_eq!(named.len(), error.examples.len(), "{context}: each once");
            assert_eq!(
                named.len(),
                clients.len().min(MAX_ERROR_EXAMPLES),
                "{context}"
            );
            assert!(named.is_subset(&clients), "{context}: {named:?}");
        }
        assert_eq!(merged.sources.len(), k);
        let source_requests: u64 = merged.sources.iter().map(|s| s.requests).sum();
        assert_eq!(source_requests, whole.requests(), "{context}");
    }
}

#[test]
fn an_html_report_rerendered_from_the_saved_result_equals_the_one_written_at_the_end_of_the_run() {
    let mut rng = Rng(7);
    let samples = random_samples(&mut rng, 2000, 6);
    let summary = run_of(&samples, &random_failures(&mut rng, 5, 6), 0, 6);
    // What the run does at its end: the result document, then the reports from it.
    let config = json!({"users": 10, "tokens": "<3 tokens redacted>"});
    let (at_end, text) = RunResult::round_trip(summary, config).unwrap();
    let written_at_end = html::render(&at_end);
    // What `mqblast report saved.json --html` does later.
    let dir = tempdir("rerender");
    let file = dir.join("saved.json");
    std::fs::write(&file, &text).unwrap();
    let loaded = mqblast::report::result::load(&file).expect("saved result loads");
    assert_eq!(html::render(&loaded), written_at_end);
    assert_eq!(to_text(&loaded), text, "the file itself round-trips");
    assert_eq!(
        csv::stats_csv(&loaded.summary),
        csv::stats_csv(&at_end.summary)
    );
}

#[test]
fn a_bad_result_file_is_a_one_line_error_naming_the_file() {
    let dir = tempdir("bad");
    let missing = dir.join("missing.json");
    let err = mqblast::report::result::load(&missing).unwrap_err();
    assert!(err.contains("missing.json"), "{err}");
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "{\"tool\": \"mqblast\", \"publish\": 3}").unwrap();
    let err = mqblast::report::result::load(&garbage).unwrap_err();
    assert!(err.contains("garbage.json") && !err.contains('\n'), "{err}");
    let mut doc: serde_json::Value = serde_json::from_str(&to_text(&sample_result())).unwrap();
    doc["publish"]["latency_us"]["hdr"] = json!("not base64!");
    let err = from_json(&doc).unwrap_err();
    assert!(err.contains("publish.latency_us.hdr"), "{err}");
}

/// A V2 histogram header, base64: 56 characters declaring a payload of 4 GiB, none present.
const HDR_DECLARING_4_GIB: &str = "HISTE/////8AAAAAAAAAAwAAAAAAAAABAAAAANaTpAA/8AAAAAAAAA==";

#[test]
fn a_result_histogram_declaring_a_4_gib_payload_is_refused_without_allocating_it() {
    use std::os::unix::process::CommandExt;
    let dir = tempdir("hdr-4gib");
    let mut doc: serde_json::Value = serde_json::from_str(&to_text(&sample_result())).unwrap();
    doc["publish"]["latency_us"]["hdr"] = json!(HDR_DECLARING_4_GIB);
    let crafted = dir.join("crafted.json");
    std::fs::write(&crafted, serde_json::to_string(&doc).unwrap()).unwrap();
    let good = dir.join("good.json");
    std::fs::write(&good, to_text(&sample_result())).unwrap();
    let merged = dir.join("merged.json");
    let runs: [Vec<&std::ffi::OsStr>; 2] = [
        vec!["report".as_ref(), crafted.as_os_str()],
        vec![
            "merge".as_ref(),
            good.as_os_str(),
            crafted.as_os_str(),
            "-o".as_ref(),
            merged.as_os_str(),
        ],
    ];
    for args in runs {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqblast"));
        cmd.args(&args);
        // 1 GiB of address space: the decoder sizing a buffer from the declared length would
        // abort the process instead of answering.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 1 << 30,
                    rlim_max: 1 << 30,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().expect("run mqblast");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("crafted.json")
                && stderr.contains("publish.latency_us.hdr")
                && stderr.contains("declares a payload of 4294967295 bytes")
                && stderr.trim_end().lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_result_histogram_wider_than_we_write_is_refused_naming_the_file_and_field() {
    let dir = tempdir("hdr-wide");
    let mut wide = Histogram::<u64>::new_with_bounds(1, u64::MAX / 2, 5).unwrap();
    wide.record(7).unwrap();
    let mut bytes = Vec::new();
    hdrhistogram::serialization::Serializer::serialize(
        &mut hdrhistogram::serialization::V2DeflateSerializer::new(),
        &wide,
        &mut bytes,
    )
    .unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&to_text(&sample_result())).unwrap();
    doc["connect"]["latency_us"]["hdr"] = json!(mqblast::stats::hdr_codec::base64_encode(&bytes));
    let path = dir.join("wide.json");
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    let err = mqblast::report::result::load(&path).unwrap_err();
    assert!(
        err.contains("wide.json")
            && err.contains("connect.latency_us.hdr")
            && err.contains("significant figures 5"),
        "{err}"
    );
}

#[test]
fn the_html_report_loads_in_headless_chromium_with_drawn_charts_no_console_errors_and_no_network() {
    let Some(chromium) = find_chromium() else {
        if std::env::var("MQBLAST_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("chromium not found (scripts/test.sh installs it)");
        }
        eprintln!("SKIPPED: no chromium on PATH (scripts/test.sh installs it)");
        return;
    };
    let page = html::render(&sample_result());
    // Nothing in the page may point outside it (the SVG namespace is a name, not a fetch).
    let outside = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for needle in ["http://", "https://", "<script", "src=", "@import", "url("] {
        assert!(!outside.contains(needle), "report contains {needle}");
    }
    let dir = artifacts_dir();
    let report = dir.join("report.html");
    std::fs::write(&report, &page).unwrap();
    let url = format!("file://{}", report.display());
    let net_log = dir.join("report-netlog.json");
    let profile = tempdir("chromium-profile");
    let out = Command::new(&chromium)
        .args(chromium_flags(&profile))
        .arg(format!("--log-net-log={}", net_log.display()))
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom", &url])
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    assert!(dom.contains("mqblast report"), "DOM not dumped: {log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let drawn = dom
        .match_indices("<polyline")
        .filter(|(at, _)| {
            let tag = &dom[*at..dom[*at..].find("/>").map_or(dom.len(), |end| at + end)];
            tag.contains("points=\"") && tag.matches(',').count() >= 2
        })
        .count();
    assert!(drawn >= 8, "only {drawn} drawn polylines");
    assert!(dom.matches("<svg class=\"chart\"").count() >= 5);
    let net_log_text = std::fs::read_to_string(&net_log).expect("chromium wrote its net log");
    assert!(
        net_log_text.contains("URL_REQUEST_START_JOB"),
        "not a net log"
    );
    let requests = page_requests(&net_log_text);
    assert!(requests.is_empty(), "network requests: {requests:?}");

    let screenshot = dir.join("report.png");
    let _ = std::fs::remove_file(&screenshot);
    let shot = Command::new(&chromium)
        .args(chromium_flags(&tempdir("chromium-shot")))
        .args([
            "--hide-scrollbars",
            "--window-size=1400,3000",
            &format!("--screenshot={}", screenshot.display()),
            &url,
        ])
        .output()
        .expect("run chromium");
    assert!(
        screenshot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
}

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn chromium_flags(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--metrics-recording-only",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// URLs the page itself requested, from Chromium's net log. Requests the browser makes on its
/// own (time sync, account checks) carry the initiator "not an origin"; anything the page
/// starts carries its origin ("null" for a file:// page) and is reported.
fn page_requests(net_log: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for part in net_log.split("\"initiator\":\"").skip(1) {
        let initiator = &part[..part.find('"').unwrap_or(part.len())];
        let params = &part[..part.find('}').unwrap_or(part.len())];
        let url = params
            .find("\"url\":\"")
            .map(|at| &params[at + 7..])
            .map(|rest| &rest[..rest.find('"').unwrap_or(rest.len())])
            .unwrap_or("?");
        if initiator != "not an origin" {
            urls.push(format!("{url} (initiator {initiator})"));
        }
    }
    urls
}

fn tempdir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mqblast-reports-{label}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn base64_decode(text: &str) -> Vec<u8> {
    mqblast::stats::hdr_codec::base64_decode(text).expect("valid base64")
}

#[test]
fn the_network_check_flags_what_the_page_requests_and_not_what_the_browser_does() {
    // Shapes copied from a Chromium 148 net log of a file:// page with <img src="http://...">.
    let log = r#"{"params":{"initiator":"not an origin","load_flags":82,"method":"GET","url":"http://clients2.google.com/time/1/current"}},
{"params":{"initiator":"null","load_flags":0,"method":"GET","network_isolation_key":"null null","url":"http://127.0.0.1:9/x.png"}}"#;
    assert_eq!(
        page_requests(log),
        ["http://127.0.0.1:9/x.png (initiator null)"]
    );
}
