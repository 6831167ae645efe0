//! The capture: a bounded store of wire events with indices updated on ingest.
//!
//! - the store: every frame but pings, bounded by count and bytes; evictions counted;
//! - [`TopicStats`]: per topic counts, rate, last and retained payload, history;
//! - [`Session`]: every client the tap has seen, connected or not;
//! - [`Flow`]: each QoS 1/2 handshake on each leg, with its steps and times;
//! - [`Rates`]: messages per second over the last minutes.
//!
//! The capture is plain data owned by its consumer (the UI thread, the CLI's
//! collector, a test): the engine sends [`WireEvent`] batches, the consumer
//! calls [`Capture::ingest`].

mod flows;
mod sessions;
mod snapshot;
mod tree;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::wire::{ConnId, Direction, PacketKind, WireDetail, WireEvent};

pub use flows::{Flow, FlowState, FlowStep, Flows};
pub use sessions::{Session, SessionEvent, SessionEventKind, Subscription};
pub use snapshot::EventsSnapshot;
pub use tree::{TopicNode, TopicTree};

/// Bounds of the capture. Everything that grows is bounded.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_events: usize,
    pub max_bytes: usize,
    pub max_topics: usize,
    pub max_topic_history: usize,
    pub max_sessions: usize,
    pub max_flows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events: 500_000,
            max_bytes: 256 * 1024 * 1024,
            max_topics: 100_000,
            max_topic_history: 20_000,
            max_sessions: 50_000,
            max_flows: 200_000,
        }
    }
}

impl Limits {
    /// Bounds for a capture of `events` frames (at least 1,000): the QoS flows
    /// and each topic's history shrink in proportion, so that a long run
    /// reaches all of its bounds soon.
    pub fn scaled_to(events: usize) -> Limits {
        let d = Limits::default();
        let events = events.max(1000);
        Limits {
            max_events: events,
            max_bytes: d.max_bytes,
            max_topics: d.max_topics,
            max_topic_history: (events / 1000).clamp(100, d.max_topic_history),
            max_sessions: d.max_sessions,
            max_flows: (events / 4).min(d.max_flows),
        }
    }
}

/// Per-topic statistics, keyed by topic name.
#[derive(Debug, Clone, Default)]
pub struct TopicStats {
    /// PUBLISH frames from clients to the broker (messages published).
    pub published: u64,
    /// PUBLISH frames from the broker to subscribers (deliveries).
    pub delivered: u64,
    pub bytes: u64,
    pub last_payload: Bytes,
    pub last_t_us: u64,
    pub last_qos: u8,
    /// The retained message the broker holds, as far as the tap saw it set.
    pub retained: Option<Bytes>,
    /// Deliveries no client published on the wire: wills, and retained messages from before the capture.
    pub broker_originated: u64,
    /// Of those, deliveries matching a client's declared will.
    pub wills: u64,
    /// Sequence numbers of this topic's published messages still in the store.
    pub history: VecDeque<u64>,
    /// Its node in [`Capture::tree`] (made with it, cleared with it).
    tree_node: Option<usize>,
    rate_sec: u64,
    rate_count: u32,
    rate_last: u32,
}

impl TopicStats {
    /// Messages published in the last complete second (0 when idle since).
    pub fn rate_per_s(&self, now_us: u64) -> u32 {
        let now_sec = now_us / 1_000_000;
        if now_sec == self.rate_sec {
            self.rate_last
        } else if now_sec == self.rate_sec + 1 {
            self.rate_count
        } else {
            0
        }
    }

    fn tick(&mut self, t_us: u64) {
        let sec = t_us / 1_000_000;
        if sec != self.rate_sec {
            self.rate_last = if sec == self.rate_sec + 1 {
                self.rate_count
            } else {
                0
            };
            self.rate_sec = sec;
            self.rate_count = 0;
        }
        self.rate_count += 1;
    }
}

/// Messages per second, per whole second, for the traffic plot.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    /// (unix second, published, delivered), oldest first; at most `MAX_SECONDS`.
    pub seconds: VecDeque<(u64, u32, u32)>,
}

impl Rates {
    pub const MAX_SECONDS: usize = 3600;

    fn add(&mut self, t_us: u64, dir: Direction) {
        let sec = t_us / 1_000_000;
        match self.seconds.back_mut() {
            Some(b) if b.0 == sec => {}
            Some(b) if b.0 > sec => return, // late event from another thread's clock: ignore
            _ => {
                self.seconds.push_back((sec, 0, 0));
                if self.seconds.len() > Self::MAX_SECONDS {
                    self.seconds.pop_front();
                }
            }
        }
        if let Some(b) = self.seconds.back_mut() {
            match dir {
                Direction::ClientToBroker => b.1 += 1,
                Direction::BrokerToClient => b.2 += 1,
            }
        }
    }

    /// Published messages per second in the last complete second.
    pub fn published_per_s(&self, now_us: u64) -> u32 {
        let last_full = now_us / 1_000_000 - 1;
        self.seconds
            .iter()
            .rev()
            .find(|b| b.0 == last_full)
            .map_or(0, |b| b.1)
    }

    pub fn delivered_per_s(&self, now_us: u64) -> u32 {
        let last_full = now_us / 1_000_000 - 1;
        self.seconds
            .iter()
            .rev()
            .find(|b| b.0 == last_full)
            .map_or(0, |b| b.2)
    }
}

#[derive(Debug, Default)]
struct ConnState {
    client_id: Arc<str>,
    peer: Option<std::net::SocketAddr>,
    tls: bool,
    link: Option<Box<crate::wire::LinkInfo>>,
    pending_subs: HashMap<u16, Vec<(String, u8)>>,
    /// CONNECT details held until the broker accepts this connection (a second
    /// connection for a live client id must not rewrite the live session first).
    pending_connect: Option<(WireDetail, Option<Box<crate::wire::V5Props>>)>,
}

/// A connection that never became a session, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedConnection {
    pub t_us: u64,
    pub conn: ConnId,
    pub peer: Option<std::net::SocketAddr>,
    /// `tcp`, `tls`, `ws` or `wss`: the listener it came to.
    pub scheme: &'static str,
    pub reason: crate::wire::CloseReason,
}

impl FailedConnection {
    /// Where it came from: the listener's scheme and the peer (`tls 127.0.0.1:50412`).
    pub fn origin(&self) -> String {
        let peer = match self.peer {
            Some(p) if p == crate::wire::IN_PROCESS_PEER => "in-process".into(),
            Some(p) => p.to_string(),
            None => "—".into(),
        };
        format!("{} {peer}", self.scheme)
    }

    /// Why it failed, in the tap's words.
    pub fn why(&self) -> String {
        match &self.reason {
            crate::wire::CloseReason::Error(why) => why.clone(),
            other => other.label(),
        }
    }
}

/// Failed connections kept (`Capture::failed_connections`).
pub const MAX_FAILED_CONNECTIONS: usize = 200;

/// Events per store chunk.
const CHUNK: usize = 4096;

/// Connections indexed at most (their Closed events can be lost when a queue drops events).
const MAX_CONNS: usize = 200_000;

/// The capture. See the module docs.
#[derive(Debug, Default)]
pub struct Capture {
    pub limits: Limits,
    /// The store: shared chunks of `CHUNK` events (the last one filling), so a
    /// snapshot for export is a few reference counts, not a copy.
    chunks: VecDeque<Arc<Vec<WireEvent>>>,
    /// Events at the front of the first chunk already evicted.
    skip: usize,
    len: usize,
    /// Sequence number of the oldest stored event. Numbers are never reused
    /// for the life of the capture, across [`Capture::clear`] too.
    first_seq: u64,
    bytes: usize,
    /// Events evicted from the store to respect its bounds.
    pub evicted: u64,
    /// Events the engine could not deliver to this capture (consumer lagged).
    pub dropped: u64,
    /// Topics not indexed because `max_topics` was reached.
    pub topics_over_limit: u64,
    /// Every wire event ingested (including pings, which the store skips).
    pub total_ingested: u64,
    /// Bumped on every ingest: views cache derived lists by it.
    pub generation: u64,
    /// How many times the capture was cleared (views holding indices reset on it).
    pub clears: u64,
    /// Frames with MQTT 5 reason codes or properties (the tables show a column for them once there are any).
    pub v5_frames: u64,
    /// Unordered (hashed: looked up on every message); views sort what they show.
    pub topics: Index<String, TopicStats>,
    /// The topics as a tree of levels, kept on ingest.
    pub tree: TopicTree,
    /// Unordered (hashed: looked up on every message); views sort what they show.
    /// Boxed: a session is a few hundred bytes, and the table doubles as
    /// clients arrive; a table of pointers leaves little room behind when it
    /// moves (about 0.4 KiB per client at 3,000 clients, inline).
    pub sessions: Index<Arc<str>, Box<Session>>,
    /// Bumped when a client connects or disconnects (views cache by it).
    pub session_changes: u64,
    /// Connections that ended before a CONNECT (a failed TLS or WebSocket
    /// handshake, a client at the wrong port), newest last; bounded.
    pub failed_connections: std::collections::VecDeque<FailedConnection>,
    /// All of them, also those no longer kept.
    pub failed_total: u64,
    pub flows: Flows,
    pub rates: Rates,
    /// Clients with a live connection (kept on ingest).
    connected: usize,
    conns: Index<ConnId, ConnState>,
    /// (topic, payload) of recent client→broker publishes → their seq, to link deliveries.
    origins: Index<(Arc<str>, Bytes), u64>,
    origin_order: VecDeque<(Arc<str>, Bytes)>,
    /// Will topic → the client ids whose session holds a will on it (kept
    /// with `Session::will`): a delivery nobody published is checked against
    /// these few, not against every session (80,000 cars' retained statuses
    /// delivered to one subscriber scanned 50,000 sessions each).
    will_topics: Index<String, Vec<String>>,
}

/// The capture's maps: looked up for every frame (a client id or a topic
/// in an ordered map was a dozen string comparisons on a shared prefix, the
/// capture's largest cost), so hashed, with a seed of their own.
pub type Index<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

impl Capture {
    pub fn new(limits: Limits) -> Self {
        Capture {
            limits,
            ..Default::default()
        }
    }

    /// Events in the store.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate bytes held by the store.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Sequence number of the oldest event still stored.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// One past the newest event's sequence number.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.len as u64
    }

    pub fn get(&self, seq: u64) -> Option<&WireEvent> {
        let i = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        if i >= self.len {
            return None;
        }
        let i = i + self.skip;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    /// Stored events in order.
    pub fn events(&self) -> impl Iterator<Item = (u64, &WireEvent)> {
        let first = self.first_seq;
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .skip(self.skip)
            .take(self.len)
            .enumerate()
            .map(move |(i, e)| (first + i as u64, e))
    }

    /// The stored events, shared without copying (for export on the engine).
    pub fn snapshot(&self) -> EventsSnapshot {
        EventsSnapshot {
            chunks: self.chunks.iter().cloned().collect(),
            skip: self.skip,
            len: self.len,
        }
    }

    /// Stored PUBLISH frames (messages) in order.
    pub fn messages(&self) -> impl Iterator<Item = (u64, &WireEvent)> {
        self.events().filter(|(_, e)| e.kind == PacketKind::Publish)
    }

    /// Clients currently connected (kept on ingest).
    pub fn connected_clients(&self) -> usize {
        self.connected
    }

    /// Forget everything captured (not the limits, the drop counters or the
    /// sequence numbers: views holding old numbers find nothing, never another
    /// event). Clients still connected stay listed, with their subscriptions,
    /// and their message counts start again from zero.
    pub fn clear(&mut self) {
        let mut live: Index<Arc<str>, Box<Session>> = std::mem::take(&mut self.sessions)
            .into_iter()
            .filter(|(_, s)| s.connected)
            .collect();
        for s in live.values_mut() {
            s.published = 0;
            s.received = 0;
            s.from_offline_queue = 0;
        }
        let live_ids: std::collections::HashSet<ConnId> =
            live.values().filter_map(|s| s.conn).collect();
        let live_conns: Index<ConnId, ConnState> = std::mem::take(&mut self.conns)
            .into_iter()
            .filter(|(id, _)| live_ids.contains(id))
            .collect();
        let limits = self.limits.clone();
        let dropped = self.dropped;
        let next_seq = self.end_seq();
        let next_flow = self.flows.first_id() + self.flows.len() as u64;
        let generation = self.generation;
        let clears = self.clears;
        *self = Capture::new(limits);
        // Flow ids go on too: a view holding one finds nothing, never another flow.
        self.flows.start_ids_at(next_flow);
        self.connected = live.len();
        self.sessions = live;
        self.conns = live_conns;
        for (id, s) in &self.sessions {
            if let Some(w) = &s.will {
                self.will_topics
                    .entry(w.topic.clone())
                    .or_default()
                    .push(id.to_string());
            }
        }
        self.dropped = dropped;
        self.first_seq = next_seq;
        self.generation = generation + 1;
        self.clears = clears + 1;
    }

    /// Like [`Capture::clear`], and forget the live sessions too (a recording
    /// opened for inspection replaces everything).
    pub fn clear_all(&mut self) {
        self.clear();
        self.sessions.clear();
        self.will_topics.clear();
        self.conns.clear();
        self.connected = 0;
        self.session_changes += 1;
    }

    pub fn ingest_batch(&mut self, batch: Vec<WireEvent>) {
        for ev in batch {
            self.ingest(ev);
        }
    }

    pub fn ingest(&mut self, ev: WireEvent) {
        self.total_ingested += 1;
        self.v5_frames += ev.v5.is_some() as u64;
        self.generation += 1;
        let seq = self.end_seq();
        if ev.injected == Some(crate::wire::Injected::Dropped) {
            // An injected fault discarded it: it never arrived, so it changes no
            // session or topic, and its flow stays open (marked as the fault's);
            // the log keeps it, marked.
            flows::on_dropped(self, &ev);
            if !matches!(ev.kind, PacketKind::PingReq | PacketKind::PingResp) {
                self.store(ev);
            }
            return;
        }
        self.index_conn(&ev);
        sessions::on_event(self, &ev, seq);
        match ev.kind {
            // Refused by the tap's access rules: its QoS flow ends with the
            // tap's refusal, but the topic never received it.
            PacketKind::Publish if ev.injected == Some(crate::wire::Injected::Denied) => {}
            PacketKind::Publish => self.on_publish(&ev, seq),
            PacketKind::PingReq | PacketKind::PingResp => return,
            _ => {}
        }
        flows::on_event(self, &ev, seq);
        self.store(ev);
    }

    fn index_conn(&mut self, ev: &WireEvent) {
        match (&ev.kind, &ev.detail) {
            (PacketKind::Opened, WireDetail::Opened { peer, tls, link }) => {
                if self.conns.len() >= MAX_CONNS {
                    // Keep the connections that still carry a connected session.
                    let live: std::collections::HashSet<ConnId> = self
                        .sessions
                        .values()
                        .filter(|s| s.connected)
                        .filter_map(|s| s.conn)
                        .collect();
                    self.conns.retain(|id, _| live.contains(id));
                }
                self.conns.insert(
                    ev.conn,
                    ConnState {
                        peer: Some(**peer),
                        tls: *tls,
                        link: link.clone(),
                        ..Default::default()
                    },
                );
            }
            (PacketKind::Connect, _) => {
                self.conns.entry(ev.conn).or_default().client_id = ev.client_id.clone();
            }
            (PacketKind::Subscribe, WireDetail::Subscribe(filters)) => {
                let c = self.conns.entry(ev.conn).or_default();
                if c.pending_subs.len() < 1024 {
                    c.pending_subs.insert(ev.pkid, filters.clone());
                }
            }
            (PacketKind::Closed, WireDetail::Closed(reason)) => {
                let gone = self.conns.remove(&ev.conn);
                if let Some(c) = gone.filter(|c| c.client_id.is_empty())
                    && matches!(reason, crate::wire::CloseReason::Error(_))
                {
                    self.failed_total += 1;
                    if self.failed_connections.len() >= MAX_FAILED_CONNECTIONS {
                        self.failed_connections.pop_front();
                    }
                    self.failed_connections.push_back(FailedConnection {
                        t_us: ev.t_us,
                        conn: ev.conn,
                        peer: c.peer,
                        scheme: crate::wire::LinkInfo::scheme(c.link.as_deref(), c.tls),
                        reason: reason.clone(),
                    });
                    self.session_changes += 1;
                }
            }
            (PacketKind::Closed, _) => {
                self.conns.remove(&ev.conn);
            }
            _ => {}
        }
    }

    /// The filters a SUBSCRIBE with this pkid asked for (consumed by its SUBACK).
    fn take_pending_sub(&mut self, conn: ConnId, pkid: u16) -> Option<Vec<(String, u8)>> {
        self.conns.get_mut(&conn)?.pending_subs.remove(&pkid)
    }

    fn on_publish(&mut self, ev: &WireEvent, seq: u64) {
        let Some(topic) = ev.topic.as_deref() else {
            return;
        };
        self.rates.add(ev.t_us, ev.dir);
        let max_history = self.limits.max_topic_history;
        let first_seq = self.first_seq;
        // Look up before inserting: no String allocated per message for a known topic.
        if !self.topics.contains_key(topic) {
            if self.topics.len() >= self.limits.max_topics {
                self.topics_over_limit += 1;
                return;
            }
            self.topics.insert(topic.to_string(), TopicStats::default());
        }
        let Some(st) = self.topics.get_mut(topic) else {
            return;
        };
        let payload = ev.payload.clone().unwrap_or_default();
        match ev.dir {
            Direction::ClientToBroker => {
                self.tree.count(&mut st.tree_node, topic);
                st.published += 1;
                st.bytes += payload.len() as u64;
                st.last_t_us = ev.t_us;
                st.last_qos = ev.qos;
                st.tick(ev.t_us);
                if ev.retain {
                    st.retained = (!payload.is_empty()).then(|| payload.clone());
                }
                st.last_payload = payload.clone();
                while st.history.front().is_some_and(|&s| s < first_seq)
                    || st.history.len() >= max_history
                {
                    st.history.pop_front();
                }
                st.history.push_back(seq);
                self.remember_origin(ev, payload, seq);
            }
            Direction::BrokerToClient => {
                st.delivered += 1;
                let key = (
                    ev.topic.clone().unwrap_or_else(|| Arc::from("")),
                    payload.clone(),
                );
                if !self.origins.contains_key(&key) {
                    // Nobody published this on the wire: a will, or an old retained message.
                    let is_will = self.wills_on(topic).any(|w| w.payload == payload);
                    let will_retained = is_will && self.will_retained(topic);
                    let Some(st) = self.topics.get_mut(topic) else {
                        return;
                    };
                    st.broker_originated += 1;
                    st.wills += is_will as u64;
                    self.tree.count(&mut st.tree_node, topic);
                    st.last_payload = payload;
                    st.last_t_us = ev.t_us;
                    st.last_qos = ev.qos;
                    if ev.retain || will_retained {
                        st.retained =
                            (!st.last_payload.is_empty()).then(|| st.last_payload.clone());
                    }
                    while st.history.front().is_some_and(|&s| s < first_seq)
                        || st.history.len() >= max_history
                    {
                        st.history.pop_front();
                    }
                    st.history.push_back(seq);
                }
            }
        }
    }

    fn will_retained(&self, topic: &str) -> bool {
        self.wills_on(topic).any(|w| w.retain)
    }

    /// The sessions' wills on `topic`.
    fn wills_on<'a>(&'a self, topic: &str) -> impl Iterator<Item = &'a crate::wire::WillInfo> {
        self.will_topics
            .get(topic)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sessions.get(id.as_str())?.will.as_deref())
            .filter(move |w| w.topic == topic)
    }

    /// A session's will changed from `old` to `new` (topics): keep [`Capture::will_topics`].
    pub(crate) fn reindex_will(
        &mut self,
        client_id: &str,
        old: Option<String>,
        new: Option<String>,
    ) {
        if old == new {
            return;
        }
        if let Some(old) = old
            && let Some(ids) = self.will_topics.get_mut(&old)
        {
            ids.retain(|id| id != client_id);
            if ids.is_empty() {
                self.will_topics.remove(&old);
            }
        }
        if let Some(new) = new {
            self.will_topics
                .entry(new)
                .or_default()
                .push(client_id.to_string());
        }
    }

    fn remember_origin(&mut self, ev: &WireEvent, payload: Bytes, seq: u64) {
        const MAX_ORIGINS: usize = 20_000;
        let Some(topic) = ev.topic.clone() else {
            return;
        };
        let key = (topic, payload);
        if self.origins.insert(key.clone(), seq).is_none() {
            self.origin_order.push_back(key);
            if self.origin_order.len() > MAX_ORIGINS
                && let Some(old) = self.origin_order.pop_front()
            {
                self.origins.remove(&old);
            }
        }
    }

    /// The client→broker PUBLISH a delivery most likely came from.
    pub fn origin_of(&self, delivery: &WireEvent) -> Option<u64> {
        let key = (delivery.topic.clone()?, delivery.payload.clone()?);
        self.origins.get(&key).copied()
    }

    fn store(&mut self, ev: WireEvent) {
        self.bytes += ev.mem_bytes();
        if self.chunks.back().is_none_or(|c| c.len() >= CHUNK) {
            self.chunks.push_back(Arc::new(Vec::with_capacity(CHUNK)));
        }
        if let Some(last) = self.chunks.back_mut() {
            // Copies the chunk only if an export still holds it.
            Arc::make_mut(last).push(ev);
        }
        self.len += 1;
        while self.len > self.limits.max_events || self.bytes > self.limits.max_bytes {
            let Some(old) = self.chunks.front().and_then(|c| c.get(self.skip)) else {
                break;
            };
            self.bytes -= old.mem_bytes();
            self.skip += 1;
            self.len -= 1;
            self.first_seq += 1;
            self.evicted += 1;
            if self.skip >= CHUNK {
                self.chunks.pop_front();
                self.skip = 0;
            }
        }
    }
}

use crate::wire::topic_matches;

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;
    use crate::wire::WireEvent;

    pub fn ev(conn: ConnId, client: &str, dir: Direction, kind: PacketKind) -> WireEvent {
        let mut e = WireEvent::new(1_000_000, conn, Arc::from(client), dir, kind);
        e.size = 2;
        e
    }

    pub fn publish(
        conn: ConnId,
        client: &str,
        dir: Direction,
        topic: &str,
        payload: &str,
        qos: u8,
        pkid: u16,
    ) -> WireEvent {
        let mut e = ev(conn, client, dir, PacketKind::Publish);
        e.topic = Some(Arc::from(topic));
        e.payload = Some(Bytes::copy_from_slice(payload.as_bytes()));
        e.qos = qos;
        e.pkid = pkid;
        e
    }
}

#[cfg(test)]
mod tests;
