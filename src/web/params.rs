//! Parameters of API requests, form-encoded (as Locust's UI posts them) or JSON, read into
//! one map so every path validates the same way. Malformed input is an error message, never
//! a panic.

use std::collections::BTreeMap;
use std::time::Duration;

/// Request parameters by name (the last of repeated names wins).
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parameters of a body with `content_type`, plus the URL's query string.
    pub fn parse(query: &str, content_type: &str, body: &[u8]) -> Result<Params, String> {
        let mut map: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        if content_type.starts_with("application/json") {
            map.extend(json_params(body)?);
        } else if !body.is_empty() {
            map.extend(form_urlencoded::parse(body).into_owned());
        }
        Ok(Params(map))
    }

    /// Whether the request names the parameter at all (an empty value included).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// A whole number (Locust's `user_count`).
    pub fn count(&self, name: &str) -> Result<Option<u32>, String> {
        self.text(name)
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| format!("{name}: expected a whole number of users, got {v:?}"))
            })
            .transpose()
    }

    /// A positive rate per second (Locust's `spawn_rate`).
    pub fn rate(&self, name: &str) -> Result<Option<f64>, String> {
        self.text(name)
            .map(|v| match v.parse::<f64>() {
                Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
                _ => Err(format!(
                    "{name}: expected a positive number per second, got {v:?}"
                )),
            })
            .transpose()
    }

    /// A duration in Locust's forms (`20`, `20s`, `3m`, `1h30m`).
    pub fn duration(&self, name: &str) -> Result<Option<Duration>, String> {
        self.text(name)
            .map(|v| crate::config::parse_duration(v).map_err(|e| format!("{name}: {e}")))
            .transpose()
    }
}

/// A JSON object's fields as text (numbers and strings; anything else is refused).
fn json_params(body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let serde_json::Value::Object(fields) = value else {
        return Err("the JSON body must be an object".to_string());
    };
    let mut map = BTreeMap::new();
    for (name, value) in fields {
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Null => continue,
            other => {
                return Err(format!(
                    "{name}: expected a number or a string, got {other}"
                ))
            }
        };
        map.insert(name, text);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_json_bodies_give_the_same_parameters() {
        let form = Params::parse(
            "",
            "application/x-www-form-urlencoded",
            b"user_count=5&spawn_rate=2.5",
        )
        .unwrap();
        let json = Params::parse(
            "",
            "application/json",
            br#"{"user_count": 5, "spawn_rate": "2.5"}"#,
        )
        .unwrap();
        for p in [form, json] {
            assert_eq!(p.count("user_count").unwrap(), Some(5));
            assert_eq!(p.rate("spawn_rate").unwrap(), Some(2.5));
        }
    }

    #[test]
    fn malformed_parameters_are_errors_that_name_the_field() {
        let p = Params::parse("", "", b"user_count=-1&spawn_rate=0&run_time=soon").unwrap();
        assert!(p.count("user_count").unwrap_err().contains("user_count"));
        assert!(p.rate("spawn_rate").unwrap_err().contains("spawn_rate"));
        assert!(p.duration("run_time").unwrap_err().contains("run_time"));
        assert!(Params::parse("", "application/json", b"[1]").is_err());
        assert!(Params::parse("", "application/json", b"{").is_err());
    }
}
