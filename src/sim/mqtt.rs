//! The scenario's and the publish panel's types as rumqttc's: the one place
//! that turns plain data into the client library's types, so the scenario
//! schema and the boundary types stay free of rumqttc.

use bytes::Bytes;

use crate::command::MessageProperties;
use crate::scenario::Qos;

/// rumqttc's QoS types for a scenario [`Qos`].
pub trait ToRumqttc {
    fn to_rumqttc(self) -> rumqttc::QoS;
    fn to_rumqttc_v5(self) -> rumqttc::v5::mqttbytes::QoS;
}

impl ToRumqttc for Qos {
    fn to_rumqttc(self) -> rumqttc::QoS {
        match self.0 {
            0 => rumqttc::QoS::AtMostOnce,
            1 => rumqttc::QoS::AtLeastOnce,
            _ => rumqttc::QoS::ExactlyOnce,
        }
    }

    fn to_rumqttc_v5(self) -> rumqttc::v5::mqttbytes::QoS {
        use rumqttc::v5::mqttbytes::QoS;
        match self.0 {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        }
    }
}

/// A hand-published message's MQTT 5 properties, as rumqttc sends them.
pub fn publish_properties(p: &MessageProperties) -> rumqttc::v5::mqttbytes::v5::PublishProperties {
    let text = |s: &str| (!s.trim().is_empty()).then(|| s.to_string());
    rumqttc::v5::mqttbytes::v5::PublishProperties {
        payload_format_indicator: p.payload_utf8.then_some(1),
        message_expiry_interval: (p.message_expiry_s > 0).then_some(p.message_expiry_s),
        response_topic: text(&p.response_topic),
        correlation_data: text(&p.correlation_data).map(Bytes::from),
        user_properties: p
            .user_properties
            .iter()
            .filter(|(k, _)| !k.trim().is_empty())
            .cloned()
            .collect(),
        content_type: text(&p.content_type),
        ..Default::default()
    }
}
