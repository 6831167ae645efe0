//! Expectations evaluated live against the wire: every frame the tap
//! records (virtual devices and the user's own clients alike) goes through
//! [`Checks::on_wire`] before the capture stores it; faults through
//! [`Checks::on_fault`]; time through [`Checks::tick`]; the end of a run
//! through [`Checks::finish`]. Each expectation keeps a [`Verdict`] with the
//! evidence (the frame's sequence number, its time, the value).
//!
//! Messages are matched to their deliveries by (topic, payload): give
//! messages unique payloads (`{seq}`) for the exactly-once, at-least-once,
//! ordering and latency checks. Every index is bounded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::{
    Anchor, Check, CloseReason, Direction, DisconnectKind, Expectation, Injected, PacketKind,
    PayloadCheck, Verdict, VerdictState, WireDetail, WireEvent, topic_matches,
};

/// Messages remembered for matching deliveries to their publish.
const MAX_ORIGINS: usize = 200_000;
/// Entries per expectation's own index (pending messages, samples, pairs).
const MAX_ENTRIES: usize = 1_000_000;
/// A QoS 1/2 message younger than this at the end of a run may still be in flight.
const IN_FLIGHT_US: u64 = 2_000_000;

/// Where a published message came from.
#[derive(Debug, Clone)]
struct Origin {
    publisher: Arc<str>,
    t_us: u64,
    qos: u8,
    /// Publish number, unique in the run.
    id: u64,
    /// Index in its publisher's stream on its topic.
    index: u64,
}

type Key = (Arc<str>, Bytes);
/// (subscriber, publisher, topic).
type Stream = (Arc<str>, Arc<str>, Arc<str>);

/// One expectation and what evaluating it needs.
struct Item {
    spec: Expectation,
    verdict: Verdict,
    /// When its window opened (None: not yet).
    opened_us: Option<u64>,
    count: u64,
    /// Per-kind state.
    state: KindState,
}

#[derive(Default)]
struct KindState {
    /// Will: the client's will (topic, payload) from its last CONNECT.
    will: Option<(String, Bytes)>,
    /// Will: connections of the client (conn id) and when the window closes.
    will_deadline_us: Option<u64>,
    /// SessionPresent: CONNACKs seen and whether the last CONNECT asked for a persistent session.
    connacks: u64,
    persistent: bool,
    /// QueuedDelivered: filters, online, messages waiting for delivery.
    filters: Vec<String>,
    online: bool,
    was_offline_with_queue: bool,
    waiting: HashMap<Key, (u64, u64)>,
    /// ExactlyOnce: (subscriber, publish id) delivered.
    delivered: HashSet<(Arc<str>, u64)>,
    /// AtLeastOnce: publish id → (key, t_us, seq) not delivered yet; duplicates.
    undelivered: HashMap<u64, (Key, u64, u64)>,
    deliveries: HashMap<u64, u32>,
    duplicates: u64,
    published: u64,
    /// Latency samples (µs).
    samples: Vec<u64>,
    /// Ordered: (subscriber, publisher, topic) → last index delivered.
    last_index: HashMap<Stream, u64>,
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
    regexes: HashMap<String, Option<regex::Regex>>,
    finished: bool,
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

fn text(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(t) if !t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
            if t.chars().count() > 80 {
                format!("{}…", t.chars().take(80).collect::<String>())
            } else {
                t.to_string()
            }
        }
        _ => format!("{} bytes, binary", payload.len()),
    }
}

fn json_field<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

impl Checks {
    pub fn new(expectations: &[Expectation], start_us: u64) -> Checks {
        let items: Vec<Item> = expectations
            .iter()
            .map(|e| Item {
                verdict: Verdict {
                    name: e.name.clone(),
                    state: VerdictState::Pending,
                    evidence: String::new(),
                    seq: None,
                    t_us: None,
                },
                opened_us: match e.check.after() {
                    None | Some(Anchor::Start) => Some(start_us),
                    Some(_) => None,
                },
                count: 0,
                state: KindState::default(),
                spec: e.clone(),
            })
            .collect();
        let needs_origins = items.iter().any(|i| {
            matches!(
                i.spec.check,
                Check::ExactlyOnce { .. }
                    | Check::AtLeastOnce { .. }
                    | Check::Latency { .. }
                    | Check::Ordered { .. }
            )
        });
        let mut regexes = HashMap::new();
        for e in expectations {
            let mut add = |p: &Option<PayloadCheck>| {
                if let Some(PayloadCheck::Regex(r)) = p {
                    regexes.insert(r.clone(), regex::Regex::new(r).ok());
                }
            };
            match &e.check {
                Check::Message { payload, after, .. } | Check::Count { payload, after, .. } => {
                    add(payload);
                    if let Anchor::Message { payload, .. } = after {
                        add(payload);
                    }
                }
                _ => {}
            }
        }
        Checks {
            items,
            start_us,
            origins: HashMap::new(),
            origin_order: VecDeque::new(),
            next_id: 0,
            stream_len: HashMap::new(),
            needs_origins,
            regexes,
            finished: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.items.iter().map(|i| &i.verdict)
    }

    /// Each verdict with, while it is pending, what has been seen so far.
    pub fn with_progress(&self) -> impl Iterator<Item = (&Verdict, String)> {
        self.items.iter().map(|i| {
            let note = if i.verdict.state == VerdictState::Pending {
                progress(i)
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

    fn payload_ok(
        regexes: &HashMap<String, Option<regex::Regex>>,
        check: &Option<PayloadCheck>,
        payload: &[u8],
    ) -> bool {
        let Some(check) = check else {
            return true;
        };
        let t = String::from_utf8_lossy(payload);
        match check {
            PayloadCheck::Equals(s) => t == *s,
            PayloadCheck::Contains(s) => t.contains(s.as_str()),
            PayloadCheck::Regex(r) => regexes
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
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
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

    fn decide(
        item: &mut Item,
        state: VerdictState,
        evidence: String,
        seq: Option<u64>,
        t_us: Option<u64>,
    ) {
        if item.verdict.state == VerdictState::Pending {
            item.verdict.state = state;
            item.verdict.evidence = evidence;
            item.verdict.seq = seq;
            item.verdict.t_us = t_us;
        }
    }

    /// A fault fired (`timeline`: its entry index, 0-based, if the timeline fired it).
    pub fn on_fault(&mut self, t_us: u64, timeline: Option<usize>) {
        let Some(k) = timeline else {
            return;
        };
        for item in &mut self.items {
            if let Check::Message {
                after: Anchor::Fault(n),
                ..
            }
            | Check::Count {
                after: Anchor::Fault(n),
                ..
            } = &item.spec.check
                && *n == k + 1
                && item.opened_us.is_none()
            {
                item.opened_us = Some(t_us);
            }
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
        let payload = ev.payload.clone().unwrap_or_default();
        let key: Key = (topic.clone(), payload.clone());
        let mut origin = None;
        if self.needs_origins && published {
            let n = self
                .stream_len
                .entry((ev.client_id.clone(), topic.clone()))
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
            origin = Some(o);
        }
        if self.needs_origins && delivered {
            origin = self.origins.get(&key).cloned();
        }
        let at = |t_us: u64, start: u64| seconds(t_us.saturating_sub(start));
        let start = self.start_us;
        for item in &mut self.items {
            if item.verdict.state != VerdictState::Pending {
                continue;
            }
            // A window waiting for a message opens on the first one that matches.
            let just_opened = item.opened_us.is_none()
                && published
                && matches!(item.spec.check.after(), Some(Anchor::Message { on, payload: trigger })
                    if topic_matches(&topic, on) && Self::payload_ok(&self.regexes, trigger, &payload));
            if just_opened {
                item.opened_us = Some(ev.t_us);
            }
            match &item.spec.check {
                Check::Message {
                    on,
                    payload: want,
                    within,
                    delivered: count_deliveries,
                    ..
                } => {
                    let seen = if *count_deliveries {
                        delivered
                    } else {
                        published
                    };
                    // The trigger message itself is not the awaited one.
                    if just_opened {
                        continue;
                    }
                    let Some(opened) = item.opened_us else {
                        continue;
                    };
                    if seen
                        && ev.t_us >= opened
                        && topic_matches(&topic, on)
                        && Self::payload_ok(&self.regexes, want, &payload)
                    {
                        let late = ev.t_us - opened > within.0.as_micros() as u64;
                        let evidence = format!(
                            "{} {} {topic} \"{}\" at {:.3} s ({:.3} s after the window opened)",
                            ev.client_id,
                            if *count_deliveries {
                                "received"
                            } else {
                                "published"
                            },
                            text(&payload),
                            at(ev.t_us, start),
                            seconds(ev.t_us - opened)
                        );
                        let state = if late {
                            VerdictState::Failed
                        } else {
                            VerdictState::Passed
                        };
                        Self::decide(item, state, evidence, Some(seq), Some(ev.t_us));
                    }
                }
                Check::Count {
                    on,
                    payload: want,
                    at_most,
                    within,
                    at_least,
                    delivered: count_deliveries,
                    ..
                } => {
                    let seen = if *count_deliveries {
                        delivered
                    } else {
                        published
                    };
                    let Some(opened) = item.opened_us else {
                        continue;
                    };
                    let in_window = ev.t_us >= opened
                        && within.is_none_or(|w| ev.t_us - opened <= w.0.as_micros() as u64);
                    if seen
                        && in_window
                        && topic_matches(&topic, on)
                        && Self::payload_ok(&self.regexes, want, &payload)
                    {
                        item.count += 1;
                        if at_most.is_some_and(|m| item.count > m) {
                            let evidence = format!(
                                "message {} on {on} (at most {} expected): {} {} {topic} \"{}\" at {:.3} s",
                                item.count,
                                at_most.unwrap_or(0),
                                ev.client_id,
                                if *count_deliveries {
                                    "received"
                                } else {
                                    "published"
                                },
                                text(&payload),
                                at(ev.t_us, start)
                            );
                            Self::decide(
                                item,
                                VerdictState::Failed,
                                evidence,
                                Some(seq),
                                Some(ev.t_us),
                            );
                        } else if at_most.is_none() && at_least.is_some_and(|l| item.count >= l) {
                            let evidence = format!(
                                "{} messages on {on} by {:.3} s (the last: {} published {topic} \"{}\")",
                                item.count,
                                at(ev.t_us, start),
                                ev.client_id,
                                text(&payload)
                            );
                            Self::decide(
                                item,
                                VerdictState::Passed,
                                evidence,
                                Some(seq),
                                Some(ev.t_us),
                            );
                        }
                    }
                }
                Check::Will {
                    client,
                    published: want_published,
                    after,
                    within,
                } => {
                    if &*ev.client_id == client.as_str() {
                        match (&ev.kind, &ev.detail) {
                            (PacketKind::Connect, WireDetail::Connect { will, .. }) => {
                                item.state.will =
                                    will.as_ref().map(|w| (w.topic.clone(), w.payload.clone()));
                            }
                            (PacketKind::Closed, WireDetail::Closed(reason))
                                if item.state.will_deadline_us.is_none() =>
                            {
                                let graceful = *reason == CloseReason::Graceful;
                                let matches = match after {
                                    DisconnectKind::Abrupt => !graceful,
                                    DisconnectKind::Graceful => graceful,
                                    DisconnectKind::Any => true,
                                };
                                if matches && item.state.will.is_some() {
                                    item.state.will_deadline_us =
                                        Some(ev.t_us + within.0.as_micros() as u64);
                                    item.opened_us = Some(ev.t_us);
                                }
                            }
                            _ => {}
                        }
                    }
                    if delivered
                        && let (Some(deadline), Some((wt, wp))) =
                            (item.state.will_deadline_us, &item.state.will)
                        && ev.t_us <= deadline
                        && *topic == **wt
                        && payload == *wp
                    {
                        let evidence = format!(
                            "{client}'s will ({wt} \"{}\") delivered to {} at {:.3} s",
                            text(wp),
                            ev.client_id,
                            at(ev.t_us, start)
                        );
                        let state = if *want_published {
                            VerdictState::Passed
                        } else {
                            VerdictState::Failed
                        };
                        Self::decide(item, state, evidence, Some(seq), Some(ev.t_us));
                    }
                }
                Check::SessionPresent { client } => {
                    if &*ev.client_id != client.as_str() {
                        continue;
                    }
                    match (&ev.kind, &ev.detail) {
                        (PacketKind::Connect, WireDetail::Connect { clean_session, .. }) => {
                            item.state.persistent = !clean_session;
                        }
                        (
                            PacketKind::ConnAck,
                            WireDetail::ConnAck {
                                session_present,
                                code: 0,
                            },
                        ) => {
                            item.state.connacks += 1;
                            if item.state.connacks >= 2 && item.state.persistent {
                                let evidence = format!(
                                    "{client} reconnected at {:.3} s: session present = {}",
                                    at(ev.t_us, start),
                                    *session_present as u8
                                );
                                let state = if *session_present {
                                    VerdictState::Passed
                                } else {
                                    VerdictState::Failed
                                };
                                Self::decide(item, state, evidence, Some(seq), Some(ev.t_us));
                            }
                        }
                        _ => {}
                    }
                }
                Check::QueuedDelivered { client } => {
                    let s = &mut item.state;
                    if &*ev.client_id == client.as_str() {
                        match (&ev.kind, &ev.detail) {
                            (PacketKind::Subscribe, WireDetail::Subscribe(filters)) => {
                                for (f, _) in filters {
                                    if !s.filters.contains(f) {
                                        s.filters.push(f.clone());
                                    }
                                }
                            }
                            (PacketKind::ConnAck, WireDetail::ConnAck { code: 0, .. }) => {
                                s.online = true
                            }
                            (PacketKind::Closed, _) => s.online = false,
                            _ => {}
                        }
                        if delivered {
                            s.waiting.remove(&key);
                        }
                    } else if published
                        && !s.online
                        && ev.qos > 0
                        && s.waiting.len() < MAX_ENTRIES
                        && s.filters.iter().any(|f| topic_matches(&topic, f))
                    {
                        s.was_offline_with_queue = true;
                        s.waiting.insert(key.clone(), (seq, ev.t_us));
                    }
                }
                Check::ExactlyOnce { on } => {
                    if delivered
                        && topic_matches(&topic, on)
                        && let Some(o) = &origin
                        && o.qos == 2
                    {
                        item.count += 1;
                        let s = &mut item.state;
                        if !s.delivered.insert((ev.client_id.clone(), o.id))
                            && s.delivered.len() < MAX_ENTRIES
                        {
                            let evidence = format!(
                                "{} received {topic} \"{}\" (published by {}) a second time at {:.3} s",
                                ev.client_id,
                                text(&payload),
                                o.publisher,
                                at(ev.t_us, start)
                            );
                            Self::decide(
                                item,
                                VerdictState::Failed,
                                evidence,
                                Some(seq),
                                Some(ev.t_us),
                            );
                        }
                    }
                }
                Check::AtLeastOnce { on } => {
                    if !topic_matches(&topic, on) {
                        continue;
                    }
                    let s = &mut item.state;
                    if let Some(o) = &origin {
                        if published && o.qos > 0 && s.undelivered.len() < MAX_ENTRIES {
                            s.published += 1;
                            s.undelivered.insert(o.id, (key.clone(), ev.t_us, seq));
                        }
                        if delivered {
                            s.undelivered.remove(&o.id);
                            let n = s.deliveries.entry(o.id).or_insert(0);
                            *n += 1;
                            if *n > 1 {
                                s.duplicates += 1;
                            }
                        }
                    }
                }
                Check::Latency { on, .. } => {
                    if delivered
                        && topic_matches(&topic, on)
                        && let Some(o) = &origin
                        && item.state.samples.len() < MAX_ENTRIES
                    {
                        // A frame an injected fault delays reaches the subscriber that much later.
                        let delay_us = match ev.injected {
                            Some(Injected::Delayed(ms)) => ms as u64 * 1000,
                            _ => 0,
                        };
                        item.state
                            .samples
                            .push((ev.t_us + delay_us).saturating_sub(o.t_us));
                    }
                }
                Check::Ordered { on } => {
                    if delivered
                        && topic_matches(&topic, on)
                        && let Some(o) = &origin
                    {
                        item.count += 1;
                        let k = (ev.client_id.clone(), o.publisher.clone(), topic.clone());
                        let last = item.state.last_index.get(&k).copied().unwrap_or(0);
                        if o.index < last {
                            let evidence = format!(
                                "{} received {}'s message #{} on {topic} after #{} (at {:.3} s)",
                                ev.client_id,
                                o.publisher,
                                o.index,
                                last,
                                at(ev.t_us, start)
                            );
                            Self::decide(
                                item,
                                VerdictState::Failed,
                                evidence,
                                Some(seq),
                                Some(ev.t_us),
                            );
                        } else if item.state.last_index.len() < MAX_ENTRIES {
                            item.state.last_index.insert(k, o.index);
                        }
                    }
                }
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
            if item.opened_us.is_none()
                && let Some(Anchor::At(d)) = item.spec.check.after()
                && now_us >= start + d.0.as_micros() as u64
            {
                item.opened_us = Some(start + d.0.as_micros() as u64);
            }
            match &item.spec.check {
                Check::Message { on, within, .. } => {
                    if let Some(opened) = item.opened_us
                        && now_us > opened + within.0.as_micros() as u64
                    {
                        let evidence = format!(
                            "no message on {on} within {} after {:.3} s",
                            humantime::format_duration(within.0),
                            seconds(opened.saturating_sub(start))
                        );
                        Self::decide(item, VerdictState::Failed, evidence, None, Some(now_us));
                    }
                }
                Check::Count {
                    on,
                    at_least,
                    at_most,
                    within: Some(within),
                    ..
                } => {
                    if let Some(opened) = item.opened_us
                        && now_us > opened + within.0.as_micros() as u64
                    {
                        let (n, lo, hi) = (item.count, *at_least, *at_most);
                        let ok = lo.is_none_or(|l| n >= l) && hi.is_none_or(|h| n <= h);
                        let evidence = format!(
                            "{n} messages on {on} in {} from {:.3} s ({})",
                            humantime::format_duration(within.0),
                            seconds(opened.saturating_sub(start)),
                            bounds(lo, hi)
                        );
                        let state = if ok {
                            VerdictState::Passed
                        } else {
                            VerdictState::Failed
                        };
                        Self::decide(item, state, evidence, None, Some(now_us));
                    }
                }
                Check::Will {
                    client,
                    published,
                    within,
                    ..
                } => {
                    if let Some(deadline) = item.state.will_deadline_us
                        && now_us > deadline
                    {
                        let evidence = format!(
                            "no will from {client} delivered within {} after its connection ended at {:.3} s",
                            humantime::format_duration(within.0),
                            seconds(item.opened_us.unwrap_or(start).saturating_sub(start))
                        );
                        let state = if *published {
                            VerdictState::Failed
                        } else {
                            VerdictState::Passed
                        };
                        Self::decide(item, state, evidence, None, Some(now_us));
                    }
                }
                _ => {}
            }
        }
    }

    /// The run ended at `now_us`: every pending verdict becomes final.
    pub fn finish(&mut self, now_us: u64) {
        self.tick(now_us);
        let start = self.start_us;
        for item in &mut self.items {
            if item.verdict.state != VerdictState::Pending {
                continue;
            }
            let (state, evidence, seq) = match &item.spec.check {
                Check::Message { after, .. } if item.opened_us.is_none() => (
                    VerdictState::NotTriggered,
                    format!("its trigger ({}) never happened", anchor_text(after)),
                    None,
                ),
                // The run ended inside the window: not decided either way.
                Check::Message { on, within, .. } => (
                    VerdictState::NotTriggered,
                    format!(
                        "the run ended {:.1} s into the {} window, before any message on {on}",
                        seconds(now_us.saturating_sub(item.opened_us.unwrap_or(now_us))),
                        humantime::format_duration(within.0)
                    ),
                    None,
                ),
                Check::Count { after, .. } if item.opened_us.is_none() => (
                    VerdictState::NotTriggered,
                    format!("its trigger ({}) never happened", anchor_text(after)),
                    None,
                ),
                Check::Count {
                    on,
                    within: Some(within),
                    ..
                } => (
                    VerdictState::NotTriggered,
                    format!(
                        "the run ended {:.1} s into the {} window ({} messages on {on} so far)",
                        seconds(now_us.saturating_sub(item.opened_us.unwrap_or(now_us))),
                        humantime::format_duration(within.0),
                        item.count
                    ),
                    None,
                ),
                Check::Count {
                    on,
                    at_least,
                    at_most,
                    ..
                } => {
                    let n = item.count;
                    let ok = at_least.is_none_or(|l| n >= l) && at_most.is_none_or(|h| n <= h);
                    (
                        if ok {
                            VerdictState::Passed
                        } else {
                            VerdictState::Failed
                        },
                        format!("{n} messages on {on} ({})", bounds(*at_least, *at_most)),
                        None,
                    )
                }
                Check::Will {
                    client, published, ..
                } if item.state.will_deadline_us.is_some() => {
                    // The run ended inside the window: decide on what was seen.
                    let evidence = format!(
                        "no will from {client} delivered in the {:.1} s between its connection ending and the end of the run",
                        seconds(now_us.saturating_sub(item.opened_us.unwrap_or(now_us)))
                    );
                    let state = if *published {
                        VerdictState::Failed
                    } else {
                        VerdictState::Passed
                    };
                    (state, evidence, None)
                }
                Check::Will { client, .. } => (
                    VerdictState::NotTriggered,
                    format!("{client}'s connection never ended that way (or it had no will)"),
                    None,
                ),
                Check::SessionPresent { client } => (
                    VerdictState::NotTriggered,
                    format!("{client} never reconnected with a persistent session"),
                    None,
                ),
                Check::QueuedDelivered { client } => {
                    let s = &item.state;
                    if !s.was_offline_with_queue {
                        (
                            VerdictState::NotTriggered,
                            format!("nothing was queued for {client} while it was offline"),
                            None,
                        )
                    } else if let Some(((topic, payload), (seq, _))) =
                        s.waiting.iter().min_by_key(|(_, (seq, _))| *seq)
                    {
                        (
                            VerdictState::Failed,
                            format!(
                                "{} message(s) published while {client} was offline never reached it; the first: {topic} \"{}\"",
                                s.waiting.len(),
                                text(payload)
                            ),
                            Some(*seq),
                        )
                    } else {
                        (
                            VerdictState::Passed,
                            format!("everything queued for {client} while offline was delivered"),
                            None,
                        )
                    }
                }
                Check::ExactlyOnce { on } => {
                    if item.count == 0 {
                        (
                            VerdictState::NotTriggered,
                            format!("no QoS 2 message on {on} was delivered"),
                            None,
                        )
                    } else {
                        (
                            VerdictState::Passed,
                            format!("{} QoS 2 deliveries on {on}, none twice", item.count),
                            None,
                        )
                    }
                }
                Check::AtLeastOnce { on } => {
                    let s = &item.state;
                    // Messages published in the last moments may still be on
                    // their way; but with no delivery at all, nothing is.
                    let any_delivered = !s.deliveries.is_empty();
                    let missing: Vec<_> = s
                        .undelivered
                        .values()
                        .filter(|(_, t, _)| !any_delivered || *t + IN_FLIGHT_US < now_us)
                        .collect();
                    let in_flight = s.undelivered.len() - missing.len();
                    if s.published == 0 {
                        (
                            VerdictState::NotTriggered,
                            format!("no QoS 1/2 message was published on {on}"),
                            None,
                        )
                    } else if let Some(((topic, payload), t, seq)) =
                        missing.iter().min_by_key(|(_, _, seq)| *seq)
                    {
                        (
                            VerdictState::Failed,
                            format!(
                                "{} of {} QoS 1/2 messages on {on} never delivered; the first: {topic} \"{}\" at {:.3} s ({} duplicate deliveries)",
                                missing.len(),
                                s.published,
                                text(payload),
                                seconds(t.saturating_sub(start)),
                                s.duplicates
                            ),
                            Some(*seq),
                        )
                    } else {
                        (
                            VerdictState::Passed,
                            format!(
                                "{} QoS 1/2 messages on {on} all delivered ({} duplicate deliveries{})",
                                s.published - in_flight as u64,
                                s.duplicates,
                                if in_flight > 0 {
                                    format!(
                                        "; {in_flight} published in the last 2 s still on their way"
                                    )
                                } else {
                                    String::new()
                                }
                            ),
                            None,
                        )
                    }
                }
                Check::Latency {
                    on,
                    percentile,
                    under,
                } => {
                    let s = &mut item.state.samples;
                    if s.is_empty() {
                        (
                            VerdictState::NotTriggered,
                            format!("no delivery on {on} to measure"),
                            None,
                        )
                    } else {
                        s.sort_unstable();
                        let rank = ((percentile / 100.0) * s.len() as f64).ceil() as usize;
                        let p = s[rank.clamp(1, s.len()) - 1];
                        let ok = p < under.0.as_micros() as u64;
                        (
                            if ok {
                                VerdictState::Passed
                            } else {
                                VerdictState::Failed
                            },
                            format!(
                                "p{percentile} publish → delivery latency on {on}: {:.1} ms over {} deliveries (bound {} ms)",
                                p as f64 / 1000.0,
                                s.len(),
                                under.0.as_millis()
                            ),
                            None,
                        )
                    }
                }
                Check::Ordered { on } => {
                    if item.count == 0 {
                        (
                            VerdictState::NotTriggered,
                            format!("no delivery on {on}"),
                            None,
                        )
                    } else {
                        (
                            VerdictState::Passed,
                            format!(
                                "{} deliveries on {on}, each publisher's in order",
                                item.count
                            ),
                            None,
                        )
                    }
                }
            };
            Self::decide(item, state, evidence, seq, Some(now_us));
        }
        self.finished = true;
    }
}

/// What a pending expectation has seen so far.
fn progress(item: &Item) -> String {
    let s = &item.state;
    match &item.spec.check {
        Check::Message { after, .. } if item.opened_us.is_none() => {
            format!("waiting for {}", anchor_text(after))
        }
        Check::Message { .. } => "window open".into(),
        Check::Count { after, .. } if item.opened_us.is_none() => {
            format!("waiting for {}", anchor_text(after))
        }
        Check::Count { .. } => format!("{} so far", item.count),
        Check::Will { client, .. } if s.will_deadline_us.is_none() => {
            format!("waiting for {client}'s connection to end")
        }
        Check::Will { .. } => "window open".into(),
        Check::SessionPresent { client } => format!("waiting for {client} to reconnect"),
        Check::QueuedDelivered { client } => format!(
            "{} message(s) queued for {client} not delivered yet",
            s.waiting.len()
        ),
        Check::ExactlyOnce { .. } => format!("{} QoS 2 deliveries so far, none twice", item.count),
        Check::AtLeastOnce { .. } => format!(
            "{} published, {} not delivered yet; decided when the run ends",
            s.published,
            s.undelivered.len()
        ),
        Check::Latency { .. } => format!(
            "{} deliveries measured; decided when the run ends",
            s.samples.len()
        ),
        Check::Ordered { .. } => format!("{} deliveries so far, all in order", item.count),
    }
}

fn bounds(at_least: Option<u64>, at_most: Option<u64>) -> String {
    match (at_least, at_most) {
        (Some(l), Some(h)) => format!("expected {l} to {h}"),
        (Some(l), None) => format!("expected at least {l}"),
        (None, Some(0)) => "expected none".into(),
        (None, Some(h)) => format!("expected at most {h}"),
        (None, None) => "no bound".into(),
    }
}

fn anchor_text(a: &Anchor) -> String {
    match a {
        Anchor::Start => "the start".into(),
        Anchor::At(d) => format!("{} after the start", humantime::format_duration(d.0)),
        Anchor::Fault(n) => format!("timeline entry {n}"),
        Anchor::Message { on, .. } => format!("a message on {on}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ConnId, Dur};
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
                Check::Message {
                    on: "cooler/+/alert".into(),
                    payload: None,
                    after: Anchor::Message {
                        on: "cooler/+/telemetry".into(),
                        payload: out(10.0, 14.0),
                    },
                    within: Dur(Duration::from_secs(within_s)),
                    delivered: false,
                },
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
        assert!(c.items[0].opened_us.is_none(), "in range: no trigger");
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
                Check::Count {
                    on: "err/#".into(),
                    payload: None,
                    at_least: None,
                    at_most: Some(0),
                    after: Anchor::Start,
                    within: None,
                    delivered: false,
                },
            ),
            expect(
                "some",
                Check::Count {
                    on: "t/#".into(),
                    payload: Some(PayloadCheck::Regex("^v[0-9]+$".into())),
                    at_least: Some(2),
                    at_most: None,
                    after: Anchor::Start,
                    within: None,
                    delivered: false,
                },
            ),
            expect("once", Check::ExactlyOnce { on: "t/#".into() }),
            expect("ordered", Check::Ordered { on: "t/#".into() }),
            expect(
                "fast",
                Check::Latency {
                    on: "t/#".into(),
                    percentile: 50.0,
                    under: Dur(Duration::from_millis(100)),
                },
            ),
            expect("all", Check::AtLeastOnce { on: "t/#".into() }),
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
}
