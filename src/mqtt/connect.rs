//! CONNECT (MQTT 3.1.1 section 3.1) encoder and CONNECT decoder (used by the sink).

/// What goes in one CONNECT packet.
#[derive(Debug, Clone, Copy)]
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub keep_alive_s: u16,
    pub clean_session: bool,
}

/// Append a CONNECT packet (protocol name "MQTT", level 4) to `out`.
pub fn encode(out: &mut Vec<u8>, c: &Connect<'_>) {
    todo!()
}

/// Append DISCONNECT (section 3.14): `0b1110_0000 0x00`.
pub fn encode_disconnect(out: &mut Vec<u8>) {
    todo!()
}

/// Append PINGREQ (section 3.12): `0b1100_0000 0x00`.
pub fn encode_pingreq(out: &mut Vec<u8>) {
    todo!()
}
