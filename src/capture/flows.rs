//! QoS 1/2 flows: each handshake on each leg (publisher→broker and
//! broker→subscriber), with every step and its time.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::wire::{ConnId, Direction, PacketKind, WireDetail, WireEvent};

use super::Capture;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowState {
    /// Waiting for the next step.
    Open,
    /// Every step arrived (PUBACK, or PUBREC+PUBREL+PUBCOMP).
    Complete,
    /// The connection closed mid-flow; it may resume on reconnect (persistent session).
    Interrupted,
    /// The same packet id was reused for a new message before this flow completed.
    Superseded,
    /// A clean-session reconnect discarded the flow.
    Abandoned,
}

impl FlowState {
    pub fn label(self) -> &'static str {
        match self {
            FlowState::Open => "open",
            FlowState::Complete => "complete",
            FlowState::Interrupted => "interrupted",
            FlowState::Superseded => "superseded",
            FlowState::Abandoned => "abandoned",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStep {
    pub kind: PacketKind,
    pub dir: Direction,
    pub t_us: u64,
    pub dup: bool,
    pub conn: ConnId,
    /// Store sequence number of the frame.
    pub seq: u64,
    /// MQTT 5 reason code of an ack (None: success, or MQTT 3.1.1).
    pub reason: Option<u8>,
}

#[derive(Debug, Clone)]
pub struct Flow {
    pub id: u64,
    pub client_id: Arc<str>,
    /// Direction of the PUBLISH: ClientToBroker = publisher leg, BrokerToClient = subscriber leg.
    pub leg: Direction,
    pub pkid: u16,
    pub qos: u8,
    pub topic: Arc<str>,
    pub steps: Vec<FlowStep>,
    pub state: FlowState,
    /// For a subscriber leg: the publisher's PUBLISH it most likely delivers.
    pub origin: Option<u64>,
    /// A known broker deviation from the MQTT spec seen on this flow.
    pub deviation: Option<String>,
    /// Set when the broker queued this delivery while the subscriber was offline.
    pub queued_offline: bool,
    /// An injected fault discarded one of its frames (say, the PUBACK): over
    /// a live connection nothing resends it, so it stays open, explained.
    pub lost_to_fault: bool,
}

impl Flow {
    pub fn duration_us(&self) -> u64 {
        match (self.steps.first(), self.steps.last()) {
            (Some(a), Some(b)) => b.t_us.saturating_sub(a.t_us),
            _ => 0,
        }
    }

    /// PUBLISH frames after the first: resends, with or without the DUP flag.
    pub fn redeliveries(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.kind == PacketKind::Publish)
            .count()
            .saturating_sub(1)
    }

    /// Step kinds in order, e.g. ["PUBLISH", "PUBREC", "PUBREL", "PUBCOMP"].
    pub fn step_names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.kind.name()).collect()
    }
}

type Key = (Arc<str>, Direction, u16);

/// Bounded list of flows, with indices kept on ingest: the unfinished flows
/// per client (by leg and packet id), and the ids of every incomplete flow.
#[derive(Debug, Default)]
pub struct Flows {
    list: VecDeque<Flow>,
    first_id: u64,
    open: HashMap<Arc<str>, HashMap<(Direction, u16), u64>>,
    incomplete_ids: BTreeSet<u64>,
    /// Bumped whenever the set of incomplete flows changes (views cache by it).
    pub incomplete_changes: u64,
    pub completed: u64,
    pub evicted: u64,
}

impl Flows {
    pub fn get(&self, id: u64) -> Option<&Flow> {
        id.checked_sub(self.first_id)
            .and_then(|i| self.list.get(i as usize))
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Flow> {
        id.checked_sub(self.first_id)
            .and_then(|i| self.list.get_mut(i as usize))
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Flow> {
        self.list.iter()
    }

    /// Number new flows from `id` (an empty list only: ids are never reused).
    pub(super) fn start_ids_at(&mut self, id: u64) {
        if self.list.is_empty() {
            self.first_id = id;
        }
    }

    /// Id of the oldest stored flow; one past the newest is `first_id() + len()`.
    pub fn first_id(&self) -> u64 {
        self.first_id
    }

    /// Incomplete flows still stored, oldest first.
    pub fn incomplete_iter(&self) -> impl DoubleEndedIterator<Item = &Flow> {
        self.incomplete_ids.iter().filter_map(|&id| self.get(id))
    }

    /// A client's flows still waiting for a step (open, or interrupted by a close).
    pub fn in_flight(&self, client_id: &str) -> impl Iterator<Item = &Flow> {
        self.open
            .get(client_id)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|&id| self.get(id))
    }

    fn open_id(&self, key: &Key) -> Option<u64> {
        self.open.get(&key.0)?.get(&(key.1, key.2)).copied()
    }

    fn open_insert(&mut self, key: Key, id: u64) {
        self.open
            .entry(key.0)
            .or_default()
            .insert((key.1, key.2), id);
    }

    fn open_remove(&mut self, key: &Key) -> Option<u64> {
        let m = self.open.get_mut(&key.0)?;
        let id = m.remove(&(key.1, key.2));
        if m.is_empty() {
            self.open.remove(&key.0);
        }
        id
    }

    /// Change a flow's state, keeping the incomplete index.
    fn set_state(&mut self, id: u64, state: FlowState) {
        let Some(f) = self.get_mut(id) else {
            return;
        };
        let was_complete = f.state == FlowState::Complete;
        f.state = state;
        let complete = state == FlowState::Complete;
        if was_complete != complete {
            if complete {
                self.incomplete_ids.remove(&id);
            } else {
                self.incomplete_ids.insert(id);
            }
            self.incomplete_changes += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Flows not complete (open, interrupted, superseded or abandoned) still stored.
    pub fn incomplete(&self) -> usize {
        self.incomplete_ids.len()
    }

    fn push(&mut self, flow: Flow, max: usize) -> u64 {
        let id = self.first_id + self.list.len() as u64;
        let complete = flow.state == FlowState::Complete;
        self.list.push_back(Flow { id, ..flow });
        if !complete {
            self.incomplete_ids.insert(id);
            self.incomplete_changes += 1;
        }
        while self.list.len() > max {
            if let Some(old) = self.list.pop_front() {
                self.first_id += 1;
                self.evicted += 1;
                if self.incomplete_ids.remove(&old.id) {
                    self.incomplete_changes += 1;
                }
                let key = (old.client_id.clone(), old.leg, old.pkid);
                if self.open_id(&key) == Some(old.id) {
                    self.open_remove(&key);
                }
            }
        }
        id
    }

    fn step(&mut self, key: &Key, step: FlowStep, completes: bool) {
        let Some(id) = self.open_id(key) else {
            return;
        };
        let Some(f) = self.get_mut(id) else {
            self.open_remove(key);
            return;
        };
        f.steps.push(step);
        if completes {
            self.set_state(id, FlowState::Complete);
            self.completed += 1;
            self.open_remove(key);
        } else {
            self.set_state(id, FlowState::Open);
        }
    }
}

fn opposite(d: Direction) -> Direction {
    match d {
        Direction::ClientToBroker => Direction::BrokerToClient,
        Direction::BrokerToClient => Direction::ClientToBroker,
    }
}

/// A frame an injected fault discarded: mark the flow it belonged to.
pub(super) fn on_dropped(cap: &mut Capture, ev: &WireEvent) {
    let leg = match ev.kind {
        PacketKind::Publish if ev.qos > 0 => ev.dir,
        PacketKind::PubRel => ev.dir,
        PacketKind::PubAck | PacketKind::PubRec | PacketKind::PubComp => opposite(ev.dir),
        _ => return,
    };
    let key = (ev.client_id.clone(), leg, ev.pkid);
    if let Some(id) = cap.flows.open_id(&key)
        && let Some(f) = cap.flows.get_mut(id)
    {
        f.lost_to_fault = true;
    }
}

pub(super) fn on_event(cap: &mut Capture, ev: &WireEvent, seq: u64) {
    let step = FlowStep {
        kind: ev.kind,
        dir: ev.dir,
        t_us: ev.t_us,
        dup: ev.dup,
        conn: ev.conn,
        seq,
        reason: ev.v5.as_ref().and_then(|p| p.reason_code),
    };
    let client = ev.client_id.clone();
    match ev.kind {
        PacketKind::Publish if ev.qos > 0 => {
            let key = (client.clone(), ev.dir, ev.pkid);
            if let Some(id) = cap.flows.open_id(&key) {
                let topic = ev.topic.as_deref().unwrap_or_default();
                let resend_on_new_conn = cap.flows.get(id).is_some_and(|f| {
                    &*f.topic == topic && f.steps.last().is_some_and(|s| s.conn != ev.conn)
                });
                if ev.dup || resend_on_new_conn {
                    if !ev.dup
                        && let Some(f) = cap.flows.get_mut(id)
                    {
                        f.deviation = Some(
                            "resent after reconnect without DUP (MQTT 3.1.1 §4.4 requires DUP=1 on a redelivery)".into(),
                        );
                    }
                    cap.flows.step(&key, step, false);
                    return;
                }
                cap.flows.set_state(id, FlowState::Superseded);
            }
            let (origin, deviation) = match ev.dir {
                Direction::ClientToBroker => (None, None),
                Direction::BrokerToClient => delivery_check(cap, ev),
            };
            let queued_offline = origin.and_then(|o| cap.get(o)).is_some_and(|o| {
                cap.sessions
                    .get(&*ev.client_id)
                    .is_some_and(|s| !s.clean_session && o.t_us < s.connected_since_us)
            });
            let flow = Flow {
                id: 0,
                client_id: client,
                leg: ev.dir,
                pkid: ev.pkid,
                qos: ev.qos,
                topic: ev.topic.clone().unwrap_or_else(|| Arc::from("")),
                steps: vec![step],
                state: FlowState::Open,
                origin,
                deviation,
                queued_offline,
                lost_to_fault: false,
            };
            let id = cap.flows.push(flow, cap.limits.max_flows);
            cap.flows.open_insert(key, id);
        }
        PacketKind::PubAck | PacketKind::PubRec | PacketKind::PubComp => {
            let key = (client, opposite(ev.dir), ev.pkid);
            let completes = matches!(ev.kind, PacketKind::PubAck | PacketKind::PubComp);
            cap.flows.step(&key, step, completes);
        }
        PacketKind::PubRel => {
            let key = (client, ev.dir, ev.pkid);
            cap.flows.step(&key, step, false);
        }
        PacketKind::Closed => {
            // Only this client's open flows: a mass disconnect stays linear.
            let ids: Vec<u64> = cap
                .flows
                .open
                .get(&client)
                .map(|m| m.values().copied().collect())
                .unwrap_or_default();
            for id in ids {
                if cap
                    .flows
                    .get(id)
                    .is_some_and(|f| f.steps.iter().any(|s| s.conn == ev.conn))
                {
                    cap.flows.set_state(id, FlowState::Interrupted);
                }
            }
        }
        PacketKind::Connect => {
            if let WireDetail::Connect {
                clean_session: true,
                ..
            } = ev.detail
            {
                let ids: Vec<u64> = cap
                    .flows
                    .open
                    .remove(&client)
                    .map(|m| m.into_values().collect())
                    .unwrap_or_default();
                for id in ids {
                    cap.flows.set_state(id, FlowState::Abandoned);
                }
            }
        }
        _ => {}
    }
}

/// Link a delivery to its publish and check the delivered QoS against the spec:
/// delivered QoS = min(published QoS, granted QoS).
fn delivery_check(cap: &Capture, ev: &WireEvent) -> (Option<u64>, Option<String>) {
    let origin = cap.origin_of(ev);
    let published_qos = origin.and_then(|s| cap.get(s)).map(|o| o.qos);
    let granted = ev
        .topic
        .as_deref()
        .and_then(|t| cap.sessions.get(&*ev.client_id)?.granted_qos_for(t));
    let deviation = match (published_qos, granted) {
        (Some(p), Some(g)) if ev.qos != p.min(g) => Some(format!(
            "delivered at QoS {} but the spec says min(published QoS {p}, granted QoS {g}) = {} \
             (rumqttd delivers at the subscription's QoS)",
            ev.qos,
            p.min(g)
        )),
        _ => None,
    };
    (origin, deviation)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use crate::wire::Direction::*;

    fn ack(kind: PacketKind, dir: Direction, pkid: u16, client: &str) -> WireEvent {
        let mut e = ev(1, client, dir, kind);
        e.pkid = pkid;
        e
    }

    #[test]
    fn an_mqtt5_reason_code_is_kept_on_its_step() {
        let mut c = Capture::default();
        c.ingest(publish(1, "p", ClientToBroker, "t", "x", 1, 4));
        let mut puback = ack(PacketKind::PubAck, BrokerToClient, 4, "p");
        puback.v5 = Some(Box::new(crate::wire::V5Props {
            reason_code: Some(0x10),
            ..Default::default()
        }));
        c.ingest(puback);
        let f = c.flows.iter().next().expect("a flow");
        assert_eq!(f.state, FlowState::Complete);
        assert_eq!(f.steps[1].reason, Some(0x10), "no matching subscribers");
    }

    #[test]
    fn qos2_flow_completes_with_all_steps() {
        let mut c = Capture::default();
        c.ingest(publish(1, "p", ClientToBroker, "t", "x", 2, 5));
        c.ingest(ack(PacketKind::PubRec, BrokerToClient, 5, "p"));
        c.ingest(ack(PacketKind::PubRel, ClientToBroker, 5, "p"));
        assert_eq!(c.flows.iter().next().unwrap().state, FlowState::Open);
        c.ingest(ack(PacketKind::PubComp, BrokerToClient, 5, "p"));
        let f = c.flows.iter().next().unwrap();
        assert_eq!(f.state, FlowState::Complete);
        assert_eq!(f.step_names(), ["PUBLISH", "PUBREC", "PUBREL", "PUBCOMP"]);
        assert_eq!(c.flows.completed, 1);
    }

    #[test]
    fn dup_is_a_redelivery_and_close_interrupts() {
        let mut c = Capture::default();
        c.ingest(publish(1, "s", BrokerToClient, "t", "x", 1, 7));
        let mut closed = ev(1, "s", ClientToBroker, PacketKind::Closed);
        closed.detail = WireDetail::Closed(crate::wire::CloseReason::ClientClosed);
        c.ingest(closed);
        assert_eq!(c.flows.iter().next().unwrap().state, FlowState::Interrupted);
        let mut again = publish(2, "s", BrokerToClient, "t", "x", 1, 7);
        again.dup = true;
        c.ingest(again);
        c.ingest(ack(PacketKind::PubAck, ClientToBroker, 7, "s"));
        let f = c.flows.iter().next().unwrap();
        assert_eq!(f.state, FlowState::Complete);
        assert_eq!(f.redeliveries(), 1);
    }
}
