//! Sessions: every client the tap has seen, connected or not.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::wire::{CloseReason, ConnId, Direction, PacketKind, WillInfo, WireDetail, WireEvent};

use super::Capture;

const MAX_HISTORY: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub requested_qos: u8,
    /// None until the SUBACK arrives; Some(None) would be a refused filter.
    pub granted_qos: Option<Option<u8>>,
    /// MQTT 5: the client asked not to receive its own messages.
    pub no_local: bool,
}

/// Where the broker departed from the MQTT specification for this client, as
/// far as the capture can tell (kept per session, bounded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    pub t_us: u64,
    /// Store sequence number of the frame where it showed.
    pub seq: u64,
    pub text: String,
}

/// Deviations kept per session.
const MAX_DEVIATIONS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEventKind {
    Connected {
        session_present: bool,
        clean_session: bool,
    },
    /// CONNACK refused the connection with this return code.
    Refused(u8),
    Disconnected(CloseReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    pub t_us: u64,
    pub conn: ConnId,
    pub kind: SessionEventKind,
}

#[derive(Debug, Clone, Default)]
pub struct Session {
    pub client_id: String,
    pub connected: bool,
    /// The connection currently carrying this client (the newest on takeover).
    pub conn: Option<ConnId>,
    pub peer: Option<SocketAddr>,
    /// The connection came through the tap's TLS listener.
    pub tls: bool,
    /// What its connection's handshakes said (TLS session, WebSocket request).
    pub link: Option<Box<crate::wire::LinkInfo>>,
    pub clean_session: bool,
    /// MQTT protocol level of its last CONNECT: 4 (3.1.1) or 5.
    pub protocol: u8,
    /// MQTT 5: what its last CONNECT and CONNACK said (expiry, limits, ids…).
    pub connect_props: Option<Box<crate::wire::V5Props>>,
    pub connack_props: Option<Box<crate::wire::V5Props>>,
    /// MQTT 5 session expiry the client asked for before its last disconnect,
    /// and when that was: a reconnect within it should find the session.
    pub expiry_promise: Option<(u32, u64)>,
    /// Broker departures from the spec seen for this client, newest last.
    pub deviations: VecDeque<Deviation>,
    /// MQTT 5: the session expiry its last DISCONNECT set (overrides the CONNECT's).
    pub disconnect_expiry_s: Option<u32>,
    /// What the client asked for (0: no keepalive).
    pub keep_alive_s: u16,
    pub username: Option<String>,
    pub will: Option<Box<WillInfo>>,
    pub subscriptions: BTreeMap<String, Subscription>,
    /// Connects, refusals and disconnects, newest last; bounded.
    pub history: VecDeque<SessionEvent>,
    /// PUBLISH frames this client sent.
    pub published: u64,
    /// PUBLISH frames the broker delivered to this client.
    pub received: u64,
    pub first_seen_us: u64,
    pub last_seen_us: u64,
    /// When the current (or last) connection was accepted (CONNACK).
    pub connected_since_us: u64,
    /// Deliveries on the current connection of messages published before it
    /// began: what the broker queued while this persistent session was offline.
    pub from_offline_queue: u64,
}

impl Session {
    pub fn deviate(&mut self, t_us: u64, seq: u64, text: String) {
        if self.deviations.len() >= MAX_DEVIATIONS {
            self.deviations.pop_front();
        }
        self.deviations.push_back(Deviation { t_us, seq, text });
    }

    pub fn last_disconnect(&self) -> Option<&CloseReason> {
        self.history.iter().rev().find_map(|e| match &e.kind {
            SessionEventKind::Disconnected(r) => Some(r),
            _ => None,
        })
    }

    /// Granted QoS of the best subscription matching `topic`, if any.
    pub fn granted_qos_for(&self, topic: &str) -> Option<u8> {
        self.subscriptions
            .iter()
            .filter(|(f, _)| super::topic_matches(topic, f))
            .filter_map(|(_, s)| s.granted_qos.flatten())
            .max()
    }

    fn push_history(&mut self, e: SessionEvent) {
        if self.history.len() >= MAX_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(e);
    }
}

/// Where a connection came from: its address, TLS, and its handshakes.
type Peer = (
    std::net::SocketAddr,
    bool,
    Option<Box<crate::wire::LinkInfo>>,
);

impl Session {
    /// `tcp`, `tls`, `ws` or `wss`.
    pub fn scheme(&self) -> &'static str {
        crate::wire::LinkInfo::scheme(self.link.as_deref(), self.tls)
    }

    /// The WebSocket upgrade request, for a client that came over ws:// or wss://.
    pub fn ws(&self) -> Option<&crate::wire::WsInfo> {
        self.link.as_ref().and_then(|l| l.ws.as_ref())
    }
}

fn session<'a>(cap: &'a mut Capture, client_id: &Arc<str>, t_us: u64) -> Option<&'a mut Session> {
    if client_id.is_empty() {
        return None;
    }
    // One lookup (there were two: `contains_key`, then `get_mut`), keyed by
    // an `Arc<str>`: the frame's own, cloned without allocating. While the
    // connection that made the session lasts, the key is that connection's
    // `Arc` (the tap's), which compares by pointer before it compares bytes.
    let full = cap.sessions.len() >= cap.limits.max_sessions;
    let s = match cap.sessions.entry(client_id.clone()) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(_) if full => return None,
        std::collections::hash_map::Entry::Vacant(v) => v.insert(Box::new(Session {
            client_id: client_id.to_string(),
            first_seen_us: t_us,
            ..Default::default()
        })),
    };
    s.last_seen_us = t_us;
    Some(s)
}

/// What a CONNECT says about its client, onto the session (at once, or once
/// the broker accepted a second connection for a live client id).
/// Returns the will's topic before and after, when a CONNECT was applied
/// (for [`Capture::reindex_will`]).
fn apply_connect(
    s: &mut Session,
    detail: &WireDetail,
    props: Option<Box<crate::wire::V5Props>>,
    peer: Option<Peer>,
) -> Option<(Option<String>, Option<String>)> {
    if let WireDetail::Connect {
        protocol,
        clean_session,
        keep_alive_s,
        will,
        username,
    } = detail
    {
        s.protocol = *protocol;
        s.connect_props = props;
        s.clean_session = *clean_session;
        s.keep_alive_s = *keep_alive_s;
        let old = s.will.as_ref().map(|w| w.topic.clone());
        s.will = will.clone();
        s.username = username.clone();
        if let Some((peer, tls, link)) = peer {
            s.peer = Some(peer);
            s.tls = tls;
            s.link = link;
        }
        return Some((old, s.will.as_ref().map(|w| w.topic.clone())));
    }
    None
}

pub(super) fn on_event(cap: &mut Capture, ev: &WireEvent, seq: u64) {
    // Change in connected clients, applied at the end (the session borrows the capture).
    let mut connected_delta: isize = 0;
    match (&ev.kind, &ev.detail) {
        (PacketKind::Connect, WireDetail::Connect { .. }) => on_connect(cap, ev),
        (
            PacketKind::ConnAck,
            WireDetail::ConnAck {
                session_present,
                code,
            },
        ) => connected_delta += on_connack(cap, ev, seq, *session_present, *code),
        (PacketKind::Subscribe, WireDetail::Subscribe(filters)) => {
            if let Some(s) = session(cap, &ev.client_id, ev.t_us) {
                for (f, q) in filters {
                    let no_local = ev.v5.as_ref().is_some_and(|p| {
                        p.subscriptions.iter().any(|o| o.filter == *f && o.no_local)
                    });
                    s.subscriptions.insert(
                        f.clone(),
                        Subscription {
                            requested_qos: *q,
                            granted_qos: None,
                            no_local,
                        },
                    );
                }
            }
        }
        (PacketKind::SubAck, WireDetail::SubAck(codes)) => {
            let filters = cap.take_pending_sub(ev.conn, ev.pkid);
            if let (Some(filters), Some(s)) = (filters, session(cap, &ev.client_id, ev.t_us)) {
                for ((f, q), code) in filters.into_iter().zip(codes) {
                    let no_local = s.subscriptions.get(&f).is_some_and(|x| x.no_local);
                    s.subscriptions.insert(
                        f,
                        Subscription {
                            requested_qos: q,
                            granted_qos: Some(*code),
                            no_local,
                        },
                    );
                }
            }
        }
        (PacketKind::Unsubscribe, WireDetail::Unsubscribe(filters)) => {
            if let Some(s) = session(cap, &ev.client_id, ev.t_us) {
                for f in filters {
                    s.subscriptions.remove(f);
                }
            }
        }
        (PacketKind::Publish, _) => on_publish(cap, ev, seq),
        (PacketKind::Disconnect, _) if ev.dir == Direction::ClientToBroker => {
            let expiry = ev.v5.as_ref().and_then(|p| p.session_expiry_s);
            if let Some(s) = session(cap, &ev.client_id, ev.t_us)
                && expiry.is_some()
            {
                s.disconnect_expiry_s = expiry;
            }
        }
        (PacketKind::Closed, WireDetail::Closed(reason)) => {
            connected_delta += on_closed(cap, ev, reason)
        }
        _ => {
            if !ev.client_id.is_empty()
                && let Some(s) = cap.sessions.get_mut(&*ev.client_id)
            {
                s.last_seen_us = ev.t_us;
            }
        }
    }
    if matches!(ev.kind, PacketKind::ConnAck | PacketKind::Closed) {
        cap.session_changes += 1;
    }
    cap.connected = cap.connected.saturating_add_signed(connected_delta);
}

/// A CONNECT: its details go on the session, or wait for the CONNACK when
/// another connection holds the client id (a takeover the broker may refuse).
fn on_connect(cap: &mut Capture, ev: &WireEvent) {
    let peer = cap
        .conns
        .get(&ev.conn)
        .and_then(|c| c.peer.map(|p| (p, c.tls, c.link.clone())));
    let live_elsewhere = cap
        .sessions
        .get(&*ev.client_id)
        .is_some_and(|s| s.connected && s.conn != Some(ev.conn));
    if live_elsewhere {
        // A takeover attempt: apply its details only if the broker accepts it.
        if let Some(c) = cap.conns.get_mut(&ev.conn) {
            c.pending_connect = Some((ev.detail.clone(), ev.v5.clone()));
        }
    } else if let Some(s) = session(cap, &ev.client_id, ev.t_us) {
        let will = apply_connect(s, &ev.detail, ev.v5.clone(), peer);
        s.conn = Some(ev.conn);
        if let Some((old, new)) = will {
            cap.reindex_will(&ev.client_id, old, new);
        }
    }
}

/// A CONNACK: the session connects (or is refused); returns the change in
/// connected clients.
fn on_connack(
    cap: &mut Capture,
    ev: &WireEvent,
    seq: u64,
    session_present: bool,
    code: u8,
) -> isize {
    let mut delta = 0;
    let pending = cap
        .conns
        .get_mut(&ev.conn)
        .and_then(|c| c.pending_connect.take());
    let peer = cap
        .conns
        .get(&ev.conn)
        .and_then(|c| c.peer.map(|p| (p, c.tls, c.link.clone())));
    let mut will = None;
    if let Some(s) = session(cap, &ev.client_id, ev.t_us) {
        s.connack_props = ev.v5.clone();
        if code == 0
            && let Some((detail, connect_props)) = pending
        {
            will = apply_connect(s, &detail, connect_props, peer);
        }
        if code == 0 {
            // MQTT 5: a session with an expiry interval that has not run out is resumed.
            if let Some((expiry_s, since_us)) = s.expiry_promise.take()
                && s.protocol == 5
                && !s.clean_session
                && !session_present
                && ev.t_us.saturating_sub(since_us) < u64::from(expiry_s) * 1_000_000
            {
                let gone_s = ev.t_us.saturating_sub(since_us) / 1_000_000;
                s.deviate(
                    ev.t_us,
                    seq,
                    format!(
                        "session expiry not honoured: session present = 0 after {gone_s} s \
                         offline, though the session expiry interval was {expiry_s} s \
                         (MQTT 5 §3.1.2.11.2)"
                    ),
                );
            }
            // A clean session, or a persistent one the broker did not have, starts empty.
            if s.clean_session || !session_present {
                s.subscriptions.clear();
            }
            delta += !s.connected as isize;
            s.connected = true;
            s.conn = Some(ev.conn);
            s.connected_since_us = ev.t_us;
            s.from_offline_queue = 0;
            let clean_session = s.clean_session;
            s.push_history(SessionEvent {
                t_us: ev.t_us,
                conn: ev.conn,
                kind: SessionEventKind::Connected {
                    session_present,
                    clean_session,
                },
            });
        } else {
            s.push_history(SessionEvent {
                t_us: ev.t_us,
                conn: ev.conn,
                kind: SessionEventKind::Refused(code),
            });
        }
    }
    if let Some((old, new)) = will {
        cap.reindex_will(&ev.client_id, old, new);
    }
    delta
}

/// A PUBLISH: counted on its session; a delivery is checked against the
/// receiver's MQTT 5 promises and marked when it waited in the broker.
fn on_publish(cap: &mut Capture, ev: &WireEvent, seq: u64) {
    // Published before this connection began (and not a retained replay): it waited in the broker.
    let origin = if ev.dir == Direction::BrokerToClient {
        cap.origin_of(ev).and_then(|o| cap.get(o))
    } else {
        None
    };
    let origin_t = origin.filter(|_| !ev.retain).map(|o| o.t_us);
    let own_message = origin.is_some_and(|o| o.client_id == ev.client_id);
    if let Some(s) = session(cap, &ev.client_id, ev.t_us) {
        match ev.dir {
            Direction::ClientToBroker => s.published += 1,
            Direction::BrokerToClient => {
                s.received += 1;
                if origin_t.is_some_and(|t| t < s.connected_since_us) && !s.clean_session {
                    s.from_offline_queue += 1;
                }
                if s.protocol == 5 {
                    v5_delivery_checks(s, ev, seq, own_message);
                }
            }
        }
    }
}

/// A closed connection: its session goes offline (unless a takeover moved
/// it on) and keeps its MQTT 5 expiry promise; returns the change in
/// connected clients.
fn on_closed(cap: &mut Capture, ev: &WireEvent, reason: &crate::wire::CloseReason) -> isize {
    let mut delta = 0;
    if let Some(s) = session(cap, &ev.client_id, ev.t_us) {
        // A takeover closes the old connection after the new one connected.
        if s.conn == Some(ev.conn) {
            delta -= s.connected as isize;
            s.connected = false;
            // MQTT 5: the broker keeps the session this long (a reconnect checks it).
            // The last word wins: DISCONNECT, else the CONNACK, else the CONNECT.
            s.expiry_promise = s
                .disconnect_expiry_s
                .take()
                .or_else(|| s.connack_props.as_ref().and_then(|p| p.session_expiry_s))
                .or_else(|| s.connect_props.as_ref().and_then(|p| p.session_expiry_s))
                .filter(|&e| e > 0 && s.protocol == 5)
                .map(|e| (e, ev.t_us));
            if s.clean_session {
                s.subscriptions.clear();
            }
        }
        s.push_history(SessionEvent {
            t_us: ev.t_us,
            conn: ev.conn,
            kind: SessionEventKind::Disconnected(reason.clone()),
        });
    }
    delta
}

/// MQTT 5 promises a delivery to `s` must keep: the client's maximum packet
/// size, and no-local (no echo of its own messages).
fn v5_delivery_checks(s: &mut Session, ev: &WireEvent, seq: u64, own_message: bool) {
    if let Some(max) = s.connect_props.as_ref().and_then(|p| p.max_packet_size)
        && ev.size > max
    {
        s.deviate(
            ev.t_us,
            seq,
            format!(
                "maximum packet size ignored: a PUBLISH of {} B was sent to a client that \
                 allows {max} B (MQTT 5 §3.1.2.11.4)",
                ev.size
            ),
        );
    }
    let topic = ev.topic.as_deref().unwrap_or_default();
    // Only when every subscription that matches asked for no-local (an
    // overlapping one without it may deliver the message legitimately).
    let mut matching = s
        .subscriptions
        .iter()
        .filter(|(f, _)| crate::wire::topic_matches(topic, f))
        .peekable();
    let all_no_local = matching.peek().is_some() && matching.all(|(_, sub)| sub.no_local);
    if own_message && all_no_local {
        s.deviate(
            ev.t_us,
            seq,
            format!(
                "no-local ignored: its own message on {topic} was delivered back to it \
                 (MQTT 5 §3.8.3.1)"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use crate::wire::Direction::*;

    #[test]
    fn connect_subscribe_suback_disconnect() {
        let mut c = Capture::default();
        c.ingest(ev(1, "", ClientToBroker, PacketKind::Opened));
        let mut conn = ev(1, "dev", ClientToBroker, PacketKind::Connect);
        conn.detail = WireDetail::Connect {
            protocol: 4,
            clean_session: false,
            keep_alive_s: 5,
            will: None,
            username: None,
        };
        c.ingest(conn);
        let mut ack = ev(1, "dev", BrokerToClient, PacketKind::ConnAck);
        ack.detail = WireDetail::ConnAck {
            session_present: false,
            code: 0,
        };
        c.ingest(ack);
        let mut sub = ev(1, "dev", ClientToBroker, PacketKind::Subscribe);
        sub.pkid = 3;
        sub.detail = WireDetail::Subscribe(vec![("a/#".into(), 2)]);
        c.ingest(sub);
        let mut suback = ev(1, "dev", BrokerToClient, PacketKind::SubAck);
        suback.pkid = 3;
        suback.detail = WireDetail::SubAck(vec![Some(1)]);
        c.ingest(suback);
        let s = &c.sessions["dev"];
        assert!(s.connected && !s.clean_session);
        assert_eq!(s.granted_qos_for("a/b"), Some(1));
        let mut closed = ev(1, "dev", ClientToBroker, PacketKind::Closed);
        closed.detail = WireDetail::Closed(CloseReason::DroppedByTap);
        c.ingest(closed);
        let s = &c.sessions["dev"];
        assert!(!s.connected);
        assert_eq!(s.last_disconnect(), Some(&CloseReason::DroppedByTap));
        // Persistent: subscriptions survive the disconnect.
        assert_eq!(s.subscriptions.len(), 1);
    }
}
