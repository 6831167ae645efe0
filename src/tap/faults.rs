//! Network faults the tap injects per connection.
//!
//! What each fault does, precisely (MQTT runs over TCP, so "loss" has two meanings):
//! - `latency_ms` + `jitter_ms`: every frame is forwarded that much later (order kept).
//! - `drop_pct`: each frame is discarded whole with this probability: an MQTT packet
//!   vanishes on a live connection (like a broken middlebox). QoS 1/2 only recover
//!   on reconnect (MQTT 3.1.1 resends unacknowledged messages then, with DUP).
//! - `stall_pct` + `stall_ms`: each frame is held `stall_ms` with this probability,
//!   what real packet loss looks like through TCP retransmission.
//! - `bandwidth_bps`: frames are paced to this many bytes per second.
//! - `partition`: no frame passes; `Hold` buffers them (bounded) until it heals,
//!   `Cut` discards them. The TCP connections stay up.
//! - `stalled` ("half-dead"): the tap stops reading both sockets, so nothing
//!   flows and the broker's keepalive timer (1.5 × keepalive) expires.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fault::{FaultKey, NetFault};

use crate::wire::ConnId;
use parking_lot::RwLock;

/// Faults by client id, connection, or for everyone; read by every proxied frame.
#[derive(Default)]
pub struct FaultTable {
    rules: RwLock<HashMap<FaultKey, NetFault>>,
    /// Bumped on every change so pumps re-read only when something changed.
    generation: AtomicU64,
}

impl FaultTable {
    pub fn set(&self, key: FaultKey, fault: NetFault) {
        let mut rules = self.rules.write();
        if fault.is_clear() {
            rules.remove(&key);
        } else {
            rules.insert(key, fault);
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Change one aspect of a key's fault, keeping the others.
    pub fn update(&self, key: FaultKey, change: impl FnOnce(&mut NetFault)) {
        // One write lock: two changes at once must not lose either.
        let mut rules = self.rules.write();
        let mut f = rules.get(&key).cloned().unwrap_or_default();
        change(&mut f);
        if f.is_clear() {
            rules.remove(&key);
        } else {
            rules.insert(key, f);
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn get(&self, key: &FaultKey) -> NetFault {
        self.rules.read().get(key).cloned().unwrap_or_default()
    }

    pub fn clear_all(&self) {
        self.rules.write().clear();
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The fault for a connection: the most specific rule wins (connection, client, all).
    pub fn resolve(&self, conn: ConnId, client_id: &str) -> NetFault {
        let rules = self.rules.read();
        rules
            .get(&FaultKey::Conn(conn))
            .or_else(|| rules.get(&FaultKey::Client(client_id.to_string())))
            .or_else(|| rules.get(&FaultKey::All))
            .cloned()
            .unwrap_or_default()
    }

    /// Every rule (for the UI).
    pub fn snapshot(&self) -> Vec<(FaultKey, NetFault)> {
        self.rules
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// A pump's cached view of its connection's fault.
pub struct FaultView {
    table: Arc<FaultTable>,
    seen: u64,
    /// The client id the cached fault was resolved for ("" before CONNECT).
    seen_client: Arc<str>,
    pub current: NetFault,
}

impl FaultView {
    pub fn new(table: Arc<FaultTable>) -> Self {
        FaultView {
            table,
            seen: u64::MAX,
            seen_client: Arc::from(""),
            current: NetFault::default(),
        }
    }

    /// Re-read the table if it changed, or if the connection's client id
    /// became known (CONNECT arrives after the first read).
    pub fn refresh(&mut self, conn: ConnId, client_id: &Arc<str>) -> &NetFault {
        let g = self.table.generation();
        if g != self.seen
            || !Arc::ptr_eq(client_id, &self.seen_client) && **client_id != *self.seen_client
        {
            self.seen = g;
            self.seen_client = client_id.clone();
            self.current = self.table.resolve(conn, client_id);
        }
        &self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::PartitionMode;

    #[test]
    fn most_specific_rule_wins_and_clear_removes() {
        let t = FaultTable::default();
        t.set(
            FaultKey::All,
            NetFault {
                latency_ms: 10,
                ..Default::default()
            },
        );
        t.set(
            FaultKey::Client("a".into()),
            NetFault {
                latency_ms: 20,
                ..Default::default()
            },
        );
        t.set(
            FaultKey::Conn(7),
            NetFault {
                latency_ms: 30,
                ..Default::default()
            },
        );
        assert_eq!(t.resolve(7, "a").latency_ms, 30);
        assert_eq!(t.resolve(8, "a").latency_ms, 20);
        assert_eq!(t.resolve(8, "b").latency_ms, 10);
        t.update(FaultKey::Client("a".into()), |f| {
            f.partition = Some(PartitionMode::Hold)
        });
        let f = t.resolve(8, "a");
        assert_eq!((f.latency_ms, f.partition), (20, Some(PartitionMode::Hold)));
        t.set(FaultKey::Client("a".into()), NetFault::default());
        assert_eq!(t.resolve(8, "a").latency_ms, 10);
        let mut view = FaultView::new(Arc::new(FaultTable::default()));
        assert!(view.refresh(1, &Arc::from("x")).is_clear());
        // A rule for a client applies once that connection's CONNECT names it.
        let t = Arc::new(FaultTable::default());
        t.set(
            FaultKey::Client("late".into()),
            NetFault {
                latency_ms: 5,
                ..Default::default()
            },
        );
        let mut view = FaultView::new(t);
        assert!(view.refresh(3, &Arc::from("")).is_clear());
        assert_eq!(view.refresh(3, &Arc::from("late")).latency_ms, 5);
    }
}
