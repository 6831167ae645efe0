//! Expectations evaluated live against the wire: every frame the tap
//! records (virtual devices and the user's own clients alike) goes through
//! [`Checks::on_wire`] before the capture stores it; faults through
//! [`Checks::on_fault`]; time through [`Checks::tick`]; the end of a run
//! through [`Checks::finish`]. Each expectation keeps a [`Verdict`] with the
//! evidence (the frame's sequence number, its time, the value).
//!
//! Each check kind is one file here that owns its spec (the fields a
//! scenario writes), its validation and its evaluation ([`CheckKind`],
//! [`Evaluate`]), plus one line in the `Check` enum below. This file holds what
//! they share: windows that open on an anchor, deliveries matched to their
//! publish, and the verdicts.
//!
//! Messages are matched to their deliveries by (topic, payload): give
//! messages unique payloads (`{seq}`) for the exactly-once, at-least-once,
//! ordering and latency checks. Every index is bounded.

mod at_least_once;
mod conforms;
mod count;
mod exactly_once;
mod kind;
mod latency;
mod message;
mod ordered;
mod payload;
mod queued_delivered;
mod session_present;
mod sparkplug;
mod spec;
mod will;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

pub use at_least_once::AtLeastOnce;
pub use conforms::Conforms;
pub use count::Count;
pub use exactly_once::ExactlyOnce;
pub use kind::{CheckKind, Decision, Evaluate, Frame, Key, Origin, Validation, Window};
pub use latency::Latency;
pub use message::Message;
pub use ordered::Ordered;
pub use payload::{PayloadCheck, PayloadMatcher};
pub use queued_delivered::QueuedDelivered;
pub use session_present::SessionPresent;
pub use sparkplug::Sparkplug;
pub use spec::{Anchor, Expectation, Verdict, VerdictState};
pub use will::{DisconnectKind, Will};

use crate::wire::{Direction, Injected, PacketKind, WireEvent, topic_matches};
use payload::Payloads;

/// Messages remembered for matching deliveries to their publish.
const MAX_ORIGINS: usize = 200_000;
/// Entries per expectation's own index (pending messages, samples, pairs).
pub(crate) const MAX_ENTRIES: usize = 1_000_000;

crate::kinds_enum! {
    dispatch CheckKind;
    /// What an expectation checks, one kind per file here. Filters (`on`)
    /// are MQTT topic filters; "published" means a PUBLISH a client sent
    /// (not one a fault dropped or the access rules refused), "delivered"
    /// one the broker sent a subscriber. Scenario files write a kind's
    /// fields inside its name: `Count(on: "t/#", at_least: 3)`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Check {
    /// A message published on `on` (matching `payload`) within `within` after `after`.
    Message(Message),
    /// How many messages are published on `on` from `after` on.
    Count(Count),
    /// A client's will is (or is not) delivered after its connection ends.
    Will(Will),
    /// Every reconnect of a client with a persistent session finds its session.
    SessionPresent(SessionPresent),
    /// What was queued for a client while it was offline reaches it.
    QueuedDelivered(QueuedDelivered),
    /// No subscriber receives a QoS 2 message twice.
    ExactlyOnce(ExactlyOnce),
    /// Every QoS 1/2 message is delivered at least once.
    AtLeastOnce(AtLeastOnce),
    /// Publish → delivery latency at a percentile is under a bound.
    Latency(Latency),
    /// Each subscriber receives each publisher's messages in order.
    Ordered(Ordered),
    /// Messages on an AsyncAPI document's channels conform to their schemas and bindings.
    Conforms(Conforms),
    /// A Sparkplug B 3.0 session rule holds for every edge node and host on the wire.
    Sparkplug(Sparkplug),
    }
}

impl Check {
    /// When its window opens, for the checks that have a window.
    pub fn after(&self) -> Option<&Anchor> {
        self.kind().after()
    }

    /// Validate against a scenario: the kind's own rules, then its payload
    /// predicates (a regex that does not compile). `Err` is the message
    /// shown after `expectation "name": `.
    pub fn validate(&self, cx: &Validation<'_>) -> Result<(), String> {
        self.kind().validate(cx)?;
        for p in self.kind().payload_checks() {
            p.validate()?;
        }
        Ok(())
    }
}

/// One expectation and what evaluating it needs.
struct Item {
    verdict: Verdict,
    after: Option<Anchor>,
    window: Window,
    eval: Box<dyn Evaluate>,
}

impl Item {
    fn decide(&mut self, d: Decision) {
        if self.verdict.state == VerdictState::Pending {
            self.verdict.state = d.state;
            self.verdict.evidence = d.evidence;
            self.verdict.seq = d.seq;
            self.verdict.t_us = d.t_us;
        }
    }
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.verdicts()).finish()
    }
}

/// The expectations of one run.
pub struct Checks {
    items: Vec<Item>,
    start_us: u64,
    origins: HashMap<Key, Origin>,
    origin_order: VecDeque<Key>,
    next_id: u64,
    /// (publisher, topic) → messages published so far.
    stream_len: HashMap<(Arc<str>, Arc<str>), u64>,
    needs_origins: bool,
    payloads: Payloads,
    /// The topics' decoders (and the Sparkplug aliases their BIRTHs name),
    /// when a check has a `Json` predicate: it reads decoded payloads too.
    decoders: Option<crate::codec::Decoders>,
    finished: bool,
}

impl Checks {
    pub fn new(expectations: &[Expectation], start_us: u64) -> Checks {
        let mut payloads = Payloads::default();
        let items: Vec<Item> = expectations
            .iter()
            .map(|e| {
                let kind = e.check.kind();
                for p in kind.payload_checks() {
                    payloads.compile(p);
                }
                Item {
                    verdict: Verdict {
                        name: e.name.clone(),
                        state: VerdictState::Pending,
                        evidence: String::new(),
                        seq: None,
                        t_us: None,
                    },
                    after: kind.after().cloned(),
                    window: Window {
                        opened_us: match kind.after() {
                            None | Some(Anchor::Start) => Some(start_us),
                            Some(_) => None,
                        },
                        start_us,
                    },
                    eval: kind.evaluator(),
                }
            })
            .collect();
        let needs_origins = expectations.iter().any(|e| e.check.kind().needs_origins());
        let json = |p: &PayloadCheck| matches!(p, PayloadCheck::Json { .. });
        let needs_decoding = expectations.iter().any(|e| {
            e.check.kind().payload_checks().into_iter().any(json)
                || matches!(e.check.after(), Some(Anchor::Message { payload: Some(p), .. }) if json(p))
        });
        Checks {
            items,
            start_us,
            origins: HashMap::new(),
            origin_order: VecDeque::new(),
            next_id: 0,
            stream_len: HashMap::new(),
            needs_origins,
            payloads,
            decoders: needs_decoding.then(crate::codec::Decoders::default),
            finished: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The scenario's decoder rules (`decoders: [(on, codec)]`), for `Json`
    /// predicates on payloads that are not JSON; Sparkplug B under
    /// `spBv1.0/` without any.
    pub fn set_decoders(&mut self, rules: &[crate::codec::DecoderRule]) {
        if let Some(d) = &mut self.decoders {
            d.set_rules(rules);
        }
    }

    pub fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.items.iter().map(|i| &i.verdict)
    }

    /// Each verdict with, while it is pending, what has been seen so far.
    pub fn with_progress(&self) -> impl Iterator<Item = (&Verdict, String)> {
        self.items.iter().map(|i| {
            let note = if i.verdict.state == VerdictState::Pending {
                i.eval.progress(&i.window)
            } else {
                String::new()
            };
            (&i.verdict, note)
        })
    }

    /// Every verdict is final (nothing pending).
    pub fn settled(&self) -> bool {
        self.items
            .iter()
            .all(|i| i.verdict.state != VerdictState::Pending)
    }

    pub fn failed(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.verdict.state == VerdictState::Failed)
            .count()
    }

    /// A fault fired (`timeline`: its entry index, 0-based, if the timeline fired it).
    pub fn on_fault(&mut self, t_us: u64, timeline: Option<usize>) {
        let Some(k) = timeline else {
            return;
        };
        for item in &mut self.items {
            if let Some(Anchor::Fault(n)) = &item.after
                && *n == k + 1
                && item.window.opened_us.is_none()
            {
                item.window.opened_us = Some(t_us);
            }
        }
    }

    /// Where a published or delivered message came from, remembered for
    /// matching deliveries to their publish (bounded: the oldest go first).
    fn origin(&mut self, ev: &WireEvent, key: &Key, published: bool) -> Option<Origin> {
        if published {
            let n = self
                .stream_len
                .entry((ev.client_id.clone(), key.0.clone()))
                .or_insert(0);
            *n += 1;
            self.next_id += 1;
            let o = Origin {
                publisher: ev.client_id.clone(),
                t_us: ev.t_us,
                qos: ev.qos,
                id: self.next_id,
                index: *n,
            };
            if self.origins.insert(key.clone(), o.clone()).is_none() {
                self.origin_order.push_back(key.clone());
                if self.origin_order.len() > MAX_ORIGINS
                    && let Some(old) = self.origin_order.pop_front()
                {
                    self.origins.remove(&old);
                }
            }
            Some(o)
        } else {
            self.origins.get(key).cloned()
        }
    }

    /// Feed one wire event (before the capture stores it as number `seq`).
    pub fn on_wire(&mut self, ev: &WireEvent, seq: u64) {
        if self.finished {
            return;
        }
        let lost = matches!(ev.injected, Some(Injected::Dropped | Injected::Denied));
        let is_publish = ev.kind == PacketKind::Publish && !lost;
        let published = is_publish && ev.dir == Direction::ClientToBroker;
        let delivered = is_publish && ev.dir == Direction::BrokerToClient;
        let topic: Arc<str> = ev.topic.clone().unwrap_or_else(|| Arc::from(""));
        let payload: Bytes = ev.payload.clone().unwrap_or_default();
        let key: Key = (topic.clone(), payload.clone());
        let origin = if self.needs_origins && (published || delivered) {
            self.origin(ev, &key, published)
        } else {
            None
        };
        // Sparkplug DATA names its metrics by the aliases its BIRTH gave.
        if published && let Some(d) = &mut self.decoders {
            d.observe(&topic, &payload);
        }
        let mut frame = Frame {
            ev,
            seq,
            topic: &topic,
            payload: &payload,
            key: &key,
            published,
            delivered,
            origin: origin.as_ref(),
            just_opened: false,
            payloads: &self.payloads,
            decoders: self.decoders.as_ref(),
        };
        for item in &mut self.items {
            if item.verdict.state != VerdictState::Pending {
                continue;
            }
            // A window waiting for a message opens on the first one that matches.
            frame.just_opened = item.window.opened_us.is_none()
                && published
                && matches!(&item.after, Some(Anchor::Message { on, payload: trigger })
                    if topic_matches(&topic, on) && frame.payload_is(trigger));
            if frame.just_opened {
                item.window.opened_us = Some(ev.t_us);
            }
            if let Some(d) = item.eval.on_wire(&frame, &mut item.window) {
                item.decide(d);
            }
        }
    }

    /// Close windows that ran out by `now_us`.
    pub fn tick(&mut self, now_us: u64) {
        let start = self.start_us;
        for item in &mut self.items {
            if item.verdict.state != VerdictState::Pending {
                continue;
            }
            // A window scheduled some time after the start opens then.
            if item.window.opened_us.is_none()
                && let Some(Anchor::At(d)) = &item.after
                && now_us >= start + d.0.as_micros() as u64
            {
                item.window.opened_us = Some(start + d.0.as_micros() as u64);
            }
            if let Some(d) = item.eval.tick(now_us, &item.window) {
                item.decide(d);
            }
        }
    }

    /// The run ended at `now_us`: every pending verdict becomes final.
    pub fn finish(&mut self, now_us: u64) {
        self.tick(now_us);
        for item in &mut self.items {
            if item.verdict.state != VerdictState::Pending {
                continue;
            }
            let d = item.eval.finish(now_us, &item.window);
            item.decide(Decision {
                t_us: Some(now_us),
                ..d
            });
        }
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Dur;
    use crate::wire::ConnId;
    use std::time::Duration;

    fn publish(
        t_s: f64,
        conn: ConnId,
        client: &str,
        dir: Direction,
        topic: &str,
        payload: &str,
        qos: u8,
    ) -> WireEvent {
        let mut ev = WireEvent::new(
            (t_s * 1e6) as u64,
            conn,
            Arc::from(client),
            dir,
            PacketKind::Publish,
        );
        ev.topic = Some(Arc::from(topic));
        ev.payload = Some(Bytes::from(payload.to_string()));
        ev.qos = qos;
        ev
    }

    fn expect(name: &str, check: Check) -> Expectation {
        Expectation {
            name: name.into(),
            check,
        }
    }

    fn state(c: &Checks, k: usize) -> VerdictState {
        c.items[k].verdict.state
    }

    #[test]
    fn message_after_a_trigger_within_a_window_with_a_json_predicate() {
        let out = |a: f64, b: f64| {
            Some(PayloadCheck::Json {
                field: "temp".into(),
                equals: None,
                above: None,
                below: None,
                outside: Some((a, b)),
                inside: None,
            })
        };
        let spec = |within_s: u64| {
            expect(
                "alert",
                Check::Message(Message {
                    on: "cooler/+/alert".into(),
                    payload: None,
                    after: Anchor::Message {
                        on: "cooler/+/telemetry".into(),
                        payload: out(10.0, 14.0),
                    },
                    within: Dur(Duration::from_secs(within_s)),
                    delivered: false,
                }),
            )
        };
        let mut c = Checks::new(&[spec(2), spec(2)], 0);
        let tele = |t, v: f64| {
            publish(
                t,
                1,
                "c",
                Direction::ClientToBroker,
                "cooler/1/telemetry",
                &format!("{{\"temp\":{v}}}"),
                0,
            )
        };
        c.on_wire(&tele(1.0, 12.0), 1);
        assert!(
            c.items[0].window.opened_us.is_none(),
            "in range: no trigger"
        );
        c.on_wire(&tele(2.0, 15.5), 2);
        c.on_wire(
            &publish(
                3.0,
                1,
                "c",
                Direction::ClientToBroker,
                "cooler/1/alert",
                "hot",
                1,
            ),
            3,
        );
        assert_eq!(state(&c, 0), VerdictState::Passed);
        assert_eq!(c.items[0].verdict.seq, Some(3));
        // Too late: the window closes on tick and the verdict says so.
        let mut c = Checks::new(&[spec(2)], 0);
        c.on_wire(&tele(2.0, 15.5), 1);
        c.tick(4_500_000);
        assert_eq!(state(&c, 0), VerdictState::Failed);
        assert!(
            c.items[0]
                .verdict
                .evidence
                .contains("no message on cooler/+/alert within 2s"),
            "{}",
            c.items[0].verdict.evidence
        );
        // Never triggered.
        let mut c = Checks::new(&[spec(2)], 0);
        c.finish(10_000_000);
        assert_eq!(state(&c, 0), VerdictState::NotTriggered);
    }

    #[test]
    fn counts_duplicates_order_and_latency() {
        let specs = [
            expect(
                "none",
                Check::Count(Count {
                    on: "err/#".into(),
                    payload: None,
                    at_least: None,
                    at_most: Some(0),
                    after: Anchor::Start,
                    within: None,
                    delivered: false,
                }),
            ),
            expect(
                "some",
                Check::Count(Count {
                    on: "t/#".into(),
                    payload: Some(PayloadCheck::Regex("^v[0-9]+$".into())),
                    at_least: Some(2),
                    at_most: None,
                    after: Anchor::Start,
                    within: None,
                    delivered: false,
                }),
            ),
            expect("once", Check::ExactlyOnce(ExactlyOnce { on: "t/#".into() })),
            expect("ordered", Check::Ordered(Ordered { on: "t/#".into() })),
            expect(
                "fast",
                Check::Latency(Latency {
                    on: "t/#".into(),
                    percentile: 50.0,
                    under: Dur(Duration::from_millis(100)),
                }),
            ),
            expect("all", Check::AtLeastOnce(AtLeastOnce { on: "t/#".into() })),
        ];
        let mut c = Checks::new(&specs, 0);
        let mut seq = 0;
        let mut feed = |c: &mut Checks, ev: WireEvent| {
            seq += 1;
            c.on_wire(&ev, seq);
        };
        for (k, t) in [(1, 1.0), (2, 1.1)] {
            feed(
                &mut c,
                publish(
                    t,
                    1,
                    "p",
                    Direction::ClientToBroker,
                    "t/a",
                    &format!("v{k}"),
                    2,
                ),
            );
        }
        feed(
            &mut c,
            publish(1.2, 2, "s", Direction::BrokerToClient, "t/a", "v2", 2),
        );
        feed(
            &mut c,
            publish(1.3, 2, "s", Direction::BrokerToClient, "t/a", "v1", 2),
        );
        feed(
            &mut c,
            publish(1.4, 2, "s", Direction::BrokerToClient, "t/a", "v1", 2),
        );
        c.finish(10_000_000);
        assert_eq!(state(&c, 0), VerdictState::Passed, "no errors");
        assert_eq!(state(&c, 1), VerdictState::Passed);
        assert_eq!(state(&c, 2), VerdictState::Failed, "v1 twice");
        assert!(c.items[2].verdict.evidence.contains("a second time"));
        assert_eq!(state(&c, 3), VerdictState::Failed, "v1 after v2");
        assert_eq!(
            state(&c, 4),
            VerdictState::Failed,
            "p50 of 100, 300, 400 ms is 300 ms"
        );
        assert!(
            c.items[4].verdict.evidence.contains("300.0 ms"),
            "{}",
            c.items[4].verdict.evidence
        );
        assert_eq!(state(&c, 5), VerdictState::Passed);
        assert!(
            c.items[5].verdict.evidence.contains("1 duplicate"),
            "{}",
            c.items[5].verdict.evidence
        );
        assert_eq!(c.failed(), 3);
    }
    #[test]
    fn json_predicates_read_decoded_payloads_sparkplug_metrics_by_name_and_cbor() {
        use crate::sparkplug::proto::{Metric, Payload as SpPayload, Value as SpValue};
        let opts = ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
        let e = |s: &str| -> Expectation { opts.from_str(s).expect("an expectation") };
        let specs = [
            e(
                r#"(name: "flow", check: Count(on: "spBv1.0/plant/DDATA/#", payload: Json(field: "metrics.Flow.value", above: 10.0), at_least: 1))"#,
            ),
            e(
                r#"(name: "rebirth", check: Count(on: "spBv1.0/plant/NCMD/#", payload: Json(field: "metrics.Node Control/Rebirth.value", equals: "true"), at_least: 1))"#,
            ),
            e(
                r#"(name: "cbor", check: Count(on: "meters/#", payload: Json(field: "kwh", above: 1.0), at_least: 1))"#,
            ),
            e(
                r#"(name: "cbor too low", check: Count(on: "meters/#", payload: Json(field: "kwh", above: 5.0), at_least: 1))"#,
            ),
        ];
        let mut c = Checks::new(&specs, 0);
        c.set_decoders(&[crate::codec::DecoderRule {
            on: "meters/#".into(),
            codec: crate::codec::Codec::Cbor,
            proto: None,
            descriptors: Vec::new(),
        }]);
        let frame = |t: f64, topic: &str, payload: Vec<u8>| {
            let mut ev = publish(t, 1, "edge", Direction::ClientToBroker, topic, "", 0);
            ev.payload = Some(Bytes::from(payload));
            ev
        };
        let metric = |name: Option<&str>, alias: u64, value: SpValue, datatype: u32| Metric {
            name: name.map(str::to_string),
            alias: Some(alias),
            datatype: Some(datatype),
            value: Some(value),
            ..Metric::default()
        };
        let sp = |metrics: Vec<Metric>| {
            prost::Message::encode_to_vec(&SpPayload {
                metrics,
                seq: Some(0),
                ..SpPayload::default()
            })
        };
        // The DBIRTH names alias 1; the DDATA sends the alias only.
        c.on_wire(
            &frame(
                1.0,
                "spBv1.0/plant/DBIRTH/edge-1/pump-1",
                sp(vec![metric(Some("Flow"), 1, SpValue::DoubleValue(3.0), 10)]),
            ),
            1,
        );
        c.on_wire(
            &frame(
                2.0,
                "spBv1.0/plant/DDATA/edge-1/pump-1",
                sp(vec![metric(None, 1, SpValue::DoubleValue(4.0), 10)]),
            ),
            2,
        );
        assert_eq!(state(&c, 0), VerdictState::Pending, "4.0 is not above 10");
        c.on_wire(
            &frame(
                3.0,
                "spBv1.0/plant/DDATA/edge-1/pump-1",
                sp(vec![metric(None, 1, SpValue::DoubleValue(12.5), 10)]),
            ),
            3,
        );
        // A metric name with a slash, a boolean as text.
        c.on_wire(
            &frame(
                4.0,
                "spBv1.0/plant/NCMD/edge-1",
                sp(vec![metric(
                    Some("Node Control/Rebirth"),
                    7,
                    SpValue::BooleanValue(true),
                    11,
                )]),
            ),
            4,
        );
        let mut cbor = Vec::new();
        ciborium::ser::into_writer(&serde_json::json!({"kwh": 2.5}), &mut cbor).expect("CBOR");
        c.on_wire(&frame(5.0, "meters/m-1", cbor), 5);
        c.finish(6_000_000);
        assert_eq!(
            (0..4).map(|k| state(&c, k)).collect::<Vec<_>>(),
            vec![
                VerdictState::Passed,
                VerdictState::Passed,
                VerdictState::Passed,
                VerdictState::Failed
            ],
            "{c:?}"
        );
    }
}
