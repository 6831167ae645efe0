//! Message bodies and the value generators that fill them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Dur;

/// A message body.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum Payload {
    /// Text with `{id}`, `{i}`, `{seq}`, `{state}` and `{var}` placeholders.
    Text(String),
    /// One generated value, as text (numbers) or JSON (objects).
    Value(Gen),
    /// A JSON object whose fields are generated.
    Json(BTreeMap<String, Gen>),
    /// A Sparkplug B payload (protobuf): metrics as (name, type, generator),
    /// aliased 1, 2, … in order. `birth: true` (NBIRTH/DBIRTH) names them
    /// and starts the sequence number at 0; data messages send aliases only.
    SparkplugB {
        metrics: Vec<(String, SpType, Gen)>,
        #[serde(default)]
        birth: bool,
    },
}

/// A Sparkplug B metric data type.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum SpType {
    Int32,
    Int64,
    Float,
    Double,
    Boolean,
    String,
}

impl SpType {
    /// Its number in the Sparkplug B specification.
    pub fn code(self) -> u32 {
        match self {
            SpType::Int32 => 3,
            SpType::Int64 => 4,
            SpType::Float => 9,
            SpType::Double => 10,
            SpType::Boolean => 11,
            SpType::String => 12,
        }
    }
}

/// A value generator. Seeded per device: the same seed gives the same values.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum Gen {
    Const(f64),
    Text(String),
    Bool(bool),
    /// Uniformly random in [min, max].
    Uniform {
        min: f64,
        max: f64,
    },
    /// Random walk: each sample moves by at most `step`, clamped to [min, max].
    RandomWalk {
        start: f64,
        step: f64,
        min: f64,
        max: f64,
    },
    /// center + amplitude·sin(2π·t/period), t counted in samples × period of the publish.
    Sine {
        center: f64,
        amplitude: f64,
        period: Dur,
    },
    /// start, start+step, start+2·step, …
    Sequence {
        start: f64,
        step: f64,
    },
    /// A random pick from the list.
    Choice(Vec<String>),
    /// Moves toward the named var by `rate` of the gap per sample, plus ±noise.
    Follow {
        target: String,
        start: f64,
        rate: f64,
        noise: f64,
    },
    /// The named var, signal, or "state".
    Var(String),
    /// Position along waypoints (lat, lon, alt_m) at `speed_mps`, looping;
    /// a JSON object {lat, lon, alt, heading, leg}. Fleets start at staggered legs.
    Waypoints {
        points: Vec<(f64, f64, f64)>,
        speed_mps: f64,
    },
    /// A random whole number in [min, max].
    Int {
        min: i64,
        max: i64,
    },
    /// The time of the sample as RFC 3339 text (`2026-12-04T21:30:00.125Z`).
    Timestamp,
    /// A random pick among generators (`OneOf([Const(1), Const(2)])`, `OneOf([Bool(true), Bool(false)])`).
    OneOf(Vec<Gen>),
    /// A JSON object of generated fields (nested in a `Json` payload).
    Object(BTreeMap<String, Gen>),
    /// A JSON array of generated items.
    Array(Vec<Gen>),
    /// JSON `null`.
    Null,
}

impl Gen {
    /// Its numeric parameters, by name, for editing live.
    pub fn params_mut(&mut self) -> Vec<(&'static str, &mut f64)> {
        match self {
            Gen::Const(x) => vec![("value", x)],
            Gen::Uniform { min, max } => vec![("min", min), ("max", max)],
            Gen::RandomWalk {
                start,
                step,
                min,
                max,
            } => vec![("start", start), ("step", step), ("min", min), ("max", max)],
            Gen::Sine {
                center, amplitude, ..
            } => vec![("center", center), ("amplitude", amplitude)],
            Gen::Sequence { start, step } => vec![("start", start), ("step", step)],
            Gen::Follow {
                start, rate, noise, ..
            } => vec![("start", start), ("rate", rate), ("noise", noise)],
            Gen::Waypoints { speed_mps, .. } => vec![("speed m/s", speed_mps)],
            Gen::Text(_)
            | Gen::Bool(_)
            | Gen::Choice(_)
            | Gen::Var(_)
            | Gen::Int { .. }
            | Gen::Timestamp
            | Gen::OneOf(_)
            | Gen::Object(_)
            | Gen::Array(_)
            | Gen::Null => vec![],
        }
    }
}

impl Payload {
    /// Its generators by field name ("" for a single value), for editing live.
    pub fn generators_mut(&mut self) -> Vec<(String, &mut Gen)> {
        match self {
            Payload::Text(_) => vec![],
            Payload::Value(g) => vec![(String::new(), g)],
            Payload::Json(fields) => fields.iter_mut().map(|(k, g)| (k.clone(), g)).collect(),
            Payload::SparkplugB { metrics, .. } => {
                metrics.iter_mut().map(|(k, _, g)| (k.clone(), g)).collect()
            }
        }
    }
}
