//! Framing and decoding with rumqttc's own `mqttbytes` (no hand-written codec).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, PubAck, PubComp, PubRec, PubRel, Publish, SubAck, Subscribe,
    SubscribeReasonCode, UnsubAck, Unsubscribe,
};
use rumqttc::mqttbytes::{self, PacketType};

use crate::wire::{ConnId, Direction, PacketKind, WillInfo, WireDetail, WireEvent};

use super::MAX_FRAME_BYTES;

use crate::time::now_us;

pub struct DecodeOutcome {
    /// Bytes at the front of the buffer that form complete frames.
    pub consumed: usize,
    /// Set when the stream is not decodable MQTT 3.1.1.
    pub error: Option<String>,
}

fn qos_u8(q: rumqttc::QoS) -> u8 {
    q as u8
}

/// Decode every complete frame at the front of `buf`, calling `record` for each
/// with the frame's byte range in `buf`. A CONNECT sets the connection's client
/// id. `v5_aliases`: Some for an MQTT 5 connection (this direction's topic
/// aliases), None for MQTT 3.1/3.1.1. The tap observes: nothing is rewritten.
pub fn decode_frames(
    buf: &[u8],
    dir: Direction,
    conn: ConnId,
    client_id: &OnceLock<Arc<str>>,
    mut v5_aliases: Option<&mut std::collections::HashMap<u16, Arc<str>>>,
    record: &mut dyn FnMut(WireEvent, std::ops::Range<usize>),
) -> DecodeOutcome {
    let mut consumed = 0;
    let t_us = now_us();
    loop {
        let rest = &buf[consumed..];
        let header = match mqttbytes::check(rest.iter(), MAX_FRAME_BYTES) {
            Ok(h) => h,
            Err(mqttbytes::Error::InsufficientBytes(_)) => {
                return DecodeOutcome {
                    consumed,
                    error: None,
                };
            }
            Err(mqttbytes::Error::PayloadSizeLimitExceeded(n)) => {
                return DecodeOutcome {
                    consumed,
                    error: Some(format!(
                        "a packet of {n} bytes, larger than the tap's limit of {MAX_FRAME_BYTES} bytes"
                    )),
                };
            }
            Err(e) => {
                return DecodeOutcome {
                    consumed,
                    error: Some(e.to_string()),
                };
            }
        };
        let len = header.frame_length();
        // Decoders take `Bytes`; copying one frame keeps captured payloads
        // from pinning the whole read buffer in memory.
        let frame = Bytes::copy_from_slice(&rest[..len]);
        let decoded = match v5_aliases.as_deref_mut() {
            Some(aliases) => {
                let mut ev = WireEvent::new(t_us, conn, Arc::from(""), dir, PacketKind::PingReq);
                ev.size = len as u32;
                super::decode_v5::decode_one(frame, ev, client_id, aliases).map_err(|e| match e {
                    rumqttc::v5::mqttbytes::Error::InvalidPacketType(15) => {
                        "an AUTH packet: MQTT 5 enhanced authentication is not supported \
                         (rumqttd 0.20 has none); use a username and password"
                            .to_string()
                    }
                    e => format!("MQTT 5: {e:?}"),
                })
            }
            None => {
                decode_one(header, frame, dir, conn, client_id, t_us).map_err(|e| e.to_string())
            }
        };
        match decoded {
            Ok(ev) => record(ev, consumed..consumed + len),
            Err(e) => {
                return DecodeOutcome {
                    consumed,
                    error: Some(e),
                };
            }
        }
        consumed += len;
    }
}

fn decode_one(
    header: mqttbytes::FixedHeader,
    frame: Bytes,
    dir: Direction,
    conn: ConnId,
    client_id: &OnceLock<Arc<str>>,
    t_us: u64,
) -> Result<WireEvent, mqttbytes::Error> {
    let size = frame.len() as u32;
    let mut ev = WireEvent::new(t_us, conn, Arc::from(""), dir, PacketKind::PingReq);
    ev.size = size;
    match header.packet_type()? {
        PacketType::Connect => {
            let c = Connect::read(header, frame)?;
            let _ = client_id.set(Arc::from(c.client_id.as_str()));
            let keep_alive_s = c.keep_alive;
            ev.kind = PacketKind::Connect;
            ev.detail = WireDetail::Connect {
                protocol: 4,
                clean_session: c.clean_session,
                keep_alive_s,
                will: c.last_will.map(|w| {
                    Box::new(WillInfo {
                        topic: w.topic,
                        payload: w.message,
                        qos: qos_u8(w.qos),
                        retain: w.retain,
                    })
                }),
                username: c.login.map(|l| l.username),
            };
        }
        PacketType::ConnAck => {
            let c = ConnAck::read(header, frame)?;
            ev.kind = PacketKind::ConnAck;
            ev.detail = WireDetail::ConnAck {
                session_present: c.session_present,
                code: c.code as u8,
            };
        }
        PacketType::Publish => {
            let p = Publish::read(header, frame)?;
            ev.kind = PacketKind::Publish;
            ev.pkid = p.pkid;
            ev.qos = qos_u8(p.qos);
            ev.retain = p.retain;
            ev.dup = p.dup;
            ev.topic = Some(Arc::from(p.topic.as_str()));
            ev.payload = Some(p.payload);
        }
        PacketType::PubAck => {
            ev.kind = PacketKind::PubAck;
            ev.pkid = PubAck::read(header, frame)?.pkid;
        }
        PacketType::PubRec => {
            ev.kind = PacketKind::PubRec;
            ev.pkid = PubRec::read(header, frame)?.pkid;
        }
        PacketType::PubRel => {
            ev.kind = PacketKind::PubRel;
            ev.pkid = PubRel::read(header, frame)?.pkid;
        }
        PacketType::PubComp => {
            ev.kind = PacketKind::PubComp;
            ev.pkid = PubComp::read(header, frame)?.pkid;
        }
        PacketType::Subscribe => {
            let s = Subscribe::read(header, frame)?;
            ev.kind = PacketKind::Subscribe;
            ev.pkid = s.pkid;
            ev.detail = WireDetail::Subscribe(
                s.filters
                    .into_iter()
                    .map(|f| (f.path, qos_u8(f.qos)))
                    .collect(),
            );
        }
        PacketType::SubAck => {
            let s = SubAck::read(header, frame)?;
            ev.kind = PacketKind::SubAck;
            ev.pkid = s.pkid;
            ev.detail = WireDetail::SubAck(
                s.return_codes
                    .into_iter()
                    .map(|c| match c {
                        SubscribeReasonCode::Success(q) => Some(qos_u8(q)),
                        SubscribeReasonCode::Failure => None,
                    })
                    .collect(),
            );
        }
        PacketType::Unsubscribe => {
            let u = Unsubscribe::read(header, frame)?;
            ev.kind = PacketKind::Unsubscribe;
            ev.pkid = u.pkid;
            ev.detail = WireDetail::Unsubscribe(u.topics);
        }
        PacketType::UnsubAck => {
            ev.kind = PacketKind::UnsubAck;
            ev.pkid = UnsubAck::read(header, frame)?.pkid;
        }
        PacketType::PingReq => ev.kind = PacketKind::PingReq,
        PacketType::PingResp => ev.kind = PacketKind::PingResp,
        PacketType::Disconnect => ev.kind = PacketKind::Disconnect,
    }
    ev.client_id = client_id.get().cloned().unwrap_or_else(|| Arc::from(""));
    ev.protocol = 4;
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rumqttc::mqttbytes::v4::Packet;
    use rumqttc::{LastWill, QoS};

    fn encode(p: Packet) -> Vec<u8> {
        let mut b = BytesMut::new();
        p.write(&mut b, 1 << 20).unwrap();
        b.to_vec()
    }

    #[test]
    fn decodes_split_frames_and_sets_client_id() {
        let mut connect = Connect::new("dev-1");
        connect.clean_session = false;
        connect.keep_alive = 7;
        connect.last_will = Some(LastWill::new("will/t", "gone", QoS::AtLeastOnce, true));
        let mut bytes = encode(Packet::Connect(connect));
        let mut publish = Publish::new("a/b", QoS::ExactlyOnce, "hello");
        publish.pkid = 9;
        bytes.extend(encode(Packet::Publish(publish)));
        let id = OnceLock::new();
        let mut out = Vec::new();
        // Only part of the second frame is here: one frame decodes.
        let cut = bytes.len() - 2;
        let o = decode_frames(
            &bytes[..cut],
            Direction::ClientToBroker,
            1,
            &id,
            None,
            &mut |e, _| out.push(e),
        );
        assert!(o.error.is_none());
        assert_eq!(out.len(), 1);
        assert_eq!(&*id.get().unwrap().clone(), "dev-1");
        match &out[0].detail {
            WireDetail::Connect {
                clean_session,
                keep_alive_s,
                will,
                ..
            } => {
                assert!(!clean_session);
                assert_eq!(*keep_alive_s, 7);
                let w = will.as_ref().unwrap();
                assert_eq!((w.topic.as_str(), w.qos, w.retain), ("will/t", 1, true));
            }
            d => panic!("unexpected {d:?}"),
        }
        let o2 = decode_frames(
            &bytes[o.consumed..],
            Direction::ClientToBroker,
            1,
            &id,
            None,
            &mut |e, _| out.push(e),
        );
        assert_eq!(o.consumed + o2.consumed, bytes.len());
        let p = &out[1];
        assert_eq!((p.kind, p.pkid, p.qos), (PacketKind::Publish, 9, 2));
        assert_eq!(p.topic.as_deref(), Some("a/b"));
        assert_eq!(&*p.client_id, "dev-1");
        assert_eq!(p.payload.as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn keepalive_zero_is_recorded_and_forwarded_as_sent() {
        let mut connect = Connect::new("sleepy");
        connect.keep_alive = 0;
        let bytes = encode(Packet::Connect(connect));
        let mut seen = Vec::new();
        let o = decode_frames(
            &bytes,
            Direction::ClientToBroker,
            1,
            &OnceLock::new(),
            None,
            &mut |e, range| seen.push((e, range)),
        );
        assert!(o.error.is_none());
        assert_eq!(o.consumed, bytes.len());
        let (ev, range) = &seen[0];
        assert_eq!(*range, 0..bytes.len());
        assert!(matches!(
            ev.detail,
            WireDetail::Connect {
                keep_alive_s: 0,
                ..
            }
        ));
    }

    #[test]
    fn garbage_is_reported_not_panicked() {
        let id = OnceLock::new();
        let o = decode_frames(
            &[0xF0, 0x00, 1, 2],
            Direction::ClientToBroker,
            1,
            &id,
            None,
            &mut |_, _| {},
        );
        assert!(o.error.is_some());
        assert_eq!(o.consumed, 0);
    }
}
