//! The tap: an MQTT-aware TCP proxy in front of the broker.
//!
//! Every client connects to the tap's port; the tap opens a matching
//! connection to the broker and forwards bytes both ways unchanged. On the way
//! it frames and decodes each MQTT 3.1.1 packet with rumqttc's `mqttbytes` and
//! records it as a [`WireEvent`]. It can cut a connection abruptly on command.

pub mod auth;
mod conn;
mod decode;
mod decode_v5;
pub mod faults;
mod listen;
mod pump;
pub mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::fault::PartitionMode;

use crate::wire::{CloseReason, ConnId, Direction, Injected, PacketKind, WireDetail, WireEvent};
use faults::{FaultTable, FaultView};

use crate::time::now_us;
pub use auth::{AuthFileError, AuthSpec, Refusal, RuleError};
use conn::{Conn, Reader, Writer};
pub use decode::decode_frames;
pub use listen::{DoorKind, Listeners, TapAddrs, TapDoor};
use listen::{Entry, accept_loop};
use pump::{QUEUE_FRAMES, READ_MIN, pump};

/// Largest MQTT frame the tap decodes (bigger ones end the connection).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024 + 1024;

/// Where the tap sends what it decodes: a bounded queue; what does not fit is
/// dropped and counted, never waited for (the proxy must not slow down).
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<WireEvent>,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    pub fn new(tx: mpsc::Sender<WireEvent>, dropped: Arc<AtomicU64>) -> Recorder {
        Recorder { tx, dropped }
    }

    pub fn record(&self, ev: WireEvent) {
        if self.tx.try_send(ev).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where the tap forwards: MQTT 3.1/3.1.1 and MQTT 5 clients (`host:port`;
/// the same address for an external broker, which serves both).
#[derive(Clone)]
pub struct Upstreams {
    pub v4: String,
    pub v5: String,
    /// Reach the broker over TLS (an external `mqtts://` or `wss://` broker).
    pub tls: Option<UpstreamTls>,
    /// Reach the broker over WebSockets at this URL (an external `ws://` or
    /// `wss://` broker); the TCP connection still goes to `v4`/`v5`.
    pub ws_url: Option<String>,
    /// The embedded broker's in-process door: connections go through it
    /// instead of a socket to `v4`/`v5` (no file descriptor per connection).
    pub memory: Option<crate::broker::MemoryDoor>,
}

/// TLS towards the broker: the client configuration and the name its certificate must carry.
#[derive(Clone)]
pub struct UpstreamTls {
    pub config: Arc<rustls::ClientConfig>,
    pub name: rustls::pki_types::ServerName<'static>,
}

impl Upstreams {
    pub fn both(addr: String) -> Upstreams {
        Upstreams {
            v4: addr.clone(),
            v5: addr,
            tls: None,
            ws_url: None,
            memory: None,
        }
    }
}

/// How long a TLS client may take to finish its handshake.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// Control handle for one proxied connection.
struct ConnCtl {
    client_id: Arc<OnceLock<Arc<str>>>,
    kill: Arc<Notify>,
}

/// A running tap.
pub struct Tap {
    shared: Arc<Shared>,
    auth: Arc<parking_lot::RwLock<Option<Arc<AuthSpec>>>>,
    addrs: TapAddrs,
    conns: Arc<Mutex<HashMap<ConnId, ConnCtl>>>,
    accept_tasks: Vec<tokio::task::JoinHandle<()>>,
    faults: Arc<FaultTable>,
}

/// What every connection of one tap shares.
struct Shared {
    conns: Arc<Mutex<HashMap<ConnId, ConnCtl>>>,
    faults: Arc<FaultTable>,
    next_id: AtomicU64,
    rec: Recorder,
    upstream: Arc<Mutex<Upstreams>>,
    embedded: bool,
    /// Access rules for new connections (None: everyone may do everything).
    auth: Arc<parking_lot::RwLock<Option<Arc<AuthSpec>>>>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    ws_path: ws::WsPath,
}

/// Shared state of one proxied connection.
struct ConnCtx {
    id: ConnId,
    client_id: Arc<OnceLock<Arc<str>>>,
    disconnect_seen: AtomicBool,
    rec: Recorder,
    faults: Arc<FaultTable>,
    /// The broker behind is the embedded rumqttd (which serves neither MQTT
    /// 3.1 nor frames the tap cannot decode). The tap changes nothing else:
    /// the broker's departures from the spec are fixed in `vendor/rumqttd`.
    embedded: bool,
    /// MQTT protocol level from the CONNECT (0 until it arrived).
    protocol: u8,
    /// The access rules this connection logged in under (None: no rules).
    acl: Option<Acl>,
}

/// A connection's access rules and what enforcing them left pending.
struct Acl {
    spec: Arc<AuthSpec>,
    grant: auth::Grant,
    /// SUBSCRIBE packet id → which of its filters were allowed (the broker saw only those).
    split_subscribes: Mutex<HashMap<u16, Vec<bool>>>,
    /// 3.1.1 QoS 2 publishes the tap refused: their PUBREL is answered by the tap.
    denied_qos2: Mutex<std::collections::HashSet<u16>>,
}

impl ConnCtx {
    /// The same connection's context (counters and ids shared), to set the protocol on.
    fn clone_for(other: &ConnCtx) -> ConnCtx {
        ConnCtx {
            id: other.id,
            client_id: other.client_id.clone(),
            disconnect_seen: AtomicBool::new(other.disconnect_seen.load(Ordering::Relaxed)),
            rec: other.rec.clone(),
            faults: other.faults.clone(),
            embedded: other.embedded,
            protocol: other.protocol,
            acl: None,
        }
    }

    /// Decode frames the tap itself writes (or rewrote) and record them, marked.
    fn decode_own(
        &self,
        bytes: &[u8],
        dir: Direction,
        injected: Option<Injected>,
    ) -> Vec<WireEvent> {
        let mut aliases = HashMap::new();
        let mut out = Vec::new();
        decode_frames(
            bytes,
            dir,
            self.id,
            &self.client_id,
            (self.protocol == 5).then_some(&mut aliases),
            &mut |mut ev, _| {
                ev.injected = injected;
                out.push(ev);
            },
        );
        out
    }

    fn client_id(&self) -> Arc<str> {
        self.client_id
            .get()
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    fn marker(&self, kind: PacketKind, detail: WireDetail) {
        let mut ev = WireEvent::new(
            now_us(),
            self.id,
            self.client_id(),
            Direction::ClientToBroker,
            kind,
        );
        ev.detail = detail;
        self.rec.record(ev);
    }
}

impl Tap {
    /// Bind `listen` and forward every accepted connection to `upstream` (`host:port`).
    /// `embedded`: the broker behind is the embedded rumqttd (see [`ConnCtx`]).
    pub async fn start(
        listen: SocketAddr,
        upstream: Arc<Mutex<Upstreams>>,
        rec: Recorder,
        embedded: bool,
    ) -> std::io::Result<Tap> {
        Tap::start_listeners(Listeners::plain(listen), upstream, rec, embedded).await
    }

    /// Like [`Tap::start`], with the TLS and WebSocket listeners `listen` asks for.
    pub async fn start_listeners(
        listen: Listeners,
        upstream: Arc<Mutex<Upstreams>>,
        rec: Recorder,
        embedded: bool,
    ) -> std::io::Result<Tap> {
        let mut bound = vec![(TcpListener::bind(listen.plain).await?, Entry::Plain)];
        let secure = |addr: Option<SocketAddr>| addr.filter(|_| listen.acceptor.is_some());
        for (addr, entry) in [
            (secure(listen.tls), Entry::Tls),
            (listen.ws, Entry::Ws),
            (secure(listen.wss), Entry::Wss),
        ] {
            if let Some(addr) = addr {
                bound.push((TcpListener::bind(addr).await?, entry));
            }
        }
        let mut addrs = TapAddrs {
            plain: bound[0].0.local_addr()?,
            tls: None,
            ws: None,
            wss: None,
        };
        for (l, entry) in &bound[1..] {
            let a = Some(l.local_addr()?);
            match entry {
                Entry::Tls => addrs.tls = a,
                Entry::Ws => addrs.ws = a,
                Entry::Wss => addrs.wss = a,
                Entry::Plain => {}
            }
        }
        let shared = Arc::new(Shared {
            conns: Arc::default(),
            faults: Arc::default(),
            next_id: AtomicU64::new(1),
            rec,
            upstream,
            embedded,
            auth: Arc::default(),
            acceptor: listen.acceptor,
            ws_path: listen.ws_path,
        });
        let accept_tasks = bound
            .into_iter()
            .map(|(l, entry)| tokio::spawn(accept_loop(l, entry, shared.clone())))
            .collect();
        Ok(Tap {
            shared: shared.clone(),
            auth: shared.auth.clone(),
            addrs,
            conns: shared.conns.clone(),
            accept_tasks,
            faults: shared.faults.clone(),
        })
    }

    /// In-process connections to this tap (see [`TapDoor`]).
    pub fn door(&self) -> TapDoor {
        TapDoor(Arc::downgrade(&self.shared))
    }

    /// Access rules for connections made from now on (None: no rules).
    pub fn set_auth(&self, auth: Option<Arc<AuthSpec>>) {
        *self.auth.write() = auth;
    }

    /// Where the TLS listener listens, if there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.addrs.tls
    }

    /// Every address the tap listens on.
    pub fn addrs(&self) -> TapAddrs {
        self.addrs
    }

    /// The path WebSocket clients connect to.
    pub fn ws_path(&self) -> &ws::WsPath {
        &self.shared.ws_path
    }

    /// The network faults applied to proxied connections (set and clear while running).
    pub fn faults(&self) -> &Arc<FaultTable> {
        &self.faults
    }

    /// Connection ids currently proxied for `client_id`.
    pub fn connections_of(&self, client_id: &str) -> Vec<ConnId> {
        self.conns
            .lock()
            .iter()
            .filter(|(_, c)| c.client_id.get().is_some_and(|id| &**id == client_id))
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addrs.plain
    }

    /// Number of connections currently proxied.
    pub fn connection_count(&self) -> usize {
        self.conns.lock().len()
    }

    /// Cut one connection abruptly (no DISCONNECT reaches the broker: the will fires).
    pub fn drop_connection(&self, id: ConnId) -> bool {
        match self.conns.lock().get(&id) {
            Some(c) => {
                c.kill.notify_one();
                true
            }
            None => false,
        }
    }

    /// Cut every connection whose CONNECT carried `client_id`. Returns how many.
    pub fn drop_client(&self, client_id: &str) -> usize {
        let conns = self.conns.lock();
        let mut n = 0;
        for c in conns.values() {
            if c.client_id.get().is_some_and(|id| &**id == client_id) {
                c.kill.notify_one();
                n += 1;
            }
        }
        n
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        for t in &self.accept_tasks {
            t.abort();
        }
        for c in self.conns.lock().values() {
            c.kill.notify_one();
        }
    }
}

async fn open_link(
    mut client: Conn,
    upstreams: Upstreams,
    auth: Option<Arc<AuthSpec>>,
    ctx: Arc<ConnCtx>,
    kill: Arc<Notify>,
) -> Option<Box<Link>> {
    // The CONNECT says which protocol the client speaks: MQTT 5 goes to the
    // broker's MQTT 5 listener, 3.1/3.1.1 to the other (both on one router).
    let read = tokio::select! {
        r = read_connect(&mut client) => r,
        _ = kill.notified() => Err(CloseReason::DroppedByTap),
    };
    let (read_before, level) = match read {
        Ok(x) => x,
        Err(reason) => {
            ctx.marker(PacketKind::Closed, WireDetail::Closed(reason));
            return None;
        }
    };
    // An unsupported protocol level is answered with CONNACK 0x01 "unacceptable
    // protocol version" (3.1.1 §3.1.2.2; MQTT 5 §3.1.2.2 allows this form).
    let unsupported = match level {
        3 if ctx.embedded => Some(
            "MQTT 3.1 (MQIsdp) is not served by the embedded broker; \
             use MQTT 3.1.1 or 5, or an external broker with --broker"
                .to_string(),
        ),
        3..=5 => None,
        other => Some(format!(
            "protocol level {other} is not MQTT 3.1 (3), 3.1.1 (4) or 5"
        )),
    };
    if let Some(why) = unsupported {
        let why = format!("refused by the tap: {why} (CONNACK unacceptable protocol version)");
        refuse_connect(client, &[], &ctx, auth::connack_bad_version(), why).await;
        return None;
    }
    let ctx = ConnCtx {
        protocol: level,
        ..ConnCtx::clone_for(&ctx)
    };
    // Access rules: bad credentials get CONNACK "not authorized" from the tap,
    // and the broker never sees the connection.
    let acl = match auth {
        None => None,
        Some(spec) => {
            let login = auth::credentials(&read_before, level).and_then(|(id, user, password)| {
                spec.login(&id, user.as_deref(), password.as_deref())
            });
            match login {
                Ok(grant) => Some(Acl {
                    spec,
                    grant,
                    split_subscribes: Mutex::default(),
                    denied_qos2: Mutex::default(),
                }),
                Err(why) => {
                    let connack = auth::connack_refused(ctx.protocol);
                    let why = format!("refused by the tap: {why} (CONNACK not authorized)");
                    refuse_connect(client, &read_before, &ctx, connack, why).await;
                    return None;
                }
            }
        }
    };
    let ctx = Arc::new(ConnCtx { acl, ..ctx });
    let upstream = if level == 5 {
        upstreams.v5
    } else {
        upstreams.v4
    };
    let connected = match &upstreams.memory {
        Some(door) => door
            .connect(level == 5)
            .map(Conn::boxed)
            .map_err(UpstreamError::Connect),
        None => {
            connect_upstream(
                &upstream,
                upstreams.tls.as_ref(),
                upstreams.ws_url.as_deref(),
            )
            .await
        }
    };
    let broker = match connected {
        Ok(s) => s,
        Err(e) => {
            // The client hears why (CONNACK "server unavailable"), not a bare close.
            let connack = auth::connack_unavailable(ctx.protocol);
            let why = format!(
                "broker {upstream} unreachable: {e} (CONNACK server unavailable from the tap)"
            );
            refuse_connect(client, &read_before, &ctx, connack, why).await;
            return None;
        }
    };
    let (client_r, client_w) = client.split();
    let (broker_r, broker_w) = broker.split();
    // Boxed: the connection's task keeps room for what the opening returns
    // while the pumps run.
    Some(Box::new(Link {
        client_r,
        client_w,
        broker_r,
        broker_w,
        read_before,
        ctx,
        kill,
    }))
}

/// An open connection: the client's and the broker's streams, ready to pump.
struct Link {
    client_r: Reader,
    client_w: Writer,
    broker_r: Reader,
    broker_w: Writer,
    /// Bytes read from the client before (its CONNECT).
    read_before: BytesMut,
    ctx: Arc<ConnCtx>,
    kill: Arc<Notify>,
}

impl Link {
    /// Pump both directions until either side ends, the tap drops the
    /// connection, or a frame ends it; record why it closed.
    /// Not an `async fn` (it would keep `self` twice), and the pumps are
    /// made in place and raced by reference: moved into `select!`, each
    /// would be kept twice too (one idle connection's task, thousands in a
    /// fleet).
    fn run(self) -> impl std::future::Future<Output = ()> + Send {
        let Link {
            client_r,
            client_w,
            broker_r,
            broker_w,
            read_before,
            ctx,
            kill,
        } = self;
        async move {
            // The client's writer also takes the tap's own answers (access rules),
            // through a weak sender: when the broker leaves, the client's side still closes.
            let (to_client, to_client_rx) = flume::bounded(QUEUE_FRAMES);
            let replies = to_client.downgrade();
            let mut up = std::pin::pin!(pump(
                client_r,
                broker_w,
                Direction::ClientToBroker,
                &ctx,
                read_before,
                None,
                Some(replies),
            ));
            let mut down = std::pin::pin!(pump(
                broker_r,
                client_w,
                Direction::BrokerToClient,
                &ctx,
                BytesMut::new(),
                Some((to_client, to_client_rx)),
                None,
            ));
            let closed = |r: Result<(), CloseReason>, eof: CloseReason| match r {
                Ok(()) if ctx.disconnect_seen.load(Ordering::Relaxed) => CloseReason::Graceful,
                Ok(()) => eof,
                Err(e) => e,
            };
            let reason = tokio::select! {
                r = &mut up => closed(r, CloseReason::ClientClosed),
                r = &mut down => closed(r, CloseReason::BrokerClosed),
                _ = kill.notified() => CloseReason::DroppedByTap,
            };
            ctx.marker(PacketKind::Closed, WireDetail::Closed(reason));
        }
    }
}

/// Answer a CONNECT the tap refuses (the access rules, an unreachable
/// broker): record it and `connack`, send it, close, and say `why`.
async fn refuse_connect(
    mut client: Conn,
    connect: &[u8],
    ctx: &ConnCtx,
    connack: Bytes,
    why: String,
) {
    for ev in ctx.decode_own(connect, Direction::ClientToBroker, None) {
        ctx.rec.record(ev);
    }
    for ev in ctx.decode_own(&connack, Direction::BrokerToClient, Some(Injected::FromTap)) {
        ctx.rec.record(ev);
    }
    let _ = client.write_all(&connack).await;
    let _ = client.shutdown().await;
    ctx.marker(
        PacketKind::Closed,
        WireDetail::Closed(CloseReason::Error(why)),
    );
}

/// Why the tap could not reach the broker for a client (shown on its session).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0}")]
    Connect(std::io::Error),
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake not finished within 10 s")]
    HandshakeTimeout,
    #[error("{0}")]
    WebSocket(String),
}

/// Open the connection to the broker, over TLS and WebSockets when it asks for them.
async fn connect_upstream(
    addr: &str,
    tls: Option<&UpstreamTls>,
    ws_url: Option<&str>,
) -> Result<Conn, UpstreamError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(UpstreamError::Connect)?;
    let _ = tcp.set_nodelay(true);
    if tls.is_none() && ws_url.is_none() {
        return Ok(Conn::Plain(tcp));
    }
    client_handshakes(tcp, tls, ws_url).await.map(Conn::Boxed)
}

/// The client side of the handshakes over `stream`: TLS (verifying
/// `tls.name`) when asked, then the WebSocket upgrade to `ws_url` when
/// given; each within [`HANDSHAKE_WITHIN`]. For the broker's connection,
/// and for virtual devices over ws:// and wss://.
pub async fn client_handshakes<S: ws::Io + 'static>(
    stream: S,
    tls: Option<&UpstreamTls>,
    ws_url: Option<&str>,
) -> Result<Box<dyn ws::Io>, UpstreamError> {
    let stream: Box<dyn ws::Io> = match tls {
        None => Box::new(stream),
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            match tokio::time::timeout(
                HANDSHAKE_WITHIN,
                connector.connect(tls.name.clone(), stream),
            )
            .await
            {
                Ok(Ok(s)) => Box::new(s),
                Ok(Err(e)) => return Err(UpstreamError::Handshake(e)),
                Err(_) => return Err(UpstreamError::HandshakeTimeout),
            }
        }
    };
    let Some(url) = ws_url else {
        return Ok(stream);
    };
    match tokio::time::timeout(HANDSHAKE_WITHIN, ws::connect(stream, url)).await {
        Ok(Ok(io)) => Ok(io),
        Ok(Err(e)) => Err(UpstreamError::WebSocket(e)),
        Err(_) => Err(UpstreamError::WebSocket(format!(
            "{url}: WebSocket handshake not finished within 10 s"
        ))),
    }
}

/// How long a client may take to send its CONNECT.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// Read until the first frame (the CONNECT) is complete; return what was read
/// and the protocol level it names (3, 4 or 5).
async fn read_connect(client: &mut Conn) -> Result<(BytesMut, u8), CloseReason> {
    let mut buf = BytesMut::with_capacity(READ_MIN);
    let deadline = Instant::now() + CONNECT_WITHIN;
    loop {
        if let Some(level) = connect_level(&buf)? {
            return Ok((buf, level));
        }
        let n = tokio::time::timeout_at(deadline, client.read_buf(&mut buf))
            .await
            .map_err(|_| CloseReason::Error("no CONNECT within 10 s".into()))?
            .map_err(|e| CloseReason::Error(e.to_string()))?;
        if n == 0 {
            return Err(CloseReason::ClientClosed);
        }
    }
}

/// The protocol level of the CONNECT at the front of `buf`: None while it is
/// incomplete; an error when it is not a CONNECT of MQTT 3.1, 3.1.1 or 5.
fn connect_level(buf: &[u8]) -> Result<Option<u8>, CloseReason> {
    let refuse = |why: String| CloseReason::Error(format!("closed by the tap: {why}"));
    // Clients at the wrong door are told which door is theirs.
    match buf {
        [0x16, 0x03, ..] => {
            return Err(refuse(
                "a TLS handshake on a plain MQTT port: this client speaks TLS; \
                 connect it to the TLS listener (--tls, port 8883 by default)"
                    .into(),
            ));
        }
        [b'G', b'E', b'T', b' ', ..] => {
            return Err(refuse(
                "an HTTP request on a plain MQTT port: a WebSocket client connects to \
                 the WebSocket listener (--ws, ws://…:8083/mqtt by default)"
                    .into(),
            ));
        }
        _ => {}
    }
    match rumqttc::mqttbytes::check(buf.iter(), MAX_FRAME_BYTES) {
        Ok(_) => {}
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => return Ok(None),
        Err(e) => return Err(refuse(format!("not MQTT ({e})"))),
    }
    if buf.first().map(|b| b >> 4) != Some(1) {
        return Err(refuse("the first packet is not a CONNECT".into()));
    }
    // Variable header: protocol name (2-byte length + text), then the level.
    // After the first byte, the remaining length takes 1..4 bytes (high bit: more follow).
    let at = 1 + buf
        .iter()
        .skip(1)
        .take(4)
        .position(|b| b & 0x80 == 0)
        .map_or(4, |i| i + 1);
    let name_len = match (buf.get(at), buf.get(at + 1)) {
        (Some(&hi), Some(&lo)) => u16::from_be_bytes([hi, lo]) as usize,
        _ => return Err(refuse("a CONNECT too short to name its protocol".into())),
    };
    let frame_len = at
        + buf[1..at]
            .iter()
            .rev()
            .fold(0usize, |n, b| (n << 7) | usize::from(b & 0x7F));
    if at + 2 + name_len >= frame_len {
        return Err(refuse("a CONNECT too short to name its protocol".into()));
    }
    match buf.get(at + 2 + name_len) {
        // Levels other than 3..=5 are refused with a CONNACK by `open_link`.
        Some(&level) => Ok(Some(level)),
        None => Err(refuse("a CONNECT too short to name its protocol".into())),
    }
}
