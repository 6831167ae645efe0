use super::*;
use crate::scenario::SparkplugRole;

fn role(ron_text: &str) -> SparkplugRole {
    ron::Options::default()
        .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
        .from_str(ron_text)
        .expect("role parses")
}

fn edge(host: bool) -> Role {
    let host = if host { "primary_host: \"scada\"," } else { "" };
    Role::new(
        &role(&format!(
            r#"EdgeNode(group: "plant", {host} every: "5s",
                metrics: [(name: "Uptime", type: Int64, value: Sequence(start: 0.0, step: 1.0))],
                devices: [(id: "pump-1", metrics: [
                    (name: "Temperature", type: Float, value: Var("temp"), units: "°C"),
                    (name: "Setpoint", type: Double, value: Const(50.0), writable: true),
                ])])"#
        )),
        "edge-1",
        1,
    )
}

fn ctx() -> DeviceCtx {
    let mut c = DeviceCtx::new(1, "edge-1", 1, Default::default(), String::new());
    c.vars.insert("temp".into(), 21.5);
    c
}

fn decode(o: &Out) -> sp::Payload {
    prost::Message::decode(o.payload.as_slice()).expect("a Sparkplug payload")
}

fn topics(outs: &[Out]) -> Vec<&str> {
    outs.iter().map(|o| o.topic.as_str()).collect()
}

#[test]
fn each_session_has_its_bd_seq_in_will_and_birth_and_seq_runs_from_zero() {
    let (mut r, mut c, now) = (edge(false), ctx(), Instant::now());
    for session in 0..3u64 {
        let will = r.will();
        assert_eq!(will.topic, "spBv1.0/plant/NDEATH/edge-1");
        assert_eq!(spb::bd_seq(&decode(&will)), Some(session));
        let births = r.on_connected(&mut c, now);
        assert_eq!(
            topics(&births),
            [
                "spBv1.0/plant/NBIRTH/edge-1",
                "spBv1.0/plant/DBIRTH/edge-1/pump-1"
            ]
        );
        let nbirth = decode(&births[0]);
        assert_eq!(nbirth.seq, Some(0));
        assert_eq!(
            spb::bd_seq(&nbirth),
            Some(session),
            "NBIRTH pairs with the will"
        );
        assert_eq!(decode(&births[1]).seq, Some(1));
        r.on_disconnected();
    }
    // Aliases are unique across the node and its device; units in the birth.
    let births = r.on_connected(&mut c, now);
    let mut aliases: Vec<u64> = births
        .iter()
        .flat_map(|o| decode(o).metrics)
        .filter_map(|m| m.alias)
        .collect();
    let n = aliases.len();
    aliases.sort();
    aliases.dedup();
    assert_eq!(aliases.len(), n);
    let temp = &decode(&births[1]).metrics[0];
    assert_eq!(
        temp.properties.as_ref().map(|p| p.keys.clone()),
        Some(vec!["engUnit".to_string()])
    );
    // Periodic data: seq goes on, and wraps after 255.
    let mut last = 1;
    for k in 1..=300u64 {
        let outs = r.fire(&mut c, now + Duration::from_secs(k));
        for o in &outs {
            let s = decode(o).seq.expect("seq");
            assert_eq!(s, (last + 1) % 256, "{}", o.topic);
            last = s;
        }
    }
}

#[test]
fn rebirth_and_writes_answer_commands() {
    let (mut r, mut c, now) = (edge(false), ctx(), Instant::now());
    r.will();
    r.on_connected(&mut c, now);
    r.fire(&mut c, now + Duration::from_secs(5));
    let ask = rebirth_request("plant", "edge-1");
    let reply = r.on_message(&ask.topic, &ask.payload, &mut c, now);
    assert_eq!(
        topics(&reply.publish),
        [
            "spBv1.0/plant/NBIRTH/edge-1",
            "spBv1.0/plant/DBIRTH/edge-1/pump-1"
        ]
    );
    assert_eq!(decode(&reply.publish[0]).seq, Some(0));
    assert_eq!(
        spb::bd_seq(&decode(&reply.publish[0])),
        Some(0),
        "same session, same bdSeq"
    );
    // A DCMD writes the writable setpoint, by name; the DDATA carries the new value.
    let write = |name: &str, v: f64| {
        encode(&sp::Payload {
            metrics: vec![sp::Metric {
                name: Some(name.into()),
                datatype: Some(10),
                value: Some(sp::Value::DoubleValue(v)),
                ..Default::default()
            }],
            ..Default::default()
        })
    };
    let dcmd = "spBv1.0/plant/DCMD/edge-1/pump-1";
    let reply = r.on_message(dcmd, &write("Setpoint", 61.0), &mut c, now);
    assert_eq!(
        topics(&reply.publish),
        ["spBv1.0/plant/DDATA/edge-1/pump-1"]
    );
    assert_eq!(
        decode(&reply.publish[0]).metrics[0].value,
        Some(sp::Value::DoubleValue(61.0))
    );
    // … and it stands in later data; a metric that is not writable is not written.
    let later = r.fire(&mut c, now + Duration::from_secs(1));
    let ddata = decode(&later[0]);
    assert!(
        ddata
            .metrics
            .iter()
            .any(|m| m.value == Some(sp::Value::DoubleValue(61.0)))
    );
    let reply = r.on_message(dcmd, &write("Temperature", 99.0), &mut c, now);
    assert!(reply.publish.is_empty());
    assert_eq!(c.vars["temp"], 21.5);
}

#[test]
fn with_a_primary_host_the_birth_waits_for_its_state_and_its_death_ends_the_session() {
    let (mut r, mut c, now) = (edge(true), ctx(), Instant::now());
    assert_eq!(r.subscriptions()[0].0, "spBv1.0/STATE/scada");
    r.will();
    assert!(
        r.on_connected(&mut c, now).is_empty(),
        "no birth before the host is online"
    );
    assert!(r.fire(&mut c, now + Duration::from_secs(10)).is_empty());
    let online = br#"{"online": true, "timestamp": 100}"#;
    let reply = r.on_message("spBv1.0/STATE/scada", online, &mut c, now);
    assert_eq!(reply.publish.len(), 2);
    // A stale offline (older timestamp) is ignored; a newer one ends the session.
    let stale = br#"{"online": false, "timestamp": 50}"#;
    let reply = r.on_message("spBv1.0/STATE/scada", stale, &mut c, now);
    assert!(!reply.rejoin && reply.publish.is_empty());
    let offline = br#"{"online": false, "timestamp": 200}"#;
    let reply = r.on_message("spBv1.0/STATE/scada", offline, &mut c, now);
    assert!(reply.rejoin);
    assert_eq!(topics(&reply.publish), ["spBv1.0/plant/NDEATH/edge-1"]);
}

#[test]
fn a_primary_host_asks_for_a_rebirth_after_data_without_birth_or_a_gap() {
    let mut h = Role::new(&role("PrimaryHost(id: \"scada\")"), "scada", 1);
    let (mut c, now) = (ctx(), Instant::now());
    let will = h.will();
    assert!(will.retain && will.qos == Qos(1));
    let birth = &h.on_connected(&mut c, now)[0];
    let (w, b): (Value, Value) = (
        serde_json::from_slice(&will.payload).unwrap_or_default(),
        serde_json::from_slice(&birth.payload).unwrap_or_default(),
    );
    assert_eq!(
        (w["online"].clone(), b["online"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(
        w["timestamp"], b["timestamp"],
        "birth and death of one session share the timestamp"
    );
    // An edge node's data, no birth seen: one rebirth request, then none for a while.
    let (mut e, mut ec) = (edge(false), ctx());
    let ewill = e.will();
    let births = e.on_connected(&mut ec, now);
    let data = e.fire(&mut ec, now + Duration::from_secs(5));
    let asks = h
        .on_message(&data[0].topic, &data[0].payload, &mut c, now)
        .publish;
    assert_eq!(topics(&asks), ["spBv1.0/plant/NCMD/edge-1"]);
    assert!(
        h.on_message(&data[1].topic, &data[1].payload, &mut c, now)
            .publish
            .is_empty()
    );
    // After the birth, data in order asks nothing; a gap asks again (later).
    for o in e
        .on_message(&asks[0].topic, &asks[0].payload, &mut ec, now)
        .publish
    {
        assert!(
            h.on_message(&o.topic, &o.payload, &mut c, now)
                .publish
                .is_empty()
        );
    }
    let data = e.fire(&mut ec, now + Duration::from_secs(10));
    for o in &data {
        assert!(
            h.on_message(&o.topic, &o.payload, &mut c, now)
                .publish
                .is_empty(),
            "{}",
            o.topic
        );
    }
    // A death that is not this birth's session (another bdSeq) is stale: ignored.
    let stale = e.will();
    assert!(
        h.on_message(&stale.topic, &stale.payload, &mut c, now)
            .publish
            .is_empty()
    );
    let data = e.fire(&mut ec, now + Duration::from_secs(15));
    assert!(
        h.on_message(&data[0].topic, &data[0].payload, &mut c, now)
            .publish
            .is_empty()
    );
    // The death of the born session takes the node offline: its next data asks again.
    let death = Role::Edge(Box::new(Edge::new(
        &match role("EdgeNode(group: \"plant\")") {
            SparkplugRole::EdgeNode(x) => x,
            SparkplugRole::PrimaryHost(_) => unreachable!(),
        },
        "edge-1",
        1,
    )))
    .will();
    assert!(
        h.on_message(&death.topic, &death.payload, &mut c, now)
            .publish
            .is_empty()
    );
    e.fire(&mut ec, now + Duration::from_secs(20)); // a gap: lost on the way
    let data = e.fire(&mut ec, now + Duration::from_secs(21));
    let later = now + Duration::from_secs(6);
    assert_eq!(
        h.on_message(&data[0].topic, &data[0].payload, &mut c, later)
            .publish
            .len(),
        1
    );
    let _ = (ewill, births);
}
