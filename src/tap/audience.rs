//! Which MQTT 3.1.1 subscriptions the tap has seen, live or kept in a
//! persistent session: rumqttd 0.20 panics when it forwards an MQTT 5 message
//! with properties to a 3.1.1 subscriber, so the tap strips the properties of
//! a message only when a 3.1.1 subscriber could receive it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::protocol::{PacketKind, WireDetail, WireEvent, topic_matches};

/// Clients tracked at most; past that every message counts as reaching one.
const MAX_CLIENTS: usize = 100_000;

#[derive(Debug, Default)]
struct Entry {
    filters: HashSet<String>,
    persistent: bool,
    live: u32,
}

#[derive(Debug, Default)]
pub struct V4Audience {
    clients: HashMap<Arc<str>, Entry>,
    overflow: bool,
}

impl V4Audience {
    /// A frame an MQTT 3.1/3.1.1 client sent.
    pub fn on_frame(&mut self, ev: &WireEvent) {
        if ev.client_id.is_empty() {
            return;
        }
        if !self.clients.contains_key(&ev.client_id) && self.clients.len() >= MAX_CLIENTS {
            self.overflow = true;
            return;
        }
        let entry = self.clients.entry(ev.client_id.clone()).or_default();
        match (&ev.kind, &ev.detail) {
            (PacketKind::Connect, WireDetail::Connect { clean_session, .. }) => {
                if *clean_session {
                    entry.filters.clear();
                }
                entry.persistent = !clean_session;
                entry.live += 1;
            }
            (PacketKind::Subscribe, WireDetail::Subscribe(filters)) => {
                entry.filters.extend(filters.iter().map(|(f, _)| f.clone()));
            }
            (PacketKind::Unsubscribe, WireDetail::Unsubscribe(filters)) => {
                for f in filters {
                    entry.filters.remove(f);
                }
            }
            _ => {}
        }
    }

    /// An MQTT 3.1/3.1.1 connection of `client_id` ended.
    pub fn on_closed(&mut self, client_id: &str) {
        if let Some(e) = self.clients.get_mut(client_id) {
            e.live = e.live.saturating_sub(1);
            if e.live == 0 && !e.persistent {
                self.clients.remove(client_id);
            }
        }
    }

    /// Whether a 3.1.1 subscriber, connected or kept offline, matches `topic`.
    pub fn reaches(&self, topic: &str) -> bool {
        self.overflow
            || self
                .clients
                .values()
                .any(|e| e.filters.iter().any(|f| topic_matches(topic, f)))
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
    fn tracks_live_and_persistent_subscriptions() {
        let mut a = V4Audience::default();
        a.on_frame(&ev("old", PacketKind::Connect, connect(true)));
        a.on_frame(&ev(
            "old",
            PacketKind::Subscribe,
            WireDetail::Subscribe(vec![("a/+".into(), 1)]),
        ));
        assert!(a.reaches("a/b") && !a.reaches("b/c"));
        a.on_closed("old");
        assert!(
            !a.reaches("a/b"),
            "a clean session ends with its connection"
        );
        a.on_frame(&ev("kept", PacketKind::Connect, connect(false)));
        a.on_frame(&ev(
            "kept",
            PacketKind::Subscribe,
            WireDetail::Subscribe(vec![("k/#".into(), 1)]),
        ));
        a.on_closed("kept");
        assert!(
            a.reaches("k/x"),
            "a persistent session still receives (queued)"
        );
        a.on_frame(&ev(
            "kept",
            PacketKind::Unsubscribe,
            WireDetail::Unsubscribe(vec!["k/#".into()]),
        ));
        assert!(!a.reaches("k/x"));
    }
}
