//! The embedded rumqttd broker, built from its lower-level Router/Server API
//! so that a bind failure is an error and the listener can be stopped and
//! started again (`Broker::start` blocks for ever, has no stop, and reports
//! a taken port as success).
//!
//! The router thread keeps every session. Stopping the broker drops the
//! runtime that owns the listener and every client link, which closes their
//! sockets and frees the port; starting it again binds a fresh listener on
//! the same router, so persistent sessions survive a restart. A cold restart
//! makes a new router; the old one ends once its last link is gone (a
//! vendored patch: upstream rumqttd's router never ends), freeing its
//! sessions and logs.

pub mod health;

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::pin::Pin;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use rumqttd::protocol::Protocol;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use tokio::io::DuplexStream;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("port {port} on {ip} is already in use ({source}); choose another with {flag}")]
    PortInUse {
        ip: std::net::IpAddr,
        port: u16,
        flag: &'static str,
        source: std::io::Error,
    },
    #[error("the embedded broker did not start listening on {0} within 5 s")]
    NotListening(SocketAddr),
    #[error("cannot start the broker runtime: {0}")]
    Runtime(std::io::Error),
    #[error("the broker thread ended")]
    ThreadEnded,
}

/// Why `--broker URL` names no broker the tap can reach.
#[derive(Debug, thiserror::Error)]
pub enum BrokerUrlError {
    #[error(
        "{0}: expected mqtt://host:port, mqtts://host:port, ws://host:port/path or wss://host:port/path"
    )]
    NoHost(String),
}

/// A listener's accept loop; its error (rumqttd's own type) is only logged.
type ServerFuture =
    Pin<Box<dyn Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>> + Send>>;
/// Makes a listener on the one router: MQTT 3.1.1 (`false`) or MQTT 5
/// (`true`), and a server for in-process connections beside it.
type ServerFactory =
    Box<dyn Fn(ServerSettings, bool) -> (ServerFuture, Arc<dyn ServeStream>) + Send + Sync>;

/// Serves one in-process connection like an accepted socket (vendor/README.md).
pub trait ServeStream: Send + Sync {
    fn serve(&self, stream: DuplexStream) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl<P: Protocol + Clone + Send + Sync + 'static> ServeStream for Server<P> {
    fn serve(&self, stream: DuplexStream) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(Server::serve(self, stream))
    }
}

/// Bytes an in-process connection buffers each way before the writer waits
/// (like a socket's buffer; allocated as used).
pub const MEMORY_BUFFER: usize = 64 * 1024;

/// In-process connections to the embedded broker, without a socket: the tap
/// forwards virtual devices through these, so a device costs no file
/// descriptor. Cloned freely; follows the broker's restarts.
#[derive(Clone, Default)]
pub struct MemoryDoor(Arc<parking_lot::RwLock<Option<MemoryServers>>>);

struct MemoryServers {
    v4: Arc<dyn ServeStream>,
    v5: Arc<dyn ServeStream>,
    /// Dropped when the listener stops: every in-process link ends with it,
    /// as the listener's sockets do.
    stop: tokio::sync::watch::Sender<()>,
}

impl MemoryDoor {
    /// A new connection to the broker's MQTT 3.1.1 or 5 server; an error
    /// while the broker is stopped, as a refused connection would be. Its
    /// link runs on the caller's tokio runtime.
    pub fn connect(&self, v5: bool) -> std::io::Result<DuplexStream> {
        let guard = self.0.read();
        let Some(servers) = guard.as_ref() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "the embedded broker is stopped",
            ));
        };
        let (client, server) = tokio::io::duplex(MEMORY_BUFFER);
        let link = if v5 { &servers.v5 } else { &servers.v4 }.serve(server);
        let mut stopped = servers.stop.subscribe();
        // On the caller's runtime (the tap's): the link never blocks its
        // thread (rumqttd's `build_async`, vendor/README.md), and a message
        // from a device to the broker then stays on one runtime's workers
        // instead of waking the listener's thread for every frame.
        tokio::spawn(async move {
            tokio::select! {
                () = link => {}
                // Err only: nothing is ever sent, the sender is dropped on stop.
                _ = stopped.changed() => {}
            }
        });
        Ok(client)
    }
}

/// Router settings that work (the rumqttd defaults panic on first SUBSCRIBE).
pub fn router_config(max_connections: usize) -> RouterConfig {
    RouterConfig {
        max_connections,
        max_outgoing_packet_count: 10_000,
        max_segment_size: 1024 * 1024,
        max_segment_count: 10,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    }
}

fn server_settings(listen: SocketAddr, v5: bool) -> ServerSettings {
    ServerSettings {
        name: if v5 { "workbench-v5" } else { "workbench-v4" }.into(),
        listen,
        tls: None,
        // rumqttd sleeps this long after every accept; 0 lets big fleets in fast.
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1024 * 1024,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// The embedded broker: one router (for the process's life) and a restartable listener.
pub struct EmbeddedBroker {
    factory: ServerFactory,
    /// The MQTT 3.1.1 listener.
    listen: SocketAddr,
    /// The MQTT 5 listener, beside it on the same router (port 0 until bound).
    listen_v5: SocketAddr,
    listener_rt: Option<tokio::runtime::Runtime>,
    cold_restarts: usize,
    memory: MemoryDoor,
    /// Turns of the router's loop (every router of this broker counts here).
    progress: Arc<AtomicU64>,
    /// Past this many clients a CONNECT is refused (`--max-connections`).
    max_connections: usize,
    /// Where the router runs (the engine's runtime).
    runtime: tokio::runtime::Handle,
}

/// Connections the embedded broker takes by default: room for the
/// 100,000-device fleets `bench` rehearses, and the user's own clients
/// beside them (rumqttd sizes its connection tables by it).
pub const DEFAULT_MAX_CONNECTIONS: usize = 150_000;

fn server_factory(
    progress: &Arc<AtomicU64>,
    max_connections: usize,
    runtime: &tokio::runtime::Handle,
) -> ServerFactory {
    let router = Router::new(0, router_config(max_connections)).with_progress(progress.clone());
    // A task on the engine's runtime, beside the in-process links it serves
    // (vendor patch `Router::spawn_on`): a message wakes no thread of its own.
    let router_tx = router.spawn_on(runtime);
    Box::new(move |settings, v5| {
        let router_tx = router_tx.clone();
        if v5 {
            let memory = Arc::new(Server::new(settings.clone(), router_tx.clone(), V5));
            let mut server = Server::new(settings, router_tx, V5);
            let listen: ServerFuture =
                Box::pin(async move { server.start(LinkType::Remote).await.map_err(Into::into) });
            (listen, memory as Arc<dyn ServeStream>)
        } else {
            let memory = Arc::new(Server::new(settings.clone(), router_tx.clone(), V4));
            let mut server = Server::new(settings, router_tx, V4);
            let listen: ServerFuture =
                Box::pin(async move { server.start(LinkType::Remote).await.map_err(Into::into) });
            (listen, memory as Arc<dyn ServeStream>)
        }
    })
}

impl EmbeddedBroker {
    /// Spawn the router and start listening on `listen` (port 0 picks a free port).
    ///
    /// `flag` names the command-line option to choose another port, for the error.
    /// The router runs on `runtime` (the engine's).
    pub fn start(
        listen: SocketAddr,
        flag: &'static str,
        max_connections: usize,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, BrokerError> {
        // Fail before spawning the router.
        drop(probe_bind(listen, flag)?);
        let progress = Arc::default();
        let factory = server_factory(&progress, max_connections, &runtime);
        let mut broker = EmbeddedBroker {
            factory,
            listen,
            listen_v5: SocketAddr::new(listen.ip(), 0),
            listener_rt: None,
            cold_restarts: 0,
            memory: MemoryDoor::default(),
            progress,
            max_connections,
            runtime,
        };
        broker.start_listener(flag)?;
        Ok(broker)
    }

    /// Turns of the router's loop so far: it grows while the router works,
    /// however far behind it is (the health probe's sign of a busy router).
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.progress.clone()
    }

    /// The address the broker listens on for MQTT 3.1.1.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// The address the broker listens on for MQTT 5.
    pub fn addr_v5(&self) -> SocketAddr {
        self.listen_v5
    }

    /// In-process connections to this broker (see [`MemoryDoor`]).
    pub fn memory(&self) -> MemoryDoor {
        self.memory.clone()
    }

    pub fn is_running(&self) -> bool {
        self.listener_rt.is_some()
    }

    /// Bind the listener (again). Keeps the router and its sessions.
    /// Runs on the broker-control thread: rumqttd gives no readiness signal,
    /// so it polls for the port (bounded: 50 × 20 ms, then 5 s).
    #[expect(
        clippy::disallowed_methods,
        reason = "polls a port from the broker's own thread; rumqttd signals nothing"
    )]
    pub fn start_listener(&mut self, flag: &'static str) -> Result<(), BrokerError> {
        if self.listener_rt.is_some() {
            return Ok(());
        }
        // rumqttd binds inside its accept loop and only logs the failure, so
        // probe the ports first: a bind failure must reach the user.
        // Right after a stop the old sockets may take a moment to close: retry briefly.
        let mut bound = Vec::new();
        for listen in [self.listen, self.listen_v5] {
            let mut attempt = 0;
            let probe = loop {
                match probe_bind(listen, flag) {
                    Ok(p) => break p,
                    Err(e) if attempt >= 50 => return Err(e),
                    Err(_) => {
                        attempt += 1;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                }
            };
            bound.push(probe.local_addr().map_err(BrokerError::Runtime)?);
        }
        (self.listen, self.listen_v5) = (bound[0], bound[1]);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rumqttd-link")
            .enable_all()
            .build()
            .map_err(BrokerError::Runtime)?;
        let mut memory = Vec::new();
        for (addr, v5) in [(self.listen, false), (self.listen_v5, true)] {
            let (fut, serve) = (self.factory)(server_settings(addr, v5), v5);
            memory.push(serve);
            rt.spawn(async move {
                if let Err(e) = fut.await {
                    tracing::error!("embedded broker listener stopped: {e}");
                }
            });
        }
        let v5 = memory.pop();
        let v4 = memory.pop();
        if let (Some(v4), Some(v5)) = (v4, v5) {
            *self.memory.0.write() = Some(MemoryServers {
                v4,
                v5,
                stop: tokio::sync::watch::channel(()).0,
            });
        }
        self.listener_rt = Some(rt);
        // rumqttd binds inside the spawned tasks: wait until both accept, so the
        // first client through the tap is not refused.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for addr in [self.listen, self.listen_v5] {
            while std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(100))
                .is_err()
            {
                if std::time::Instant::now() > deadline {
                    self.stop_listener();
                    return Err(BrokerError::NotListening(addr));
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        Ok(())
    }

    /// Restart from scratch on the same port: a new router, so every session,
    /// queued message and retained message is gone (session_present = 0).
    pub fn cold_restart(&mut self, flag: &'static str) -> Result<(), BrokerError> {
        self.stop_listener();
        self.cold_restarts += 1;
        self.factory = server_factory(&self.progress, self.max_connections, &self.runtime);
        self.start_listener(flag)
    }

    /// Close the listener and every client link; sessions stay in the router.
    /// Returns once the listening socket is closed, so the port can be bound again.
    pub fn stop_listener(&mut self) {
        *self.memory.0.write() = None;
        if let Some(rt) = self.listener_rt.take() {
            // Dropping a runtime waits for its threads (and so its sockets), which
            // an async context may not do: drop it on a thread of its own.
            let _ = std::thread::spawn(move || drop(rt)).join();
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop_listener();
    }
}

fn probe_bind(listen: SocketAddr, flag: &'static str) -> Result<StdListener, BrokerError> {
    StdListener::bind(listen).map_err(|source| BrokerError::PortInUse {
        ip: listen.ip(),
        port: listen.port(),
        flag,
        source,
    })
}

/// Pick a free loopback port for the broker's internal listener.
pub fn free_loopback_port() -> std::io::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where the tap forwards to: the embedded broker or an external one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Embedded,
    External(ExternalBroker),
}

/// An external broker (mosquitto, EMQX, a cluster), from `--broker URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalBroker {
    /// `host:port`.
    pub addr: String,
    /// The host name its TLS certificate must carry.
    pub host: String,
    /// `mqtts://`: the tap reaches it over TLS.
    pub tls: bool,
    /// `ws://` or `wss://`: the tap reaches it over WebSockets at this path.
    pub ws_path: Option<String>,
    /// A private CA to trust besides the system's (`--broker-ca`).
    pub ca: Option<std::path::PathBuf>,
    /// From `mqtt://user:password@host`: virtual devices without credentials of their own use these.
    pub username: Option<String>,
    pub password: Option<String>,
}

impl ExternalBroker {
    /// The WebSocket URL the tap opens (`ws://host:port/path`), for a WebSocket broker.
    pub fn ws_url(&self) -> Option<String> {
        let scheme = if self.tls { "wss" } else { "ws" };
        self.ws_path
            .as_ref()
            .map(|p| format!("{scheme}://{}{p}", self.addr))
    }
}

/// Parse `mqtt://[user[:password]@]host[:port]` (or `tcp://`, `mqtts://`,
/// `ssl://`, or bare `host:port`; the port defaults to 1883, 8883 with TLS),
/// or `ws://…host[:port][/path]` and `wss://…` (ports 80 and 443, path `/`,
/// as in any URL).
pub fn parse_broker_url(url: &str) -> Result<ExternalBroker, BrokerUrlError> {
    let schemes = [
        ("mqtts://", true, false),
        ("ssl://", true, false),
        ("wss://", true, true),
        ("ws://", false, true),
        ("mqtt://", false, false),
        ("tcp://", false, false),
    ];
    let (tls, ws, rest) = schemes
        .iter()
        .find_map(|(p, tls, ws)| url.strip_prefix(p).map(|r| (*tls, *ws, r)))
        .unwrap_or((false, false, url));
    let (rest, ws_path) = match (ws, rest.find('/')) {
        (true, Some(i)) => (&rest[..i], Some(rest[i..].to_string())),
        (true, None) => (rest, Some("/".to_string())),
        (false, _) => (rest.trim_end_matches('/'), None),
    };
    let (credentials, rest) = match rest.rsplit_once('@') {
        Some((c, r)) => (Some(c), r),
        None => (None, rest),
    };
    let (username, password) = match credentials {
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
            None => (Some(c.to_string()), None),
        },
        None => (None, None),
    };
    if rest.is_empty() {
        return Err(BrokerUrlError::NoHost(url.to_string()));
    }
    let has_port = rest
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && !rest.ends_with(']');
    let (addr, host) = if has_port {
        let (h, _) = rest.rsplit_once(':').unwrap_or((rest, ""));
        (rest.to_string(), h.to_string())
    } else {
        let port = match (ws, tls) {
            (true, true) => 443,
            (true, false) => 80,
            (false, true) => 8883,
            (false, false) => 1883,
        };
        (format!("{rest}:{port}"), rest.to_string())
    };
    Ok(ExternalBroker {
        addr,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        tls,
        ws_path,
        ca: None,
        username,
        password,
    })
}

/// What the broker's control thread is asked to do.
enum Control {
    Stop,
    Start,
    ColdRestart,
}

/// The embedded broker behind its own named thread ("broker-control"):
/// starting, stopping and restarting it binds, waits and joins threads, which
/// must never happen on an async worker or the UI thread. Every call is async
/// and answers once the thread has done it.
/// The embedded broker's listeners: MQTT 3.1.1 and MQTT 5, on one router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerAddrs {
    pub v4: SocketAddr,
    pub v5: SocketAddr,
}

type ControlReply = tokio::sync::oneshot::Sender<Result<BrokerAddrs, BrokerError>>;

pub struct BrokerControl {
    tx: std::sync::mpsc::SyncSender<(Control, ControlReply)>,
    addrs: BrokerAddrs,
    memory: MemoryDoor,
    progress: Arc<AtomicU64>,
}

impl BrokerControl {
    /// Start the broker on its control thread; answers when it accepts clients.
    pub async fn start(
        listen: SocketAddr,
        flag: &'static str,
        max_connections: usize,
    ) -> Result<BrokerControl, BrokerError> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Handle::current();
        // One request at a time: the engine awaits each answer before the next.
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Control, ControlReply)>(4);
        std::thread::Builder::new()
            .name("broker-control".into())
            .spawn(move || {
                let mut broker = match EmbeddedBroker::start(listen, flag, max_connections, runtime)
                {
                    Ok(b) => {
                        let _ = ready_tx.send(Ok((
                            BrokerAddrs {
                                v4: b.addr(),
                                v5: b.addr_v5(),
                            },
                            b.memory(),
                            b.progress(),
                        )));
                        b
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Ends when the engine drops its BrokerControl; dropping the broker closes it.
                while let Ok((cmd, reply)) = rx.recv() {
                    let result = match cmd {
                        Control::Stop => {
                            broker.stop_listener();
                            Ok(())
                        }
                        Control::Start => broker.start_listener(flag),
                        Control::ColdRestart => broker.cold_restart(flag),
                    };
                    let addrs = BrokerAddrs {
                        v4: broker.addr(),
                        v5: broker.addr_v5(),
                    };
                    let _ = reply.send(result.map(|()| addrs));
                }
            })
            .map_err(BrokerError::Runtime)?;
        let (addrs, memory, progress) = ready_rx.await.map_err(|_| BrokerError::ThreadEnded)??;
        Ok(BrokerControl {
            tx,
            addrs,
            memory,
            progress,
        })
    }

    /// The broker's internal MQTT 3.1.1 address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs.v4
    }

    /// Both internal listeners.
    pub fn addrs(&self) -> BrokerAddrs {
        self.addrs
    }

    /// In-process connections to the broker (they follow its restarts).
    pub fn memory(&self) -> MemoryDoor {
        self.memory.clone()
    }

    /// See [`EmbeddedBroker::progress`].
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.progress.clone()
    }

    async fn ask(&mut self, cmd: Control) -> Result<SocketAddr, BrokerError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send((cmd, reply))
            .map_err(|_| BrokerError::ThreadEnded)?;
        let addrs = answer.await.map_err(|_| BrokerError::ThreadEnded)??;
        self.addrs = addrs;
        Ok(addrs.v4)
    }

    /// Close the listener and every client link; sessions stay in the router.
    pub async fn stop(&mut self) -> Result<(), BrokerError> {
        self.ask(Control::Stop).await.map(|_| ())
    }

    /// Listen again (same router, same sessions).
    pub async fn resume(&mut self) -> Result<SocketAddr, BrokerError> {
        self.ask(Control::Start).await
    }

    /// A new router on the same port: every session is gone.
    pub async fn cold_restart(&mut self) -> Result<SocketAddr, BrokerError> {
        self.ask(Control::ColdRestart).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let addr = |u: &str| parse_broker_url(u).unwrap().addr;
        assert_eq!(addr("mqtt://127.0.0.1:1884"), "127.0.0.1:1884");
        assert_eq!(addr("localhost"), "localhost:1883");
        assert_eq!(addr("tcp://[::1]:1900"), "[::1]:1900");
        let tls = parse_broker_url("mqtts://alice:s3cret@broker.example:8884").unwrap();
        assert_eq!(tls.addr, "broker.example:8884");
        assert_eq!(tls.host, "broker.example");
        assert!(tls.tls);
        assert_eq!(tls.username.as_deref(), Some("alice"));
        assert_eq!(tls.password.as_deref(), Some("s3cret"));
        assert_eq!(addr("mqtts://broker.example"), "broker.example:8883");
        assert_eq!(parse_broker_url("ssl://[::1]").unwrap().host, "::1");
        let ws = parse_broker_url("wss://u:p@x:8884/mqtt").unwrap();
        assert_eq!(
            (ws.addr.as_str(), ws.tls, ws.ws_url().as_deref()),
            ("x:8884", true, Some("wss://x:8884/mqtt"))
        );
        assert_eq!(ws.username.as_deref(), Some("u"));
        let ws = parse_broker_url("ws://localhost").unwrap();
        assert_eq!(ws.ws_url().as_deref(), Some("ws://localhost:80/"));
        assert_eq!(parse_broker_url("mqtt://x").unwrap().ws_url(), None);
    }

    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "waits for a task rumqttd ends without a signal"
    )]
    fn a_cold_restart_ends_the_old_router_instead_of_leaving_it_idle() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut b = EmbeddedBroker::start(
            "127.0.0.1:0".parse().unwrap(),
            "--broker-port",
            DEFAULT_MAX_CONNECTIONS,
            rt.handle().clone(),
        )
        .unwrap();
        // Every router holds the broker's progress counter while it runs:
        // its count is the broker's own hold and one per live router.
        let routers = |b: &EmbeddedBroker| Arc::strong_count(&b.progress) - 1;
        assert_eq!(routers(&b), 1);
        // A client in-process and one over TCP, so the old router has links to lose.
        let _mem = rt.block_on(async { b.memory().connect(false).unwrap() });
        let _tcp = std::net::TcpStream::connect(b.addr()).unwrap();
        for _ in 0..3 {
            b.cold_restart("--broker-port").unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while routers(&b) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(routers(&b), 1, "only the current router is left");
    }

    #[test]
    fn port_in_use_is_an_error_naming_port_and_flag() {
        let taken = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let err = EmbeddedBroker::start(
            addr,
            "--broker-port",
            DEFAULT_MAX_CONNECTIONS,
            rt.handle().clone(),
        )
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(text.contains(&addr.port().to_string()), "{text}");
        assert!(text.contains("--broker-port"), "{text}");
    }
}
