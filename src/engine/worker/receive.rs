//! Receiving: draining a socket until `WouldBlock`, decoding whole packets (keeping a
//! partial one for the next read), dispatching them, and the acks of the publish handshake.

use std::io::{self, Read};

use super::{errno, ns_to_us, Worker};
use crate::mqtt::{self, Packet};
use crate::stats::{Failure, Metric};

impl Worker {
    /// Drain the socket until `WouldBlock`, decoding every whole packet.
    pub(super) fn read_ready(&mut self, ci: usize, now: u64) {
        let mut scratch = std::mem::take(&mut self.scratch);
        loop {
            let room = self.read_room(ci, now);
            if room == 0 {
                break;
            }
            let Some(stream) = self.conns[ci].stream.as_mut() else {
                break;
            };
            match stream.read(&mut scratch[..room]) {
                Ok(0) => {
                    self.lose(ci, 0);
                    break;
                }
                Ok(n) => {
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
                    // new edge would announce once the broker went quiet.
                    if n < room {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.lose(ci, errno(&e));
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// Decode the bytes just read, after any partial packet kept from the last read.
    fn consume(&mut self, ci: usize, fresh: &[u8], now: u64) -> Result<(), Failure> {
        let mut partial = std::mem::take(&mut self.conns[ci].rbuf);
        let result = if partial.is_empty() {
            let used = self.decode_all(ci, fresh, now)?;
            partial.extend_from_slice(&fresh[used..]);
            Ok(())
        } else {
            partial.extend_from_slice(fresh);
            let used = self.decode_all(ci, &partial, now)?;
            partial.drain(..used);
            Ok(())
        };
        if let Some(c) = self.conns.get_mut(ci) {
            c.rbuf = partial;
        }
        result
    }

    /// Handle every whole packet at the front of `buf`; returns the bytes used.
    fn decode_all(&mut self, ci: usize, buf: &[u8], now: u64) -> Result<usize, Failure> {
        let mut used = 0;
        while used < buf.len() {
            match mqtt::decode(&buf[used..]) {
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
            Packet::ConnAck { code, .. } => self.on_connack(ci, code, now),
            Packet::PubAck { pkid } if self.plan.qos == 1 => Ok(self.complete(ci, pkid, now)),
            Packet::PubRec { pkid } if self.plan.qos == 2 => Ok(self.on_pubrec(ci, pkid)),
            Packet::PubComp { pkid } if self.plan.qos == 2 => Ok(self.complete(ci, pkid, now)),
            Packet::PingResp => {
                self.conns[ci].ping_sent_ns = None;
                Ok(())
            }
            Packet::Publish {
                qos, pkid, payload, ..
            } => {
                self.on_incoming(ci, qos, pkid, payload, now);
                Ok(())
            }
            Packet::PubRel { pkid } => {
                Ok(self.reply(ci, |out| mqtt::ack::encode_pubcomp(out, pkid)))
            }
            Packet::SubAck { codes, .. } => self.on_suback(ci, codes, now),
            Packet::UnsubAck { .. } => Ok(()),
            _ => Err(Failure::Protocol("unexpected packet from the broker")),
        }
    }

    fn complete(&mut self, ci: usize, pkid: u16, now: u64) {
        // An unknown or stale id is a late ack for a publish already counted as timed out.
        if let Some(scheduled_ns) = self.conns[ci].inflight.complete(pkid) {
            self.inflight_total -= 1;
            self.conns[ci].counted += 1;
            self.rec
                .ok(Metric::Publish, ns_to_us(now.saturating_sub(scheduled_ns)));
            if self.conns[ci].churn_due {
                return self.churn(ci, now);
            }
            self.pump(ci, now);
        }
    }

    fn on_pubrec(&mut self, ci: usize, pkid: u16) {
        if self.conns[ci].inflight.mark_released(pkid) {
            self.reply(ci, |out| mqtt::ack::encode_pubrel(out, pkid));
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
