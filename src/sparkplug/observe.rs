//! Sparkplug B as the tap sees it, for every client (virtual or the
//! user's own): groups, edge nodes and their devices with their state and
//! metrics, primary hosts' STATE, and each breach of the Sparkplug B 3.0
//! session rules as a [`Finding`]. The Sparkplug view draws an
//! [`Observer`] the model feeds; the `Sparkplug` checks run one of their
//! own (they also run offline, on a recording).
//!
//! The rules (Sparkplug B 3.0, chapter 7 and 9 of the specification):
//! - `seq`: NBIRTH carries seq 0; every later DBIRTH, NDATA, DDATA and DDEATH
//!   of the node carries the previous seq + 1 (mod 256);
//! - `bdSeq`: the NBIRTH's `bdSeq` is the one in the NDEATH will of the
//!   CONNECT before it; an NDEATH (published or the will) carries the birth's;
//! - birth first: no NDATA, DBIRTH, DDATA or DDEATH from a node with no NBIRTH
//!   in its current MQTT session, no DDATA from a device with no DBIRTH;
//! - aliases: every metric sent by alias alone has that alias in a BIRTH;
//! - rebirth: an NCMD `Node Control/Rebirth = true` is answered by an NBIRTH
//!   (the bound is the check's);
//! - STATE: a primary host's STATE (birth, or death as its will) is
//!   published retained at QoS 1, as JSON with `online` and `timestamp`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost::Message;

use super::proto as sp;
use super::{Kind, Topic};
use crate::wire::{ConnId, Direction, PacketKind, WireDetail, WireEvent};

/// Edge nodes kept at most (more are counted in `dropped`).
pub const MAX_NODES: usize = 10_000;
/// Devices per edge node kept at most.
pub const MAX_DEVICES: usize = 1_000;
/// Metrics per node or device kept at most.
pub const MAX_METRICS: usize = 2_000;
/// Primary hosts kept at most.
pub const MAX_HOSTS: usize = 1_000;
/// Open connections remembered (whose CONNECT was seen) at most.
pub const MAX_CONNS: usize = 250_000;

/// A Sparkplug rule, as a scenario names it in `Sparkplug(rule: …)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Rule {
    /// `seq` 0 on NBIRTH, then +1 (mod 256) on every message of the node.
    Seq,
    /// NBIRTH and NDEATH carry the `bdSeq` of the session's will.
    BdSeq,
    /// No DATA (or DBIRTH, DDEATH) before the node's NBIRTH; no DDATA before the device's DBIRTH.
    BirthFirst,
    /// Every metric sent by alias has its alias in a BIRTH.
    Aliases,
    /// An NCMD `Node Control/Rebirth` is answered by an NBIRTH.
    Rebirth,
    /// STATE is retained, QoS 1, JSON with `online` and `timestamp`.
    State,
}

impl Rule {
    pub const ALL: [Rule; 6] = [
        Rule::Seq,
        Rule::BdSeq,
        Rule::BirthFirst,
        Rule::Aliases,
        Rule::Rebirth,
        Rule::State,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Rule::Seq => "seq continuity per edge node",
            Rule::BdSeq => "NBIRTH/NDEATH bdSeq agree with the session's will",
            Rule::BirthFirst => "no DATA before BIRTH",
            Rule::Aliases => "metric aliases resolvable",
            Rule::Rebirth => "rebirth requests answered",
            Rule::State => "STATE retained at QoS 1",
        }
    }
}

/// One breach of a rule, with what shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: Rule,
    pub t_us: u64,
    pub client: Arc<str>,
    pub topic: String,
    pub what: String,
}

/// A metric as last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricView {
    pub name: String,
    pub alias: Option<u64>,
    /// Sparkplug data type number (`proto::type_name`).
    pub datatype: u32,
    pub value: serde_json::Value,
    /// The metric's own timestamp (ms since the epoch), else the payload's.
    pub timestamp_ms: Option<u64>,
    /// Engineering units from the BIRTH's property set (`engUnit`).
    pub units: Option<String>,
}

/// A device behind an edge node.
#[derive(Debug, Clone, Default)]
pub struct DeviceView {
    pub online: bool,
    pub birth_us: Option<u64>,
    pub death_us: Option<u64>,
    pub metrics: Vec<MetricView>,
}

/// An edge node as the wire shows it.
#[derive(Debug, Clone, Default)]
pub struct NodeView {
    pub online: bool,
    /// The current (or last) session's `bdSeq` from its NBIRTH.
    pub bd_seq: Option<u64>,
    /// The last `seq` it sent.
    pub last_seq: Option<u64>,
    pub birth_us: Option<u64>,
    pub death_us: Option<u64>,
    /// The MQTT client that publishes for it.
    pub client: Arc<str>,
    pub metrics: Vec<MetricView>,
    pub devices: BTreeMap<String, DeviceView>,
    /// Rebirth requests not answered yet: when asked (µs).
    pub rebirth_asked_us: Option<u64>,
    pub messages: u64,
    /// alias -> (device, "" for the node; metric index).
    aliases: HashMap<u64, (String, usize)>,
    /// Taken as born without its NBIRTH (it came before the observer started):
    /// aliases stay unknown until its next NBIRTH, and are not held against it.
    pub adopted: bool,
    /// A BIRTH had more metrics than are kept: their aliases are not known.
    truncated: bool,
    /// Its connection, while born.
    conn: Option<ConnId>,
}

/// A primary host application's STATE.
#[derive(Debug, Clone, Default)]
pub struct HostView {
    pub online: bool,
    pub timestamp_ms: Option<u64>,
    pub t_us: u64,
    pub client: Arc<str>,
}

/// What one connection declared: the NDEATH will's node and `bdSeq`.
#[derive(Debug, Clone)]
struct ConnState {
    /// (group, node) from the will's topic.
    node: Option<(String, String)>,
    will_bd_seq: Option<u64>,
}

/// Every Sparkplug edge node and host seen on the wire.
#[derive(Debug, Default)]
pub struct Observer {
    /// (group, node) -> its view.
    pub nodes: BTreeMap<(String, String), NodeView>,
    pub hosts: BTreeMap<String, HostView>,
    /// Open connections whose CONNECT was seen; the Sparkplug will it declared, if any.
    /// (The state boxed: most connections declare none, and an entry is
    /// kept for every client.)
    conns: HashMap<ConnId, Option<Box<ConnState>>>,
    /// The node each connection gave birth to (for its close).
    born_on: HashMap<ConnId, (String, String)>,
    /// Nodes, devices, metrics or hosts not kept (bounds reached).
    pub dropped: u64,
    /// Messages on the Sparkplug namespace seen.
    pub messages: u64,
    /// Changes so far (views redraw their caches on a change).
    pub generation: u64,
    /// Nodes, devices or hosts added so far (a view's sorted order holds until it moves).
    pub topology: u64,
    /// NCMD rebirth requests seen, and those an NBIRTH answered.
    pub rebirths_asked: u64,
    pub rebirths_answered: u64,
}

impl Observer {
    pub fn clear(&mut self) {
        *self = Observer {
            generation: self.generation + 1,
            topology: self.topology + 1,
            ..Observer::default()
        };
    }

    /// Nodes currently online.
    pub fn online_nodes(&self) -> usize {
        self.nodes.values().filter(|n| n.online).count()
    }

    /// A frame went by: update the views, return the rules it breaks.
    pub fn observe(&mut self, ev: &WireEvent) -> Vec<Finding> {
        let mut found = Vec::new();
        match (&ev.kind, &ev.detail) {
            (PacketKind::Connect, WireDetail::Connect { will, .. })
                if ev.dir == Direction::ClientToBroker =>
            {
                self.on_connect(ev, will.as_deref(), &mut found)
            }
            (PacketKind::Closed, WireDetail::Closed(_)) => self.on_closed(ev),
            (PacketKind::Publish, _) if ev.dir == Direction::ClientToBroker => {
                if let (Some(topic), Some(payload)) = (ev.topic.as_deref(), ev.payload.as_deref()) {
                    self.on_publish(ev, topic, payload, &mut found);
                }
            }
            _ => {}
        }
        found
    }

    fn on_connect(
        &mut self,
        ev: &WireEvent,
        will: Option<&crate::wire::WillInfo>,
        found: &mut Vec<Finding>,
    ) {
        let mut state = ConnState {
            node: None,
            will_bd_seq: None,
        };
        if let Some(w) = will {
            match Topic::parse(&w.topic) {
                Some(Topic::Node {
                    group,
                    kind: Kind::NDeath,
                    node,
                    ..
                }) => {
                    state.node = Some((group.to_string(), node.to_string()));
                    let p = sp::Payload::decode(&w.payload[..]).ok();
                    state.will_bd_seq = p.as_ref().and_then(super::bd_seq);
                    if state.will_bd_seq.is_none() {
                        found.push(finding(
                            Rule::BdSeq,
                            ev,
                            &w.topic,
                            "the NDEATH will carries no bdSeq metric".into(),
                        ));
                    }
                }
                Some(Topic::State { .. }) => {
                    if let Some(what) = state_breach(w.qos, w.retain, &w.payload, Some(false)) {
                        found.push(finding(
                            Rule::State,
                            ev,
                            &w.topic,
                            format!("the STATE will: {what}"),
                        ));
                    }
                }
                _ => {}
            }
        }
        let sparkplug = state.node.is_some();
        if self.conns.len() < MAX_CONNS || self.conns.contains_key(&ev.conn) {
            self.conns
                .insert(ev.conn, sparkplug.then(|| Box::new(state)));
        } else {
            self.dropped += 1;
        }
    }

    /// The connection a node was born on ended: the node is offline (the
    /// broker publishes its NDEATH will, or it left without one).
    fn on_closed(&mut self, ev: &WireEvent) {
        self.conns.remove(&ev.conn);
        let Some(key) = self.born_on.remove(&ev.conn) else {
            return;
        };
        let Some(n) = self.nodes.get_mut(&key) else {
            return;
        };
        if n.conn == Some(ev.conn) {
            go_offline(n, ev.t_us);
            self.generation += 1;
        }
    }

    fn on_publish(
        &mut self,
        ev: &WireEvent,
        topic: &str,
        payload: &[u8],
        found: &mut Vec<Finding>,
    ) {
        let Some(t) = Topic::parse(topic) else {
            return;
        };
        self.messages += 1;
        self.generation += 1;
        let (group, kind, node, device) = match t {
            Topic::State { host } => {
                if let Some(what) = state_breach(ev.qos, ev.retain, payload, None) {
                    found.push(finding(Rule::State, ev, topic, what));
                }
                self.on_state(ev, host, payload);
                return;
            }
            Topic::Node {
                group,
                kind,
                node,
                device,
            } => (group, kind, node, device),
        };
        let p = match sp::Payload::decode(payload) {
            Ok(p) => p,
            Err(e) => {
                if matches!(kind, Kind::NCmd | Kind::DCmd) {
                    return;
                }
                found.push(finding(
                    Rule::BirthFirst,
                    ev,
                    topic,
                    format!("not a Sparkplug B payload ({e})"),
                ));
                return;
            }
        };
        let key = (group.to_string(), node.to_string());
        let command = matches!(kind, Kind::NCmd | Kind::DCmd);
        if !self.nodes.contains_key(&key) {
            // A command to a node never seen creates nothing.
            if command {
                return;
            }
            if self.nodes.len() >= MAX_NODES {
                self.dropped += 1;
                return;
            }
            self.nodes.insert(key.clone(), NodeView::default());
            self.topology += 1;
        }
        // Its CONNECT was seen (else it connected before this observer started).
        let seen = self.conns.contains_key(&ev.conn);
        let will = self.conns.get(&ev.conn).cloned().flatten().map(|b| *b);
        let Some(n) = self.nodes.get_mut(&key) else {
            return;
        };
        if !command {
            n.client = ev.client_id.clone();
            n.messages += 1;
        }
        let mut breach = |rule, what: String| found.push(finding(rule, ev, topic, what));
        match kind {
            Kind::NBirth => {
                let dropped =
                    on_nbirth(n, &key, seen.then_some(will.as_ref()), &p, ev, &mut breach);
                if n.rebirth_asked_us.take().is_some() {
                    self.rebirths_answered += 1;
                }
                if self.born_on.len() < MAX_CONNS {
                    self.born_on.insert(ev.conn, key.clone());
                }
                self.dropped += dropped;
            }
            Kind::NDeath => {
                let bd = super::bd_seq(&p);
                if bd != n.bd_seq && n.bd_seq.is_some() {
                    breach(
                        Rule::BdSeq,
                        format!(
                            "NDEATH bdSeq {}, but the node's NBIRTH has {}",
                            show(bd),
                            show(n.bd_seq)
                        ),
                    );
                }
                // A stale NDEATH (an older session's) leaves the newer one alone.
                if bd == n.bd_seq || n.bd_seq.is_none() {
                    go_offline(n, ev.t_us);
                }
            }
            Kind::NCmd | Kind::DCmd => {
                let rebirth = p.metrics.iter().any(|m| {
                    m.name.as_deref() == Some("Node Control/Rebirth")
                        && m.value == Some(sp::Value::BooleanValue(true))
                });
                // Only an online node can answer (one that is offline is born when it connects).
                if rebirth && kind == Kind::NCmd && n.online {
                    self.rebirths_asked += 1;
                    n.rebirth_asked_us.get_or_insert(ev.t_us);
                }
            }
            Kind::DBirth | Kind::NData | Kind::DData | Kind::DDeath => {
                let devices = n.devices.len();
                let (dropped, adopted) = on_data(n, &key, seen, kind, device, &p, ev, &mut breach);
                if n.devices.len() != devices {
                    self.topology += 1;
                }
                if adopted && self.born_on.len() < MAX_CONNS {
                    self.born_on.insert(ev.conn, key.clone());
                }
                self.dropped += dropped;
            }
        }
    }

    fn on_state(&mut self, ev: &WireEvent, host: &str, payload: &[u8]) {
        if !self.hosts.contains_key(host) && self.hosts.len() >= MAX_HOSTS {
            self.dropped += 1;
            return;
        }
        let v: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
        if !self.hosts.contains_key(host) {
            self.topology += 1;
        }
        let h = self.hosts.entry(host.to_string()).or_default();
        h.online = super::state_online(payload).unwrap_or(false);
        h.timestamp_ms = v
            .as_ref()
            .and_then(|v| v.get("timestamp"))
            .and_then(|t| t.as_u64());
        h.t_us = ev.t_us;
        h.client = ev.client_id.clone();
    }
}

/// An NBIRTH: its seq and bdSeq against the session, the node (re)born with
/// its metrics and aliases; the number of metrics not kept.
fn on_nbirth(
    n: &mut NodeView,
    key: &(String, String),
    // None: its CONNECT came before the observer started; Some(None): no Sparkplug will.
    conn: Option<Option<&ConnState>>,
    p: &sp::Payload,
    ev: &WireEvent,
    breach: &mut impl FnMut(Rule, String),
) -> u64 {
    let bd = super::bd_seq(p);
    if p.seq != Some(0) {
        breach(
            Rule::Seq,
            format!("NBIRTH with seq {}, expected 0", show(p.seq)),
        );
    }
    match (conn, bd) {
        (_, None) => breach(Rule::BdSeq, "NBIRTH without a bdSeq metric".into()),
        (None, Some(_)) => {}
        (Some(None), Some(_)) => breach(
            Rule::BdSeq,
            "NBIRTH on a connection without this node's NDEATH as its will".into(),
        ),
        (Some(Some(c)), Some(b)) if c.node.as_ref() == Some(key) && c.will_bd_seq != Some(b) => {
            breach(
                Rule::BdSeq,
                format!(
                    "NBIRTH bdSeq {b}, but the NDEATH will of its CONNECT has {}",
                    show(c.will_bd_seq)
                ),
            )
        }
        (Some(Some(c)), Some(_)) if c.node.as_ref() != Some(key) => breach(
            Rule::BdSeq,
            "NBIRTH on a connection without this node's NDEATH as its will".into(),
        ),
        _ => {}
    }
    n.online = true;
    n.bd_seq = bd;
    n.birth_us = Some(ev.t_us);
    n.conn = Some(ev.conn);
    n.last_seq = p.seq.filter(|s| *s <= 255);
    n.adopted = false;
    n.truncated = false;
    n.aliases.clear();
    n.metrics.clear();
    // A rebirth restates every device: they are born again by their DBIRTH.
    for d in n.devices.values_mut() {
        d.online = false;
    }
    let mut dropped = 0;
    for m in &p.metrics {
        dropped += learn(&mut n.metrics, &mut n.aliases, "", m, p.timestamp);
    }
    n.truncated |= dropped > 0;
    dropped
}

/// The node and its devices go offline at `t_us` (NDEATH, or its connection ended).
fn go_offline(n: &mut NodeView, t_us: u64) {
    n.online = false;
    n.death_us = Some(t_us);
    n.conn = None;
    n.rebirth_asked_us = None;
    for d in n.devices.values_mut().filter(|d| d.online) {
        d.online = false;
        d.death_us = Some(t_us);
    }
}

/// DBIRTH, NDATA, DDATA or DDEATH: birth-first and seq, then the views;
/// (things not kept, whether the node was taken as born just now).
#[allow(clippy::too_many_arguments)]
fn on_data(
    n: &mut NodeView,
    key: &(String, String),
    seen: bool,
    kind: Kind,
    device: &str,
    p: &sp::Payload,
    ev: &WireEvent,
    breach: &mut impl FnMut(Rule, String),
) -> (u64, bool) {
    let mut born = n.online && n.conn == Some(ev.conn);
    let adopted = !born && !seen && !n.online;
    if adopted {
        // Born before this observer started: take it as it is.
        n.online = true;
        n.adopted = true;
        n.conn = Some(ev.conn);
        n.last_seq = None;
        born = true;
    }
    if !born {
        breach(
            Rule::BirthFirst,
            format!(
                "{} from edge node {} before its NBIRTH (in this MQTT session)",
                kind.as_str(),
                key.1
            ),
        );
    }
    let expected = n.last_seq.map(|last| (last % 256 + 1) % 256);
    match p.seq {
        None => breach(Rule::Seq, format!("{} without seq", kind.as_str())),
        Some(s) if s > 255 => breach(
            Rule::Seq,
            format!("{} with seq {s}, past 255", kind.as_str()),
        ),
        Some(s) if born && expected.is_some_and(|e| e != s) => breach(
            Rule::Seq,
            format!(
                "{} with seq {s}, expected {}",
                kind.as_str(),
                show(expected)
            ),
        ),
        Some(_) => {}
    }
    if p.seq.is_some() {
        n.last_seq = p.seq;
    }
    (
        on_node_message(n, kind, device, p, ev.t_us, breach),
        adopted,
    )
}

/// DBIRTH, NDATA, DDATA or DDEATH: device state and metric values; the number of things not kept.
fn on_node_message(
    n: &mut NodeView,
    kind: Kind,
    device: &str,
    p: &sp::Payload,
    t_us: u64,
    breach: &mut impl FnMut(Rule, String),
) -> u64 {
    let ts = p.timestamp;
    let mut dropped = 0;
    if !device.is_empty() && !n.devices.contains_key(device) {
        if n.devices.len() >= MAX_DEVICES {
            return 1;
        }
        // A device of a node taken as born is taken as born too.
        let online = n.adopted && kind != Kind::DDeath;
        n.devices.insert(
            device.to_string(),
            DeviceView {
                online,
                ..DeviceView::default()
            },
        );
    }
    match kind {
        Kind::DBirth => {
            if let Some(d) = n.devices.get_mut(device) {
                d.online = true;
                d.birth_us = Some(t_us);
                d.metrics.clear();
            }
            n.aliases.retain(|_, (dev, _)| dev != device);
            for m in &p.metrics {
                if let Some(d) = n.devices.get_mut(device) {
                    dropped += learn(&mut d.metrics, &mut n.aliases, device, m, ts);
                }
            }
            n.truncated |= dropped > 0;
        }
        Kind::DDeath => {
            if let Some(d) = n.devices.get_mut(device) {
                d.online = false;
                d.death_us = Some(t_us);
            }
        }
        Kind::DData => {
            if n.devices.get(device).is_some_and(|d| !d.online) {
                breach(
                    Rule::BirthFirst,
                    format!("DDATA from device {device} before its DBIRTH"),
                );
            }
            update(n, device, p, breach);
        }
        Kind::NData => update(n, "", p, breach),
        _ => {}
    }
    dropped
}

/// A DATA message's metrics onto the views (by name, or by alias from a BIRTH).
fn update(n: &mut NodeView, device: &str, p: &sp::Payload, breach: &mut impl FnMut(Rule, String)) {
    for m in &p.metrics {
        let slot = match (&m.name, m.alias) {
            (Some(name), _) => {
                let list = if device.is_empty() {
                    Some(&n.metrics)
                } else {
                    n.devices.get(device).map(|d| &d.metrics)
                };
                list.and_then(|l| l.iter().position(|x| &x.name == name))
                    .map(|i| (device.to_string(), i))
            }
            (None, Some(a)) => match n.aliases.get(&a) {
                Some(slot) => Some(slot.clone()),
                // Its BIRTH was not seen whole: the alias may well be in it.
                None if n.adopted || n.truncated => None,
                None => {
                    breach(
                        Rule::Aliases,
                        format!("metric alias {a} is in no BIRTH of this edge node"),
                    );
                    None
                }
            },
            (None, None) => None,
        };
        let Some((dev, i)) = slot else { continue };
        let list = if dev.is_empty() {
            Some(&mut n.metrics)
        } else {
            n.devices.get_mut(&dev).map(|d| &mut d.metrics)
        };
        if let Some(mv) = list.and_then(|l| l.get_mut(i)) {
            let datatype = m.datatype.unwrap_or(mv.datatype);
            mv.value = super::json::value(m, datatype);
            mv.timestamp_ms = m.timestamp.or(p.timestamp);
        }
    }
}

/// A BIRTH metric into `list` (and its alias into the node's book); 1 when not kept.
fn learn(
    list: &mut Vec<MetricView>,
    aliases: &mut HashMap<u64, (String, usize)>,
    device: &str,
    m: &sp::Metric,
    ts: Option<u64>,
) -> u64 {
    let Some(name) = &m.name else { return 0 };
    if list.len() >= MAX_METRICS {
        return 1;
    }
    let datatype = m.datatype.unwrap_or(0);
    let units = m.properties.as_ref().and_then(|ps| {
        ps.keys
            .iter()
            .position(|k| k == "engUnit")
            .and_then(|i| ps.values.get(i))
            .and_then(|v| match &v.value {
                Some(sp::PropertyKind::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
    });
    if let Some(a) = m.alias {
        aliases.insert(a, (device.to_string(), list.len()));
    }
    list.push(MetricView {
        name: name.clone(),
        alias: m.alias,
        datatype,
        value: super::json::value(m, datatype),
        timestamp_ms: m.timestamp.or(ts),
        units,
    });
    0
}

/// What is wrong with a STATE message (3.0, 7.5.1), if anything; `online`:
/// what it must say (a will says offline; a published STATE either).
fn state_breach(qos: u8, retain: bool, payload: &[u8], online: Option<bool>) -> Option<String> {
    let mut wrong = Vec::new();
    if qos != 1 {
        wrong.push(format!("QoS {qos}, expected 1"));
    }
    if !retain {
        wrong.push("not retained".to_string());
    }
    let v: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
    match v.as_ref().map(|v| (v.get("online"), v.get("timestamp"))) {
        Some((Some(serde_json::Value::Bool(said)), Some(t))) if t.is_u64() => {
            if online.is_some_and(|o| o != *said) {
                wrong.push(format!("online {said} in a STATE will"));
            }
        }
        _ => wrong.push("payload is not {\"online\": bool, \"timestamp\": ms}".to_string()),
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

fn finding(rule: Rule, ev: &WireEvent, topic: &str, what: String) -> Finding {
    Finding {
        rule,
        t_us: ev.t_us,
        client: ev.client_id.clone(),
        topic: topic.to_string(),
        what,
    }
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "none".into(), |v| v.to_string())
}

/// A node (of `group`, if given) whose rebirth request went unanswered
/// longer than `bound_us` by `now_us`.
pub fn overdue_rebirths<'a>(
    o: &'a Observer,
    group: Option<&str>,
    now_us: u64,
    bound_us: u64,
) -> Option<(&'a str, &'a str, u64)> {
    o.nodes.iter().find_map(|((g, n), v)| {
        if group.is_some_and(|x| x != g) {
            return None;
        }
        let asked = v.rebirth_asked_us?;
        (now_us.saturating_sub(asked) > bound_us).then_some((g.as_str(), n.as_str(), asked))
    })
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
