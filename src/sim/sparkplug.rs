//! Virtual Sparkplug B devices (Sparkplug B 3.0): an edge node's and a
//! primary host's session rules as a state machine the device task drives
//! (`sim::device`): what to put in the will of each CONNECT, what to
//! subscribe to, what to publish on CONNACK, on a message and when a period
//! is due. No sockets here: every step returns the messages to send.
//!
//! Edge node: NDEATH will with `bdSeq`, incremented on every CONNECT; NBIRTH
//! (seq 0) with the same `bdSeq`, then each online device's DBIRTH; NDATA and
//! DDATA with `seq` 0–255; DDEATH when a device goes offline; NBIRTH and
//! every DBIRTH again on NCMD `Node Control/Rebirth`; NCMD/DCMD writes to
//! writable metrics, answered with a DATA carrying the new value. With a
//! primary host: BIRTH only after its STATE says online; when it goes
//! offline, NDEATH and disconnect. Aliases are unique across the edge node.
//!
//! Primary host: retained STATE death as its will and STATE birth (QoS 1,
//! the same timestamp); asks for a rebirth (NCMD) when DATA comes from a
//! node it has no birth for, or after a `seq` gap; ignores a stale NDEATH
//! (`bdSeq` not the birth's).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::generators::{DeviceCtx, Sampler};
use crate::scenario::{Gen, Qos, SpType, SparkplugRole, expand};
use crate::sparkplug::proto::{self as sp, PropertyKind};
use crate::sparkplug::{self as spb, Kind, Topic};

/// Nodes a primary host keeps track of at most.
const MAX_NODES: usize = 10_000;

/// A message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: Qos,
    pub retain: bool,
}

/// What a received message asks of the device.
#[derive(Debug, Default)]
pub struct Reply {
    pub publish: Vec<Out>,
    /// Publish, then disconnect and connect again (the primary host went offline).
    pub rejoin: bool,
}

/// A device's Sparkplug role, running.
pub enum Role {
    Edge(Box<Edge>),
    Host(Host),
}

/// A Sparkplug B value of type `t` from a generated JSON value.
pub fn encode_value(t: SpType, v: &Value) -> sp::Value {
    let x = v.as_f64().or_else(|| v.as_bool().map(|b| b as u8 as f64));
    match t {
        SpType::Int32 => sp::Value::IntValue(x.unwrap_or(0.0) as i32 as u32),
        SpType::Int64 => sp::Value::LongValue(x.unwrap_or(0.0) as i64 as u64),
        SpType::Float => sp::Value::FloatValue(x.unwrap_or(0.0) as f32),
        SpType::Double => sp::Value::DoubleValue(x.unwrap_or(0.0)),
        SpType::Boolean => {
            sp::Value::BooleanValue(v.as_bool().unwrap_or_else(|| x.unwrap_or(0.0) != 0.0))
        }
        SpType::String => sp::Value::StringValue(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
    }
}

/// A received metric value as JSON (for a write), if it fits type `t`.
fn decode_value(t: SpType, v: &sp::Value) -> Option<Value> {
    Some(match (t, v) {
        (SpType::Int32, sp::Value::IntValue(x)) => json!(*x as i32),
        (SpType::Int32 | SpType::Int64, sp::Value::LongValue(x)) => json!(*x as i64),
        (SpType::Int64, sp::Value::IntValue(x)) => json!(*x as i32),
        (SpType::Float | SpType::Double, sp::Value::FloatValue(x)) => json!(x),
        (SpType::Float | SpType::Double, sp::Value::DoubleValue(x)) => json!(x),
        (SpType::Boolean, sp::Value::BooleanValue(x)) => json!(x),
        (SpType::String, sp::Value::StringValue(x)) => json!(x),
        _ => return None,
    })
}

fn now_ms() -> u64 {
    crate::time::now_us() / 1000
}

fn encode(p: &sp::Payload) -> Vec<u8> {
    prost::Message::encode_to_vec(p)
}

impl Role {
    pub fn new(role: &SparkplugRole, client_id: &str, index: u32) -> Role {
        match role {
            SparkplugRole::EdgeNode(e) => Role::Edge(Box::new(Edge::new(e, client_id, index))),
            SparkplugRole::PrimaryHost(h) => Role::Host(Host {
                id: h.id.clone().unwrap_or_else(|| client_id.to_string()),
                groups: h.groups.clone(),
                rebirth_every: h.rebirth_every.0,
                session_ts: 0,
                nodes: HashMap::new(),
            }),
        }
    }

    /// The will of the next CONNECT: (topic, payload, qos, retain). An edge
    /// node's `bdSeq` moves on with each call (one per MQTT session).
    pub fn will(&mut self) -> Out {
        match self {
            Role::Edge(e) => e.will(),
            Role::Host(h) => h.will(),
        }
    }

    /// What to publish before an intentional DISCONNECT (which discards the
    /// will): an edge node's NDEATH, a host's STATE offline (Sparkplug 3.0,
    /// the intentional-disconnect rules of 7.1 and 7.5).
    pub fn farewell(&mut self) -> Option<Out> {
        match self {
            Role::Edge(e) if e.born => {
                e.born = false;
                Some(e.death())
            }
            Role::Edge(_) => None,
            Role::Host(h) => Some(h.state(false)),
        }
    }

    /// Subscriptions for each new connection (before anything is published).
    pub fn subscriptions(&self) -> Vec<(String, Qos)> {
        match self {
            Role::Edge(e) => {
                let mut v = vec![
                    (spb::node_topic(&e.group, Kind::NCmd, &e.node), Qos(1)),
                    (
                        spb::device_topic(&e.group, Kind::DCmd, &e.node, "+"),
                        Qos(1),
                    ),
                ];
                if let Some(h) = &e.host {
                    v.insert(0, (spb::state_topic(h), Qos(1)));
                }
                v
            }
            Role::Host(h) => {
                let mut v = vec![(spb::state_topic(&h.id), Qos(1))];
                if h.groups.is_empty() {
                    v.push((format!("{}/#", spb::NAMESPACE), Qos(0)));
                }
                v.extend(
                    h.groups
                        .iter()
                        .map(|g| (format!("{}/{g}/#", spb::NAMESPACE), Qos(0))),
                );
                v
            }
        }
    }

    /// CONNACK: what to publish after subscribing.
    pub fn on_connected(&mut self, ctx: &mut DeviceCtx, now: Instant) -> Vec<Out> {
        match self {
            Role::Edge(e) => {
                e.born = false;
                if e.host.is_some() {
                    return Vec::new();
                }
                e.births(ctx, now)
            }
            Role::Host(h) => {
                h.nodes.clear();
                vec![h.state(true)]
            }
        }
    }

    /// The connection ended: nothing is born any more.
    pub fn on_disconnected(&mut self) {
        if let Role::Edge(e) = self {
            e.born = false;
            e.next_ndata = None;
            for d in &mut e.devices {
                d.next = None;
            }
        }
    }

    pub fn on_message(
        &mut self,
        topic: &str,
        payload: &[u8],
        ctx: &mut DeviceCtx,
        now: Instant,
    ) -> Reply {
        match self {
            Role::Edge(e) => e.on_message(topic, payload, ctx, now),
            Role::Host(h) => Reply {
                publish: h.on_message(topic, payload, now),
                rejoin: false,
            },
        }
    }

    /// When the next periodic message is due.
    pub fn next_due(&self) -> Option<Instant> {
        match self {
            Role::Edge(e) if e.born => e
                .devices
                .iter()
                .filter_map(|d| d.next)
                .chain(e.next_ndata)
                .min(),
            _ => None,
        }
    }

    /// The periodic messages due by `now` (and devices going on- or offline).
    pub fn fire(&mut self, ctx: &mut DeviceCtx, now: Instant) -> Vec<Out> {
        match self {
            Role::Edge(e) if e.born => e.fire(ctx, now),
            _ => Vec::new(),
        }
    }
}

struct MetricRt {
    name: String,
    datatype: SpType,
    alias: u64,
    sampler: Sampler,
    /// The var its generator reads (`Var("x")`): a write sets the var.
    var: Option<String>,
    writable: bool,
    units: Option<String>,
    /// A written value that stands from now on (generators other than `Var`).
    written: Option<Value>,
}

impl MetricRt {
    fn new(m: &crate::scenario::SpMetric, alias: u64, period_s: f64) -> MetricRt {
        MetricRt {
            name: m.name.clone(),
            datatype: m.datatype,
            alias,
            sampler: Sampler::new(m.value.clone(), period_s),
            var: match &m.value {
                Gen::Var(v) => Some(v.clone()),
                _ => None,
            },
            writable: m.writable,
            units: m.units.clone(),
            written: None,
        }
    }

    fn encode(&mut self, ctx: &mut DeviceCtx, birth: bool, ts: u64) -> sp::Metric {
        let v = match &self.written {
            Some(w) => w.clone(),
            None => self.sampler.sample(ctx, 6),
        };
        sp::Metric {
            name: birth.then(|| self.name.clone()),
            alias: Some(self.alias),
            timestamp: Some(ts),
            datatype: Some(self.datatype.code()),
            properties: birth.then(|| self.properties()).flatten(),
            value: Some(encode_value(self.datatype, &v)),
            ..Default::default()
        }
    }

    fn properties(&self) -> Option<sp::PropertySet> {
        let units = self.units.as_ref()?;
        Some(sp::PropertySet {
            keys: vec!["engUnit".into()],
            values: vec![sp::PropertyValue {
                datatype: Some(SpType::String.code()),
                is_null: None,
                value: Some(PropertyKind::StringValue(units.clone())),
            }],
        })
    }

    /// Apply a written value; false if not writable or of the wrong type.
    fn write(&mut self, v: &sp::Value, ctx: &mut DeviceCtx) -> bool {
        if !self.writable {
            return false;
        }
        let Some(value) = decode_value(self.datatype, v) else {
            return false;
        };
        match (
            &self.var,
            value.as_f64().or(value.as_bool().map(|b| b as u8 as f64)),
        ) {
            (Some(var), Some(x)) => {
                ctx.vars.insert(var.clone(), x);
            }
            _ => self.written = Some(value),
        }
        true
    }
}

struct DeviceRt {
    id: String,
    every: Duration,
    metrics: Vec<MetricRt>,
    online_if: Option<crate::scenario::Cond>,
    /// As last announced (DBIRTH sent, no DDEATH since).
    online: bool,
    next: Option<Instant>,
}

/// A virtual edge node.
pub struct Edge {
    group: String,
    node: String,
    host: Option<String>,
    every: Duration,
    /// This session's `bdSeq` (the will of the last CONNECT).
    bd_seq: u64,
    /// The next CONNECT's.
    next_bd_seq: u64,
    /// The next message's `seq`.
    seq: u64,
    born: bool,
    /// The newest STATE timestamp seen from the primary host.
    host_ts: u64,
    metrics: Vec<MetricRt>,
    devices: Vec<DeviceRt>,
    next_ndata: Option<Instant>,
}

use crate::sparkplug::REBIRTH;
/// Aliases 1 (`bdSeq`) and 2 are the node's own; its metrics start at 3.
const FIRST_ALIAS: u64 = 2;

impl Edge {
    fn new(e: &crate::scenario::EdgeNode, client_id: &str, index: u32) -> Edge {
        // Aliases unique across the node and its devices: 1 bdSeq, then 3, 4, … in order.
        let mut alias = FIRST_ALIAS;
        let mut next = || {
            alias += 1;
            alias
        };
        let node_period = e.every.0.as_secs_f64();
        let metrics = e
            .metrics
            .iter()
            .map(|m| MetricRt::new(m, next(), node_period))
            .collect();
        let devices = e
            .devices
            .iter()
            .map(|d| DeviceRt {
                id: d.id.clone(),
                every: d.every.0,
                metrics: d
                    .metrics
                    .iter()
                    .map(|m| MetricRt::new(m, next(), d.every.0.as_secs_f64()))
                    .collect(),
                online_if: d.online.clone(),
                online: false,
                next: None,
            })
            .collect();
        Edge {
            group: e.group.clone(),
            node: e
                .node
                .as_ref()
                .map_or_else(|| client_id.to_string(), |n| expand(n, index, client_id)),
            host: e.primary_host.clone(),
            every: e.every.0,
            bd_seq: 0,
            next_bd_seq: 0,
            seq: 0,
            born: false,
            host_ts: 0,
            metrics,
            devices,
            next_ndata: None,
        }
    }

    /// A message of the node that carries the next `seq` (QoS 0, not retained).
    fn sequenced(&mut self, topic: String, metrics: Vec<sp::Metric>, ts: u64) -> Out {
        let seq = self.next_seq();
        Out {
            topic,
            payload: encode(&sp::Payload {
                timestamp: Some(ts),
                metrics,
                seq: Some(seq),
                ..Default::default()
            }),
            qos: Qos(0),
            retain: false,
        }
    }

    fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq = (s + 1) % 256;
        s
    }

    fn bd_seq_metric(&self, birth: bool, ts: u64) -> sp::Metric {
        sp::Metric {
            name: Some("bdSeq".into()),
            alias: birth.then_some(1),
            timestamp: Some(ts),
            datatype: Some(SpType::Int64.code()),
            value: Some(sp::Value::LongValue(self.bd_seq)),
            ..Default::default()
        }
    }

    fn death(&self) -> Out {
        let ts = now_ms();
        Out {
            topic: spb::node_topic(&self.group, Kind::NDeath, &self.node),
            payload: encode(&sp::Payload {
                timestamp: Some(ts),
                metrics: vec![self.bd_seq_metric(false, ts)],
                ..Default::default()
            }),
            qos: Qos(1),
            retain: false,
        }
    }

    fn will(&mut self) -> Out {
        self.bd_seq = self.next_bd_seq;
        self.next_bd_seq = (self.bd_seq + 1) % 256;
        self.death()
    }

    /// NBIRTH (seq 0) and the DBIRTH of every online device.
    fn births(&mut self, ctx: &mut DeviceCtx, now: Instant) -> Vec<Out> {
        let ts = now_ms();
        self.seq = 0;
        let mut metrics = vec![
            self.bd_seq_metric(true, ts),
            sp::Metric {
                name: Some(REBIRTH.into()),
                // Sparkplug 3.0: `Node Control/Rebirth` is named, never aliased (hosts ask by name).
                alias: None,
                timestamp: Some(ts),
                datatype: Some(SpType::Boolean.code()),
                value: Some(sp::Value::BooleanValue(false)),
                ..Default::default()
            },
        ];
        metrics.extend(self.metrics.iter_mut().map(|m| m.encode(ctx, true, ts)));
        let mut out = vec![self.sequenced(
            spb::node_topic(&self.group, Kind::NBirth, &self.node),
            metrics,
            ts,
        )];
        self.born = true;
        self.next_ndata = (!self.metrics.is_empty()).then(|| now + self.every);
        for k in 0..self.devices.len() {
            let online = self.devices[k]
                .online_if
                .as_ref()
                .is_none_or(|c| ctx.holds(c));
            self.devices[k].online = online;
            self.devices[k].next = Some(now + self.devices[k].every);
            if online {
                out.push(self.device_message(k, Kind::DBirth, ctx, None));
            }
        }
        out
    }

    /// DBIRTH / DDATA (every metric, or `only` one) / DDEATH of device `k`.
    fn device_message(
        &mut self,
        k: usize,
        kind: Kind,
        ctx: &mut DeviceCtx,
        only: Option<usize>,
    ) -> Out {
        let ts = now_ms();
        let birth = kind == Kind::DBirth;
        let metrics = match kind {
            Kind::DDeath => Vec::new(),
            _ => self.devices[k]
                .metrics
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| only.is_none_or(|o| o == *i))
                .map(|(_, m)| m.encode(ctx, birth, ts))
                .collect(),
        };
        self.sequenced(
            spb::device_topic(&self.group, kind, &self.node, &self.devices[k].id),
            metrics,
            ts,
        )
    }

    fn node_data(&mut self, ctx: &mut DeviceCtx, only: Option<usize>) -> Out {
        let ts = now_ms();
        let metrics = self
            .metrics
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| only.is_none_or(|o| o == *i))
            .map(|(_, m)| m.encode(ctx, false, ts))
            .collect();
        self.sequenced(
            spb::node_topic(&self.group, Kind::NData, &self.node),
            metrics,
            ts,
        )
    }

    fn fire(&mut self, ctx: &mut DeviceCtx, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        if let Some(due) = self.next_ndata
            && due <= now
        {
            self.next_ndata = Some(next_after(due, self.every, now));
            out.push(self.node_data(ctx, None));
        }
        for k in 0..self.devices.len() {
            let Some(due) = self.devices[k].next else {
                continue;
            };
            if due > now {
                continue;
            }
            self.devices[k].next = Some(next_after(due, self.devices[k].every, now));
            let online = self.devices[k]
                .online_if
                .as_ref()
                .is_none_or(|c| ctx.holds(c));
            let kind = match (self.devices[k].online, online) {
                (false, true) => Kind::DBirth,
                (true, false) => Kind::DDeath,
                (true, true) => Kind::DData,
                (false, false) => continue,
            };
            self.devices[k].online = online;
            out.push(self.device_message(k, kind, ctx, None));
        }
        out
    }

    fn on_message(
        &mut self,
        topic: &str,
        payload: &[u8],
        ctx: &mut DeviceCtx,
        now: Instant,
    ) -> Reply {
        let mut reply = Reply::default();
        match Topic::parse(topic) {
            Some(Topic::State { host }) if Some(host) == self.host.as_deref() => {
                let ts = serde_json::from_slice::<Value>(payload)
                    .ok()
                    .and_then(|v| v.get("timestamp")?.as_u64())
                    .unwrap_or(0);
                // An older STATE than the newest seen is stale (3.0, 7.5.1).
                if ts < self.host_ts {
                    return reply;
                }
                self.host_ts = ts;
                match spb::state_online(payload) {
                    Some(true) if !self.born => reply.publish = self.births(ctx, now),
                    Some(false) if self.born => {
                        reply.publish.push(self.death());
                        reply.rejoin = true;
                        self.born = false;
                    }
                    _ => {}
                }
            }
            Some(Topic::Node {
                group,
                kind,
                node,
                device,
            }) if group == self.group
                && node == self.node
                && matches!(kind, Kind::NCmd | Kind::DCmd)
                && self.born =>
            {
                let Ok(cmd) = <sp::Payload as prost::Message>::decode(payload) else {
                    return reply;
                };
                if kind == Kind::NCmd {
                    reply.publish = self.node_command(&cmd, ctx, now);
                } else if let Some(k) = self.devices.iter().position(|d| d.id == device) {
                    reply.publish = self.device_command(k, &cmd, ctx);
                }
            }
            _ => {}
        }
        reply
    }

    fn node_command(&mut self, cmd: &sp::Payload, ctx: &mut DeviceCtx, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        for m in &cmd.metrics {
            let rebirth = m.name.as_deref() == Some(REBIRTH);
            if rebirth {
                if matches!(m.value, Some(sp::Value::BooleanValue(true))) {
                    return self.births(ctx, now);
                }
                continue;
            }
            if let Some(k) = write(&mut self.metrics, m, ctx) {
                out.push(self.node_data(ctx, Some(k)));
            }
        }
        out
    }

    fn device_command(&mut self, k: usize, cmd: &sp::Payload, ctx: &mut DeviceCtx) -> Vec<Out> {
        if !self.devices[k].online {
            return Vec::new();
        }
        let mut out = Vec::new();
        for m in &cmd.metrics {
            if let Some(i) = write(&mut self.devices[k].metrics, m, ctx) {
                out.push(self.device_message(k, Kind::DData, ctx, Some(i)));
            }
        }
        out
    }
}

/// A command's metric written to the one it names (by name or alias) in
/// `metrics`; its index, if it was writable and of the right type.
fn write(metrics: &mut [MetricRt], m: &sp::Metric, ctx: &mut DeviceCtx) -> Option<usize> {
    let k = metrics
        .iter()
        .position(|x| m.name.as_deref() == Some(&x.name) || m.alias == Some(x.alias))?;
    let v = m.value.as_ref()?;
    metrics[k].write(v, ctx).then_some(k)
}

/// The next due time after `due` on its grid, past `now` (missed periods are skipped).
fn next_after(due: Instant, every: Duration, now: Instant) -> Instant {
    let mut next = due + every;
    if next <= now {
        let behind = now.duration_since(due).as_nanos() / every.as_nanos().max(1);
        next = due + every * (behind as u32 + 1);
    }
    next
}

/// What a primary host knows of one edge node.
#[derive(Debug, Default)]
struct NodeSeen {
    born: bool,
    bd_seq: Option<u64>,
    seq: Option<u64>,
    asked: Option<Instant>,
}

/// A virtual primary host application.
pub struct Host {
    id: String,
    groups: Vec<String>,
    rebirth_every: Duration,
    /// The timestamp of this session's STATE birth and death.
    session_ts: u64,
    nodes: HashMap<(String, String), NodeSeen>,
}

impl Host {
    fn state(&self, online: bool) -> Out {
        Out {
            topic: spb::state_topic(&self.id),
            payload: json!({"online": online, "timestamp": self.session_ts})
                .to_string()
                .into_bytes(),
            qos: Qos(1),
            retain: true,
        }
    }

    fn will(&mut self) -> Out {
        self.session_ts = now_ms();
        self.state(false)
    }

    fn on_message(&mut self, topic: &str, payload: &[u8], now: Instant) -> Vec<Out> {
        let (group, kind, node) = match Topic::parse(topic) {
            // Someone's stale death of our id: say we are online (3.0, 7.5.1).
            Some(Topic::State { host }) if host == self.id => {
                return if spb::state_online(payload) == Some(false) {
                    vec![self.state(true)]
                } else {
                    Vec::new()
                };
            }
            Some(Topic::Node {
                group, kind, node, ..
            }) => (group, kind, node),
            _ => return Vec::new(),
        };
        if !self.groups.is_empty() && !self.groups.iter().any(|g| g == group) {
            return Vec::new();
        }
        let key = (group.to_string(), node.to_string());
        if !self.nodes.contains_key(&key) && self.nodes.len() >= MAX_NODES {
            return Vec::new();
        }
        let p = <sp::Payload as prost::Message>::decode(payload).ok();
        let seen = self.nodes.entry(key).or_default();
        let seq = p.as_ref().and_then(|p| p.seq);
        match kind {
            Kind::NBirth => {
                seen.born = true;
                seen.bd_seq = p.as_ref().and_then(spb::bd_seq);
                seen.seq = seq;
                return Vec::new();
            }
            Kind::NDeath => {
                let bd = p.as_ref().and_then(spb::bd_seq);
                if bd.is_some() && bd == seen.bd_seq {
                    seen.born = false;
                    seen.seq = None;
                }
                return Vec::new();
            }
            Kind::NCmd | Kind::DCmd => return Vec::new(),
            Kind::DBirth | Kind::DDeath | Kind::NData | Kind::DData => {}
        }
        let in_order = match (seen.seq, seq) {
            (Some(last), Some(s)) => s == (last % 256 + 1) % 256,
            _ => false,
        };
        if seen.born && in_order {
            seen.seq = seq;
            return Vec::new();
        }
        // No birth, or a gap: ask for a rebirth (at most every `rebirth_every`).
        seen.born = false;
        if seen
            .asked
            .is_some_and(|t| now.duration_since(t) < self.rebirth_every)
        {
            return Vec::new();
        }
        seen.asked = Some(now);
        vec![rebirth_request(group, node)]
    }
}

/// NCMD `Node Control/Rebirth = true` to an edge node.
pub fn rebirth_request(group: &str, node: &str) -> Out {
    Out {
        topic: spb::node_topic(group, Kind::NCmd, node),
        payload: spb::rebirth_payload(now_ms()),
        qos: Qos(0),
        retain: false,
    }
}

#[cfg(test)]
mod tests;
