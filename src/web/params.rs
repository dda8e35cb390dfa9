//! Parameters of API requests, URL-encoded (as Locust's UI posts them, and `curl -d`) or
//! `multipart/form-data` (`curl -F`), read into one map so every path validates the same way.
//! Malformed input is an error message, never a panic.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::control::MIN_SPAWN_RATE_PER_S;

/// Request parameters by name (the last of repeated names wins).
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parameters of a body with `content_type`, plus the URL's query string.
    pub fn parse(query: &str, content_type: &str, body: &[u8]) -> Result<Params, String> {
        let mut map: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case("multipart/form-data") {
            map.extend(multipart_params(content_type, body)?);
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

    /// A rate per second (Locust's `spawn_rate`), finite and at least
    /// [`MIN_SPAWN_RATE_PER_S`]: slower is refused with the value, not clamped.
    pub fn rate(&self, name: &str) -> Result<Option<f64>, String> {
        self.text(name)
            .map(|v| match v.parse::<f64>() {
                Ok(rate) if rate.is_finite() && rate >= MIN_SPAWN_RATE_PER_S => Ok(rate),
                _ => Err(format!(
                    "{name}: expected a number of users per second from {MIN_SPAWN_RATE_PER_S} (one user every {} s) up, got {v:?}",
                    1.0 / MIN_SPAWN_RATE_PER_S
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

/// The fields of a `multipart/form-data` body (RFC 7578): each part's `name` and its text.
fn multipart_params(content_type: &str, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let boundary = content_type
        .split(';')
        .skip(1)
        .find_map(|p| {
            let (key, value) = p.trim().split_once('=')?;
            key.eq_ignore_ascii_case("boundary")
                .then(|| value.trim_matches('"'))
        })
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or("multipart/form-data without a boundary (1 to 70 characters)")?;
    let text = std::str::from_utf8(body).map_err(|_| "the form is not UTF-8 text".to_string())?;
    let malformed = |what: &str| format!("malformed multipart/form-data body: {what}");
    let delimiter = format!("--{boundary}");
    let first = text
        .find(&delimiter)
        .ok_or_else(|| malformed("no boundary line"))?;
    let mut rest = &text[first + delimiter.len()..];
    let mut fields = Vec::new();
    while !rest.starts_with("--") {
        let part = rest
            .strip_prefix("\r\n")
            .ok_or_else(|| malformed("a boundary line does not end"))?;
        let (headers, after) = part
            .split_once("\r\n\r\n")
            .ok_or_else(|| malformed("a part has no blank line after its headers"))?;
        let end = after
            .find(&format!("\r\n{delimiter}"))
            .ok_or_else(|| malformed("a part is not closed by the boundary"))?;
        fields.push((
            part_name(headers).ok_or_else(|| malformed("a part has no name"))?,
            after[..end].to_string(),
        ));
        rest = &after[end + 2 + delimiter.len()..];
    }
    Ok(fields)
}

/// `name` of a part's `Content-Disposition: form-data; name="..."`.
fn part_name(headers: &str) -> Option<String> {
    let disposition = headers.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-disposition")
            .then_some(value)
    })?;
    disposition.split(';').skip(1).find_map(|p| {
        let (key, value) = p.trim().split_once('=')?;
        key.eq_ignore_ascii_case("name")
            .then(|| value.trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_and_multipart_forms_give_the_same_parameters() {
        let form = Params::parse(
            "",
            "application/x-www-form-urlencoded",
            b"user_count=5&spawn_rate=2.5",
        )
        .unwrap();
        // What `curl -F user_count=5 -F spawn_rate=2.5` sends.
        let body = "--------------------------abc\r\nContent-Disposition: form-data; name=\"user_count\"\r\n\r\n5\r\n--------------------------abc\r\ncontent-disposition: form-data; name=spawn_rate\r\n\r\n2.5\r\n--------------------------abc--\r\n";
        let multipart = Params::parse(
            "",
            "multipart/form-data; boundary=------------------------abc",
            body.as_bytes(),
        )
        .unwrap();
        for p in [form, multipart] {
            assert_eq!(p.count("user_count").unwrap(), Some(5));
            assert_eq!(p.rate("spawn_rate").unwrap(), Some(2.5));
        }
    }

    #[test]
    fn malformed_parameters_are_errors_that_name_the_field() {
        let p = Params::parse("", "", b"user_count=-1&spawn_rate=0&run_time=soon").unwrap();
        assert!(p.count("user_count").unwrap_err().contains("user_count"));
        assert!(p.rate("spawn_rate").unwrap_err().contains("spawn_rate"));
        for slow in ["1e-10", "0.0009", "NaN", "inf", "-1"] {
            let p = Params::parse("", "", format!("spawn_rate={slow}").as_bytes()).unwrap();
            let refused = p.rate("spawn_rate").unwrap_err();
            assert!(
                refused.contains(slow) && refused.contains("0.001"),
                "{refused}"
            );
        }
        let slowest = Params::parse("", "", b"spawn_rate=0.001").unwrap();
        assert_eq!(slowest.rate("spawn_rate").unwrap(), Some(0.001));
        assert!(p.duration("run_time").unwrap_err().contains("run_time"));
        let multipart = |content_type: &str, body: &str| {
            Params::parse("", content_type, body.as_bytes()).map(|_| ())
        };
        let typed = "multipart/form-data; boundary=b";
        assert!(
            multipart("multipart/form-data", "--b--").is_err(),
            "no boundary"
        );
        assert!(multipart(typed, "nothing").is_err());
        assert!(multipart(
            typed,
            "--b\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b--"
        )
        .is_err());
        assert!(
            multipart(typed, "--b\r\nX: y\r\n\r\n1").is_err(),
            "unclosed"
        );
        assert!(multipart(typed, "--b--").is_ok(), "an empty form");
    }
}
