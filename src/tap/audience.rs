//! Which topics an MQTT 3.1.1 subscriber could receive, as far as the tap
//! has seen: rumqttd 0.20 panics when it forwards an MQTT 5 message with
//! properties to a 3.1.1 subscriber, so the tap strips the properties of a
//! message whenever a 3.1.1 subscriber might receive it.
//!
//! Deliberately an over-estimate (a wrong "no" crashes the broker, a wrong
//! "yes" only costs a message its properties): every filter a 3.1.1 client
//! ever subscribed to counts for the broker's life, whether or not the
//! broker later dropped it, and a 3.1.1 client resuming a session that an
//! MQTT 5 client made (whose filters the tap did not record as 3.1.1) makes
//! every topic count.

use std::collections::HashSet;
use std::sync::Arc;

use crate::protocol::{PacketKind, WireDetail, WireEvent, topic_matches};

/// Filters and client ids tracked at most; past that every topic counts.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Default)]
pub struct V4Audience {
    filters: HashSet<String>,
    /// Client ids seen connecting with MQTT 5 (a 3.1.1 resume of one of them
    /// inherits filters the tap did not count).
    v5_clients: HashSet<Arc<str>>,
    everything: bool,
}

impl V4Audience {
    /// A frame an MQTT 3.1/3.1.1 client sent.
    pub fn on_v4_frame(&mut self, ev: &WireEvent) {
        match (&ev.kind, &ev.detail) {
            (PacketKind::Connect, WireDetail::Connect { clean_session, .. })
                if !clean_session && self.v5_clients.contains(&ev.client_id) =>
            {
                self.everything = true;
            }
            (PacketKind::Subscribe, WireDetail::Subscribe(filters)) => {
                for (f, _) in filters {
                    if self.filters.len() >= MAX_TRACKED {
                        self.everything = true;
                        return;
                    }
                    // `$share/<group>/<filter>` delivers on <filter>.
                    let plain = match f.strip_prefix("$share/") {
                        Some(rest) => rest.split_once('/').map_or(rest, |(_, f)| f),
                        None => f.as_str(),
                    };
                    self.filters.insert(plain.to_string());
                }
            }
            _ => {}
        }
    }

    /// A CONNECT an MQTT 5 client sent.
    pub fn on_v5_connect(&mut self, client_id: &Arc<str>) {
        if self.v5_clients.len() >= MAX_TRACKED {
            self.everything = true;
        } else {
            self.v5_clients.insert(client_id.clone());
        }
    }

    /// Whether a 3.1.1 subscriber might receive a message on `topic`.
    pub fn reaches(&self, topic: &str) -> bool {
        self.everything || self.filters.iter().any(|f| topic_matches(topic, f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Direction;

    fn ev(client: &str, kind: PacketKind, detail: WireDetail) -> WireEvent {
        let mut e = WireEvent::new(1, 1, Arc::from(client), Direction::ClientToBroker, kind);
        e.detail = detail;
        e
    }

    fn connect(clean: bool) -> WireDetail {
        WireDetail::Connect {
            protocol: 4,
            clean_session: clean,
            keep_alive_s: 30,
            broker_keep_alive_s: None,
            will: None,
            username: None,
        }
    }

    #[test]
    fn counts_every_filter_a_v4_client_subscribed_to() {
        let mut a = V4Audience::default();
        a.on_v4_frame(&ev("old", PacketKind::Connect, connect(true)));
        a.on_v4_frame(&ev(
            "old",
            PacketKind::Subscribe,
            WireDetail::Subscribe(vec![("a/+".into(), 1), ("$share/g/s/#".into(), 1)]),
        ));
        assert!(a.reaches("a/b") && a.reaches("s/x") && !a.reaches("b/c"));
        // An UNSUBSCRIBE the tap may have dropped does not count: still reached.
        a.on_v4_frame(&ev(
            "old",
            PacketKind::Unsubscribe,
            WireDetail::Unsubscribe(vec!["a/+".into()]),
        ));
        assert!(a.reaches("a/b"));
    }

    #[test]
    fn a_v4_resume_of_a_v5_session_counts_everything() {
        let mut a = V4Audience::default();
        a.on_v5_connect(&Arc::from("both"));
        assert!(!a.reaches("x"));
        a.on_v4_frame(&ev("both", PacketKind::Connect, connect(false)));
        assert!(a.reaches("x"));
    }
}
