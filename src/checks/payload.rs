//! Predicates on a payload (`payload: Json(field: "t", above: 8.0)`), and the
//! compiled regexes a run evaluates them with.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A predicate on a payload.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum PayloadCheck {
    Equals(String),
    Contains(String),
    /// A regular expression (Rust `regex` syntax) found in the text.
    Regex(String),
    /// A field of the payload as JSON (dots for nested fields: "pos.lat"),
    /// or, for a payload that is not JSON, of what the topic's decoder
    /// yields: Sparkplug B metrics by name (`metrics.Temperature.value`),
    /// CBOR, MessagePack, Protobuf.
    Json {
        field: String,
        /// The field's text (strings without quotes, numbers as written).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        equals: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        above: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        below: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outside: Option<(f64, f64)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inside: Option<(f64, f64)>,
    },
}

impl PayloadCheck {
    /// A regex that does not compile is an error in the scenario.
    pub(super) fn validate(&self) -> Result<(), String> {
        match self {
            PayloadCheck::Regex(r) => regex::Regex::new(r)
                .map(|_| ())
                .map_err(|x| format!("Regex(\"{r}\"): {x}")),
            _ => Ok(()),
        }
    }
}

/// The regexes of a run's payload predicates, compiled once.
#[derive(Default)]
pub(super) struct Payloads {
    regexes: HashMap<String, Option<regex::Regex>>,
}

impl Payloads {
    pub(super) fn compile(&mut self, check: &PayloadCheck) {
        if let PayloadCheck::Regex(r) = check {
            self.regexes.insert(r.clone(), regex::Regex::new(r).ok());
        }
    }

    /// `payload` passes `check` (no check: any payload).
    pub(super) fn matches(&self, check: &Option<PayloadCheck>, payload: &[u8]) -> bool {
        self.matches_decoded(check, payload, || None)
    }

    /// [`Payloads::matches`], with `decoded` giving the payload as its
    /// topic's decoder reads it (asked only when a `Json` predicate meets a
    /// payload that is not JSON).
    pub(super) fn matches_decoded(
        &self,
        check: &Option<PayloadCheck>,
        payload: &[u8],
        decoded: impl FnOnce() -> Option<serde_json::Value>,
    ) -> bool {
        let Some(check) = check else {
            return true;
        };
        let t = String::from_utf8_lossy(payload);
        match check {
            PayloadCheck::Equals(s) => t == *s,
            PayloadCheck::Contains(s) => t.contains(s.as_str()),
            PayloadCheck::Regex(r) => self
                .regexes
                .get(r)
                .and_then(|r| r.as_ref())
                .is_some_and(|r| r.is_match(&t)),
            PayloadCheck::Json {
                field,
                equals,
                above,
                below,
                outside,
                inside,
            } => {
                let Some(v) = serde_json::from_slice::<serde_json::Value>(payload)
                    .ok()
                    .or_else(decoded)
                else {
                    return false;
                };
                let Some(f) = json_field(&v, field) else {
                    return false;
                };
                let as_text = match f {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let x = f.as_f64();
                equals.as_ref().is_none_or(|e| *e == as_text)
                    && above.is_none_or(|a| x.is_some_and(|x| x > a))
                    && below.is_none_or(|b| x.is_some_and(|x| x < b))
                    && outside.is_none_or(|(lo, hi)| x.is_some_and(|x| x < lo || x > hi))
                    && inside.is_none_or(|(lo, hi)| x.is_some_and(|x| (lo..=hi).contains(&x)))
            }
        }
    }
}

/// The value at a dotted path. Keys may hold dots themselves (Sparkplug
/// metric names such as `Node Control/Rebirth` or `motor.rpm`): the
/// longest key that exists wins at each level.
fn json_field<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    fn find<'a>(v: &'a serde_json::Value, parts: &[&str]) -> Option<&'a serde_json::Value> {
        if parts.is_empty() {
            return Some(v);
        }
        if let Some(a) = v.as_array() {
            let i: usize = parts[0].parse().ok()?;
            return find(a.get(i)?, &parts[1..]);
        }
        let obj = v.as_object()?;
        (1..=parts.len()).rev().find_map(|n| {
            let next = obj.get(&parts[..n].join("."))?;
            find(next, &parts[n..])
        })
    }
    find(v, &path.split('.').collect::<Vec<_>>())
}

/// One payload predicate, compiled, for code outside the checks (the
/// capture database's payload search uses the checks' own language).
pub struct PayloadMatcher {
    check: Option<PayloadCheck>,
    payloads: Payloads,
}

impl PayloadMatcher {
    /// Err: the regex does not compile (the message says where).
    pub fn new(check: PayloadCheck) -> Result<PayloadMatcher, String> {
        check.validate()?;
        let mut payloads = Payloads::default();
        payloads.compile(&check);
        Ok(PayloadMatcher {
            check: Some(check),
            payloads,
        })
    }

    pub fn matches(&self, payload: &[u8]) -> bool {
        self.payloads.matches(&self.check, payload)
    }
}
