//! What a Locust master's `spawn` says about the test, as mqblast settings. The master's
//! web UI and command line carry the MQTT settings as custom arguments of
//! `scripts/locust/mqblast_master.py` (they reach workers in `parsed_options`); its host field
//! is the broker. Each is turned into the flag it stands for and appended to this worker's own
//! command line, so it is checked by the same code with the same messages, and the master's
//! value wins over the worker's own config (as Locust workers take the master's custom
//! arguments). An empty or missing value leaves the worker's own setting.
//!
//! A master is a network peer: it never names a file on this machine. The settings that are
//! local files (a payload file, the tokens file) come from the worker's own command line and
//! config only; a master that sends them is told so on stderr, once per test, by name. A
//! preset is not a file: `mqtt_payload` may name one (`smart-meter`, `smart-tracker`,
//! `industrial-plc`, exactly; `./smart-meter` is a path and refused), and `mqtt_datapoints`
//! sizes `industrial-plc` as `--datapoints` does.

use rmpv::Value;

use super::msg::{field, printable};
use crate::shard::Shard;
use crate::workload::presets;

/// `parsed_options` key -> mqblast flag.
pub const MASTER_OPTIONS: &[(&str, &str)] = &[
    ("mqtt_topic", "--topic"),
    ("mqtt_qos", "--qos"),
    ("mqtt_timeout", "--timeout"),
    ("mqtt_interval", "--interval"),
    ("mqtt_client_id", "--client-id"),
    ("mqtt_max_inflight", "--max-inflight"),
    ("mqtt_version", "--mqtt-version"),
    ("mqtt_request_type", "--request-type"),
    ("mqtt_datapoints", "--datapoints"),
];

/// `parsed_options` key of the payload: a preset's name is taken (`--payload NAME`),
/// anything else would name a file on this worker's machine and is ignored with a note.
pub const PAYLOAD_OPTION: (&str, &str) = ("mqtt_payload", "--payload");

/// `parsed_options` keys that would name a file on this worker's machine: ignored, with a
/// note naming the worker's own flag.
pub const LOCAL_FILE_OPTIONS: &[(&str, &str)] = &[("mqtt_tokens_file", "--tokens-file")];

/// Longest wait at stop a master may ask for (Locust's `--stop-timeout`); longer asks get
/// this: a master must not keep a stopping worker from ending.
pub const MASTER_STOP_TIMEOUT_MAX_S: f64 = 600.0;

/// Longest master value echoed in a note.
const ECHO_CHARS_MAX: usize = 80;

/// The flags a spawn adds to the worker's command line, each as one `--flag=value` argument
/// (a value that starts with `-` stays a value).
pub fn master_args(spawn: &Value) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(host) = field(spawn, "host").and_then(scalar) {
        // A locustfile written for HTTP users often keeps a web address as its host (the
        // ThingsBoard UI): not a broker, so the worker's own host stays.
        if is_web_address(&host) {
            eprintln!(
                "mqblast: locust: the master's host {} is a web address, not an MQTT broker: the worker's own host is used",
                printable(&host, ECHO_CHARS_MAX)
            );
        } else {
            args.push(format!("--host={host}"));
        }
    }
    if let Some(seconds) = field(spawn, "stop_timeout").and_then(Value::as_f64) {
        // Locust's default (0: kill users at once) would call every in-flight publish lost;
        // only a longer wait than none is taken from the master, and at most the bound.
        if seconds > 0.0 && seconds.is_finite() {
            let seconds = seconds.min(MASTER_STOP_TIMEOUT_MAX_S);
            args.push(format!(
                "--stop-timeout={}ms",
                (seconds * 1000.0).round() as u64
            ));
        }
    }
    let Some(options) = field(spawn, "parsed_options") else {
        return args;
    };
    for (key, flag) in MASTER_OPTIONS {
        if let Some(value) = field(options, key).and_then(scalar) {
            args.push(format!("{flag}={value}"));
        }
    }
    let (key, flag) = PAYLOAD_OPTION;
    match field(options, key).and_then(scalar) {
        Some(preset) if presets::is_preset(&preset) => args.push(format!("{flag}={preset}")),
        Some(_) => eprintln!(
            "mqblast: locust: ignored the master's {key}: a master may name a preset ({}) but does not choose this worker's files (give {flag} to the worker)",
            presets::NAMES.join(", ")
        ),
        None => {}
    }
    for (key, flag) in LOCAL_FILE_OPTIONS {
        if field(options, key).and_then(scalar).is_some() {
            eprintln!(
                "mqblast: locust: ignored the master's {key}: a master does not choose this worker's files (give {flag} to the worker)"
            );
        }
    }
    args
}

fn is_web_address(host: &str) -> bool {
    let lower = host.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Slowest spawn rate taken from a master (users per second): one user every 1,000 s. A
/// slower one is ignored (the worker's own stays), so that no master's number becomes a
/// spawn interval that does not fit the engine's clock.
pub const MASTER_SPAWN_RATE_MIN: f64 = 0.001;

/// The master's spawn rate (users per second over all its workers), when it says one this
/// worker can pace.
pub fn spawn_rate(spawn: &Value) -> Option<f64> {
    let options = field(spawn, "parsed_options")?;
    let rate = field(options, "spawn_rate")?.as_f64()?;
    if rate.is_finite() && rate > 0.0 && rate < MASTER_SPAWN_RATE_MIN {
        eprintln!(
            "mqblast: locust: ignored the master's spawn rate {rate}: slower than {MASTER_SPAWN_RATE_MIN} users/s"
        );
        return None;
    }
    (rate > 0.0 && rate.is_finite()).then_some(rate)
}

/// A headless master's run time in seconds: it quits the workers when it ends.
pub fn headless_run_time_s(spawn: &Value) -> Option<f64> {
    let options = field(spawn, "parsed_options")?;
    if field(options, "headless")?.as_bool() != Some(true) {
        return None;
    }
    let seconds = field(options, "run_time")?.as_f64()?;
    (seconds > 0.0 && seconds.is_finite()).then_some(seconds)
}

/// The `parsed_options` key under which `scripts/locust/mqblast_master.py` lists the indexes of
/// the workers a test started with (set on the master at `test_start`).
pub const WORKERS_OPTION: &str = "mqblast_workers";

/// Most worker indexes read from [`WORKERS_OPTION`]: far more workers than a master holds; a
/// longer list is not used.
pub const WORKERS_LISTED_MAX: usize = 100_000;

/// This worker's part of the device tokens, as `--shard K/N` splits them: the master's list of
/// the test's workers ([`WORKERS_OPTION`]) sorted, K the place of `index` in it, N its length.
/// None when the master sent no usable list or does not list this worker (one that joined
/// after the test started).
pub fn token_shard(spawn: &Value, index: u64) -> Option<Shard> {
    let listed = field(field(spawn, "parsed_options")?, WORKERS_OPTION)?.as_array()?;
    if listed.len() > WORKERS_LISTED_MAX {
        return None;
    }
    let mut indexes = listed
        .iter()
        .map(Value::as_u64)
        .collect::<Option<Vec<u64>>>()?;
    indexes.sort_unstable();
    indexes.dedup();
    let place = indexes.binary_search(&index).ok()?;
    Some(Shard {
        index: u32::try_from(place + 1).ok()?,
        count: u32::try_from(indexes.len()).ok()?,
    })
}

/// `{class name: users}` of a spawn, in the master's order; None when it is not such a map.
pub fn user_classes(spawn: &Value) -> Option<Vec<(String, u64)>> {
    let map = field(spawn, "user_classes_count")?.as_map()?;
    map.iter()
        .map(|(k, v)| Some((k.as_str()?.to_string(), v.as_u64()?)))
        .collect()
}

/// A string, number or boolean as it would be typed; None for nil, "" and containers.
fn scalar(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.as_str()?.trim().to_string(),
        Value::Integer(i) => i.to_string(),
        Value::F32(f) => f.to_string(),
        Value::F64(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locust::msg::MapBuilder;

    fn spawn(options: Value) -> Value {
        MapBuilder::new()
            .put("timestamp", 1.5)
            .put(
                "user_classes_count",
                Value::Map(vec![(Value::from("MQTTLocust"), Value::from(4))]),
            )
            .put("host", "mqtt://127.0.0.1:1884")
            .put("stop_timeout", Value::Nil)
            .put("parsed_options", options)
            .build()
    }

    #[test]
    fn the_masters_settings_become_flags_and_empty_ones_are_left_to_the_worker() {
        let options = MapBuilder::new()
            .put("mqtt_topic", "v1/lptrk/gps")
            .put("mqtt_qos", 1)
            .put("mqtt_payload", "")
            .put("mqtt_timeout", Value::Nil)
            .put("spawn_rate", 10.0)
            .put("headless", true)
            .put("run_time", 15)
            .put("locustfile", "mqtt.py")
            .build();
        let spawn = spawn(options);
        assert_eq!(
            master_args(&spawn),
            [
                "--host=mqtt://127.0.0.1:1884",
                "--topic=v1/lptrk/gps",
                "--qos=1"
            ]
        );
        assert_eq!(spawn_rate(&spawn), Some(10.0));
        assert_eq!(headless_run_time_s(&spawn), Some(15.0));
        assert_eq!(
            user_classes(&spawn),
            Some(vec![("MQTTLocust".to_string(), 4)])
        );
    }

    #[test]
    fn a_master_naming_local_files_is_not_followed() {
        let options = MapBuilder::new()
            .put("mqtt_tokens_file", "/etc/passwd")
            .put("mqtt_payload", "/dev/zero")
            .put("mqtt_topic", "--tokens-file=/etc/passwd")
            .build();
        let args = master_args(&spawn(options));
        assert_eq!(
            args,
            [
                "--host=mqtt://127.0.0.1:1884",
                "--topic=--tokens-file=/etc/passwd"
            ]
        );
    }

    #[test]
    fn a_master_may_name_a_preset_and_its_data_points_but_not_a_payload_file() {
        let args_for = |payload: &str| {
            let options = MapBuilder::new()
                .put("mqtt_payload", payload)
                .put("mqtt_datapoints", 120)
                .build();
            master_args(&spawn(options))
        };
        for preset in [
            "smart-meter",
            "smart-tracker",
            "industrial-plc",
            " industrial-plc ",
        ] {
            assert_eq!(
                args_for(preset),
                [
                    "--host=mqtt://127.0.0.1:1884".to_string(),
                    "--datapoints=120".to_string(),
                    format!("--payload={}", preset.trim()),
                ],
                "{preset:?}"
            );
        }
        // A path (even one that reads like a preset) and any other name stay the worker's.
        for file in [
            "./industrial-plc",
            "/dev/zero",
            "data.json",
            "Smart-Meter",
            "--tokens-file=x",
        ] {
            assert_eq!(
                args_for(file),
                ["--host=mqtt://127.0.0.1:1884", "--datapoints=120"],
                "{file:?}"
            );
        }
    }

    #[test]
    fn two_workers_on_one_master_take_the_token_halves_as_two_shards_would() {
        let listed = |indexes: Vec<Value>| {
            spawn(
                MapBuilder::new()
                    .put(WORKERS_OPTION, Value::Array(indexes))
                    .build(),
            )
        };
        // Locust numbers workers from 0, with gaps when one left: places count, not numbers.
        let workers = listed(vec![Value::from(7), Value::from(0)]);
        assert_eq!(token_shard(&workers, 0), Some(Shard { index: 1, count: 2 }));
        assert_eq!(token_shard(&workers, 7), Some(Shard { index: 2, count: 2 }));
        // Not listed (joined later), no list, or a list that is not indexes: no split.
        assert_eq!(token_shard(&workers, 3), None);
        assert_eq!(token_shard(&spawn(Value::Map(vec![])), 0), None);
        assert_eq!(token_shard(&listed(vec![Value::from("0")]), 0), None);
        let huge = vec![Value::from(0); WORKERS_LISTED_MAX + 1];
        assert_eq!(token_shard(&listed(huge), 0), None);
    }

    #[test]
    fn a_masters_stop_timeout_is_bounded() {
        let spawn = MapBuilder::new().put("stop_timeout", 1e300).build();
        assert_eq!(master_args(&spawn), ["--stop-timeout=600000ms"]);
        let options = MapBuilder::new().put("spawn_rate", 1e-300).build();
        assert_eq!(
            spawn_rate(&MapBuilder::new().put("parsed_options", options).build()),
            None
        );
        let spawn = MapBuilder::new().put("stop_timeout", f64::NAN).build();
        assert!(master_args(&spawn).is_empty());
    }

    #[test]
    fn missing_or_odd_fields_give_nothing_rather_than_a_panic() {
        assert!(master_args(&Value::Nil).is_empty());
        let web_host = MapBuilder::new()
            .put("host", "http://thingsboard.local:8080")
            .build();
        assert!(
            master_args(&web_host).is_empty(),
            "a web address is not a broker"
        );
        assert_eq!(user_classes(&Value::from(3)), None);
        let bad_classes = MapBuilder::new()
            .put(
                "user_classes_count",
                Value::Map(vec![(Value::from(1), Value::from("x"))]),
            )
            .build();
        assert_eq!(user_classes(&bad_classes), None);
        assert_eq!(headless_run_time_s(&spawn(Value::Array(vec![]))), None);
    }
}
