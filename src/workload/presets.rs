//! Built-in payloads that reproduce ThingsBoard's performance tests (`TEST_PAYLOAD_TYPE`):
//! `--payload smart-meter`, `smart-tracker` or `industrial-plc`.
//!
//! Why it exists: people who load-test ThingsBoard compare against its own tool, so the
//! shapes, keys and value ranges follow thingsboard/performance-tests' generators, and every
//! message carries `ts` (now, in ms) and fresh random values. Each preset is an ordinary
//! [`Payload`] built from a JSON template with per-message fields (see
//! [`crate::workload::fields`]), so it is patched in place like any data.json and works
//! wherever a payload does.
//!
//! | preset           | `values`                                                          |
//! |------------------|-------------------------------------------------------------------|
//! | `smart-meter`    | `pulseCounter` 0..999999, `leakage` true 98% of the time, `batteryLevel` 50..99 (alarm: 10) |
//! | `smart-tracker`  | `latitude` -90..90 and `longitude` -180..180 (6 decimals), `speed` 0..100 (1 decimal), `fuel` 0..99, `batteryLevel` 50..99 (alarm: 10) |
//! | `industrial-plc` | `--datapoints N` or a stream's `datapoints` (default 60) keys `line000`.. with values 0..100 (14 decimals) |
//!
//! Where this differs from ThingsBoard's tool, on purpose: the tracker's coordinates are
//! numbers within the valid ranges (the tool writes strings from 0 to 100); the PLC's values
//! have 14 decimals in a fixed width (the tool prints Java doubles, `37.48573920384756`, about
//! as long). Keys are the tool's: the PLC's run `line000`, `line001`, ... (`line%03d` from 0).

use crate::payload::{Payload, PresetRef};

pub const SMART_METER: &str = "smart-meter";
pub const SMART_TRACKER: &str = "smart-tracker";
pub const INDUSTRIAL_PLC: &str = "industrial-plc";

/// Every preset name, as `--payload` takes them.
pub const NAMES: [&str; 3] = [SMART_METER, SMART_TRACKER, INDUSTRIAL_PLC];

/// Data points of `industrial-plc` without `--datapoints` (ThingsBoard's
/// `TEST_PAYLOAD_DATAPOINTS` default).
pub const DEFAULT_DATAPOINTS: u32 = 60;

/// Most `--datapoints`: ThingsBoard's own bound (its `line%03d` keys stay three digits). The
/// frame is then about 29 KB (29 bytes a point), and a connection's write buffer holds up to
/// 64 frames in flight (`Conn::write_capacity`): 1.9 MB while it has bytes queued.
pub const MAX_DATAPOINTS: u32 = 999;

const SMART_METER_JSON: &str = r#"{"ts":"{ts}","values":{"pulseCounter":"{int:0..999999}","leakage":"{bool:0.98}","batteryLevel":"{int:50..99|alarm=10}"}}"#;

const SMART_TRACKER_JSON: &str = r#"{"ts":"{ts}","values":{"latitude":"{float:-90..90:6}","longitude":"{float:-180..180:6}","speed":"{float:0..100:1}","fuel":"{int:0..99}","batteryLevel":"{int:50..99|alarm=10}"}}"#;

/// One `industrial-plc` data point's value.
const PLC_VALUE: &str = "{float:0..100:14}";

/// Why a number of data points was refused: the bound of [`datapoints`].
pub fn datapoints_bound() -> String {
    format!(
        "must be 1 to {MAX_DATAPOINTS} (ThingsBoard's own bound; the frame grows by 29 bytes a point)"
    )
}

/// A number of `industrial-plc` data points, if it is within 1..=[`MAX_DATAPOINTS`].
pub fn datapoints(points: u64) -> Option<u32> {
    match points {
        1.. if points <= u64::from(MAX_DATAPOINTS) => u32::try_from(points).ok(),
        _ => None,
    }
}

/// Whether `payload` is the `industrial-plc` preset (the one payload with data points).
pub fn is_plc(payload: &Payload) -> bool {
    payload.preset().is_some_and(|p| p.name == INDUSTRIAL_PLC)
}

/// Whether `name` is a preset's name.
pub fn is_preset(name: &str) -> bool {
    NAMES.contains(&name)
}

/// The preset `name` (None: not a preset). `datapoints` is for `industrial-plc`, already
/// checked against 1..=[`MAX_DATAPOINTS`]; None means [`DEFAULT_DATAPOINTS`].
pub fn preset(name: &str, datapoints: Option<u32>) -> Option<Payload> {
    let (name, label, json, datapoints) = match name {
        SMART_METER => (SMART_METER, None, SMART_METER_JSON.to_string(), None),
        SMART_TRACKER => (SMART_TRACKER, None, SMART_TRACKER_JSON.to_string(), None),
        INDUSTRIAL_PLC => {
            let points = datapoints
                .unwrap_or(DEFAULT_DATAPOINTS)
                .clamp(1, MAX_DATAPOINTS);
            let label = format!("{points} data points");
            (INDUSTRIAL_PLC, Some(label), plc_json(points), Some(points))
        }
        _ => return None,
    };
    let source = match label {
        Some(label) => format!("preset {name} ({label})"),
        None => format!("preset {name}"),
    };
    let payload =
        Payload::parse(&source, &json).expect("the presets' templates are checked by unit tests");
    Some(payload.into_preset(PresetRef { name, datapoints }))
}

/// `{"ts":"{ts}","values":{"line000":"{float:..}",...}}` with `points` keys.
fn plc_json(points: u32) -> String {
    let values: Vec<String> = (0..points)
        .map(|n| format!("\"line{n:03}\":\"{PLC_VALUE}\""))
        .collect();
    format!(r#"{{"ts":"{{ts}}","values":{{{}}}}}"#, values.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn every_preset_parses_and_stamps_ts() {
        for name in NAMES {
            let payload = preset(name, None).unwrap();
            assert_eq!(payload.len(), 1, "{name}");
            let fields = payload.fields_of(0);
            assert_eq!(fields[0].kind, crate::workload::fields::Kind::Ts, "{name}");
            assert_eq!(payload.setting(), name);
            assert_eq!(payload.objects()[0]["ts"], "{ts}");
        }
        assert!(preset("data.json", None).is_none());
        assert!(!is_preset("./smart-meter"));
    }

    #[test]
    fn the_smart_meter_has_thingsboards_keys_and_the_battery_alarm() {
        let payload = preset(SMART_METER, None).unwrap();
        let values = &payload.objects()[0]["values"];
        let keys: Vec<&str> = values
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys, ["pulseCounter", "leakage", "batteryLevel"]);
        let battery = payload.fields_of(0)[3];
        assert_eq!(battery.alarm, Some(10));
        assert_eq!(payload.source(), "preset smart-meter");
    }

    #[test]
    fn the_tracker_has_position_speed_fuel_and_battery() {
        let payload = preset(SMART_TRACKER, None).unwrap();
        let values = payload.objects()[0]["values"].as_object().unwrap();
        let keys: Vec<&str> = values.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            ["latitude", "longitude", "speed", "fuel", "batteryLevel"]
        );
    }

    #[test]
    fn the_plc_has_as_many_lines_as_data_points_up_to_the_bound() {
        for points in [1, DEFAULT_DATAPOINTS, MAX_DATAPOINTS] {
            let payload = preset(INDUSTRIAL_PLC, Some(points)).unwrap();
            let values = payload.objects()[0]["values"].as_object().unwrap();
            assert_eq!(values.len(), points as usize);
            assert_eq!(payload.fields_of(0).len(), points as usize + 1, "and ts");
            let last = format!("line{:03}", points - 1);
            assert!(values.contains_key("line000") && values.contains_key(&last));
            assert_eq!(
                payload.preset(),
                Some(PresetRef {
                    name: INDUSTRIAL_PLC,
                    datapoints: Some(points)
                })
            );
        }
        let default = preset(INDUSTRIAL_PLC, None).unwrap();
        assert_eq!(default.source(), "preset industrial-plc (60 data points)");
    }

    #[test]
    fn the_largest_plc_object_stays_near_29_bytes_a_point() {
        let payload = preset(INDUSTRIAL_PLC, Some(MAX_DATAPOINTS)).unwrap();
        let object: &Value = &payload.objects()[0];
        let fields = payload.fields_of(0);
        let widths: usize = fields.iter().map(|f| usize::from(f.width)).sum();
        assert_eq!(fields[1].width, 18, "` 37.48573920384756`");
        let keys_bytes: usize = object["values"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.len() + 4)
            .sum();
        let size = keys_bytes + widths + MAX_DATAPOINTS as usize;
        assert!((28_000..30_000).contains(&size), "{size}");
    }
}
