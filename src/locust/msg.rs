//! Locust's wire messages: one MessagePack array `[type, data, node_id]` per ZeroMQ frame,
//! strings as msgpack str (never bin), maps with integer keys where Locust's stats use them.
//! Decoding never panics: anything the master sends that is not such an array is an error
//! value the link logs and skips.

use rmpv::Value;

/// Nesting a master message may have (parsed_options holds lists and maps, not deep trees).
const MAX_DEPTH: usize = 64;

/// One message, either way.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: String,
    pub data: Value,
    pub node_id: String,
}

impl Message {
    pub fn new(kind: &str, data: Value, node_id: &str) -> Message {
        Message {
            kind: kind.to_string(),
            data,
            node_id: node_id.to_string(),
        }
    }

    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let envelope = Value::Array(vec![
            Value::from(self.kind.as_str()),
            self.data.clone(),
            Value::from(self.node_id.as_str()),
        ]);
        let mut out = Vec::with_capacity(64);
        // Writing into a Vec cannot fail.
        let _ = rmpv::encode::write_value(&mut out, &envelope);
        out
    }

    /// A frame from the master, or what is wrong with it.
    pub fn decode(mut bytes: &[u8]) -> Result<Message, String> {
        let value = rmpv::decode::read_value_with_max_depth(&mut bytes, MAX_DEPTH)
            .map_err(|e| format!("not MessagePack: {e}"))?;
        if !bytes.is_empty() {
            return Err(format!("{} bytes after the message", bytes.len()));
        }
        let Value::Array(mut parts) = value else {
            return Err("not an array".to_string());
        };
        if parts.len() != 3 {
            return Err(format!("an array of {} items, not 3", parts.len()));
        }
        let node_id = text(&parts[2]).unwrap_or_default();
        let kind = text(&parts[0]).ok_or("the message type is not a string")?;
        let data = std::mem::replace(&mut parts[1], Value::Nil);
        Ok(Message {
            kind,
            data,
            node_id,
        })
    }
}

/// A msgpack str as a String.
pub fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_string)
}

/// A master's text as it may be printed on one line: control characters (terminal escape
/// codes among them) escaped as `\u{1b}`, and cut after `max_chars` characters with `...`.
pub fn printable(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max_chars {
            out.push_str("...");
            break;
        }
        if c.is_control() || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `map[key]` of a msgpack map with string keys.
pub fn field<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// A map with string keys, built in order.
#[derive(Default)]
pub struct MapBuilder(Vec<(Value, Value)>);

impl MapBuilder {
    pub fn new() -> MapBuilder {
        MapBuilder::default()
    }

    pub fn put(mut self, key: &str, value: impl Into<Value>) -> MapBuilder {
        self.0.push((Value::from(key), value.into()));
        self
    }

    pub fn build(self) -> Value {
        Value::Map(self.0)
    }
}

/// `{int: int}` (Locust's response_times and per-second maps).
pub fn int_map(pairs: impl IntoIterator<Item = (u64, u64)>) -> Value {
    Value::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::from(k), Value::from(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ready_is_the_bytes_locust_expects() {
        let id = "myhost_0123456789abcdef0123456789abcdef";
        let bytes = Message::new("client_ready", Value::from(-1), id).encode();
        let mut expected = vec![0x93, 0xac];
        expected.extend_from_slice(b"client_ready");
        expected.extend_from_slice(&[0xff, 0xd9, 39]);
        expected.extend_from_slice(id.as_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn messages_round_trip_with_int_keyed_maps_and_floats() {
        let data = MapBuilder::new()
            .put("response_times", int_map([(31, 3), (1000, 2)]))
            .put("start_time", 1_760_000_001.25)
            .put("min_response_time", Value::Nil)
            .build();
        let message = Message::new("stats", data, "h_1");
        let decoded = Message::decode(&message.encode()).unwrap();
        assert_eq!(decoded, message);
        let times = field(&decoded.data, "response_times").unwrap();
        assert_eq!(times.as_map().unwrap()[1].0.as_u64(), Some(1000));
        assert_eq!(
            field(&decoded.data, "start_time").unwrap().as_f64(),
            Some(1_760_000_001.25)
        );
    }

    #[test]
    fn printable_escapes_control_characters_and_cuts_long_text() {
        assert_eq!(printable("a\u{1b}[31mb\n", 40), "a\\u{1b}[31mb\\n");
        assert_eq!(printable("abcdef", 3), "abc...");
        assert_eq!(printable("é\\x", 10), "é\\\\x");
    }

    #[test]
    fn the_largest_frame_decodes_into_a_bounded_memory() {
        // One-byte values (nil) are the densest a frame can be; each becomes one Value.
        let values = usize::try_from(crate::locust::link::MAX_FRAME_BYTES).unwrap();
        assert!(values * std::mem::size_of::<Value>() <= 48 << 20);
        let mut frame = vec![0x93, 0xa1, b'x', 0xdd];
        let count = values - 16;
        frame.extend_from_slice(&u32::try_from(count).unwrap().to_be_bytes());
        frame.resize(frame.len() + count, 0xc0);
        frame.extend_from_slice(&[0xa1, b'n']);
        let message = Message::decode(&frame).unwrap();
        assert_eq!(message.data.as_array().map(Vec::len), Some(count));
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        let nested: Vec<u8> = std::iter::repeat_n(0x91, 100_000).collect();
        for bytes in [
            &b""[..],
            &[0xc1],
            &[0x93, 0xa1, b'x'],
            &[0x92, 0xa1, b'x', 0xc0],
            &[0x93, 0x01, 0xc0, 0xc0],
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
            &nested,
        ] {
            assert!(Message::decode(bytes).is_err(), "{bytes:?}");
        }
        let mut trailing = Message::new("ack", Value::Nil, "n").encode();
        trailing.push(0xc0);
        assert!(Message::decode(&trailing).is_err());
    }
}
