//! Where connections come from: the tap's listeners (plain, TLS, ws://,
//! wss://) with their handshakes, and the in-process door virtual devices use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::{Conn, ConnCtl, ConnCtx, HANDSHAKE_WITHIN, Shared, open_link, ws};
use crate::wire::{CloseReason, IN_PROCESS_PEER, LinkInfo, PacketKind, TlsSession, WireDetail};

/// Where a tap listens: plain MQTT always; TLS, WebSocket and secure
/// WebSocket listeners when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapAddrs {
    pub plain: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    pub wss: Option<SocketAddr>,
}

/// What a tap should listen on (see [`Tap::start_listeners`]).
pub struct Listeners {
    pub plain: SocketAddr,
    /// The TLS acceptor, for the TLS and wss listeners and in-process wss devices.
    pub acceptor: Option<tokio_rustls::TlsAcceptor>,
    pub tls: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    /// Needs `acceptor`.
    pub wss: Option<SocketAddr>,
    pub ws_path: ws::WsPath,
}

impl Listeners {
    pub fn plain(plain: SocketAddr) -> Listeners {
        Listeners {
            plain,
            acceptor: None,
            tls: None,
            ws: None,
            wss: None,
            ws_path: ws::WsPath::default(),
        }
    }
}

/// The kind of listener a connection arrived on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    Plain,
    Tls,
    Ws,
    Wss,
}

impl Entry {
    pub(super) fn tls(self) -> bool {
        matches!(self, Entry::Tls | Entry::Wss)
    }
    pub(super) fn ws(self) -> bool {
        matches!(self, Entry::Ws | Entry::Wss)
    }
}

pub(super) async fn accept_loop(listener: TcpListener, entry: Entry, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("tap accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Latency matters more than throughput for an inspector; rumqttd never sets it.
        let _ = stream.set_nodelay(true);
        let weak = Arc::downgrade(&shared);
        spawn_conn(&shared, peer, entry, move |kill| async move {
            let shared = weak.upgrade().ok_or(CloseReason::DroppedByTap)?;
            tokio::select! {
                r = tokio::time::timeout(HANDSHAKE_WITHIN, open_accepted(stream, entry, &shared)) => {
                    r.map_err(|_| CloseReason::Error(
                        "the TLS or WebSocket handshake did not finish within 10 s".into(),
                    ))?
                }
                _ = kill.notified() => Err(CloseReason::DroppedByTap),
            }
        });
    }
}

/// The handshakes of a connection accepted on `entry`: TLS, then the
/// WebSocket upgrade, as the listener asks.
async fn open_accepted(
    stream: TcpStream,
    entry: Entry,
    shared: &Shared,
) -> Result<(Conn, Option<Box<LinkInfo>>), CloseReason> {
    if entry == Entry::Plain {
        return Ok((Conn::Plain(stream), None));
    }
    if entry.tls() {
        // A client that does not speak TLS at all is told so, not "corrupt message".
        let mut first = [0u8; 1];
        if let Ok(1) = stream.peek(&mut first).await
            && let Some(why) = crate::tls::not_tls(first[0], entry.ws())
        {
            return Err(CloseReason::Error(why));
        }
    }
    let (io, link) = handshake(stream, entry, shared).await?;
    Ok((Conn::Boxed(io), link))
}

/// The server side of `entry`'s handshakes over any byte stream (a socket,
/// or a virtual device's in-process duplex): TLS when the entry is secure,
/// then the WebSocket upgrade when it is a WebSocket one.
async fn handshake<S: ws::Io + 'static>(
    stream: S,
    entry: Entry,
    shared: &Shared,
) -> Result<(Box<dyn ws::Io>, Option<Box<LinkInfo>>), CloseReason> {
    let mut link = LinkInfo::default();
    let stream: Box<dyn ws::Io> = if entry.tls() {
        let acceptor = shared
            .acceptor
            .clone()
            .ok_or_else(|| CloseReason::Error("no TLS set-up for this listener".into()))?;
        let tls = acceptor
            .accept(stream)
            .await
            .map_err(|e| CloseReason::Error(crate::tls::handshake_failure(&e)))?;
        link.tls = Some(session_info(tls.get_ref().1));
        Box::new(tls)
    } else {
        Box::new(stream)
    };
    if !entry.ws() {
        let link = link.tls.is_some().then(|| Box::new(link));
        return Ok((stream, link));
    }
    let (io, info) = ws::accept(stream, &shared.ws_path)
        .await
        .map_err(CloseReason::Error)?;
    link.ws = Some(info);
    Ok((io, Some(Box::new(link))))
}

/// Proxy one client connection: `open` yields its stream (after a TLS
/// handshake, say) and what its handshakes said, or why it never opened.
fn spawn_conn<F, Fut>(shared: &Arc<Shared>, peer: SocketAddr, entry: Entry, open: F)
where
    F: FnOnce(Arc<Notify>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(Conn, Option<Box<LinkInfo>>), CloseReason>>
        + Send
        + 'static,
{
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let ctx = Arc::new(ConnCtx {
        id,
        client_id: Arc::default(),
        disconnect_seen: AtomicBool::new(false),
        rec: shared.rec.clone(),
        faults: shared.faults.clone(),
        embedded: shared.embedded,
        protocol: 0,
        acl: None,
    });
    let kill = Arc::new(Notify::new());
    shared.conns.lock().insert(
        id,
        ConnCtl {
            client_id: ctx.client_id.clone(),
            kill: kill.clone(),
        },
    );
    let upstream = shared.upstream.lock().clone();
    let auth = shared.auth.read().clone();
    let conns = shared.conns.clone();
    // Everything only the opening needs (TLS handshake, CONNECT, access
    // rules, the broker's connection) lives in its own box, freed once the
    // pumps run: a connection's task then holds little more than its two
    // pumps (thousands of connections, most of them idle).
    let opening = Box::pin(async move {
        let opened = |link| WireDetail::Opened {
            peer: Box::new(peer),
            tls: entry.tls(),
            link,
        };
        // A WebSocket whose handshake failed is still marked as one.
        let unopened = entry.ws().then(|| {
            Box::new(LinkInfo {
                ws: Some(crate::wire::WsInfo::default()),
                tls: None,
            })
        });
        match open(kill.clone()).await {
            Ok((client, link)) => {
                ctx.marker(PacketKind::Opened, opened(link));
                open_link(client, upstream, auth, ctx, kill).await
            }
            Err(reason) => {
                // A failed handshake still shows as a connection, with its reason.
                ctx.marker(PacketKind::Opened, opened(unopened));
                ctx.marker(PacketKind::Closed, WireDetail::Closed(reason));
                None
            }
        }
    });
    tokio::spawn(async move {
        if let Some(link) = opening.await {
            (*link).run().await;
        }
        conns.lock().remove(&id);
    });
}

/// Connects virtual devices to a tap in-process, without a socket: each
/// connection is proxied (decoded, recorded, faults applied) exactly like
/// one accepted on the listener.
#[derive(Clone)]
pub struct TapDoor(pub(super) std::sync::Weak<Shared>);

/// How an in-process connection reaches the tap: as plain MQTT, or through
/// the same TLS and WebSocket handshakes as the tap's listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DoorKind {
    #[default]
    Mqtt,
    Ws,
    Wss,
}

impl TapDoor {
    pub fn connect(&self) -> std::io::Result<tokio::io::DuplexStream> {
        self.connect_as(DoorKind::Mqtt)
    }

    /// A byte stream the device's side still has to open with the handshakes
    /// `kind` names (the tap answers them as its listeners do).
    pub fn connect_as(&self, kind: DoorKind) -> std::io::Result<tokio::io::DuplexStream> {
        let shared = self.0.upgrade().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "the tap is stopped")
        })?;
        if kind == DoorKind::Wss && shared.acceptor.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "the workbench runs without TLS: start it with --tls or --wss",
            ));
        }
        let (device, tap) = tokio::io::duplex(crate::broker::MEMORY_BUFFER);
        let weak = self.0.clone();
        let entry = match kind {
            DoorKind::Mqtt => Entry::Plain,
            DoorKind::Ws => Entry::Ws,
            DoorKind::Wss => Entry::Wss,
        };
        spawn_conn(&shared, IN_PROCESS_PEER, entry, move |_| async move {
            if entry == Entry::Plain {
                return Ok((Conn::boxed(tap), None));
            }
            let shared = weak.upgrade().ok_or(CloseReason::DroppedByTap)?;
            let (io, link) = handshake(tap, entry, &shared).await?;
            Ok((Conn::Boxed(io), link))
        });
        Ok(device)
    }
}

/// The session a finished server handshake made (shown on the client's session).
fn session_info(conn: &rustls::ServerConnection) -> TlsSession {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "?".to_string(),
    };
    TlsSession {
        version,
        cipher: conn
            .negotiated_cipher_suite()
            .map_or_else(|| "?".to_string(), |c| format!("{:?}", c.suite())),
        sni: conn.server_name().map(str::to_string),
        client_cert: conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|der| crate::tls::subject(der.as_ref())),
    }
}
