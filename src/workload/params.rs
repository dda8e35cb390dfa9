//! Finding the top-level `"params"` value of an RPC request (and a gateway request's
//! `device`, `data` and `id`, see [`find_members`]) without parsing the request.
//!
//! The RPC responder echoes a request's `params` by default. Parsing each request into JSON
//! values would allocate per request and let a peer choose how much; instead a byte scan finds
//! where the value starts and ends, and the answer copies those bytes as they are. The scan
//! reads each byte at most once, never allocates, and gives up on anything it cannot delimit:
//! a payload that is not an object, a truncated one, or nesting deeper than [`MAX_DEPTH`]
//! (the request is then counted as malformed). It checks structure (strings, brackets,
//! separators), not every rule of JSON: a scalar is any run of letters, digits, `+`, `-` and
//! `.`, and the copied value is what the request held. A key written with escapes
//! (`"par\u0061ms"`) is not `params`.

/// Deepest nesting accepted, the request's own object included.
pub const MAX_DEPTH: usize = 32;

/// Why a request's params could not be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamsError {
    /// The payload is not a JSON object.
    NotAnObject,
    /// It ends inside a value.
    Truncated,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A byte where the structure allows none.
    Syntax,
}

impl ParamsError {
    pub fn describe(self) -> &'static str {
        match self {
            ParamsError::NotAnObject => "payload is not a JSON object",
            ParamsError::Truncated => "payload ends inside a value",
            ParamsError::TooDeep => "payload nests deeper than 32 levels",
            ParamsError::Syntax => "payload is not JSON",
        }
    }
}

type Scan = Result<usize, ParamsError>;

/// The bytes of the top-level `"params"` member's value (the first one, if repeated); None
/// when the object has no such member.
pub fn find_params(json: &[u8]) -> Result<Option<&[u8]>, ParamsError> {
    let [params] = find_members(json, [b"\"params\""])?;
    Ok(params)
}

/// The bytes of the values of the top-level members named `keys` (each key as JSON writes it,
/// quotes included: `b"\"id\""`), the first of each if repeated; None for a key the object
/// lacks. The scan stops once every key is found, so what follows is not checked (as for
/// `params`); with a key missing it runs to the object's end.
pub fn find_members<'a, const N: usize>(
    json: &'a [u8],
    keys: [&[u8]; N],
) -> Result<[Option<&'a [u8]>; N], ParamsError> {
    let mut found = [None; N];
    let mut at = skip_ws(json, 0);
    if json.get(at) != Some(&b'{') {
        return Err(ParamsError::NotAnObject);
    }
    at = skip_ws(json, at + 1);
    if json.get(at) == Some(&b'}') {
        return Ok(found);
    }
    loop {
        if json.get(at) != Some(&b'"') {
            return Err(end_or(json, at, ParamsError::Syntax));
        }
        let key_end = scan_string(json, at)?;
        let wanted = keys.iter().position(|&key| &json[at..key_end] == key);
        at = skip_ws(json, key_end);
        if json.get(at) != Some(&b':') {
            return Err(end_or(json, at, ParamsError::Syntax));
        }
        let value_at = skip_ws(json, at + 1);
        let value_end = scan_value(json, value_at)?;
        if let Some(k) = wanted.filter(|&k| found[k].is_none()) {
            found[k] = Some(&json[value_at..value_end]);
            if found.iter().all(Option::is_some) {
                return Ok(found);
            }
        }
        at = skip_ws(json, value_end);
        match json.get(at) {
            Some(b',') => at = skip_ws(json, at + 1),
            Some(b'}') => return Ok(found),
            _ => return Err(end_or(json, at, ParamsError::Syntax)),
        }
    }
}

/// `Truncated` when `at` is past the end, else `other`.
fn end_or(json: &[u8], at: usize, other: ParamsError) -> ParamsError {
    if at >= json.len() {
        ParamsError::Truncated
    } else {
        other
    }
}

fn skip_ws(json: &[u8], mut at: usize) -> usize {
    while matches!(json.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// `json[at]` is a quote: the index after the closing quote.
fn scan_string(json: &[u8], at: usize) -> Scan {
    let mut i = at + 1;
    while let Some(&byte) = json.get(i) {
        match byte {
            b'"' => return Ok(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Err(ParamsError::Truncated)
}

/// One value starting at `at` (no leading whitespace): the index after it.
fn scan_value(json: &[u8], at: usize) -> Scan {
    match json.get(at) {
        None => Err(ParamsError::Truncated),
        Some(b'"') => scan_string(json, at),
        Some(b'{' | b'[') => scan_nested(json, at),
        Some(_) => scan_scalar(json, at),
    }
}

/// A number, `true`, `false` or `null` (loosely: see the module comment).
fn scan_scalar(json: &[u8], at: usize) -> Scan {
    let len = json[at..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    if len == 0 {
        return Err(ParamsError::Syntax);
    }
    Ok(at + len)
}

/// An object or array starting at `at`: the index after its closing bracket. Brackets are
/// matched on a stack of one bit per level (1: object), so the depth bound is the only memory.
fn scan_nested(json: &[u8], at: usize) -> Scan {
    // The request's own object is one level already.
    const MAX_NESTED: usize = MAX_DEPTH - 1;
    let mut open: u64 = 0;
    let mut depth = 0usize;
    let mut i = at;
    while let Some(&byte) = json.get(i) {
        match byte {
            b'"' => {
                i = scan_string(json, i)?;
                continue;
            }
            b'{' | b'[' => {
                if depth == MAX_NESTED {
                    return Err(ParamsError::TooDeep);
                }
                open = open << 1 | u64::from(byte == b'{');
                depth += 1;
            }
            b'}' | b']' => {
                let want_object = open & 1 == 1;
                if depth == 0 || want_object != (byte == b'}') {
                    return Err(ParamsError::Syntax);
                }
                open >>= 1;
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(ParamsError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Result<Option<&str>, ParamsError> {
        find_params(json.as_bytes()).map(|found| found.map(|v| std::str::from_utf8(v).unwrap()))
    }

    #[test]
    fn the_top_level_params_value_is_found_whatever_its_type() {
        assert_eq!(
            params(r#"{"method":"set","params":{"a":[1,{"b":"}"}]}}"#),
            Ok(Some(r#"{"a":[1,{"b":"}"}]}"#))
        );
        assert_eq!(params(r#"{"params":42}"#), Ok(Some("42")));
        assert_eq!(params(r#"{"params":-1.5e3,"x":1}"#), Ok(Some("-1.5e3")));
        assert_eq!(params(r#" { "params" : "a\"b" } "#), Ok(Some(r#""a\"b""#)));
        assert_eq!(params(r#"{"params":null}"#), Ok(Some("null")));
        assert_eq!(params(r#"{"params":[]}"#), Ok(Some("[]")));
    }

    #[test]
    fn params_inside_another_value_is_not_the_top_level_one() {
        assert_eq!(
            params(r#"{"method":{"params":1},"x":"\"params\":2","params":3}"#),
            Ok(Some("3"))
        );
        assert_eq!(params(r#"{"method":{"params":1}}"#), Ok(None));
        assert_eq!(params("{}"), Ok(None));
        assert_eq!(params(r#"{"par\u0061ms":1}"#), Ok(None));
    }

    #[test]
    fn what_is_not_an_object_or_cannot_be_delimited_is_refused() {
        assert_eq!(params("[1]"), Err(ParamsError::NotAnObject));
        assert_eq!(params(""), Err(ParamsError::NotAnObject));
        assert_eq!(params("\"params\""), Err(ParamsError::NotAnObject));
        assert_eq!(params(r#"{"params":{"a":1"#), Err(ParamsError::Truncated));
        assert_eq!(params(r#"{"params":"abc"#), Err(ParamsError::Truncated));
        assert_eq!(params(r#"{"params""#), Err(ParamsError::Truncated));
        assert_eq!(params(r#"{"x":1"#), Err(ParamsError::Truncated));
        assert_eq!(params(r#"{"params":[1}]}"#), Err(ParamsError::Syntax));
        assert_eq!(params(r#"{"params":}"#), Err(ParamsError::Syntax));
        assert_eq!(params(r#"{"a" 1}"#), Err(ParamsError::Syntax));
        assert_eq!(params(r#"{"a":1;}"#), Err(ParamsError::Syntax));
        assert_eq!(params(r#"{a:1}"#), Err(ParamsError::Syntax));
    }

    #[test]
    fn members_are_found_by_key_at_the_top_level_only_the_first_of_each() {
        let json = br#"{"data":{"id":3,"params":{"id":9}},"device":"A","device":"B"}"#;
        let [device, data, id] =
            find_members(json, [b"\"device\"", b"\"data\"", b"\"id\""]).unwrap();
        assert_eq!(device, Some(&br#""A""#[..]));
        assert_eq!(data, Some(&br#"{"id":3,"params":{"id":9}}"#[..]));
        assert_eq!(id, None, "only inside data");
        let [id, params] = find_members(data.unwrap(), [b"\"id\"", b"\"params\""]).unwrap();
        assert_eq!((id, params), (Some(&b"3"[..]), Some(&br#"{"id":9}"#[..])));
        assert_eq!(find_members(b"{}", [b"\"id\""]), Ok([None]));
        // With a key missing the whole object is checked.
        assert_eq!(
            find_members(br#"{"a":1,"b":[}"#, [b"\"a\"", b"\"c\""]),
            Err(ParamsError::Syntax)
        );
    }

    #[test]
    fn nesting_is_bounded_at_thirty_two_levels_counting_the_request() {
        let ok = format!(
            "{{\"params\":{}{}}}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(matches!(params(&ok), Ok(Some(_))));
        let deep = format!(
            "{{\"params\":{}{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert_eq!(params(&deep), Err(ParamsError::TooDeep));
        let hostile = format!("{{\"params\":{}", "{\"a\":".repeat(100_000));
        assert_eq!(params(&hostile), Err(ParamsError::TooDeep));
    }

    #[test]
    fn any_bytes_at_all_are_scanned_without_a_panic() {
        // A small deterministic generator (no crate): every byte value, in every position
        // of short inputs built from JSON's structural bytes and some others.
        let alphabet = b"{}[]\":,\\ a1-.\x00\xff";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..40 {
            for _ in 0..500 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        alphabet[(state % alphabet.len() as u64) as usize]
                    })
                    .collect();
                let _ = find_params(&bytes);
                let mut prefixed = b"{\"params\":".to_vec();
                prefixed.extend_from_slice(&bytes);
                if let Ok(Some(value)) = find_params(&prefixed) {
                    assert!(value.len() <= bytes.len());
                }
            }
        }
    }
}
