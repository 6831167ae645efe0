use crate::link::local::{LinkError, LinkRx, LinkTx};
use crate::link::network;
use crate::link::network::Network;
use crate::local::LinkBuilder;
use crate::protocol::{
    ConnAck, Connect, ConnectReturnCode, Login, Packet, Protocol, PubAck, PubAckReason, PubComp,
    PubCompReason, PubRec, PubRecReason, QoS,
};
use crate::router::{Event, Notification};
use crate::{ConnectionId, ConnectionSettings};

use flume::{RecvError, SendError, Sender, TrySendError};
use std::cmp::min;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::time::error::Elapsed;
use tokio::{select, time};
use tracing::{trace, Span};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O")]
    Io(#[from] io::Error),
    #[error("Zero keep alive")]
    ZeroKeepAlive,
    /// (MQTT Workbench patch: boxed, as the whole error would otherwise be
    /// the size of a CONNECT and every link future keep room for it.)
    #[error("Not connect packet")]
    NotConnectPacket(Box<Packet>),
    #[error("Network {0}")]
    Network(#[from] network::Error),
    #[error("Timeout")]
    Timeout(#[from] Elapsed),
    #[error("Channel send error")]
    Send(#[from] SendError<(ConnectionId, Event)>),
    #[error("Channel recv error")]
    Recv(#[from] RecvError),
    #[error("Got new session, disconnecting old one")]
    SessionEnd,
    #[error("Persistent session requires valid client id")]
    InvalidClientId,
    #[error("Unexpected router message")]
    NotConnectionAck,
    #[error("ConnAck error {0}")]
    ConnectionAck(String),
    #[error("Authentication error")]
    InvalidAuth,
    #[error("Channel try send error")]
    TrySend(#[from] TrySendError<(ConnectionId, Event)>),
    #[error("Link error = {0}")]
    Link(#[from] LinkError),
}

/// Orchestrates between Router and Network.
pub struct RemoteLink<P> {
    connect: Connect,
    pub(crate) connection_id: ConnectionId,
    network: Network<P>,
    link_tx: LinkTx,
    link_rx: LinkRx,
    notifications: VecDeque<Notification>,
    pub(crate) will_delay_interval: u32,
    /// MQTT Workbench patch (MQTT 5 §3.1.2.11.4): the client's Maximum
    /// Packet Size, and the QoS 2 deliveries dropped for it whose PUBREL the
    /// link answers itself.
    max_packet_size: Option<usize>,
    dropped_qos2: Vec<u16>,
}

impl<P: Protocol> RemoteLink<P> {
    pub async fn new(
        router_tx: Sender<(ConnectionId, Event)>,
        tenant_id: Option<String>,
        mut network: Network<P>,
        connect_packet: Packet,
        dynamic_filters: bool,
        assigned_client_id: Option<String>,
    ) -> Result<RemoteLink<P>, Error> {
        let Packet::Connect(connect, props, lastwill, lastwill_props, _) = connect_packet else {
            return Err(Error::NotConnectPacket(Box::new(connect_packet)));
        };

        // Register this connection with the router. Router replys with ack which if ok will
        // start the link. Router can sometimes reject the connection (ex max connection limit)
        let client_id = assigned_client_id.as_ref().unwrap_or(&connect.client_id);
        let clean_session = connect.clean_session;

        let topic_alias_max = props.as_ref().and_then(|p| p.topic_alias_max);
        let max_packet_size = props
            .as_ref()
            .and_then(|p| p.max_packet_size)
            .map(|m| m as usize);
        let session_expiry = props
            .as_ref()
            .and_then(|p| p.session_expiry_interval)
            .unwrap_or(0);

        let delay_interval = lastwill_props
            .as_ref()
            .and_then(|f| f.delay_interval)
            .unwrap_or(0);

        // The Server delays publishing the Client’s Will Message until
        // the Will Delay Interval has passed or the Session ends, whichever happens first
        let will_delay_interval = min(session_expiry, delay_interval);

        let router = router_tx.clone();
        let built = LinkBuilder::new(client_id, router_tx)
            .tenant_id(tenant_id)
            .clean_session(clean_session)
            .last_will(lastwill)
            .last_will_properties(lastwill_props)
            .dynamic_filters(dynamic_filters)
            .topic_alias_max(topic_alias_max.unwrap_or(0))
            .session_expiry(network.is_v5().then_some(session_expiry))
            .receive_maximum(props.as_ref().and_then(|p| p.receive_maximum))
            // MQTT Workbench patch: without blocking the runtime's thread.
            .build_async()
            .await;
        // MQTT Workbench patch (MQTT 3.1.1 §3.2.2.3, MQTT 5 §3.2.2.2): when the
        // router turns the connection away (it holds `max_connections`
        // already), the client hears it as a CONNACK, 0x03 Server unavailable
        // or 0x97 Quota exceeded, instead of a bare close.
        let (link_tx, link_rx, notification) = match built {
            Ok(link) => link,
            Err(e) => {
                let code = if network.is_v5() {
                    ConnectReturnCode::QuotaExceeded
                } else {
                    ConnectReturnCode::ServiceUnavailable
                };
                let ack = ConnAck {
                    session_present: false,
                    code,
                };
                let _ = network.write(Packet::ConnAck(ack, None)).await;
                return Err(e.into());
            }
        };

        let id = link_rx.id();
        Span::current().record("connection_id", id);

        if let Some(mut packet) = notification.into() {
            if let Packet::ConnAck(_ack, props) = &mut packet {
                let mut new_props = props.clone().unwrap_or_default();
                new_props.assigned_client_identifier = assigned_client_id;
                *props = Some(new_props);
                // MQTT Workbench patch: the router registered this connection;
                // when its CONNACK cannot be written (the client reset the
                // connection) it must hear of the end, or the session stays
                // connected for ever and holds its client id.
                if let Err(e) = network.write(packet).await {
                    router
                        .send_async((id, Event::Disconnect(link_tx.generation)))
                        .await
                        .ok();
                    return Err(e.into());
                }
            }
        }

        Ok(RemoteLink {
            connect,
            connection_id: id,
            network,
            link_tx,
            link_rx,
            // MQTT Workbench patch: grow as used.
            notifications: VecDeque::new(),
            will_delay_interval,
            max_packet_size,
            dropped_qos2: Vec::new(),
        })
    }

    pub async fn start(&mut self) -> Result<(), Error> {
        self.network.set_keepalive(self.connect.keep_alive);

        // Note:
        // Shouldn't result in bounded queue deadlocks because of blocking n/w send
        loop {
            select! {
                // MQTT Workbench patch (memory per idle connection): the packet
                // is queued for the router inside `read_batch`, so what the
                // `select!` keeps room for is a count, not a whole `Packet`.
                o = Self::read_batch(&mut self.network, &self.link_tx) => {
                    let len = o?;
                    trace!("Packets read from network, count = {}", len);
                    self.link_tx.notify().await?;
                }
                // Receive from router when previous when state isn't in collision
                // due to previously received data request
                o = self.link_rx.exchange(&mut self.notifications) => {
                    o?;
                    let mut packets = VecDeque::new();
                    let mut unscheduled = false;

                    for notif in self.notifications.drain(..) {
                        if let Some(packet) = notif.into() {
                            packets.push_back(packet);
                        } else {
                            unscheduled = true;
                        }

                    }
                    // MQTT Workbench patch (memory per idle connection): the
                    // notifications queue of a quiet link (a CONNACK, a SUBACK)
                    // gives its room back; a busy one keeps it.
                    if self.notifications.capacity() <= crate::router::SMALL_QUEUE {
                        self.notifications.shrink_to_fit();
                    }
                    let mut acked = false;
                    if self.max_packet_size.is_some() {
                        (packets, acked) = self.within_max_packet_size(packets);
                    }
                    self.network.writev(packets).await?;
                    if acked {
                        // The router reads the acks of what was dropped.
                        self.link_tx.notify().await?;
                    }
                    if unscheduled {
                        self.link_rx.wake().await?;
                    }
                }
            }
        }
    }
}

impl<P: Protocol> RemoteLink<P> {
    /// MQTT Workbench patch: wait for a packet, then queue it and every
    /// other whole packet already read for the router; how many are queued.
    async fn read_batch(network: &mut Network<P>, link_tx: &LinkTx) -> Result<usize, Error> {
        let packet = network.read().await?;
        let mut buffer = link_tx.buffer();
        buffer.push_back(packet);
        network.readv(&mut buffer)?;
        Ok(buffer.len())
    }

    /// MQTT Workbench patch: the connection's generation (`Incoming::generation`).
    pub(crate) fn generation(&self) -> u64 {
        self.link_tx.generation
    }

    /// MQTT Workbench patch (MQTT 5 §3.1.2.11.4): "Where a Packet is too large
    /// to send, the Server MUST discard it without sending it and then behave
    /// as if it had completed sending that Application Message". A dropped
    /// QoS 1 message is acknowledged to the router as if by the client; a
    /// dropped QoS 2 one gets its PUBREC, and its PUBREL is answered here.
    fn within_max_packet_size(&mut self, packets: VecDeque<Packet>) -> (VecDeque<Packet>, bool) {
        let Some(max) = self.max_packet_size else {
            return (packets, false);
        };
        let mut kept = VecDeque::with_capacity(packets.len());
        let mut acks = Vec::new();
        for packet in packets {
            match &packet {
                Packet::Publish(publish, _)
                    if self
                        .network
                        .encoded_len(packet.clone())
                        .is_ok_and(|len| len > max) =>
                {
                    let pkid = publish.pkid;
                    match publish.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => acks.push(Packet::PubAck(
                            PubAck {
                                pkid,
                                reason: PubAckReason::Success,
                            },
                            None,
                        )),
                        QoS::ExactlyOnce => {
                            self.dropped_qos2.push(pkid);
                            acks.push(Packet::PubRec(
                                PubRec {
                                    pkid,
                                    reason: PubRecReason::Success,
                                },
                                None,
                            ));
                        }
                    }
                }
                Packet::PubRel(pubrel, _) if self.dropped_qos2.contains(&pubrel.pkid) => {
                    let pkid = pubrel.pkid;
                    self.dropped_qos2.retain(|p| *p != pkid);
                    acks.push(Packet::PubComp(
                        PubComp {
                            pkid,
                            reason: PubCompReason::Success,
                        },
                        None,
                    ));
                }
                _ => kept.push_back(packet),
            }
        }
        let acked = !acks.is_empty();
        if acked {
            self.link_tx.buffer().extend(acks);
        }
        (kept, acked)
    }
}

/// Read MQTT connect packet from network and verify it.
/// authentication and checks are done here.
pub async fn mqtt_connect<P>(
    config: Arc<ConnectionSettings>,
    network: &mut Network<P>,
) -> Result<Packet, Error>
where
    P: Protocol,
{
    // Wait for MQTT connect packet and error out if it's not received in time to prevent
    // DOS attacks by filling total connections that the server can handle with idle open
    // connections which results in server rejecting new connections
    let connection_timeout_ms = config.connection_timeout_ms.into();
    let packet = time::timeout(Duration::from_millis(connection_timeout_ms), async {
        let packet = network.read().await?;
        Ok::<_, network::Error>(packet)
    })
    .await??;

    let (connect, _props, login) = match packet {
        Packet::Connect(ref connect, ref props, _, _, ref login) => (connect, props, login),
        packet => return Err(Error::NotConnectPacket(Box::new(packet))),
    };

    Span::current().record("client_id", &connect.client_id);

    handle_auth(config.clone(), login.as_ref(), &connect.client_id).await?;

    // When keep_alive feature is disabled client can live forever, which is not good in
    // distributed broker context so currenlty we don't allow it.
    // MQTT Workbench patch (MQTT 3.1.1 §3.1.2.10, MQTT 5 §3.1.2.10): keep
    // alive 0 means "no keep alive mechanism" and is legal; upstream closed
    // such a CONNECT without CONNACK. `Network::set_keepalive(0)` now waits
    // without a deadline.

    let empty_client_id = connect.client_id.is_empty();
    let clean_session = connect.clean_session;

    // MQTT Workbench patch (MQTT 3.1.1 §3.1.3-9, MQTT 5 §3.1.3.1.1): a client
    // id the router will not register (it reserves `+ # / $` for topic
    // prefixes) is refused with CONNACK "identifier rejected" (0x02 / 0x85)
    // instead of a connection that never gets its CONNACK.
    let reserved = "+$#/".chars().any(|c| connect.client_id.contains(c));
    // MQTT Workbench patch (MQTT 5 §3.1.3.1.1): an MQTT 5 client with an
    // empty client id gets one assigned whatever its Clean Start; only
    // MQTT 3.1.1 requires Clean Session 1 then (§3.1.3-8).
    let v4_empty_persistent = empty_client_id && !clean_session && !network.is_v5();
    if v4_empty_persistent || reserved {
        let ack = ConnAck {
            session_present: false,
            code: ConnectReturnCode::ClientIdentifierNotValid,
        };

        let packet = Packet::ConnAck(ack, None);
        network.write(packet).await?;

        return Err(Error::InvalidClientId);
    }

    // Ok((connect, props, lastwill, lastwill_props))
    Ok(packet)
}

async fn handle_auth(
    config: Arc<ConnectionSettings>,
    login: Option<&Login>,
    client_id: &str,
) -> Result<(), Error> {
    if config.auth.is_none() && config.external_auth.is_none() {
        return Ok(());
    }

    // if authentication is configured and connect packet doesn't have login details
    // return an error
    let Some(login) = login else {
        return Err(Error::InvalidAuth);
    };

    let username = &login.username;
    let password = &login.password;

    if let Some(auth) = &config.external_auth {
        if !auth(
            client_id.to_owned(),
            username.to_owned(),
            password.to_owned(),
        )
        .await
        {
            return Err(Error::InvalidAuth);
        }

        return Ok(());
    }

    if let Some(pairs) = &config.auth {
        if let Some(stored_password) = pairs.get(username) {
            if stored_password.as_bytes().ct_eq(password.as_bytes()).into() {
                return Ok(());
            }
        }

        return Err(Error::InvalidAuth);
    }

    Err(Error::InvalidAuth)
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Arc};

    use crate::{protocol::Login, ConnectionSettings};

    use super::handle_auth;

    fn config() -> ConnectionSettings {
        ConnectionSettings {
            connection_timeout_ms: 0,
            max_payload_size: 0,
            max_inflight_count: 0,
            auth: None,
            external_auth: None,
            dynamic_filters: false,
        }
    }

    fn login() -> Login {
        Login {
            username: "u".to_owned(),
            password: "p".to_owned(),
        }
    }

    #[tokio::test]
    async fn no_login_no_auth() {
        let cfg = Arc::new(config());
        let r = handle_auth(cfg, None, "").await;
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn some_login_no_auth() {
        let cfg = Arc::new(config());
        let login = login();
        let r = handle_auth(cfg, Some(&login), "").await;
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn login_matches_static_auth() {
        let login = login();
        let mut map = HashMap::<String, String>::new();
        map.insert(login.username.clone(), login.password.clone());

        let mut cfg = config();
        cfg.auth = Some(map);

        let r = handle_auth(Arc::new(cfg), Some(&login), "").await;
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn login_fails_static_no_external() {
        let login = login();
        let mut map = HashMap::<String, String>::new();
        map.insert("wrong".to_owned(), "wrong".to_owned());

        let mut cfg = config();
        cfg.auth = Some(map);

        let r = handle_auth(Arc::new(cfg), Some(&login), "").await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn login_fails_static_matches_external() {
        let login = login();

        let mut map = HashMap::<String, String>::new();
        map.insert("wrong".to_owned(), "wrong".to_owned());

        let dynamic = |_: String, _: String, _: String| async { true };

        let mut cfg = config();
        cfg.auth = Some(map);
        cfg.set_auth_handler(dynamic);

        let r = handle_auth(Arc::new(cfg), Some(&login), "").await;
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn login_fails_static_fails_external() {
        let login = login();

        let mut map = HashMap::<String, String>::new();
        map.insert("wrong".to_owned(), "wrong".to_owned());

        let dynamic = |_: String, _: String, _: String| async { false };

        let mut cfg = config();
        cfg.auth = Some(map);
        cfg.set_auth_handler(dynamic);

        let r = handle_auth(Arc::new(cfg), Some(&login), "").await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn external_auth_clousre_or_fnptr_type_check_or_fail_compile() {
        let closure = |_: String, _: String, _: String| async { false };
        async fn fnptr(_: String, _: String, _: String) -> bool {
            true
        }

        let mut cfg = config();
        cfg.set_auth_handler(closure);
        cfg.set_auth_handler(fnptr);
    }
}
