//! A scenario's rules beyond its schema: ids unique, fleets templated,
//! filters valid, MQTT 5 fields on MQTT 5 devices, timeline entries and
//! checks that refer to what the scenario has. Each error is located.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use super::error::{ScenarioError, locate, locate_in_device};
use super::template::{check_templates, expand};
use super::*;
use crate::fault::Target;

impl Scenario {
    pub(super) fn validate(&self, text: &str, path: &Path) -> Result<(), ScenarioError> {
        let err = |needle: &str, message: String| {
            let (line, col) = locate(text, needle);
            ScenarioError {
                path: path.to_path_buf(),
                line,
                col,
                message,
            }
        };
        let mut seen = HashSet::new();
        for d in &self.devices {
            check_device(d, &mut seen, text, path, &err)?;
        }
        if let Some(auth) = &self.auth {
            auth.check()
                .map_err(|e| err("auth", format!("auth: {e}")))?;
        }
        self.check_expectations(&seen, &err)?;
        for r in &self.decoders {
            if !crate::wire::valid_filter(&r.on) {
                return Err(err(
                    &format!("\"{}\"", r.on),
                    format!("decoder rule: \"{}\" is not a valid topic filter", r.on),
                ));
            }
        }
        self.check_timeline(&seen, &err)
    }

    /// Each timeline entry has one trigger (a time, or a device's state) and
    /// a fault whose target is in this scenario.
    fn check_timeline(
        &self,
        seen: &HashSet<String>,
        err: &dyn Fn(&str, String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        let fleets: HashSet<&str> = self.devices.iter().map(|d| d.id.as_str()).collect();
        for (k, entry) in self.timeline.iter().enumerate() {
            let here = |message: String| {
                let needle = entry
                    .after
                    .as_ref()
                    .map(|a| format!("\"{a}\""))
                    .or_else(|| entry.at.map(|_| "at:".to_string()))
                    .unwrap_or_else(|| "timeline".into());
                err(&needle, format!("timeline entry {}: {message}", k + 1))
            };
            match (&entry.at, &entry.after) {
                (Some(_), Some(_)) => {
                    return Err(here("expected either `at` or `after`, not both".into()));
                }
                (None, None) => {
                    return Err(here(
                        "expected `at: \"30s\"` or `after: \"<client id> connected\"`".into(),
                    ));
                }
                (None, Some(a)) => match entry.trigger() {
                    Some((id, _)) if seen.contains(&id) => {}
                    Some((id, _)) => {
                        return Err(here(format!(
                            "`after` names \"{id}\", which is not a device of this scenario"
                        )));
                    }
                    None => {
                        return Err(here(format!(
                            "`after: \"{a}\"`: expected \"<client id> connected\", \"<client id> offline\" or \"<client id> reconnecting\""
                        )));
                    }
                },
                (Some(_), None) => {}
            }
            match entry.fault.kind().target() {
                Some(Target::Device(d)) if !seen.contains(d) => {
                    return Err(here(format!("no device \"{d}\" in this scenario")));
                }
                Some(Target::Fleet(f)) if !fleets.contains(f.as_str()) => {
                    return Err(here(format!(
                        "no fleet \"{f}\" in this scenario (use the device entry's id, e.g. \"drone-{{i}}\")"
                    )));
                }
                _ => {}
            }
            let cx = crate::fault::FaultValidation { devices: seen };
            entry.fault.kind().validate(&cx).map_err(here)?;
        }
        Ok(())
    }

    /// Names are unique, and each check passes its kind's validation
    /// (filters valid, clients known, timeline entries exist, bounds make
    /// sense). Without devices, any client id is the user's own.
    fn check_expectations(
        &self,
        devices: &HashSet<String>,
        err: &dyn Fn(&str, String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        let cx = crate::checks::Validation {
            devices,
            any_client: self.devices.is_empty(),
            timeline_len: self.timeline.len(),
        };
        let mut names = HashSet::new();
        for e in &self.expect {
            let here = |m: String| {
                err(
                    &format!("\"{}\"", e.name),
                    format!("expectation \"{}\": {m}", e.name),
                )
            };
            if e.name.trim().is_empty() {
                return Err(err("expect", "an expectation needs a name".into()));
            }
            if !names.insert(e.name.as_str()) {
                return Err(here("the name is used twice".into()));
            }
            e.check.validate(&cx).map_err(here)?;
        }
        Ok(())
    }
}

/// States named by transitions, `SetState` and `StateIs` must be states of
/// the device's state machine (its initial state and its transitions' ends).
/// A templated `SetState("{payload}")` is checked when it runs, not here.
fn check_states(d: &DeviceSpec, text: &str, path: &Path) -> Result<(), ScenarioError> {
    let mut known: Vec<&str> = Vec::new();
    if let Some(sm) = &d.states {
        known.push(&sm.initial);
        for t in &sm.transitions {
            known.extend([t.from.as_str(), t.to.as_str()]);
        }
    }
    let set_literal: Vec<&str> = d
        .react
        .iter()
        .flat_map(|r| &r.actions)
        .filter_map(|a| match a {
            Action::SetState(s) if placeholders(s).is_empty() => Some(s.as_str()),
            _ => None,
        })
        .collect();
    let unknown = |state: &str, what: &str| {
        let (line, col) = locate_in_device(text, &d.id, &format!("{what}(\"{state}\")"));
        let (line, col) = if (line, col) == (1, 1) {
            locate_in_device(text, &d.id, &format!("\"{state}\""))
        } else {
            (line, col)
        };
        let list = if known.is_empty() {
            format!("device \"{}\" has no `states`", d.id)
        } else {
            format!("its states are {}", known.join(", "))
        };
        ScenarioError {
            path: path.to_path_buf(),
            line,
            col,
            message: format!(
                "{what}: unknown state \"{state}\" (device \"{}\"; {list})",
                d.id
            ),
        }
    };
    // A state a transition leaves must be one the device can be in.
    if let Some(sm) = &d.states {
        for t in &sm.transitions {
            let entered = t.from == sm.initial
                || sm.transitions.iter().any(|u| u.to == t.from)
                || set_literal.contains(&t.from.as_str());
            if !entered {
                return Err(unknown(&t.from, "transition `from`"));
            }
        }
    }
    for s in &set_literal {
        if !known.contains(s) {
            return Err(unknown(s, "SetState"));
        }
    }
    let mut conds: Vec<&Cond> = d.publish.iter().filter_map(|p| p.when.as_ref()).collect();
    conds.retain(|c| matches!(c, Cond::StateIs(_)));
    for c in conds {
        if let Cond::StateIs(s) = c
            && !known.contains(&s.as_str())
            && !set_literal.contains(&s.as_str())
        {
            return Err(unknown(s, "StateIs"));
        }
    }
    Ok(())
}

/// One device entry: its ids unique (`seen` gathers them), its timings
/// sensible, MQTT 5 fields only on MQTT 5 devices, its topics and filters
/// valid, its templates and state machine sound.
fn check_device(
    d: &DeviceSpec,
    seen: &mut HashSet<String>,
    text: &str,
    path: &Path,
    err: &dyn Fn(&str, String) -> ScenarioError,
) -> Result<(), ScenarioError> {
    let quoted = format!("\"{}\"", d.id);
    if d.id.trim().is_empty() {
        return Err(err("id", "expected a non-empty client id".into()));
    }
    if d.count == 0 {
        return Err(err(
            &quoted,
            format!("device \"{}\": count must be at least 1", d.id),
        ));
    }
    if d.count > 1 && !d.id.contains("{i}") {
        return Err(err(
            &quoted,
            format!(
                "fleet \"{}\" of {} devices: expected `{{i}}` in the id so each client id is unique",
                d.id, d.count
            ),
        ));
    }
    for id in d.client_ids() {
        if !seen.insert(id.clone()) {
            return Err(err(&quoted, format!("client id \"{id}\" is used twice")));
        }
    }
    if d.tick.0 < Duration::from_millis(10) {
        return Err(err(
            &quoted,
            format!("device \"{}\": tick must be at least 10ms", d.id),
        ));
    }
    if !d.keep_alive.0.is_zero() && d.keep_alive.0 < Duration::from_secs(1) {
        return Err(err(
            &quoted,
            format!(
                "device \"{}\": keep_alive must be \"0s\" (no keepalive) or at least 1s: MQTT counts it in whole seconds",
                d.id
            ),
        ));
    }
    let v5_only = |what: &str, needle: &str| {
        err(
            needle,
            format!(
                "device \"{}\": {what} is MQTT 5; expected `protocol: V5` on this device",
                d.id
            ),
        )
    };
    if d.protocol != Protocol::V5 {
        if d.session_expiry.is_some() {
            return Err(v5_only("session_expiry", "session_expiry"));
        }
        if !d.user_properties.is_empty() {
            return Err(v5_only("user_properties", "user_properties"));
        }
        if d.publish.iter().any(|p| !p.properties.is_empty()) {
            return Err(v5_only("properties", "properties"));
        }
        if d.react
            .iter()
            .flat_map(|r| &r.actions)
            .any(|a| matches!(a, Action::Respond { .. }))
        {
            return Err(v5_only("Respond (request/response)", "Respond"));
        }
    }
    for p in &d.publish {
        if p.properties.topic_alias == Some(0) {
            return Err(err(
                "topic_alias",
                "topic_alias: expected 1 or more (0 is not a valid alias)".into(),
            ));
        }
        let probe = expand(&p.topic, 1, "x");
        if probe.contains(['+', '#']) || probe.is_empty() {
            return Err(err(
                &format!("\"{}\"", p.topic),
                format!(
                    "publish topic \"{}\": expected a topic without wildcards",
                    p.topic
                ),
            ));
        }
        if let Some(every) = p.every
            && every.0 < Duration::from_millis(1)
        {
            return Err(err(
                &format!("\"{}\"", p.topic),
                format!("publish to \"{}\": `every` must be at least 1ms", p.topic),
            ));
        }
    }
    for s in &d.subscribe {
        if !crate::wire::valid_filter(&expand(&s.filter, 1, "x")) {
            return Err(err(
                &format!("\"{}\"", s.filter),
                format!("subscription \"{}\": not a valid topic filter", s.filter),
            ));
        }
    }
    if let Some(role) = &d.sparkplug {
        if d.will.is_some() {
            return Err(err(
                "will",
                format!(
                    "device \"{}\": a Sparkplug device's will is its NDEATH or STATE death, sent by the workbench: remove `will`",
                    d.id
                ),
            ));
        }
        role.kind()
            .validate(&d.id, d.count > 1)
            .map_err(|(needle, message)| err(&needle, format!("device \"{}\": {message}", d.id)))?;
    }
    check_templates(d, text, path)?;
    check_states(d, text, path)?;
    if let Some(sm) = &d.states {
        for t in &sm.transitions {
            if t.after.0.is_zero() {
                return Err(err(
                    &format!("\"{}\"", t.from),
                    "transition `after` must be more than 0s".into(),
                ));
            }
        }
    }
    Ok(())
}
