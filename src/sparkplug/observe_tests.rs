use super::*;
use crate::wire::{CloseReason, WillInfo};

/// Frames of one edge node's client, built as the tap records them.
struct Wire {
    t_us: u64,
    conn: ConnId,
}

fn metric(name: Option<&str>, alias: u64, value: sp::Value) -> sp::Metric {
    sp::Metric {
        name: name.map(str::to_string),
        alias: Some(alias),
        datatype: Some(match value {
            sp::Value::LongValue(_) => 4,
            sp::Value::BooleanValue(_) => 11,
            _ => 10,
        }),
        value: Some(value),
        ..Default::default()
    }
}

fn payload(seq: Option<u64>, metrics: Vec<sp::Metric>) -> Vec<u8> {
    sp::Payload {
        timestamp: Some(1_700_000_000_000),
        seq,
        metrics,
        ..Default::default()
    }
    .encode_to_vec()
}

fn bd(v: u64) -> sp::Metric {
    sp::Metric {
        name: Some("bdSeq".into()),
        datatype: Some(4),
        value: Some(sp::Value::LongValue(v)),
        ..Default::default()
    }
}

impl Wire {
    fn ev(&mut self, kind: PacketKind) -> WireEvent {
        self.t_us += 1000;
        WireEvent::new(
            self.t_us,
            self.conn,
            "edge-1".into(),
            Direction::ClientToBroker,
            kind,
        )
    }

    fn connect(&mut self, o: &mut Observer, bd_seq: u64) -> Vec<Finding> {
        self.conn += 1;
        let mut ev = self.ev(PacketKind::Connect);
        ev.detail = WireDetail::Connect {
            protocol: 4,
            clean_session: true,
            keep_alive_s: 10,
            will: Some(Box::new(WillInfo {
                topic: "spBv1.0/plant/NDEATH/edge-1".into(),
                payload: payload(None, vec![bd(bd_seq)]).into(),
                qos: 1,
                retain: false,
            })),
            username: None,
        };
        o.observe(&ev)
    }

    fn publish(&mut self, o: &mut Observer, topic: &str, body: Vec<u8>) -> Vec<Finding> {
        let mut ev = self.ev(PacketKind::Publish);
        ev.topic = Some(topic.into());
        ev.payload = Some(body.into());
        o.observe(&ev)
    }

    fn drop(&mut self, o: &mut Observer) {
        let mut ev = self.ev(PacketKind::Closed);
        ev.detail = WireDetail::Closed(CloseReason::ClientClosed);
        o.observe(&ev);
    }

    /// NBIRTH (bdSeq `b`, seq 0, Temperature alias 3) and the pump's DBIRTH (Flow alias 4).
    fn births(&mut self, o: &mut Observer, b: u64) -> Vec<Finding> {
        let mut f = self.publish(
            o,
            "spBv1.0/plant/NBIRTH/edge-1",
            payload(
                Some(0),
                vec![
                    bd(b),
                    metric(Some("Temperature"), 3, sp::Value::DoubleValue(20.0)),
                ],
            ),
        );
        f.extend(self.publish(
            o,
            "spBv1.0/plant/DBIRTH/edge-1/pump-1",
            payload(
                Some(1),
                vec![metric(Some("Flow"), 4, sp::Value::DoubleValue(1.0))],
            ),
        ));
        f
    }
}

fn rules(f: &[Finding]) -> Vec<Rule> {
    f.iter().map(|f| f.rule).collect()
}

#[test]
fn a_node_that_follows_the_rules_breaks_none_and_shows_its_metrics_by_name() {
    let mut o = Observer::default();
    let mut w = Wire { t_us: 0, conn: 0 };
    assert!(w.connect(&mut o, 7).is_empty());
    assert!(w.births(&mut o, 7).is_empty());
    let ddata = payload(Some(2), vec![metric(None, 4, sp::Value::DoubleValue(2.5))]);
    assert!(
        w.publish(&mut o, "spBv1.0/plant/DDATA/edge-1/pump-1", ddata)
            .is_empty()
    );
    let n = &o.nodes[&("plant".to_string(), "edge-1".to_string())];
    assert!(n.online);
    assert_eq!((n.bd_seq, n.last_seq), (Some(7), Some(2)));
    let flow = &n.devices["pump-1"].metrics[0];
    assert_eq!((flow.name.as_str(), flow.alias), ("Flow", Some(4)));
    assert_eq!(flow.value, serde_json::json!(2.5));
    // Abrupt drop: the broker fires the NDEATH will.
    w.drop(&mut o);
    let n = &o.nodes[&("plant".to_string(), "edge-1".to_string())];
    assert!(!n.online && !n.devices["pump-1"].online);
    // The next session: a new bdSeq in the will and the NBIRTH.
    assert!(w.connect(&mut o, 8).is_empty());
    assert!(w.births(&mut o, 8).is_empty());
}

#[test]
fn each_rule_names_the_frame_that_breaks_it() {
    let mut o = Observer::default();
    let mut w = Wire { t_us: 0, conn: 0 };
    w.connect(&mut o, 1);
    // DATA before any BIRTH.
    let f = w.publish(
        &mut o,
        "spBv1.0/plant/NDATA/edge-1",
        payload(Some(5), vec![]),
    );
    assert_eq!(rules(&f), [Rule::BirthFirst]);
    // NBIRTH with another bdSeq than the will's, and a seq that is not 0.
    let f = w.publish(
        &mut o,
        "spBv1.0/plant/NBIRTH/edge-1",
        payload(Some(3), vec![bd(2)]),
    );
    assert_eq!(rules(&f), [Rule::Seq, Rule::BdSeq]);
    assert!(f[1].what.contains("NBIRTH bdSeq 2"), "{:?}", f[1]);
    // A gap in seq (3 -> 5) and an alias no BIRTH declared.
    let f = w.publish(
        &mut o,
        "spBv1.0/plant/NDATA/edge-1",
        payload(Some(5), vec![metric(None, 99, sp::Value::DoubleValue(1.0))]),
    );
    assert_eq!(rules(&f), [Rule::Seq, Rule::Aliases]);
    assert_eq!(f[0].what, "NDATA with seq 5, expected 4");
    // DDATA of a device with no DBIRTH.
    let f = w.publish(
        &mut o,
        "spBv1.0/plant/DDATA/edge-1/pump-9",
        payload(Some(6), vec![]),
    );
    assert_eq!(rules(&f), [Rule::BirthFirst]);
    // An NDEATH with a stale bdSeq.
    let f = w.publish(
        &mut o,
        "spBv1.0/plant/NDEATH/edge-1",
        payload(None, vec![bd(0)]),
    );
    assert_eq!(rules(&f), [Rule::BdSeq]);
    // A STATE birth at QoS 0, not retained.
    let f = w.publish(
        &mut o,
        "spBv1.0/STATE/scada",
        br#"{"online": true, "timestamp": 5}"#.to_vec(),
    );
    assert_eq!(rules(&f), [Rule::State]);
    assert_eq!(f[0].what, "QoS 0, expected 1, not retained");
    assert!(o.hosts["scada"].online);
}

#[test]
fn a_rebirth_request_stays_pending_until_the_nbirth() {
    let mut o = Observer::default();
    let mut w = Wire { t_us: 0, conn: 0 };
    w.connect(&mut o, 0);
    w.births(&mut o, 0);
    let ask = payload(
        None,
        vec![sp::Metric {
            name: Some("Node Control/Rebirth".into()),
            datatype: Some(11),
            value: Some(sp::Value::BooleanValue(true)),
            ..Default::default()
        }],
    );
    w.publish(&mut o, "spBv1.0/plant/NCMD/edge-1", ask);
    let asked = w.t_us;
    assert_eq!(
        overdue_rebirths(&o, None, asked + 5_000_001, 5_000_000),
        Some(("plant", "edge-1", asked))
    );
    assert_eq!(
        overdue_rebirths(&o, None, asked + 4_000_000, 5_000_000),
        None
    );
    assert!(w.births(&mut o, 0).is_empty());
    assert_eq!(
        overdue_rebirths(&o, None, asked + 60_000_000, 5_000_000),
        None
    );
}

#[test]
fn garbage_on_the_namespace_is_a_finding_not_a_panic() {
    let mut o = Observer::default();
    let mut w = Wire { t_us: 0, conn: 0 };
    for body in [vec![0xff; 7], vec![0x0a, 0xff, 0xff, 0xff], Vec::new()] {
        let _ = w.publish(&mut o, "spBv1.0/plant/NBIRTH/edge-1", body.clone());
        let _ = w.publish(&mut o, "spBv1.0/plant/DDATA/edge-1/d", body);
    }
    assert!(o.messages >= 6);
}

#[test]
fn what_a_correct_system_does_is_never_held_against_it() {
    let mut o = Observer::default();
    let mut w = Wire { t_us: 0, conn: 0 };
    // A node born before the observer started: its DATA is taken as it is.
    w.conn = 41;
    let f = w.publish(
        &mut o,
        "spBv1.0/plant/DDATA/edge-1/pump-1",
        payload(Some(17), vec![metric(None, 4, sp::Value::DoubleValue(1.0))]),
    );
    assert!(f.is_empty(), "{f:?}");
    let f = w.publish(
        &mut o,
        "spBv1.0/plant/NDATA/edge-1",
        payload(Some(18), vec![metric(None, 9, sp::Value::DoubleValue(1.0))]),
    );
    assert!(f.is_empty(), "{f:?}");
    let f = w.publish(
        &mut o,
        "spBv1.0/plant/NDATA/edge-1",
        payload(Some(20), vec![]),
    );
    assert_eq!(rules(&f), [Rule::Seq], "a gap is still a gap");
    // A host's STATE offline, retained at QoS 1, before it disconnects.
    let mut ev = w.ev(PacketKind::Publish);
    ev.topic = Some("spBv1.0/STATE/scada".into());
    ev.payload = Some(br#"{"online": false, "timestamp": 5}"#.to_vec().into());
    (ev.qos, ev.retain) = (1, true);
    assert!(o.observe(&ev).is_empty());
    assert!(!o.hosts["scada"].online);
    // A command to a node nobody has seen creates nothing.
    w.publish(&mut o, "spBv1.0/plant/NCMD/ghost", payload(None, vec![]));
    assert!(
        !o.nodes
            .contains_key(&("plant".to_string(), "ghost".to_string()))
    );
}

#[test]
fn sessions_end_as_they_end_and_stale_deaths_change_nothing() {
    let mut o = Observer::default();
    let mut w = Wire { t_us: 0, conn: 0 };
    let key = ("plant".to_string(), "edge-1".to_string());
    w.connect(&mut o, 1);
    w.births(&mut o, 1);
    w.drop(&mut o);
    w.connect(&mut o, 2);
    assert!(w.births(&mut o, 2).is_empty());
    // The first session's NDEATH arriving late (bdSeq 1) leaves session 2 online.
    let f = w.publish(
        &mut o,
        "spBv1.0/plant/NDEATH/edge-1",
        payload(None, vec![bd(1)]),
    );
    assert_eq!(rules(&f), [Rule::BdSeq]);
    assert!(o.nodes[&key].online);
    // A rebirth asked of an offline node is not pending: nothing can answer it.
    let mut ev = w.ev(PacketKind::Closed);
    ev.detail = WireDetail::Closed(CloseReason::Graceful);
    o.observe(&ev);
    assert!(!o.nodes[&key].online, "the connection ended: offline");
    let ask = payload(
        None,
        vec![sp::Metric {
            name: Some("Node Control/Rebirth".into()),
            value: Some(sp::Value::BooleanValue(true)),
            ..Default::default()
        }],
    );
    w.publish(&mut o, "spBv1.0/plant/NCMD/edge-1", ask);
    assert_eq!(o.nodes[&key].rebirth_asked_us, None);
    // seq from the wire at its largest is a finding, not an overflow.
    w.connect(&mut o, 3);
    w.births(&mut o, 3);
    let f = w.publish(
        &mut o,
        "spBv1.0/plant/NDATA/edge-1",
        payload(Some(u64::MAX), vec![]),
    );
    assert_eq!(rules(&f), [Rule::Seq]);
    let f = w.publish(
        &mut o,
        "spBv1.0/plant/NDATA/edge-1",
        payload(Some(u64::MAX), vec![]),
    );
    assert_eq!(rules(&f), [Rule::Seq]);
}
