//! Placeholders in templates: `{i}`, `{id}`, `{seq}`, `{payload}`, …,
//! expanded per device and checked against the fields they may appear in.

use std::collections::HashSet;
use std::path::Path;

use super::error::{ScenarioError, locate_in_device};
use super::*;

/// Expand `{i}` and `{id}` in a template for device `i` (1-based) with client id `id`.
pub fn expand(template: &str, i: u32, id: &str) -> String {
    template.replace("{i}", &i.to_string()).replace("{id}", id)
}

/// The placeholder at the start of `after` (the text just after a `{`): a
/// name (letters, digits, `_`, `%`, starting with a letter or `_`) closed by
/// `}`. None when the brace is literal text, as in JSON.
pub fn placeholder_at(after: &str) -> Option<&str> {
    let end = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '%'))
        .unwrap_or(after.len());
    let key = &after[..end];
    (after[end..].starts_with('}') && is_placeholder_name(key)).then_some(key)
}

/// The placeholder names in a template: `{name}`. Any other brace is literal
/// text (so JSON such as `{"on": true, "n": {seq}}` keeps its braces and
/// fills `{seq}`); `{{` is a literal `{`.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        if let Some(escaped) = after.strip_prefix('{') {
            rest = escaped;
            continue;
        }
        match placeholder_at(after) {
            Some(key) => {
                out.push(key);
                rest = &after[key.len() + 1..];
            }
            None => rest = after,
        }
    }
    out
}

pub fn is_placeholder_name(key: &str) -> bool {
    key.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '%')
}

/// Which placeholders a template field is filled with when it runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Client ids, subscribe filters, will topics, reaction filters: `{i}` and `{id}` only.
    Identity,
    /// The will's payload: rendered once at connect, before any signal is sampled.
    Will,
    /// Published topics and payloads: every built-in, var and signal.
    Full,
    /// A reaction's actions: `Full` plus `{payload}`.
    Reaction,
}

/// Every `{name}` in the device's templates must be something that field is
/// filled with when it runs (see [`Fill`]).
pub(super) fn check_templates(
    d: &DeviceSpec,
    text: &str,
    path: &Path,
) -> Result<(), ScenarioError> {
    // Vars the device's actions set exist from then on.
    let set_vars: HashSet<&str> = d
        .react
        .iter()
        .flat_map(|r| &r.actions)
        .filter_map(|a| match a {
            Action::SetVar(v, _) | Action::SetVarFromPayload(v) => Some(v.as_str()),
            _ => None,
        })
        .collect();
    let check = |template: &str, fill: Fill| -> Result<(), ScenarioError> {
        for key in placeholders(template) {
            let identity = matches!(key, "id" | "i");
            let known = identity
                || (fill != Fill::Identity
                    && (matches!(key, "seq" | "state")
                        || key
                            .strip_prefix("seq%")
                            .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0))
                        || d.vars.contains_key(key)
                        || set_vars.contains(key)))
                || (matches!(fill, Fill::Full | Fill::Reaction) && d.signals.contains_key(key))
                || (fill == Fill::Reaction && key == "payload");
            if known {
                continue;
            }
            let mut names: Vec<String> = vec!["id".into(), "i".into()];
            if fill != Fill::Identity {
                names.extend(["seq", "seq%N", "state"].map(String::from));
                names.extend(d.vars.keys().cloned());
                names.extend(set_vars.iter().map(|v| v.to_string()));
            }
            if matches!(fill, Fill::Full | Fill::Reaction) {
                names.extend(d.signals.keys().cloned());
            }
            if fill == Fill::Reaction {
                names.push("payload".into());
            }
            names.sort();
            names.dedup();
            let (line, col) = locate_in_device(text, &d.id, &format!("{{{key}}}"));
            let only = if fill == Fill::Identity {
                " (this field is filled when the device starts: only {i} and {id})"
            } else if fill == Fill::Will {
                " (the will is written at connect, before signals are sampled)"
            } else {
                ""
            };
            return Err(ScenarioError {
                path: path.to_path_buf(),
                line,
                col,
                message: format!(
                    "unknown placeholder `{{{key}}}` in \"{template}\" (device \"{}\"): expected one of {}{only}; write `{{{{` for a literal brace",
                    d.id,
                    names
                        .iter()
                        .map(|n| format!("{{{n}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        Ok(())
    };
    // Every text a payload renders: Text, and Text generators inside Value/Json.
    let texts = |p: &Payload| -> Vec<String> {
        match p {
            Payload::Text(t) | Payload::Value(Gen::Text(t)) => vec![t.clone()],
            Payload::Value(_) => vec![],
            Payload::SparkplugB { .. } => vec![],
            Payload::Json(fields) => fields
                .values()
                .filter_map(|g| match g {
                    Gen::Text(t) => Some(t.clone()),
                    _ => None,
                })
                .collect(),
        }
    };
    check(&d.id, Fill::Identity)?;
    for s in &d.subscribe {
        check(&s.filter, Fill::Identity)?;
    }
    if let Some(w) = &d.will {
        check(&w.topic, Fill::Identity)?;
        for t in texts(&w.payload) {
            check(&t, Fill::Will)?;
        }
    }
    for p in &d.publish {
        check(&p.topic, Fill::Full)?;
        for t in texts(&p.payload) {
            check(&t, Fill::Full)?;
        }
        for t in [&p.properties.response_topic, &p.properties.correlation]
            .into_iter()
            .flatten()
        {
            check(t, Fill::Full)?;
        }
    }
    for r in &d.react {
        check(&r.on, Fill::Identity)?;
        for a in &r.actions {
            match a {
                Action::SetState(s) => check(s, Fill::Reaction)?,
                Action::Publish { topic, payload, .. } => {
                    check(topic, Fill::Reaction)?;
                    // Generators in a reaction's payload are filled without `{payload}`.
                    for t in texts(payload) {
                        let fill = if matches!(payload, Payload::Text(_)) {
                            Fill::Reaction
                        } else {
                            Fill::Full
                        };
                        check(&t, fill)?;
                    }
                }
                Action::Respond { payload, .. } => {
                    for t in texts(payload) {
                        let fill = if matches!(payload, Payload::Text(_)) {
                            Fill::Reaction
                        } else {
                            Fill::Full
                        };
                        check(&t, fill)?;
                    }
                }
                Action::SetVarFromPayload(_) | Action::SetVar(..) => {}
            }
        }
    }
    Ok(())
}
