//! SUBSCRIBE (MQTT 3.1.1 section 3.8) encoder; SUBACK is decoded in `decode`.

/// Append a SUBSCRIBE with the given (filter, requested QoS) pairs.
pub fn encode(out: &mut Vec<u8>, pkid: u16, filters: &[(&str, u8)]) {
    todo!()
}
