//! Sparkplug B 3.0 (Eclipse Sparkplug, the MQTT convention of industrial
//! IoT): its topic namespace and payload schema. The decoders
//! (`codec`) show its payloads, virtual edge nodes and primary hosts
//! (`sim::sparkplug`) follow its session rules.

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
}
