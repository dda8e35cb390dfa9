//! The Aggregated row adds up independent requests only, in every output: `mqblast conn` and a
//! publish run against a real mosquitto, read back from the console, the CSV files, the JSON
//! result, the HTML report and `/stats/requests`. The connect phases are a breakdown outside
//! Aggregated, sessions a section of their own. Counts and structure only, never timings.

mod common;

use std::time::{Duration, Instant};

use common::web::WebRun;
use common::{free_port, mqblast_command, run_mqblast, spawn, Finished, Mosquitto, TempDir};

const FINAL_HEADING: &str = "Final stats (whole run; req/s over the whole run)";

/// One parsed row of a console stats table: name, # reqs, req/s.
#[derive(Debug)]
struct ConsoleRow {
    name: String,
    requests: u64,
    rps: f64,
}

/// The stats table that starts at `lines[0]` (its header): the body rows and the total row
/// (the row after the second separator), if any.
fn console_table(lines: &[&str]) -> (Vec<ConsoleRow>, Option<ConsoleRow>) {
    assert!(lines[0].starts_with("Type "), "not a table: {:?}", lines[0]);
    let parse = |line: &str| {
        let (left, right) = line.split_once('|').expect("a stats row");
        let fields: Vec<&str> = left.split_whitespace().collect();
        let rates: Vec<&str> = right
            .rsplit('|')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        // Left: [type] name # reqs fails(ratio); the Aggregated row has no type.
        let n = fields.len();
        ConsoleRow {
            name: fields[n - 3].to_string(),
            requests: fields[n - 2].parse().expect("# reqs"),
            rps: rates[0].parse().expect("req/s"),
        }
    };
    let mut rows = Vec::new();
    let mut separators = 0;
    for line in &lines[1..] {
        if line.starts_with("--------|") {
            separators += 1;
            continue;
        }
        if !line.contains('|') {
            break;
        }
        match separators {
            1 => rows.push(parse(line)),
            2 => return (rows, Some(parse(line))),
            _ => break,
        }
    }
    (rows, None)
}

/// The final stats table, the breakdown table's row names and the percentile table's
/// `# reqs` column (rows, then the Aggregated one) of a run's stderr.
struct FinalConsole {
    rows: Vec<ConsoleRow>,
    total: ConsoleRow,
    breakdown: Vec<String>,
    percentile_reqs: Vec<u64>,
    percentile_total: u64,
    connections: Option<String>,
}

fn final_console(run: &Finished) -> FinalConsole {
    let lines: Vec<&str> = run.stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == FINAL_HEADING)
        .unwrap_or_else(|| panic!("no final heading:\n{}", run.describe()));
    assert_eq!(
        lines.iter().filter(|l| **l == FINAL_HEADING).count(),
        1,
        "one final report"
    );
    let rest = &lines[at + 1..];
    let (rows, total) = console_table(rest);
    let breakdown = match rest.iter().position(|l| l.starts_with("Breakdown (")) {
        Some(b) => console_table(&rest[b + 1..])
            .0
            .into_iter()
            .map(|r| r.name)
            .collect(),
        None => Vec::new(),
    };
    let p = rest
        .iter()
        .position(|l| *l == "Response time percentiles")
        .expect("a percentile table");
    let mut percentile_reqs = Vec::new();
    let mut percentile_total = None;
    let mut separators = 0;
    for line in &rest[p + 2..] {
        if line.starts_with("--------|") {
            separators += 1;
            continue;
        }
        let reqs: u64 = line.split_whitespace().last().unwrap().parse().unwrap();
        match separators {
            1 => percentile_reqs.push(reqs),
            _ => {
                percentile_total = Some(reqs);
                break;
            }
        }
    }
    let connections = rest
        .iter()
        .find(|l| l.starts_with("Connections: "))
        .map(|l| l.to_string());
    FinalConsole {
        rows,
        total: total.expect("an Aggregated row"),
        breakdown,
        percentile_reqs,
        percentile_total: percentile_total.expect("an Aggregated percentile row"),
        connections,
    }
}

/// Records of a CSV file written in Python's dialect (our names hold no commas or quotes).
fn csv_records(path: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// The cells of each row of the HTML table that follows `<h2>{title}</h2>`.
fn html_table(html: &str, title: &str) -> Vec<Vec<String>> {
    let start = html
        .find(&format!("<h2>{title}</h2>"))
        .unwrap_or_else(|| panic!("no {title} table"));
    let table = &html[start..];
    let table = &table[..table.find("</table>").unwrap()];
    let body = &table[table.find("<tbody>").unwrap()..];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let text = &cell[cell.find('>').unwrap() + 1..];
                    text[..text.find("</td>").unwrap()].to_string()
                })
                .collect()
        })
        .collect()
}

/// Checks every file output of a finished run: Aggregated equals the sum of exactly
/// `request_rows` (names starting so), breakdown rows `breakdown` sit apart, and the run
/// had `sessions` connections.
fn check_outputs(
    run: &Finished,
    dir: &TempDir,
    request_rows: &[&str],
    breakdown: &[&str],
    sessions: u64,
) {
    let is_request = |name: &str| request_rows.iter().any(|r| name.starts_with(r));

    // Console.
    let console = final_console(run);
    let names: Vec<&str> = console.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), request_rows.len(), "request rows: {names:?}");
    assert!(names.iter().all(|n| is_request(n)), "{names:?}");
    let sum: u64 = console.rows.iter().map(|r| r.requests).sum();
    assert_eq!(console.total.name, "Aggregated");
    assert_eq!(console.total.requests, sum, "console Aggregated");
    let percentile_sum: u64 = console.percentile_reqs.iter().sum();
    assert_eq!(
        console.percentile_total, percentile_sum,
        "percentile Aggregated"
    );
    assert_eq!(console.breakdown, breakdown, "console breakdown");
    let connections = console.connections.expect("a connections section");
    assert!(
        connections.starts_with(&format!("Connections: {sessions} sessions ended")),
        "{connections}"
    );

    // CSV: stats.csv holds the request rows and Aggregated, breakdown.csv the rest.
    let stats = csv_records(&dir.file("out_stats.csv"));
    let (total, rows) = stats[1..].split_last().unwrap();
    assert_eq!(&total[..2], ["", "Aggregated"]);
    assert_eq!(rows.len(), request_rows.len(), "{stats:?}");
    assert!(rows.iter().all(|r| is_request(&r[1])), "{stats:?}");
    let sum: u64 = rows.iter().map(|r| r[2].parse::<u64>().unwrap()).sum();
    assert_eq!(total[2], sum.to_string(), "CSV Aggregated");
    assert_eq!(total[2], console.total.requests.to_string());
    let apart = csv_records(&dir.file("out_breakdown.csv"));
    assert_eq!(apart[0], stats[0], "the stats file's columns");
    let mut apart_names: Vec<&str> = apart[1..].iter().map(|r| r[1].as_str()).collect();
    apart_names.sort_unstable();
    let mut expected: Vec<&str> = breakdown.iter().copied().chain(["connection"]).collect();
    expected.sort_unstable();
    assert_eq!(apart_names, expected, "breakdown.csv");
    let connection = apart[1..].iter().find(|r| r[1] == "connection").unwrap();
    assert_eq!(connection[2], sessions.to_string());
    let history = csv_records(&dir.file("out_stats_history.csv"));
    let last = history.last().unwrap();
    assert_eq!(&last[2..4], ["", "Aggregated"]);
    assert_eq!(last[17], total[2], "history's total so far at the end");

    // JSON: `requests` is the sum of the rows in `aggregated_rows`.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.file("out.json")).unwrap()).unwrap();
    assert_eq!(doc["format_version"], 3);
    let keys: Vec<&str> = doc["aggregated_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), request_rows.len(), "{keys:?}");
    let sum: u64 = keys
        .iter()
        .map(|k| doc[k]["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(doc["requests"].as_u64(), Some(sum), "JSON Aggregated");
    assert_eq!(doc["requests"].as_u64(), Some(console.total.requests));
    let breakdown_keys = doc["breakdown_rows"].as_array().unwrap();
    assert_eq!(breakdown_keys.len(), breakdown.len(), "{breakdown_keys:?}");
    assert_eq!(doc["connections"]["ended"].as_u64(), Some(sessions));
    assert_eq!(
        doc["sources"][0]["requests"].as_u64(),
        Some(sum),
        "a source counts requests as Aggregated does"
    );

    // HTML: the request table's Aggregated row and the breakdown table.
    let html = std::fs::read_to_string(dir.file("out.html")).unwrap();
    let table = html_table(&html, "Request statistics");
    let (total, rows) = table.split_last().unwrap();
    assert_eq!(total[1], "Aggregated");
    assert_eq!(rows.len(), request_rows.len(), "{table:?}");
    let sum: u64 = rows.iter().map(|r| r[2].parse::<u64>().unwrap()).sum();
    assert_eq!(total[2], sum.to_string(), "HTML Aggregated");
    let percentiles = html_table(&html, "Response time percentiles (ms)");
    let (total, rows) = percentiles.split_last().unwrap();
    let sum: u64 = rows
        .iter()
        .map(|r| r.last().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total.last().unwrap(), &sum.to_string(), "HTML percentiles");
    let title = "Breakdown (parts of the connect requests above, not in Aggregated)";
    if breakdown.is_empty() {
        assert!(!html.contains(title), "no breakdown without connect phases");
    } else {
        let names: Vec<String> = html_table(&html, title)
            .into_iter()
            .map(|r| r[1].clone())
            .collect();
        assert_eq!(names.len(), breakdown.len(), "{names:?}");
    }
    assert!(html.contains("<h2>Connections</h2>"));
}

fn outputs(dir: &TempDir) -> Vec<String> {
    [
        "--json",
        &dir.file("out.json"),
        "--csv",
        &dir.file("out"),
        "--html",
        &dir.file("out.html"),
    ]
    .map(str::to_string)
    .to_vec()
}

/// Regression: in `mqblast conn`, 20 connects read as 80 requests in Aggregated (`connect` +
/// `connect:tcp` + `connect:mqtt` + `connection`), 60 in the percentile table, and a publish
/// row with nothing in it was printed.
#[test]
fn conn_aggregated_counts_each_connect_once_in_every_output() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("aggregated-conn");
    let host = broker.addr();
    let mut args: Vec<String> = [
        "conn",
        "-H",
        &host,
        "-u",
        "20",
        "--hold",
        "1s",
        "--only-summary",
    ]
    .map(str::to_string)
    .to_vec();
    args.extend(outputs(&dir));
    let run = run_mqblast(&args, Duration::from_secs(60));
    run.assert_code(0);
    check_outputs(
        &run,
        &dir,
        &["connect"],
        &["connect:mqtt", "connect:tcp"],
        20,
    );
    let console = final_console(&run);
    assert_eq!(console.total.requests, 20);
    assert!(!run.stderr.contains("publish:"), "no publish row in conn");
}

/// The same for a publish run: Aggregated is `connect` + `publish`, sessions apart.
#[test]
fn publish_run_aggregated_counts_connects_and_publishes_only_in_every_output() {
    let broker = Mosquitto::start();
    let dir = TempDir::new("aggregated-publish");
    let host = broker.addr();
    let mut args: Vec<String> = [
        "-H",
        &host,
        "--headless",
        "--only-summary",
        "-u",
        "3",
        "-r",
        "1000",
        "--messages",
        "60",
        "--interval",
        "20ms",
    ]
    .map(str::to_string)
    .to_vec();
    args.extend(outputs(&dir));
    let run = run_mqblast(&args, Duration::from_secs(60));
    run.assert_code(0);
    check_outputs(&run, &dir, &["connect", "publish:"], &[], 3);
    let console = final_console(&run);
    assert_eq!(console.total.requests, 3 + 60);
}

/// Regression: the first live table always read `req/s 0.00`, whatever flowed in the first
/// seconds, since the live window ended a second before the table was printed.
#[test]
fn the_first_live_table_shows_the_requests_of_the_first_seconds_per_second() {
    let broker = Mosquitto::start();
    let host = broker.addr();
    let args = [
        "-H",
        &host,
        "--headless",
        "-u",
        "5",
        "-r",
        "1000",
        "-t",
        "5s",
        "--interval",
        "100ms",
    ];
    let run = run_mqblast(&args, Duration::from_secs(60));
    run.assert_code(0);
    let lines: Vec<&str> = run.stderr.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("Type ") && l.contains("req/s"))
        .expect("a live table");
    let final_at = lines.iter().position(|l| *l == FINAL_HEADING).unwrap();
    assert!(
        first < final_at,
        "the live table comes before the final one"
    );
    let (rows, total) = console_table(&lines[first..]);
    let total = total.expect("an Aggregated row");
    assert!(total.requests > 0, "{}", run.describe());
    assert!(
        total.rps > 0.0,
        "the first live table rates what flowed:\n{}",
        run.describe()
    );
    let sum: f64 = rows.iter().map(|r| r.rps).sum();
    assert!((total.rps - sum).abs() < 0.02, "live Aggregated req/s");
}

/// `/stats/requests` of a running `mqblast conn`: `stats` holds the request rows and
/// Aggregated (their sum), `breakdown` the connect phases, `connections` the sessions.
#[test]
fn stats_requests_keeps_connect_phases_out_of_aggregated() {
    let broker = Mosquitto::start();
    let host = broker.addr();
    let port = free_port().to_string();
    let args = [
        "conn",
        "-H",
        &host,
        "-u",
        "10",
        "--hold",
        "5s",
        "--only-summary",
        "--web",
        "--web-port",
        &port,
        "--autostart",
    ];
    let web = WebRun {
        running: spawn(mqblast_command(&args)),
        base: format!("http://127.0.0.1:{port}"),
        auth: None,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while web.get("/stats/requests").status == 0 {
        assert!(Instant::now() < deadline, "the web UI never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = loop {
        let stats = web.get("/stats/requests").json();
        if stats["breakdown"].as_array().is_some_and(|b| b.len() == 2)
            && stats["stats"][0]["num_requests"] == 10
        {
            break stats;
        }
        assert!(Instant::now() < deadline, "no breakdown: {stats}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let rows = stats["stats"].as_array().unwrap();
    let (total, rows) = rows.split_last().unwrap();
    assert_eq!(total["name"], "Aggregated");
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["connect"]);
    let sum: u64 = rows
        .iter()
        .map(|r| r["num_requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total["num_requests"].as_u64(), Some(sum));
    let parts: Vec<&str> = stats["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(parts, ["connect:tcp", "connect:mqtt"]);
    assert!(stats["connections"]["lost"] == 0, "{stats}");
}
