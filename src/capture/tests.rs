//! The capture's own tests (ingest, indices, bounds, clear).
use super::test_util::*;
use super::*;

#[test]
fn a_flow_whose_ack_a_fault_discarded_stays_open_and_is_marked() {
    let mut c = Capture::default();
    c.ingest(publish(1, "car", Direction::ClientToBroker, "t", "x", 1, 7));
    let mut ack = ev(1, "car", Direction::BrokerToClient, PacketKind::PubAck);
    ack.pkid = 7;
    ack.injected = Some(crate::wire::Injected::Dropped);
    c.ingest(ack.clone());
    let f = c.flows.iter().next().expect("a flow");
    assert_eq!(f.state, FlowState::Open);
    assert!(f.lost_to_fault);
    // Another client's flow with the same packet id is not touched.
    c.ingest(publish(2, "bus", Direction::ClientToBroker, "t", "y", 1, 7));
    assert!(!c.flows.iter().nth(1).expect("second").lost_to_fault);
    // The ack that does arrive completes it.
    ack.injected = None;
    c.ingest(ack);
    assert_eq!(
        c.flows.iter().next().expect("a flow").state,
        FlowState::Complete
    );
}

#[test]
fn store_is_bounded_by_count_and_counts_evictions() {
    let mut c = Capture::new(Limits {
        max_events: 10,
        ..Limits::default()
    });
    for i in 0..25 {
        c.ingest(publish(
            1,
            "a",
            Direction::ClientToBroker,
            "t",
            &i.to_string(),
            0,
            0,
        ));
    }
    assert_eq!(c.len(), 10);
    assert_eq!(c.evicted, 15);
    assert_eq!(c.first_seq(), 15);
    assert_eq!(c.get(15).unwrap().payload.as_deref(), Some(&b"15"[..]));
    assert!(c.get(14).is_none());
    let t = &c.topics["t"];
    assert_eq!(t.published, 25);
    assert_eq!(t.last_payload.as_ref(), b"24");
    assert!(
        t.history.iter().all(|&s| s >= 14),
        "stale history trimmed: {:?}",
        t.history
    );
}

#[test]
fn store_is_bounded_by_bytes() {
    let mut c = Capture::new(Limits {
        max_bytes: 4096,
        ..Limits::default()
    });
    let big = "x".repeat(1000);
    for _ in 0..20 {
        c.ingest(publish(1, "a", Direction::ClientToBroker, "t", &big, 0, 0));
    }
    assert!(c.bytes() <= 4096, "{}", c.bytes());
    assert!(c.evicted > 0);
}

#[test]
fn clear_keeps_sequence_numbers_and_flow_ids_going() {
    let mut c = Capture::default();
    c.ingest(publish(1, "a", Direction::ClientToBroker, "t", "x", 1, 1));
    c.ingest(publish(1, "a", Direction::ClientToBroker, "t", "y", 1, 2));
    let (end, flows_end) = (c.end_seq(), c.flows.first_id() + c.flows.len() as u64);
    assert_eq!((end, flows_end), (2, 2));
    c.clear();
    assert!(
        c.get(0).is_none() && c.get(1).is_none(),
        "old numbers find nothing"
    );
    assert!(c.flows.get(0).is_none());
    c.ingest(publish(1, "a", Direction::ClientToBroker, "t", "z", 1, 3));
    assert_eq!(c.first_seq(), 2);
    assert_eq!(
        c.get(2).and_then(|e| e.payload.clone()).as_deref(),
        Some(&b"z"[..])
    );
    assert_eq!(c.flows.iter().next().map(|f| f.id), Some(2));
    assert_eq!(c.clears, 1);
}

/// A delivery nobody published counts as a will only while a session
/// holds that will (the index follows reconnects with another will and
/// survives a clear for the clients still connected).
#[test]
fn wills_are_recognised_by_the_session_that_holds_them_now() {
    use crate::wire::WillInfo;
    let mut c = Capture::default();
    let connect = |conn, topic: &str| {
        let mut e = ev(conn, "car", Direction::ClientToBroker, PacketKind::Connect);
        e.detail = WireDetail::Connect {
            protocol: 4,
            clean_session: true,
            keep_alive_s: 30,
            will: Some(Box::new(WillInfo {
                topic: topic.into(),
                payload: Bytes::from_static(b"gone"),
                qos: 1,
                retain: true,
            })),
            username: None,
        };
        e
    };
    let ack = |conn| {
        let mut e = ev(conn, "car", Direction::BrokerToClient, PacketKind::ConnAck);
        e.detail = WireDetail::ConnAck {
            session_present: false,
            code: 0,
        };
        e
    };
    let delivered = |topic: &str| publish(9, "app", Direction::BrokerToClient, topic, "gone", 1, 1);
    c.ingest(ev(1, "", Direction::ClientToBroker, PacketKind::Opened));
    c.ingest(connect(1, "cars/a"));
    c.ingest(ack(1));
    c.ingest(delivered("cars/a"));
    assert_eq!(c.topics["cars/a"].wills, 1);
    // Reconnected with its will elsewhere: the old topic's delivery is no will.
    c.ingest(ev(2, "", Direction::ClientToBroker, PacketKind::Opened));
    c.ingest(connect(2, "cars/b"));
    c.ingest(ack(2));
    c.ingest(delivered("cars/a"));
    assert_eq!(c.topics["cars/a"].wills, 1);
    c.clear();
    c.ingest(delivered("cars/b"));
    assert_eq!(c.topics["cars/b"].wills, 1);
    assert_eq!(c.topics["cars/b"].retained.as_deref(), Some(&b"gone"[..]));
    c.clear_all();
    c.ingest(delivered("cars/b"));
    assert_eq!(c.topics["cars/b"].wills, 0);
}

#[test]
fn clear_keeps_the_clients_still_connected() {
    use crate::wire::CloseReason;
    let mut c = Capture::default();
    for (conn, id) in [(1, "live"), (2, "gone")] {
        c.ingest(ev(conn, "", Direction::ClientToBroker, PacketKind::Opened));
        let mut connect = ev(conn, id, Direction::ClientToBroker, PacketKind::Connect);
        connect.detail = WireDetail::Connect {
            protocol: 4,
            clean_session: true,
            keep_alive_s: 30,
            will: None,
            username: None,
        };
        c.ingest(connect);
        let mut ack = ev(conn, id, Direction::BrokerToClient, PacketKind::ConnAck);
        ack.detail = WireDetail::ConnAck {
            session_present: false,
            code: 0,
        };
        c.ingest(ack);
    }
    let mut closed = ev(2, "gone", Direction::ClientToBroker, PacketKind::Closed);
    closed.detail = WireDetail::Closed(CloseReason::Graceful);
    c.ingest(closed);
    c.ingest(publish(
        1,
        "live",
        Direction::ClientToBroker,
        "t",
        "x",
        0,
        0,
    ));
    c.clear();
    assert_eq!(
        c.sessions.keys().map(|k| &**k).collect::<Vec<_>>(),
        ["live"]
    );
    assert_eq!(c.connected_clients(), 1);
    assert_eq!(c.sessions["live"].published, 0);
    // Its connection is still known: it publishes on, and then leaves.
    c.ingest(publish(
        1,
        "live",
        Direction::ClientToBroker,
        "t",
        "y",
        0,
        0,
    ));
    assert_eq!(c.sessions["live"].published, 1);
    let mut closed = ev(1, "live", Direction::ClientToBroker, PacketKind::Closed);
    closed.detail = WireDetail::Closed(CloseReason::Graceful);
    c.ingest(closed);
    assert_eq!(c.connected_clients(), 0);
}

#[test]
fn retained_set_and_cleared() {
    let mut c = Capture::default();
    let mut p = publish(1, "a", Direction::ClientToBroker, "s", "on", 1, 1);
    p.retain = true;
    c.ingest(p);
    assert_eq!(c.topics["s"].retained.as_deref(), Some(&b"on"[..]));
    let mut clear = publish(1, "a", Direction::ClientToBroker, "s", "", 1, 2);
    clear.retain = true;
    c.ingest(clear);
    assert!(c.topics["s"].retained.is_none());
}

#[test]
fn topic_filters() {
    assert!(topic_matches("ü/temp", "#"));
    assert!(topic_matches("ü/temp", "+/temp"));
    assert!(!topic_matches("ü/temp", "a/#"));
    assert!(topic_matches("a/b/c", "a/+/c"));
    assert!(topic_matches("a/b/c", "a/#"));
    assert!(!topic_matches("a/b", "a/b/c"));
}

#[test]
fn a_captured_frame_is_small_and_its_details_count_toward_the_byte_bound() {
    // Every frame in the capture is as big as its largest kind: the rare
    // kinds (a CONNECT's will, an opened connection's address) are boxed so
    // that the PUBLISHes that fill the capture do not carry their room.
    let frame = std::mem::size_of::<crate::wire::WireEvent>();
    assert!(frame <= 160, "a captured frame takes {frame} bytes");
    let mut connect = ev(1, "a", Direction::ClientToBroker, PacketKind::Connect);
    let bare = connect.mem_bytes();
    connect.detail = WireDetail::Connect {
        protocol: 4,
        clean_session: true,
        keep_alive_s: 60,
        will: Some(Box::new(crate::wire::WillInfo {
            topic: "status/a".into(),
            payload: Bytes::from_static(b"offline"),
            qos: 1,
            retain: true,
        })),
        username: None,
    };
    assert!(connect.mem_bytes() >= bare + std::mem::size_of::<crate::wire::WillInfo>() + 8 + 7);
}
