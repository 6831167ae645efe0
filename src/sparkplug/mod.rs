//! Sparkplug B 3.0 (Eclipse Sparkplug, the MQTT convention of industrial
//! IoT): its topic namespace and payload schema. The decoders
//! (`codec`) show its payloads, virtual edge nodes and primary hosts
//! (`sim::sparkplug`) follow its session rules.

pub mod json;
pub mod observe;
pub mod proto;

/// The namespace every Sparkplug B topic starts with.
pub const NAMESPACE: &str = "spBv1.0";

/// A message type of the Sparkplug B topic namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NBirth,
    NDeath,
    DBirth,
    DDeath,
    NData,
    DData,
    NCmd,
    DCmd,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "NBIRTH" => Kind::NBirth,
            "NDEATH" => Kind::NDeath,
            "DBIRTH" => Kind::DBirth,
            "DDEATH" => Kind::DDeath,
            "NDATA" => Kind::NData,
            "DDATA" => Kind::DData,
            "NCMD" => Kind::NCmd,
            "DCMD" => Kind::DCmd,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NBirth => "NBIRTH",
            Kind::NDeath => "NDEATH",
            Kind::DBirth => "DBIRTH",
            Kind::DDeath => "DDEATH",
            Kind::NData => "NDATA",
            Kind::DData => "DDATA",
            Kind::NCmd => "NCMD",
            Kind::DCmd => "DCMD",
        }
    }

    /// The messages that carry a sequence number (all an edge node sends but NDEATH).
    pub fn has_seq(self) -> bool {
        matches!(
            self,
            Kind::NBirth | Kind::DBirth | Kind::NData | Kind::DData | Kind::DDeath
        )
    }
}

/// A Sparkplug B topic: `spBv1.0/group/TYPE/edge[/device]` or `spBv1.0/STATE/host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic<'a> {
    Node {
        group: &'a str,
        kind: Kind,
        node: &'a str,
        /// "" for the edge node's own messages.
        device: &'a str,
    },
    /// A primary host application's STATE (3.0).
    State { host: &'a str },
}

impl<'a> Topic<'a> {
    pub fn parse(topic: &'a str) -> Option<Topic<'a>> {
        let mut parts = topic.split('/');
        if parts.next()? != NAMESPACE {
            return None;
        }
        let group = parts.next()?;
        if group == "STATE" {
            let host = parts.next()?;
            return parts.next().is_none().then_some(Topic::State { host });
        }
        let kind = Kind::parse(parts.next()?)?;
        let node = parts.next()?;
        let device = parts.next().unwrap_or("");
        let device_kind = matches!(kind, Kind::DBirth | Kind::DDeath | Kind::DData | Kind::DCmd);
        if parts.next().is_some() || device_kind == device.is_empty() || node.is_empty() {
            return None;
        }
        Some(Topic::Node {
            group,
            kind,
            node,
            device,
        })
    }
}

/// A node-level topic.
pub fn node_topic(group: &str, kind: Kind, node: &str) -> String {
    format!("{NAMESPACE}/{group}/{}/{node}", kind.as_str())
}

/// A device-level topic.
pub fn device_topic(group: &str, kind: Kind, node: &str, device: &str) -> String {
    format!("{NAMESPACE}/{group}/{}/{node}/{device}", kind.as_str())
}

/// A primary host's STATE topic.
pub fn state_topic(host: &str) -> String {
    format!("{NAMESPACE}/STATE/{host}")
}

/// The `bdSeq` metric of an NBIRTH or NDEATH.
pub fn bd_seq(p: &proto::Payload) -> Option<u64> {
    p.metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("bdSeq"))
        .and_then(|m| match m.value {
            Some(proto::Value::LongValue(v)) => Some(v),
            Some(proto::Value::IntValue(v)) => Some(v as u64),
            _ => None,
        })
}

/// The metric an NCMD asks an edge node to be born again with.
pub const REBIRTH: &str = "Node Control/Rebirth";

/// An NCMD payload asking for a rebirth (`Node Control/Rebirth = true`), at `ts_ms`.
pub fn rebirth_payload(ts_ms: u64) -> Vec<u8> {
    write_payload(REBIRTH, 11, proto::Value::BooleanValue(true), ts_ms)
}

/// An NCMD/DCMD payload writing `value` (of data type `datatype`) to metric `name`.
pub fn write_payload(name: &str, datatype: u32, value: proto::Value, ts_ms: u64) -> Vec<u8> {
    prost::Message::encode_to_vec(&proto::Payload {
        timestamp: Some(ts_ms),
        metrics: vec![proto::Metric {
            name: Some(name.into()),
            timestamp: Some(ts_ms),
            datatype: Some(datatype),
            value: Some(value),
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// A value typed by hand for a metric of data type `datatype` (3.0, 6.4.16):
/// integers, floats, booleans and strings; other types cannot be written here.
pub fn parse_value(datatype: u32, text: &str) -> Result<proto::Value, String> {
    use proto::Value as V;
    let t = text.trim();
    let bad = || format!("\"{t}\" is not a {} value", proto::type_name(datatype));
    Ok(match datatype {
        1..=3 => V::IntValue(t.parse::<i32>().map_err(|_| bad())? as u32),
        5..=7 => V::IntValue(t.parse::<u32>().map_err(|_| bad())?),
        4 => V::LongValue(t.parse::<i64>().map_err(|_| bad())? as u64),
        8 | 13 => V::LongValue(t.parse::<u64>().map_err(|_| bad())?),
        9 => V::FloatValue(t.parse::<f32>().map_err(|_| bad())?),
        10 => V::DoubleValue(t.parse::<f64>().map_err(|_| bad())?),
        11 => V::BooleanValue(match t {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(bad()),
        }),
        12 | 14 | 15 => V::StringValue(text.to_string()),
        other => {
            return Err(format!(
                "metrics of type {} cannot be written from here",
                proto::type_name(other)
            ));
        }
    })
}

/// A STATE payload (3.0: `{"online": true, "timestamp": …}`; 2.2's `ONLINE`/`OFFLINE` too).
pub fn state_online(payload: &[u8]) -> Option<bool> {
    match payload {
        b"ONLINE" => return Some(true),
        b"OFFLINE" => return Some(false),
        _ => {}
    }
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v.get("online")?.as_bool()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_as_the_namespace_says() {
        assert_eq!(
            Topic::parse("spBv1.0/plant/DDATA/edge-1/pump-1"),
            Some(Topic::Node {
                group: "plant",
                kind: Kind::DData,
                node: "edge-1",
                device: "pump-1"
            })
        );
        assert_eq!(
            Topic::parse("spBv1.0/STATE/scada"),
            Some(Topic::State { host: "scada" })
        );
        // A device message without its device, a node message with one, unknown types.
        assert_eq!(Topic::parse("spBv1.0/plant/DDATA/edge-1"), None);
        assert_eq!(Topic::parse("spBv1.0/plant/NDATA/edge-1/pump-1"), None);
        assert_eq!(Topic::parse("spBv1.0/plant/XDATA/edge-1"), None);
        assert_eq!(Topic::parse("spAv1.0/plant/NDATA/edge-1"), None);
        assert_eq!(
            state_online(br#"{"online": true, "timestamp": 1}"#),
            Some(true)
        );
        assert_eq!(state_online(b"OFFLINE"), Some(false));
        assert_eq!(state_online(b"yes"), None);
    }

    #[test]
    fn values_typed_by_hand_take_the_metric_type_or_say_why_not() {
        assert_eq!(parse_value(9, " 42.5 "), Ok(proto::Value::FloatValue(42.5)));
        assert_eq!(
            parse_value(3, "-7"),
            Ok(proto::Value::IntValue(-7i32 as u32))
        );
        assert_eq!(
            parse_value(11, "true"),
            Ok(proto::Value::BooleanValue(true))
        );
        assert_eq!(
            parse_value(3, "4.5"),
            Err("\"4.5\" is not a Int32 value".into())
        );
        assert!(parse_value(16, "x").unwrap_err().contains("DataSet"));
        let p: proto::Payload = prost::Message::decode(&rebirth_payload(5)[..]).expect("decodes");
        assert_eq!(p.metrics[0].name.as_deref(), Some(REBIRTH));
        assert_eq!(p.metrics[0].value, Some(proto::Value::BooleanValue(true)));
    }
}
