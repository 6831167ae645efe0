//! `Sparkplug(rule: Seq)`: a Sparkplug B 3.0 session rule holds on the wire
//! for every client, virtual or the user's own (`sparkplug::observe` names
//! the rules). Fails on the first frame that breaks it, with that frame as
//! evidence; a `Rebirth` request not answered by an NBIRTH within `within`
//! fails when the bound runs out.

use serde::{Deserialize, Serialize};

use super::kind::{CheckKind, Decision, Evaluate, Frame, Validation, Window};
use super::spec::VerdictState;
use crate::sparkplug::observe::{Observer, Rule, overdue_rebirths};
use crate::sparkplug::{Kind, Topic};
use crate::time::Dur;

/// A Sparkplug B rule holds for every edge node and host (of `group`, if given).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sparkplug {
    pub rule: Rule,
    /// Only this Sparkplug group's edge nodes (STATE is checked for every host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `Rebirth`: how long a node may take to answer (default 5 s).
    #[serde(default = "five_seconds")]
    pub within: Dur,
}

fn five_seconds() -> Dur {
    Dur::secs(5)
}

impl CheckKind for Sparkplug {
    fn validate(&self, _cx: &Validation<'_>) -> Result<(), String> {
        if let Some(g) = &self.group
            && (g.is_empty() || g.contains(['/', '+', '#']))
        {
            return Err(format!(
                "Sparkplug group \"{g}\": expected a non-empty id without '/', '+' or '#'"
            ));
        }
        if self.rule != Rule::Rebirth && self.within != five_seconds() {
            return Err(format!(
                "`within` bounds a rebirth's answer; rule {:?} has no bound",
                self.rule
            ));
        }
        Ok(())
    }

    fn evaluator(&self) -> Box<dyn Evaluate> {
        Box::new(Eval {
            spec: self.clone(),
            observer: Observer::default(),
            seen: 0,
        })
    }
}

struct Eval {
    spec: Sparkplug,
    observer: Observer,
    /// Messages this rule applies to, so far.
    seen: u64,
}

impl Eval {
    fn applies(&self, topic: &str) -> bool {
        match (Topic::parse(topic), self.spec.rule) {
            (Some(Topic::State { .. }), Rule::State) => true,
            (Some(Topic::State { .. }), _) | (_, Rule::State) => false,
            (Some(Topic::Node { group, kind, .. }), rule) => {
                self.spec.group.as_deref().is_none_or(|g| g == group)
                    && (rule != Rule::Rebirth || kind == Kind::NCmd)
            }
            (None, _) => false,
        }
    }

    fn overdue(&self, now_us: u64, w: &Window) -> Option<Decision> {
        if self.spec.rule != Rule::Rebirth {
            return None;
        }
        let bound = self.spec.within.0.as_micros() as u64;
        let (group, node, asked) =
            overdue_rebirths(&self.observer, self.spec.group.as_deref(), now_us, bound)?;
        Some(Decision::at(
            VerdictState::Failed,
            format!(
                "edge node {group}/{node} was asked for a rebirth at {:.3} s and sent no NBIRTH within {}",
                w.at(asked),
                self.spec.within
            ),
            now_us,
        ))
    }
}

impl Evaluate for Eval {
    fn on_wire(&mut self, f: &Frame<'_>, w: &mut Window) -> Option<Decision> {
        let findings = self.observer.observe(f.ev);
        if f.published && self.applies(f.topic) {
            self.seen += 1;
        }
        for x in findings {
            if x.rule != self.spec.rule || !self.applies(&x.topic) {
                continue;
            }
            let evidence = format!(
                "{} at {:.3} s on {}: {}",
                x.client,
                w.at(x.t_us),
                x.topic,
                x.what
            );
            return f.decide(VerdictState::Failed, evidence);
        }
        self.overdue(f.ev.t_us, w)
    }

    fn tick(&mut self, now_us: u64, w: &Window) -> Option<Decision> {
        self.overdue(now_us, w)
    }

    fn finish(&mut self, now_us: u64, w: &Window) -> Decision {
        if let Some(d) = self.overdue(now_us, w) {
            return d;
        }
        let o = &self.observer;
        let nodes = o
            .nodes
            .keys()
            .filter(|(g, _)| self.spec.group.as_deref().is_none_or(|x| x == g))
            .count();
        let (state, evidence) = match self.spec.rule {
            Rule::Rebirth if o.rebirths_asked == 0 => (
                VerdictState::NotTriggered,
                "no NCMD asked an edge node for a rebirth".to_string(),
            ),
            Rule::Rebirth => (
                VerdictState::Passed,
                format!(
                    "{} rebirth request(s), {} answered by an NBIRTH within {}",
                    o.rebirths_asked, o.rebirths_answered, self.spec.within
                ),
            ),
            Rule::State if self.seen == 0 => (
                VerdictState::NotTriggered,
                "no primary host published STATE".to_string(),
            ),
            Rule::State => (
                VerdictState::Passed,
                format!(
                    "{} STATE message(s) from {} host(s), all retained at QoS 1",
                    self.seen,
                    o.hosts.len()
                ),
            ),
            _ if self.seen == 0 => (
                VerdictState::NotTriggered,
                "no Sparkplug B edge node published".to_string(),
            ),
            rule => (
                VerdictState::Passed,
                format!(
                    "{} message(s) from {nodes} edge node(s): {}",
                    self.seen,
                    rule.describe()
                ),
            ),
        };
        Decision::at(state, evidence, now_us)
    }

    fn progress(&self, _w: &Window) -> String {
        format!(
            "{} message(s) checked for {}",
            self.seen,
            self.spec.rule.describe()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_is_only_for_rebirths_and_groups_are_ids() {
        let devices = Default::default();
        let cx = Validation {
            devices: &devices,
            any_client: true,
            timeline_len: 0,
        };
        let ron = ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
        let check = |text: &str| ron.from_str::<Sparkplug>(text).expect(text).validate(&cx);
        assert!(check("(rule: Rebirth, within: \"2s\")").is_ok());
        assert!(check("(rule: Seq, group: \"plant\")").is_ok());
        assert!(
            check("(rule: Seq, within: \"2s\")")
                .unwrap_err()
                .contains("bounds a rebirth")
        );
        assert!(
            check("(rule: Aliases, group: \"a/b\")")
                .unwrap_err()
                .contains("\"a/b\"")
        );
    }
}
