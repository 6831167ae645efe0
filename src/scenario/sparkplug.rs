//! A device's Sparkplug B role: `sparkplug: EdgeNode(…)` or
//! `sparkplug: PrimaryHost(…)`. The workbench does the session rules for it
//! (`sim::sparkplug`): births, deaths, `bdSeq`, `seq`, rebirth, STATE.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Cond, Gen, SpType};
use crate::time::Dur;

crate::kinds_enum! {
    dispatch Role;
    /// Written as struct variants: `EdgeNode(group: "plant", …)`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum SparkplugRole {
    /// A Sparkplug B edge node with its devices.
    EdgeNode(EdgeNode),
    /// A primary host application: STATE birth/death, rebirth requests.
    PrimaryHost(PrimaryHost),
    }
}

/// What each role checks of itself.
pub trait Role {
    /// Its rules; `Err` is (text to point at, message).
    fn validate(&self, client: &str, fleet: bool) -> Result<(), (String, String)>;
}

/// An edge node: NBIRTH/NDEATH with the session's `bdSeq`, NDATA every
/// `every`, its devices' DBIRTH/DDATA/DDEATH, rebirth on NCMD
/// `Node Control/Rebirth`, writes to `writable` metrics from NCMD/DCMD.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EdgeNode {
    pub group: String,
    /// Its edge node id (default: the device's client id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Wait for this primary host's STATE `online: true` before the BIRTH;
    /// when it goes offline, publish NDEATH, disconnect and wait again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_host: Option<String>,
    /// NDATA period (default 5 s).
    #[serde(default = "five_seconds")]
    pub every: Dur,
    /// The node's own metrics (besides `bdSeq` and `Node Control/Rebirth`).
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub devices: Vec<SpDevice>,
}

/// A device behind an edge node.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpDevice {
    pub id: String,
    /// DDATA period (default 1 s).
    #[serde(default = "one_second")]
    pub every: Dur,
    pub metrics: Vec<Metric>,
    /// Online while this holds (DBIRTH when it starts to, DDEATH when it stops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<Cond>,
}

/// A metric: name, data type, generator; NCMD/DCMD may write it when `writable`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    pub name: String,
    #[serde(rename = "type")]
    pub datatype: SpType,
    pub value: Gen,
    #[serde(default)]
    pub writable: bool,
    /// Engineering units, sent in the BIRTH's property set (`engUnit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
}

/// A primary host application (Sparkplug B 3.0, 7.5 and 9).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrimaryHost {
    /// Its host id (STATE topic `spBv1.0/STATE/<id>`; default: the client id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Groups it watches (default: all).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Ask a node for a rebirth at most this often (default 5 s).
    #[serde(default = "five_seconds")]
    pub rebirth_every: Dur,
}

fn five_seconds() -> Dur {
    Dur::secs(5)
}

fn one_second() -> Dur {
    Dur::secs(1)
}

/// Metric names the workbench sends itself on every edge node.
pub const BUILTIN_METRICS: [&str; 2] = ["bdSeq", "Node Control/Rebirth"];

/// A Sparkplug id (group, edge node, device, host): non-empty, no `/`, `+`, `#`.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '+', '#'])
}

fn bad_id(what: &str, v: &str) -> Result<(), (String, String)> {
    Err((
        format!("\"{v}\""),
        format!("Sparkplug {what} \"{v}\": expected a non-empty id without '/', '+' or '#'"),
    ))
}

impl Role for EdgeNode {
    fn validate(&self, client: &str, fleet: bool) -> Result<(), (String, String)> {
        let e = self;
        if !valid_id(&e.group) {
            return bad_id("group", &e.group);
        }
        if let Some(n) = &e.node {
            if fleet && !n.contains("{i}") {
                return Err((
                    format!("\"{n}\""),
                    format!(
                        "edge node id \"{n}\" of a fleet: expected `{{i}}` in it so each node is unique"
                    ),
                ));
            }
            if !valid_id(&super::expand(n, 1, client)) {
                return bad_id("edge node id", n);
            }
        }
        if let Some(h) = &e.primary_host
            && !valid_id(h)
        {
            return bad_id("primary host id", h);
        }
        if e.every.0 < Duration::from_millis(10) {
            return Err((
                "every".into(),
                "edge node `every` must be at least 10ms".into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for d in &e.devices {
            if !valid_id(&d.id) {
                return bad_id("device id", &d.id);
            }
            if !ids.insert(d.id.as_str()) {
                return Err((
                    format!("\"{}\"", d.id),
                    format!("Sparkplug device \"{}\" is listed twice", d.id),
                ));
            }
            if d.every.0 < Duration::from_millis(10) {
                return Err((
                    format!("\"{}\"", d.id),
                    format!(
                        "Sparkplug device \"{}\": `every` must be at least 10ms",
                        d.id
                    ),
                ));
            }
            unique_metrics(&d.metrics, false)?;
        }
        unique_metrics(&e.metrics, true)
    }
}

impl Role for PrimaryHost {
    fn validate(&self, _client: &str, _fleet: bool) -> Result<(), (String, String)> {
        if let Some(id) = &self.id
            && !valid_id(id)
        {
            return bad_id("host id", id);
        }
        if let Some(g) = self.groups.iter().find(|g| !valid_id(g)) {
            return bad_id("group", g);
        }
        Ok(())
    }
}

fn unique_metrics(metrics: &[Metric], node: bool) -> Result<(), (String, String)> {
    let mut names = std::collections::HashSet::new();
    for m in metrics {
        if node && BUILTIN_METRICS.contains(&m.name.as_str()) {
            return Err((
                format!("\"{}\"", m.name),
                format!(
                    "metric \"{}\": the workbench sends it on every edge node itself",
                    m.name
                ),
            ));
        }
        if m.name.is_empty() || !names.insert(m.name.as_str()) {
            return Err((
                format!("\"{}\"", m.name),
                format!("metric \"{}\": expected a unique, non-empty name", m.name),
            ));
        }
    }
    Ok(())
}
