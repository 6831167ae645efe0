//! QoS 1/2 flows: each handshake on each leg (publisher→broker and
//! broker→subscriber), with every step and its time.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::protocol::{ConnId, Direction, PacketKind, WireDetail, WireEvent};

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

/// Bounded list of flows plus an index of the unfinished ones.
#[derive(Debug, Default)]
pub struct Flows {
    list: VecDeque<Flow>,
    first_id: u64,
    open: HashMap<Key, u64>,
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

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Flows not complete (open, interrupted, superseded or abandoned) still stored.
    pub fn incomplete(&self) -> usize {
        self.list
            .iter()
            .filter(|f| f.state != FlowState::Complete)
            .count()
    }

    fn push(&mut self, flow: Flow, max: usize) -> u64 {
        let id = self.first_id + self.list.len() as u64;
        self.list.push_back(Flow { id, ..flow });
        while self.list.len() > max {
            if let Some(old) = self.list.pop_front() {
                self.first_id += 1;
                self.evicted += 1;
                let key = (old.client_id.clone(), old.leg, old.pkid);
                if self.open.get(&key) == Some(&old.id) {
                    self.open.remove(&key);
                }
            }
        }
        id
    }

    fn step(&mut self, key: &Key, step: FlowStep, completes: bool) {
        let Some(&id) = self.open.get(key) else {
            return;
        };
        let Some(f) = self.get_mut(id) else {
            self.open.remove(key);
            return;
        };
        f.steps.push(step);
        f.state = FlowState::Open;
        if completes {
            f.state = FlowState::Complete;
            self.completed += 1;
            self.open.remove(key);
        }
    }
}

fn opposite(d: Direction) -> Direction {
    match d {
        Direction::ClientToBroker => Direction::BrokerToClient,
        Direction::BrokerToClient => Direction::ClientToBroker,
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
    };
    let client = ev.client_id.clone();
    match ev.kind {
        PacketKind::Publish if ev.qos > 0 => {
            let key = (client.clone(), ev.dir, ev.pkid);
            if let Some(&id) = cap.flows.open.get(&key) {
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
                if let Some(f) = cap.flows.get_mut(id) {
                    f.state = FlowState::Superseded;
                }
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
            };
            let id = cap.flows.push(flow, cap.limits.max_flows);
            cap.flows.open.insert(key, id);
        }
        PacketKind::PubAck | PacketKind::PubRec | PacketKind::PubComp => {
            let key = (client, opposite(ev.dir), ev.pkid);
            let completes = match ev.kind {
                PacketKind::PubAck => true,
                PacketKind::PubComp => true,
                _ => false,
            };
            cap.flows.step(&key, step, completes);
        }
        PacketKind::PubRel => {
            let key = (client, ev.dir, ev.pkid);
            cap.flows.step(&key, step, false);
        }
        PacketKind::Closed => {
            let ids: Vec<u64> = cap
                .flows
                .open
                .iter()
                .filter(|(k, _)| k.0 == client)
                .map(|(_, &id)| id)
                .collect();
            for id in ids {
                if let Some(f) = cap.flows.get_mut(id)
                    && f.steps.iter().any(|s| s.conn == ev.conn)
                {
                    f.state = FlowState::Interrupted;
                }
            }
        }
        PacketKind::Connect => {
            if let WireDetail::Connect {
                clean_session: true,
                ..
            } = ev.detail
            {
                let keys: Vec<Key> = cap
                    .flows
                    .open
                    .keys()
                    .filter(|k| k.0 == client)
                    .cloned()
                    .collect();
                for k in keys {
                    if let Some(id) = cap.flows.open.remove(&k)
                        && let Some(f) = cap.flows.get_mut(id)
                    {
                        f.state = FlowState::Abandoned;
                    }
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
    use crate::protocol::Direction::*;

    fn ack(kind: PacketKind, dir: Direction, pkid: u16, client: &str) -> WireEvent {
        let mut e = ev(1, client, dir, kind);
        e.pkid = pkid;
        e
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
        closed.detail = WireDetail::Closed(crate::protocol::CloseReason::ClientClosed);
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
