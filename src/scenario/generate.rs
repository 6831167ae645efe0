//! Payload generators from a JSON Schema: values a schema accepts, drawn by
//! the scenario's seeded generators (the same seed gives the same payloads).
//! What a schema asks that no generator can follow is named in a warning
//! with its JSON pointer.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Gen, Payload};
use crate::contract::{Warning, escape};

/// Digits after the point of generated numbers (the publish's `decimals`).
pub const DECIMALS: u8 = 2;
/// Nesting followed at most.
const MAX_DEPTH: usize = 16;
/// Generators one payload may have (nested arrays of arrays multiply).
const MAX_NODES: usize = 10_000;
/// Longest generated text (`minLength` past it is a warning).
const MAX_TEXT: usize = 4_096;
/// Numbers generated stay within ±this (a schema's bounds may be ±1e308).
const MAX_ABS: f64 = 1e12;

/// What generating one payload carries along.
struct Cx<'a> {
    warnings: &'a mut Vec<Warning>,
    /// Generators still allowed in this payload.
    budget: usize,
}

/// A payload for a message with this schema (None: any payload).
pub fn payload(schema: Option<&Value>, at: &str, warnings: &mut Vec<Warning>) -> Payload {
    let Some(schema) = schema else {
        return Payload::Text("{id} #{seq}".into());
    };
    let mut cx = Cx {
        warnings,
        budget: MAX_NODES,
    };
    match generator(schema, at, 0, &mut cx) {
        Gen::Object(fields) => Payload::Json(fields),
        g => Payload::Value(g),
    }
}

fn warn(warnings: &mut Vec<Warning>, at: &str, what: impl Into<String>) {
    let what = what.into();
    // Array items repeat their schema's warnings: each once.
    if warnings.len() < 1_000 && !warnings.iter().any(|w| w.pointer == at && w.what == what) {
        warnings.push(Warning {
            pointer: at.to_string(),
            what,
        });
    }
}

/// Keywords a generator follows; any other constraint is named once.
const FOLLOWED: &[&str] = &[
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "format",
    "examples",
    "example",
    "default",
    "oneOf",
    "anyOf",
    "allOf",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "title",
    "description",
    "$schema",
    "$id",
    "additionalProperties",
    "deprecated",
    "readOnly",
    "writeOnly",
    "x-parser-schema-id",
];

fn generator(schema: &Value, at: &str, depth: usize, cx: &mut Cx<'_>) -> Gen {
    let Some(s) = schema.as_object() else {
        return Gen::Null;
    };
    if depth > MAX_DEPTH || cx.budget == 0 {
        warn(
            cx.warnings,
            at,
            "nested deeper than 16 levels, or past 10,000 generated values: generated as null",
        );
        return Gen::Null;
    }
    cx.budget -= 1;
    for k in s.keys() {
        if !FOLLOWED.contains(&k.as_str()) && !k.starts_with("x-") {
            warn(
                cx.warnings,
                &format!("{at}/{}", escape(k)),
                format!(
                    "`{k}` is not followed by the generated payloads (edit the scenario's generator)"
                ),
            );
        }
    }
    if let Some(c) = s.get("const") {
        return constant(c);
    }
    if let Some(Value::Array(values)) = s.get("enum") {
        return match values.as_slice() {
            [one] => constant(one),
            _ if values.iter().all(Value::is_string) => Gen::Choice(
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(|t| t.replace('{', "{{")))
                    .collect(),
            ),
            _ => Gen::OneOf(values.iter().map(constant).collect()),
        };
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        return generator(&all_of(s, all), at, depth + 1, cx);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(alts)) = s.get(key)
            && let Some(first) = alts.first()
        {
            let mut merged = s.clone();
            merged.remove(key);
            if let Some(o) = first.as_object() {
                merged.extend(o.clone());
            }
            return generator(
                &Value::Object(merged),
                &format!("{at}/{key}/0"),
                depth + 1,
                cx,
            );
        }
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => t.clone(),
        // A list of types: the first that is not null.
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null")
            .to_string(),
        _ if s.contains_key("properties") => "object".into(),
        _ if s.contains_key("items") => "array".into(),
        _ => {
            return match examples(s).first() {
                Some(e) => constant(e),
                None => Gen::Text("{id}".into()),
            };
        }
    };
    match ty.as_str() {
        "object" => {
            let mut fields = BTreeMap::new();
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    let here = format!("{at}/properties/{}", escape(k));
                    fields.insert(k.clone(), generator(v, &here, depth + 1, cx));
                }
            }
            Gen::Object(fields)
        }
        "array" => {
            let n = s
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, 16);
            let item = s
                .get("items")
                .cloned()
                .unwrap_or(Value::Object(Default::default()));
            let here = format!("{at}/items");
            Gen::Array(
                (0..n)
                    .map(|_| generator(&item, &here, depth + 1, cx))
                    .collect(),
            )
        }
        "integer" => {
            let (min, max) = bounds(s, 0.0, 100.0, true);
            Gen::Int {
                min: min as i64,
                max: max as i64,
            }
        }
        "number" => {
            let (min, max) = bounds(s, 0.0, 100.0, false);
            if max - min < 1e-9 {
                Gen::Const(min)
            } else {
                Gen::RandomWalk {
                    start: round_in((min + max) / 2.0, min, max),
                    step: ((max - min) / 50.0).max(0.01),
                    min,
                    max,
                }
            }
        }
        "boolean" => Gen::OneOf(vec![Gen::Bool(true), Gen::Bool(false)]),
        "null" => Gen::Null,
        _ => string(s, at, cx.warnings),
    }
}

/// An `allOf` as one schema: its parts' keywords and properties merged, the
/// schema's own keywords over them.
fn all_of(s: &serde_json::Map<String, Value>, all: &[Value]) -> Value {
    let mut merged = serde_json::Map::new();
    let mut props = serde_json::Map::new();
    for part in all {
        if let Some(o) = part.as_object() {
            for (k, v) in o {
                if k == "properties" {
                    if let Some(p) = v.as_object() {
                        props.extend(p.clone());
                    }
                } else {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
    }
    for (k, v) in s {
        if k != "allOf" {
            merged.insert(k.clone(), v.clone());
        }
    }
    if !props.is_empty() {
        merged.insert("properties".into(), Value::Object(props));
    }
    Value::Object(merged)
}

fn examples(s: &serde_json::Map<String, Value>) -> Vec<Value> {
    let mut out: Vec<Value> = s
        .get("examples")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(e) = s.get("example").or_else(|| s.get("default")) {
        out.push(e.clone());
    }
    out
}

fn string(s: &serde_json::Map<String, Value>, at: &str, warnings: &mut Vec<Warning>) -> Gen {
    match s.get("format").and_then(Value::as_str) {
        Some("date-time") => return Gen::Timestamp,
        Some("uuid") => return Gen::Text("00000000-0000-4000-8000-000000000000".into()),
        _ => {}
    }
    let ex: Vec<String> = examples(s)
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if !ex.is_empty() {
        return if ex.len() == 1 {
            Gen::Text(ex[0].replace('{', "{{"))
        } else {
            Gen::Choice(ex.iter().map(|e| e.replace('{', "{{")).collect())
        };
    }
    let mut min = s
        .get("minLength")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(usize::MAX as u64) as usize;
    if min > MAX_TEXT {
        warn(
            warnings,
            &format!("{at}/minLength"),
            format!("minLength {min}: generated texts stop at {MAX_TEXT} characters"),
        );
        min = MAX_TEXT;
    }
    let max = s
        .get("maxLength")
        .and_then(Value::as_u64)
        .map(|m| m as usize);
    // `{id}` is the device's client id; pad or cut a fixed text to the lengths asked.
    match max {
        Some(max) if max < 12 => Gen::Text("x".repeat(min.max(1).min(max))),
        _ if min > 8 => Gen::Text("x".repeat(min)),
        _ => Gen::Text("{id}".into()),
    }
}

/// The range a number must be in: inclusive bounds, pulled inside exclusive
/// ones and onto the generated precision (so rounding stays inside).
fn bounds(s: &serde_json::Map<String, Value>, lo: f64, hi: f64, integer: bool) -> (f64, f64) {
    let step = if integer {
        1.0
    } else {
        10f64.powi(-(DECIMALS as i32))
    };
    let f = |k: &str| s.get(k).and_then(Value::as_f64);
    let mut min = f("minimum");
    let mut max = f("maximum");
    // Draft 6+: exclusiveMinimum is a number.
    if let Some(x) = f("exclusiveMinimum") {
        min = Some(min.map_or(x + step, |m| m.max(x + step)));
    }
    if let Some(x) = f("exclusiveMaximum") {
        max = Some(max.map_or(x - step, |m| m.min(x - step)));
    }
    let (min, max) = match (min, max) {
        (Some(a), Some(b)) => (a, b),
        (Some(a), None) => (a, a + (hi - lo)),
        (None, Some(b)) => (b - (hi - lo), b),
        (None, None) => (lo, hi),
    };
    // Finite and modest: ±1e308 bounds would make the generators' ranges infinite.
    let (min, max) = (min.clamp(-MAX_ABS, MAX_ABS), max.clamp(-MAX_ABS, MAX_ABS));
    let min_r = (min / step).ceil() * step;
    let max_r = (max / step).floor() * step;
    if min_r > max_r {
        (min, min)
    } else {
        (min_r, max_r)
    }
}

fn round_in(x: f64, min: f64, max: f64) -> f64 {
    let p = 10f64.powi(DECIMALS as i32);
    ((x * p).round() / p).clamp(min, max)
}

fn constant(v: &Value) -> Gen {
    match v {
        Value::Null => Gen::Null,
        Value::Bool(b) => Gen::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Gen::Int { min: i, max: i },
            None => Gen::Const(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(t) => Gen::Text(t.replace('{', "{{")),
        Value::Array(a) => Gen::Array(a.iter().map(constant).collect()),
        Value::Object(m) => Gen::Object(m.iter().map(|(k, v)| (k.clone(), constant(v))).collect()),
    }
}
