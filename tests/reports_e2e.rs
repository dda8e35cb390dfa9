//! End to end: `mqblast run` against a real mosquitto writes the JSON result, Locust CSVs,
//! the HDR interval log and the HTML report; `mqblast report` renders the same HTML from the
//! saved result; `merge` combines two runs exactly; `compare --fail-if-worse` judges them.
//!
//! `compare` is checked only on differences made by construction (a result against itself,
//! against its merge with itself: the same percentiles at twice the throughput, and against
//! a copy with halved throughput), never on two live runs: under load their latencies differ
//! by any amount (p99 4 ms one run, 125 ms the next), and no bound is safe.

mod common;

use std::time::Duration;

use common::*;

fn run_to(broker: &Mosquitto, dir: &TempDir, name: &str) -> (Finished, serde_json::Value) {
    let json = dir.file(&format!("{name}.json"));
    let args = with(
        load_args(&broker.addr(), &json),
        &[
            "-u",
            "4",
            "--interval",
            "20ms",
            "-t",
            "3s",
            "--topic",
            "mqblast/reports/{i}",
            "--csv",
            &dir.file(name),
            "--html",
            &dir.file(&format!("{name}.html")),
            "--hlog",
            &dir.file(&format!("{name}.hlog")),
        ],
    );
    let run = run_mqblast(&args, RUN_LIMIT);
    run.assert_code(0);
    let doc = Summary::read(&json, &run).json;
    (run, doc)
}

#[test]
fn a_run_writes_every_report_and_report_merge_and_compare_work_from_the_saved_results() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("reports-e2e");
    let (_, first) = run_to(&broker, &dir, "a");
    let (_, second) = run_to(&broker, &dir, "b");
    let publishes = first["publish"]["requests"].as_u64().unwrap();
    assert!(publishes > 100, "{first}");
    assert_eq!(first["format_version"], 3);
    assert!(first["timeline"][0]["publish_hdr"].is_string());

    // CSVs with Locust's header; the stats file holds the final count.
    let stats = std::fs::read_to_string(dir.file("a_stats.csv")).unwrap();
    assert!(stats.starts_with("Type,Name,Request Count,Failure Count,"));
    let publish_row = stats
        .lines()
        .find(|l| l.starts_with("MQTT,publish:1:"))
        .expect("publish row");
    assert_eq!(
        publish_row.split(',').nth(2),
        Some(publishes.to_string().as_str())
    );
    for suffix in ["stats_history", "failures", "exceptions"] {
        assert!(std::path::Path::new(&dir.file(&format!("a_{suffix}.csv"))).exists());
    }
    let hlog = std::fs::read_to_string(dir.file("a.hlog")).unwrap();
    assert!(hlog.contains("Tag=publish,"), "{hlog}");

    // `report` re-renders byte-identical HTML from the saved result.
    let again = dir.file("again.html");
    let report = run_mqblast(
        &[
            "report",
            &dir.file("a.json"),
            "--html",
            &again,
            "--csv",
            &dir.file("again"),
        ],
        RUN_LIMIT,
    );
    report.assert_code(0);
    let original = std::fs::read(dir.file("a.html")).unwrap();
    assert_eq!(
        std::fs::read(&again).unwrap(),
        original,
        "report re-rendered differently"
    );
    assert_eq!(
        std::fs::read(dir.file("again_stats.csv")).unwrap(),
        stats.as_bytes()
    );

    // `merge` adds the two runs.
    let merged_path = dir.file("merged.json");
    let merge = run_mqblast(
        &[
            "merge",
            &dir.file("a.json"),
            &dir.file("b.json"),
            "-o",
            &merged_path,
        ],
        RUN_LIMIT,
    );
    merge.assert_code(0);
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged_path).unwrap()).unwrap();
    let sum = publishes + second["publish"]["requests"].as_u64().unwrap();
    assert_eq!(merged["publish"]["requests"].as_u64(), Some(sum));
    assert_eq!(merged["sources"].as_array().map(Vec::len), Some(2));
    assert_eq!(merged["sources"][0]["label"], "a");

    // `compare`: a run against itself is no regression.
    let same = run_mqblast(
        &[
            "compare",
            &dir.file("a.json"),
            &dir.file("a.json"),
            "--fail-if-worse",
            "0",
        ],
        RUN_LIMIT,
    );
    same.assert_code(0);
    assert!(same.stdout.contains("| p99 |"), "{}", same.describe());
    assert!(same.stdout.contains("+0.0%"), "{}", same.describe());
    // Against its merge with itself: the same histograms added to themselves (identical
    // percentiles) over the same span (twice the throughput), so nothing got worse at any
    // bound, and the other way round throughput halved.
    let doubled_path = dir.file("doubled.json");
    let a = dir.file("a.json");
    run_mqblast(&["merge", &a, &a, "-o", &doubled_path], RUN_LIMIT).assert_code(0);
    let html = dir.file("compare.html");
    let compared = run_mqblast(
        &[
            "compare",
            &a,
            &doubled_path,
            "--html",
            &html,
            "--fail-if-worse",
            "0",
        ],
        RUN_LIMIT,
    );
    compared.assert_code(0);
    for row in ["| Throughput (msg/s) |", "| Publishes |", "| p99 |"] {
        let line = compared.stdout.lines().find(|l| l.starts_with(row));
        let change = line.and_then(|l| l.split('|').nth(4)).map(str::trim);
        let expected = if row == "| p99 |" { "+0.0%" } else { "+100.0%" };
        assert_eq!(change, Some(expected), "{row}\n{}", compared.describe());
    }
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("<polyline"));
    let halved = run_mqblast(
        &["compare", &doubled_path, &a, "--fail-if-worse", "10"],
        RUN_LIMIT,
    );
    halved.assert_code(1);
    assert!(
        halved.stderr.contains("Throughput"),
        "{}",
        halved.describe()
    );

    // A worse result fails the check: halve the throughput of a copy.
    let mut worse = first.clone();
    let rps = worse["publish"]["rps"].as_f64().unwrap();
    worse["publish"]["rps"] = serde_json::json!(rps / 2.0);
    let worse_path = dir.write("worse.json", &worse.to_string());
    let judged = run_mqblast(
        &[
            "compare",
            &dir.file("a.json"),
            &worse_path,
            "--fail-if-worse",
            "10",
        ],
        RUN_LIMIT,
    );
    judged.assert_code(1);
    assert!(
        judged.stderr.contains("Throughput"),
        "{}",
        judged.describe()
    );

    // An unreadable result file is a usage error naming the file.
    let missing = run_mqblast(&["report", &dir.file("nope.json")], Duration::from_secs(30));
    missing.assert_code(2);
    assert!(
        missing.stderr.contains("nope.json"),
        "{}",
        missing.describe()
    );
}
