//! MQTT 5 frames, decoded with rumqttc's own v5 `mqttbytes` (no hand-written
//! codec), into the same [`WireEvent`]s as MQTT 3.1.1.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{
    self as v5, ConnAck, Connect, PacketType, PubAck, PubComp, PubRec, PubRel, Publish, SubAck,
    Subscribe, SubscribeReasonCode, Unsubscribe,
};
use rumqttc::v5::mqttbytes::{Error, QoS};

use crate::wire::{PacketKind, SubOptions, V5Props, WillInfo, WireDetail, WireEvent};

/// Correlation data as text when it is UTF-8, else hex.
fn shown_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// The reason code byte of an ack (PUBACK, PUBREC, PUBREL, PUBCOMP): after the
/// packet id; absent (success) when the remaining length is 2.
fn ack_reason(frame: &[u8]) -> Option<u8> {
    frame.get(fixed_header_len(frame) + 2).copied()
}

fn suback_code(c: &SubscribeReasonCode) -> u8 {
    match c {
        SubscribeReasonCode::Success(q) => *q as u8,
        SubscribeReasonCode::Failure | SubscribeReasonCode::Unspecified => 0x80,
        SubscribeReasonCode::ImplementationSpecific => 0x83,
        SubscribeReasonCode::NotAuthorized => 0x87,
        SubscribeReasonCode::TopicFilterInvalid => 0x8F,
        SubscribeReasonCode::PkidInUse => 0x91,
        SubscribeReasonCode::QuotaExceeded => 0x97,
        SubscribeReasonCode::SharedSubscriptionsNotSupported => 0x9E,
        SubscribeReasonCode::SubscriptionIdNotSupported => 0xA1,
        SubscribeReasonCode::WildcardSubscriptionsNotSupported => 0xA2,
    }
}

fn qos_u8(q: QoS) -> u8 {
    q as u8
}

/// Bytes the fixed header takes (1 + the remaining length's 1..4 bytes).
fn fixed_header_len(frame: &[u8]) -> usize {
    1 + frame
        .iter()
        .skip(1)
        .take(4)
        .position(|b| b & 0x80 == 0)
        .map_or(4, |i| i + 1)
}

/// Decode one MQTT 5 frame. `aliases`: this direction's topic aliases
/// (a PUBLISH with an alias and an empty topic is shown with its topic).
pub fn decode_one(
    frame: Bytes,
    mut ev: WireEvent,
    client_id: &OnceLock<Arc<str>>,
    aliases: &mut HashMap<u16, Arc<str>>,
) -> Result<WireEvent, Error> {
    let header = v5::check(frame.iter(), None)?;
    let size = frame.len();
    let empty = size == fixed_header_len(&frame);
    let mut props = V5Props::default();
    ev.protocol = 5;
    match header.packet_type()? {
        PacketType::Connect => connect(header, frame, &mut ev, &mut props, client_id)?,
        PacketType::ConnAck => connack(header, frame, &mut ev, &mut props)?,
        PacketType::Publish => publish(header, frame, &mut ev, &mut props, aliases)?,
        PacketType::PubAck => {
            ev.kind = PacketKind::PubAck;
            props.reason_code = ack_reason(&frame);
            ev.pkid = PubAck::read(header, frame)?.pkid;
        }
        PacketType::PubRec => {
            ev.kind = PacketKind::PubRec;
            props.reason_code = ack_reason(&frame);
            ev.pkid = PubRec::read(header, frame)?.pkid;
        }
        PacketType::PubRel => {
            ev.kind = PacketKind::PubRel;
            props.reason_code = ack_reason(&frame);
            ev.pkid = PubRel::read(header, frame)?.pkid;
        }
        PacketType::PubComp => {
            ev.kind = PacketKind::PubComp;
            props.reason_code = ack_reason(&frame);
            ev.pkid = PubComp::read(header, frame)?.pkid;
        }
        PacketType::Subscribe => subscribe(header, frame, &mut ev, &mut props)?,
        PacketType::SubAck => {
            let s = SubAck::read(header, frame)?;
            ev.kind = PacketKind::SubAck;
            ev.pkid = s.pkid;
            props.reason_codes = s.return_codes.iter().map(suback_code).collect();
            ev.detail = WireDetail::SubAck(
                s.return_codes
                    .into_iter()
                    .map(|c| match c {
                        SubscribeReasonCode::Success(q) => Some(qos_u8(q)),
                        _ => None,
                    })
                    .collect(),
            );
        }
        PacketType::Unsubscribe => {
            let u = Unsubscribe::read(header, frame)?;
            ev.kind = PacketKind::Unsubscribe;
            ev.pkid = u.pkid;
            ev.detail = WireDetail::Unsubscribe(u.filters);
        }
        PacketType::UnsubAck => ev.kind = PacketKind::UnsubAck,
        PacketType::PingReq => ev.kind = PacketKind::PingReq,
        PacketType::PingResp => ev.kind = PacketKind::PingResp,
        // MQTT 5 lets DISCONNECT omit its reason code (normal disconnection).
        PacketType::Disconnect => {
            ev.kind = PacketKind::Disconnect;
            if !empty {
                props.reason_code = frame.get(fixed_header_len(&frame)).copied();
                if let Ok(d) = v5::Disconnect::read(header, frame)
                    && let Some(p) = d.properties
                {
                    props.session_expiry_s = p.session_expiry_interval;
                    props.reason_string = p.reason_string;
                    props.user_properties = p.user_properties;
                }
            }
        }
    }
    if !props.is_empty() {
        ev.v5 = Some(Box::new(props));
    }
    ev.client_id = client_id.get().cloned().unwrap_or_else(|| Arc::from(""));
    Ok(ev)
}

/// CONNECT: the session's settings, its will and login; the client id is
/// this connection's from now on.
fn connect(
    header: v5::FixedHeader,
    frame: Bytes,
    ev: &mut WireEvent,
    props: &mut V5Props,
    client_id: &OnceLock<Arc<str>>,
) -> Result<(), Error> {
    let (c, will, login) = Connect::read(header, frame)?;
    if let Some(p) = &c.properties {
        props.session_expiry_s = p.session_expiry_interval;
        props.receive_maximum = p.receive_maximum;
        props.max_packet_size = p.max_packet_size;
        props.user_properties = p.user_properties.clone();
    }
    let _ = client_id.set(Arc::from(c.client_id.as_str()));
    ev.kind = PacketKind::Connect;
    ev.detail = WireDetail::Connect {
        protocol: 5,
        clean_session: c.clean_start,
        keep_alive_s: c.keep_alive,
        will: will.map(|w| {
            Box::new(WillInfo {
                topic: String::from_utf8_lossy(&w.topic).into_owned(),
                payload: w.message,
                qos: qos_u8(w.qos),
                retain: w.retain,
            })
        }),
        username: login.map(|l| l.username),
    };
    Ok(())
}

/// CONNACK: the reason code and what the server grants.
fn connack(
    header: v5::FixedHeader,
    frame: Bytes,
    ev: &mut WireEvent,
    props: &mut V5Props,
) -> Result<(), Error> {
    let fixed = fixed_header_len(&frame);
    let code = frame.get(fixed + 1).copied().unwrap_or(0);
    let c = ConnAck::read(header, frame)?;
    props.reason_code = Some(code);
    if let Some(p) = &c.properties {
        props.session_expiry_s = p.session_expiry_interval;
        props.receive_maximum = p.receive_max;
        props.max_packet_size = p.max_packet_size;
        props.assigned_client_id = p.assigned_client_identifier.clone();
        props.server_keep_alive_s = p.server_keep_alive;
        props.reason_string = p.reason_string.clone();
        props.user_properties = p.user_properties.clone();
    }
    ev.kind = PacketKind::ConnAck;
    ev.detail = WireDetail::ConnAck {
        session_present: c.session_present,
        code,
    };
    Ok(())
}

/// PUBLISH: its properties, and its topic (an alias resolved).
fn publish(
    header: v5::FixedHeader,
    frame: Bytes,
    ev: &mut WireEvent,
    props: &mut V5Props,
    aliases: &mut HashMap<u16, Arc<str>>,
) -> Result<(), Error> {
    let p = Publish::read(header, frame)?;
    ev.kind = PacketKind::Publish;
    ev.pkid = p.pkid;
    ev.qos = qos_u8(p.qos);
    ev.retain = p.retain;
    ev.dup = p.dup;
    let alias = p.properties.as_ref().and_then(|pr| pr.topic_alias);
    if let Some(pr) = &p.properties {
        props.payload_utf8 = pr.payload_format_indicator.map(|f| f == 1);
        props.message_expiry_s = pr.message_expiry_interval;
        props.topic_alias = pr.topic_alias;
        props.response_topic = pr.response_topic.clone();
        props.correlation_data = pr.correlation_data.as_deref().map(shown_bytes);
        props.user_properties = pr.user_properties.clone();
        props.content_type = pr.content_type.clone();
    }
    // An alias nobody set is the broker's to refuse (DISCONNECT 0x82 or
    // 0x94, MQTT 5 §3.3.2.3.4); the capture shows the frame without a topic.
    let topic: Option<Arc<str>> = if p.topic.is_empty() {
        alias.and_then(|a| aliases.get(&a).cloned())
    } else {
        let t: Arc<str> = Arc::from(String::from_utf8_lossy(&p.topic).as_ref());
        if let Some(a) = alias
            && aliases.len() < 65_536
        {
            aliases.insert(a, t.clone());
        }
        Some(t)
    };
    ev.topic = topic;
    ev.payload = Some(p.payload);
    Ok(())
}

/// SUBSCRIBE: the filters with their QoS and options.
fn subscribe(
    header: v5::FixedHeader,
    frame: Bytes,
    ev: &mut WireEvent,
    props: &mut V5Props,
) -> Result<(), Error> {
    let s = Subscribe::read(header, frame)?;
    ev.kind = PacketKind::Subscribe;
    ev.pkid = s.pkid;
    props.subscriptions = s
        .filters
        .iter()
        .map(|f| SubOptions {
            filter: f.path.clone(),
            no_local: f.nolocal,
            retain_as_published: f.preserve_retain,
            retain_handling: match f.retain_forward_rule {
                v5::RetainForwardRule::OnEverySubscribe => 0,
                v5::RetainForwardRule::OnNewSubscribe => 1,
                v5::RetainForwardRule::Never => 2,
            },
        })
        .collect();
    if let Some(p) = &s.properties {
        props.user_properties = p.user_properties.clone();
    }
    ev.detail = WireDetail::Subscribe(
        s.filters
            .into_iter()
            .map(|f| (f.path, qos_u8(f.qos)))
            .collect(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Direction;
    use bytes::BytesMut;
    use rumqttc::v5::mqttbytes::v5::{Disconnect, DisconnectReasonCode};

    fn ev() -> WireEvent {
        WireEvent::new(
            1,
            1,
            Arc::from(""),
            Direction::ClientToBroker,
            PacketKind::PingReq,
        )
    }

    /// One client-to-broker frame, which must decode.
    fn decode(
        id: &OnceLock<Arc<str>>,
        aliases: &mut HashMap<u16, Arc<str>>,
        frame: Bytes,
    ) -> WireEvent {
        decode_one(frame, ev(), id, aliases).expect("decodes")
    }

    #[test]
    fn decodes_connect_publish_with_alias_and_short_disconnect() {
        let c = Connect {
            keep_alive: 0,
            client_id: "v5-dev".into(),
            clean_start: true,
            properties: None,
        };
        let mut buf = BytesMut::new();
        c.write(&None, &None, &mut buf).expect("encodes");
        let id = OnceLock::new();
        let mut aliases = HashMap::new();
        let e = decode(&id, &mut aliases, buf.freeze());
        assert_eq!(e.kind, PacketKind::Connect);
        assert!(matches!(
            e.detail,
            WireDetail::Connect {
                protocol: 5,
                keep_alive_s: 0,
                ..
            }
        ));
        assert_eq!(&*e.client_id, "v5-dev");
        // A publish that sets alias 3, then one that uses it with an empty topic.
        for (topic, payload) in [("a/b", "1"), ("", "2")] {
            let mut p = Publish::new(topic, QoS::AtLeastOnce, payload, None);
            p.pkid = 7;
            p.properties = Some(rumqttc::v5::mqttbytes::v5::PublishProperties {
                topic_alias: Some(3),
                ..Default::default()
            });
            let mut buf = BytesMut::new();
            p.write(&mut buf).expect("encodes");
            let e = decode(&id, &mut aliases, buf.freeze());
            assert_eq!(e.topic.as_deref(), Some("a/b"), "alias resolved");
            assert_eq!(e.payload.as_deref(), Some(payload.as_bytes()));
        }
        // An alias nobody set is the broker's to refuse: shown without a topic.
        let mut p = Publish::new("", QoS::AtMostOnce, "x", None);
        p.properties = Some(rumqttc::v5::mqttbytes::v5::PublishProperties {
            topic_alias: Some(99),
            ..Default::default()
        });
        let mut buf = BytesMut::new();
        p.write(&mut buf).expect("encodes");
        let e = decode(&id, &mut aliases, buf.freeze());
        assert_eq!(e.topic, None);
        // Subscription options travel on the SUBSCRIBE.
        let mut filter = v5::Filter::new("a/#", QoS::AtLeastOnce);
        filter.nolocal = true;
        filter.retain_forward_rule = v5::RetainForwardRule::Never;
        let mut buf = BytesMut::new();
        Subscribe::new(filter, None)
            .write(&mut buf)
            .expect("encodes");
        let e = decode(&id, &mut aliases, buf.freeze());
        let opts = &e.v5.expect("options").subscriptions[0];
        assert_eq!(
            (opts.filter.as_str(), opts.no_local, opts.retain_handling),
            ("a/#", true, 2)
        );
        // DISCONNECT without a reason code: two bytes on the wire.
        let e = decode(&id, &mut aliases, Bytes::from_static(&[0xE0, 0x00]));
        assert_eq!(e.kind, PacketKind::Disconnect);
        let mut buf = BytesMut::new();
        Disconnect::new(DisconnectReasonCode::NormalDisconnection)
            .write(&mut buf)
            .expect("encodes");
        let e = decode(&id, &mut aliases, buf.freeze());
        assert_eq!(e.kind, PacketKind::Disconnect);
    }
}
