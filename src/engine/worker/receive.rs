//! Receiving: draining a socket until `WouldBlock`, decoding whole packets (keeping a
//! partial one for the next read), dispatching them, and the acks of the publish handshake.

use super::handshake::link_failure;
use super::{ns_to_us, Worker};
use crate::engine::conn::State;
use crate::engine::inflight::{Ack, Stage};
use crate::mqtt::reason::{FAILURE_MIN, NO_MATCHING_SUBSCRIBERS};

/// MQTT 5 PUBREL reason 0x92: Packet Identifier not found (section 3.6.2.1).
const PACKET_ID_NOT_FOUND: u8 = 0x92;
use crate::mqtt::{self, Packet, Version};
use crate::stats::{Failure, StrayAck};
use crate::transport::{ReadOutcome, TlsFailure, Transport};

impl Worker {
    /// Drain the socket until `WouldBlock`, decoding every whole packet. Once an event said
    /// the peer closed (`Conn::peer_closed`), read on to the end of stream even after a short
    /// read.
    pub(super) fn read_ready(&mut self, ci: usize, now: u64) {
        let mut scratch = std::mem::take(&mut self.scratch);
        loop {
            let room = self.read_room(ci, now);
            if room == 0 {
                break;
            }
            let peer_closed = self.conns[ci].peer_closed;
            let c = &mut self.conns[ci];
            let Some(stream) = c.stream.as_mut() else {
                break;
            };
            match c.transport.read(stream, &mut scratch[..room]) {
                ReadOutcome::Eof => {
                    self.lose_reading(ci, 0);
                    break;
                }
                ReadOutcome::Data { n, drained, stamp } => {
                    self.arrived_ns = self.real_clock.arrival_ns(stamp, now);
                    if c.transport.wants_write() {
                        self.mark_dirty(ci);
                    }
                    if let Err(f) = self.consume(ci, &scratch[..n], now) {
                        self.close(ci, Some(f));
                        break;
                    }
                    // A short read emptied the socket: bytes arriving later raise a new edge,
                    // so the read that would only say WouldBlock is skipped (as tokio does).
                    // Against a broker that acks one PUBLISH per write this is one syscall
                    // less per message. Short of what was asked (`room`), not of the scratch
                    // buffer: a subscriber asks for less while acks wait to be written, and a
                    // read that filled that smaller request left bytes in the socket that no
                    // new edge would announce once the broker went quiet. A close that came
                    // with the data raises no new edge either, so then the end of stream
                    // must be read now.
                    if drained && !peer_closed {
                        break;
                    }
                }
                ReadOutcome::WouldBlock => break,
                ReadOutcome::Io(errno) => {
                    self.lose_reading(ci, errno);
                    break;
                }
                ReadOutcome::Failed(f) => {
                    self.close(ci, Some(link_failure(f)));
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// End of stream (errno 0) or a reset. Before CONNACK on plain TCP this is how a TLS
    /// port answers an MQTT CONNECT, so it is named as such.
    fn lose_reading(&mut self, ci: usize, errno: i32) {
        let c = &self.conns[ci];
        let closed = errno == 0 || errno == libc::ECONNRESET;
        if closed && c.state == State::AwaitConnack && matches!(c.transport, Transport::Tcp) {
            return self.close(ci, Some(Failure::ClosedBeforeConnack));
        }
        self.lose(ci, errno);
    }

    /// Decode the bytes just read, after any partial packet kept from the last read. Only the
    /// packet the last read split is completed in `rbuf` (the rest of the read is decoded where
    /// it lies), so `rbuf` holds at most one packet and a read is never copied whole.
    fn consume(&mut self, ci: usize, fresh: &[u8], now: u64) -> Result<(), Failure> {
        // The rest of a packet too large to read (`answer`): dropped as it arrives.
        let skip = self.conns[ci].skip_bytes.min(fresh.len());
        self.conns[ci].skip_bytes -= skip;
        let fresh = &fresh[skip..];
        if fresh.is_empty() {
            return Ok(());
        }
        if self.conns[ci].state == State::AwaitConnack {
            not_mqtt_answer(fresh)?;
        }
        let mut partial = std::mem::take(&mut self.conns[ci].rbuf);
        let result = self.consume_after(ci, &mut partial, fresh, now);
        if let Some(c) = self.conns.get_mut(ci) {
            c.rbuf = partial;
        }
        result
    }

    fn consume_after(
        &mut self,
        ci: usize,
        partial: &mut Vec<u8>,
        mut fresh: &[u8],
        now: u64,
    ) -> Result<(), Failure> {
        if !partial.is_empty() {
            let take = rest_of_split_packet(partial, fresh).min(fresh.len());
            partial.extend_from_slice(&fresh[..take]);
            fresh = &fresh[take..];
            let used = self.decode_all(ci, partial, now)?;
            if !self.conns[ci].is_open() {
                return Ok(());
            }
            partial.drain(..used);
            if !partial.is_empty() {
                // Still incomplete: then the whole read went into it.
                return Ok(());
            }
        }
        let used = self.decode_all(ci, fresh, now)?;
        if self.conns[ci].is_open() {
            partial.extend_from_slice(&fresh[used..]);
        }
        Ok(())
    }

    /// Handle every whole packet at the front of `buf`; returns the bytes used.
    fn decode_all(&mut self, ci: usize, buf: &[u8], now: u64) -> Result<usize, Failure> {
        let mut used = 0;
        while used < buf.len() {
            if let Some(skipped) = self.skip_oversized(ci, &buf[used..]) {
                used += skipped;
                continue;
            }
            match self.plan.mqtt_version.decode(&buf[used..]) {
                Ok(Some((packet, n))) => {
                    used += n;
                    self.on_packet(ci, packet, now)?;
                    if !self.conns[ci].is_open() {
                        return Ok(buf.len());
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(Failure::Protocol(e.0)),
            }
        }
        Ok(used)
    }

    fn on_packet(&mut self, ci: usize, packet: Packet<'_>, now: u64) -> Result<(), Failure> {
        match packet {
            Packet::ConnAck {
                code, properties, ..
            } => self.on_connack(ci, code, properties, now),
            Packet::PubAck { pkid, reason } if self.flow_of(ci, pkid, 1) == 1 => {
                let ack = self.conns[ci].inflight.on_puback(pkid);
                self.on_ack(ci, ack, reason, now, StrayAck::PubAck)
            }
            Packet::PubRec { pkid, reason }
                if self.flow_of(ci, pkid, 2) == 2 && reason >= FAILURE_MIN =>
            {
                // A refusing PUBREC ends the QoS 2 flow: no PUBREL (MQTT 5 section 4.3.3).
                let ack = self.conns[ci].inflight.on_puback(pkid);
                self.on_ack(ci, ack, reason, now, StrayAck::PubRec)
            }
            Packet::PubRec { pkid, reason } if self.flow_of(ci, pkid, 2) == 2 => {
                // Answered at once, late or stray alike (see `inflight`).
                let ack = self.conns[ci].inflight.on_pubrec(pkid);
                self.release(ci, pkid, ack);
                if ack == Ack::Release {
                    // Counted here: the PUBCOMP that completes it carries no such code.
                    self.unrouted += u64::from(reason == NO_MATCHING_SUBSCRIBERS);
                }
                self.on_ack(ci, ack, 0, now, StrayAck::PubRec)
            }
            Packet::PubComp { pkid, reason } if self.flow_of(ci, pkid, 2) == 2 => {
                // MQTT 5 PUBCOMP 0x92 (Packet Identifier not found): the broker had no state
                // for the PUBREL, so the message may be lost: a failure, by name.
                let ack = self.conns[ci].inflight.on_pubcomp(pkid);
                self.on_ack(ci, ack, reason, now, StrayAck::PubComp)
            }
            Packet::PubAck { pkid, .. }
            | Packet::PubRec { pkid, .. }
            | Packet::PubComp { pkid, .. } => {
                // An ack of another QoS than the publish's. For a publish of ours awaiting its
                // ack the broker confused the flows: a protocol error. Otherwise it is stray:
                // a PUBREC is answered and holds its id until the PUBCOMP, which frees it.
                let (kind, what) = match packet {
                    Packet::PubAck { .. } => (StrayAck::PubAck, "PUBACK for a QoS 2 publish"),
                    Packet::PubRec { .. } => (StrayAck::PubRec, "PUBREC for a QoS 1 publish"),
                    _ => (StrayAck::PubComp, "PUBCOMP for a QoS 1 publish"),
                };
                let inflight = &mut self.conns[ci].inflight;
                if inflight.stage(pkid) != Stage::Free {
                    return Err(Failure::Protocol(what));
                }
                let ack = match kind {
                    StrayAck::PubAck => Ack::Stray,
                    StrayAck::PubRec => inflight.on_pubrec(pkid),
                    StrayAck::PubComp => inflight.on_pubcomp(pkid),
                };
                self.release(ci, pkid, ack);
                self.on_ack(ci, ack, 0, now, kind)
            }
            Packet::PingResp => {
                self.conns[ci].ping_sent_ns = None;
                // The next ping is due sooner than the ping timeout that was armed.
                self.rearm_check(ci);
                Ok(())
            }
            Packet::Publish {
                qos,
                pkid,
                topic,
                payload,
                ..
            } => {
                self.on_incoming(ci, qos, pkid, topic, payload, now);
                Ok(())
            }
            Packet::PubRel { pkid, .. } => {
                self.reply(ci, |out| mqtt::ack::encode_pubcomp(out, pkid));
                Ok(())
            }
            Packet::SubAck { pkid, codes } if !self.conns[ci].is_subscriber() => {
                self.on_answers_suback(ci, pkid, codes);
                Ok(())
            }
            Packet::SubAck { codes, .. } => self.on_suback(ci, codes, now),
            Packet::UnsubAck { .. } => Ok(()),
            Packet::Disconnect { reason } => Err(Failure::ServerDisconnect(reason)),
            Packet::Auth { reason } => Err(Failure::AuthReceived(reason)),
            _ => Err(Failure::Protocol("unexpected packet from the broker")),
        }
    }

    /// The QoS flow an ack for `pkid` belongs to: that of the publish in flight with the id,
    /// else the connection's one QoS 1/2 flow; a connection whose streams use both (and no
    /// publish in flight has the id: a late or stray ack) takes the ack's own, `by_packet`.
    /// 0 when the connection publishes at QoS 0 only: every ack is then unexpected.
    fn flow_of(&self, ci: usize, pkid: u16, by_packet: u8) -> u8 {
        let c = &self.conns[ci];
        if let Some(stream) = c.inflight.stream_of(pkid) {
            return c
                .streams
                .slots()
                .get(usize::from(stream))
                .map_or(by_packet, |s| s.qos);
        }
        match c.qos_mask & 0b110 {
            0b010 => 1,
            0b100 => 2,
            0b110 => by_packet,
            _ => 0,
        }
    }

    /// Account for what an acknowledgement did: a completed publish is timed and frees room
    /// for the next; a late one (already counted as timed out) just frees its id.
    /// `reason`: the MQTT 5 reason code of the ack (0 under 3.1.1): at or above 0x80 the
    /// publish failed (by name in the report); 0x10 (No matching subscribers) is a success
    /// also counted in its own row.
    fn on_ack(
        &mut self,
        ci: usize,
        ack: Ack,
        reason: u8,
        now: u64,
        kind: StrayAck,
    ) -> Result<(), Failure> {
        match ack {
            Ack::Completed(_, stream) if reason >= FAILURE_MIN => {
                self.inflight_total -= 1;
                let client = self.conns[ci].client();
                self.rec
                    .publish_fail_by(Failure::PublishRefused(reason), stream, client);
            }
            Ack::Completed(scheduled_ns, stream) => {
                self.inflight_total -= 1;
                // The in-flight slot keeps the publish's stamp (its marker's send time); the
                // ack is timed from when it reached this host (`rx_stamp`), not from our read.
                let slots = self.conns[ci].streams.slots();
                let matches = slots.get(usize::from(stream)).is_some_and(|s| s.matches);
                self.count_publish(ci, scheduled_ns, matches);
                let acked_ns = match self.arrived_ns {
                    stamped if stamped >= scheduled_ns => stamped,
                    _ => now, // a stamp before the send: not trusted
                };
                let latency_us = ns_to_us(acked_ns.saturating_sub(scheduled_ns));
                self.rec.publish_ok(stream, latency_us);
                // A gateway's message: the device points it carried (0 for any other).
                let points = self.conns[ci].inflight.completed_points();
                if points > 0 {
                    self.rec.points(stream, u64::from(points));
                }
                self.unrouted += u64::from(reason == NO_MATCHING_SUBSCRIBERS);
            }
            Ack::Release => return Ok(()),
            Ack::Late => {}
            Ack::Stray => {
                // The framing is intact and nothing of ours changed: counted by name, and
                // the connection goes on (its publishes in flight are not lost).
                let client = self.conns[ci].client();
                self.rec.fail_by(Failure::StrayAck(kind), client);
                if self.conns[ci].inflight.all_ids_held() {
                    return Err(Failure::AckWindowStalled);
                }
                return Ok(());
            }
            Ack::Unexpected => return Err(Failure::Protocol(kind.out_of_order())),
        }
        if self.conns[ci].churn_due {
            self.churn(ci, now);
        } else {
            self.pump(ci, now);
        }
        Ok(())
    }

    /// Answer a PUBREC with PUBREL: for a publish of ours (`Release`), or for an id no publish
    /// holds (`Stray`: MQTT 5 says so with reason 0x92, Packet Identifier not found).
    fn release(&mut self, ci: usize, pkid: u16, ack: Ack) {
        if pkid == 0 {
            return; // never a valid id [MQTT-2.3.1-1]: nothing to answer
        }
        match ack {
            Ack::Release => self.reply(ci, |out| mqtt::ack::encode_pubrel(out, pkid)),
            Ack::Stray if self.plan.mqtt_version == Version::V5 => self.reply(ci, |out| {
                mqtt::v5::ack::encode_pubrel(out, pkid, PACKET_ID_NOT_FOUND)
            }),
            Ack::Stray => self.reply(ci, |out| mqtt::ack::encode_pubrel(out, pkid)),
            _ => {}
        }
    }

    /// Broker-to-client publishes: ack them (QoS 2: PUBREC now, PUBCOMP on PUBREL).
    pub(super) fn ack_incoming(&mut self, ci: usize, qos: u8, pkid: u16) {
        match qos {
            1 => self.reply(ci, |out| mqtt::ack::encode_puback(out, pkid)),
            2 => self.reply(ci, |out| mqtt::ack::encode_pubrec(out, pkid)),
            _ => {}
        }
    }
}

/// A TLS record (alert 0x15, handshake 0x16) or an HTTP response where CONNACK should be: the
/// port speaks TLS or HTTP, not plain MQTT.
fn not_mqtt_answer(first: &[u8]) -> Result<(), Failure> {
    match first {
        [0x15 | 0x16, 0x03, ..] => Err(Failure::Tls(TlsFailure::Other(
            "the broker answered with TLS: this is a TLS port (use mqtts://)",
        ))),
        [b'H', b'T', b'T', b'P', ..] => Err(Failure::Protocol(
            "the broker answered with HTTP: this is a WebSocket port (use ws://)",
        )),
        _ => Ok(()),
    }
}

/// How many bytes of `fresh` complete the packet whose first bytes are `partial`: its whole
/// length less what `partial` holds, once the fixed header (type byte and remaining length)
/// can be read from the two together; all of `fresh` while it cannot (then `fresh` is at most
/// a few bytes) or when the header is malformed (the decoder then names the error).
fn rest_of_split_packet(partial: &[u8], fresh: &[u8]) -> usize {
    let mut head = [0u8; 5];
    let have = partial.len().min(5);
    head[..have].copy_from_slice(&partial[..have]);
    let more = (5 - have).min(fresh.len());
    head[have..have + more].copy_from_slice(&fresh[..more]);
    let head = &head[..have + more];
    match crate::mqtt::packet_len(head) {
        Some(total) => total.saturating_sub(partial.len()),
        None => fresh.len(),
    }
}
