//! PUBACK, PUBREC, PUBREL, PUBCOMP (MQTT 3.1.1 sections 3.4-3.7): four bytes each.

pub fn encode_puback(out: &mut Vec<u8>, pkid: u16) {
    todo!()
}
pub fn encode_pubrec(out: &mut Vec<u8>, pkid: u16) {
    todo!()
}
/// PUBREL has fixed-header flags 0b0010 (section 3.6.1).
pub fn encode_pubrel(out: &mut Vec<u8>, pkid: u16) {
    todo!()
}
pub fn encode_pubcomp(out: &mut Vec<u8>, pkid: u16) {
    todo!()
}
