//! The engine: embedded broker, tap and virtual devices on a tokio runtime
//! owned by `main` (or by a test), never by the window.
//!
//! [`spawn`] returns an [`EngineHandle`] at once: a bounded [`Command`] sender
//! and an [`EventReceiver`] bounded by count and bytes. Start-up (binding the
//! tap, starting the broker on its own thread) happens in the background and
//! is reported as [`Event::Broker`]. The engine never blocks on its consumer:
//! when the consumer lags, events are dropped and counted ([`Drops`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, watch};

use crate::broker::{BrokerControl, Upstream};
use crate::capture::EventsSnapshot;
use crate::command::{Command, ScenarioSource};
use crate::event::{BrokerState, DeviceState, DeviceUpdate, Event, TlsInfo};
use crate::fault::{DeviceAction, Effect, Fault, FaultKey, NetFault, Target};
use crate::scenario::Scenario;
use crate::sim::device::{DeviceHandle, Mail};
use crate::sim::mqtt::ToRumqttc;
use crate::sim::{DeviceMsg, DeviceReporter};
use crate::tap::{Recorder, Tap, Upstreams};
use crate::wire::WireEvent;

mod broker;
mod channel;
mod database;
mod error;
mod faults;
mod jobs;
mod publish;
mod scenario;

pub use crate::event::DropCounts;
pub use channel::{Drops, EventReceiver, Waker};
use channel::{EventSink, batch_events};
pub use error::EngineError;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The tap's public address: every client connects here.
    pub listen: SocketAddr,
    /// The embedded broker's internal address (port 0: any free port).
    pub broker_listen: SocketAddr,
    /// The embedded broker refuses a CONNECT past this many clients (CONNACK
    /// server unavailable / quota exceeded).
    pub max_connections: usize,
    pub upstream: Upstream,
    /// Event batches queued for the consumer.
    pub event_capacity: usize,
    /// Bytes of events queued for the consumer (the capture's own byte bound
    /// is 256 MiB; a lagging consumer must not double it).
    pub event_bytes: usize,
    /// Wire events queued between the tap and the batcher.
    pub wire_capacity: usize,
    /// Devices connect straight to the broker, bypassing the tap (raw-scale runs).
    pub direct: bool,
    /// Reload the running scenario when its file changes on disk.
    pub watch: bool,
    /// A TLS listener beside the plain one.
    pub tls: Option<crate::tls::TlsOptions>,
    /// A WebSocket listener (`--ws`).
    pub ws: Option<SocketAddr>,
    /// A secure WebSocket listener (`--wss`, with the certificates of `tls`, which it needs).
    pub wss: Option<SocketAddr>,
    /// The path the WebSocket listeners serve.
    pub ws_path: crate::tap::ws::WsPath,
    /// Access rules at the tap (`--users FILE`); a scenario's `auth` replaces them while it runs.
    pub auth: Option<Arc<crate::tap::AuthSpec>>,
    /// Run only this part of every fleet (`--shard K/N`).
    pub shard: Option<crate::sim::Shard>,
    /// Write every captured frame to this database (`--capture-db`).
    pub capture_db: Option<crate::database::DbOptions>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            broker_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_connections: crate::broker::DEFAULT_MAX_CONNECTIONS,
            upstream: Upstream::Embedded,
            event_capacity: 1024,
            event_bytes: 64 * 1024 * 1024,
            wire_capacity: 131_072,
            direct: false,
            watch: false,
            tls: None,
            ws: None,
            wss: None,
            ws_path: crate::tap::ws::WsPath::default(),
            auth: None,
            shard: None,
            capture_db: None,
        }
    }
}

/// Where the engine's start-up got to.
#[derive(Debug, Clone)]
pub enum Readiness {
    Starting,
    /// Clients connect to `tap`; it forwards to `upstream`.
    Ready {
        tap: SocketAddr,
        upstream: String,
        /// The TLS listener, when there is one.
        tls: Option<SocketAddr>,
        /// Every listener.
        addrs: crate::tap::TapAddrs,
    },
    Failed(EngineError),
}

/// The consumer's side of a running engine. Dropping it stops the engine
/// (devices disconnect gracefully, sockets close).
pub struct EngineHandle {
    pub commands: mpsc::Sender<Command>,
    pub events: EventReceiver,
    drops: Arc<Drops>,
    waker: Arc<Mutex<Option<Waker>>>,
    ready: watch::Receiver<Readiness>,
}

impl crate::event::EventSource for EngineHandle {
    fn try_recv(&self) -> Option<Event> {
        self.events.try_recv()
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    fn drops(&self) -> DropCounts {
        EngineHandle::drops(self)
    }
}

impl EngineHandle {
    /// What was dropped because a queue was full.
    pub fn drops(&self) -> DropCounts {
        self.drops.counts()
    }

    /// Set the function called whenever events are sent.
    pub fn set_waker(&self, waker: Waker) {
        *self.waker.lock() = Some(waker);
    }

    /// Queue a command without blocking; false if the engine is gone or busy.
    pub fn send(&self, cmd: Command) -> bool {
        self.commands.try_send(cmd).is_ok()
    }

    /// Where start-up is now.
    pub fn readiness(&self) -> Readiness {
        self.ready.borrow().clone()
    }

    /// Wait until the tap listens (or start-up failed).
    pub async fn ready(&mut self) -> Result<(SocketAddr, String), EngineError> {
        let r = self
            .ready
            .wait_for(|r| !matches!(r, Readiness::Starting))
            .await
            .map_err(|_| EngineError::Stopped)?
            .clone();
        match r {
            Readiness::Ready { tap, upstream, .. } => Ok((tap, upstream)),
            Readiness::Failed(e) => Err(e),
            Readiness::Starting => Err(EngineError::Stopped),
        }
    }
}

struct Engine {
    cfg: EngineConfig,
    broker: Option<BrokerControl>,
    tap: Tap,
    upstream: Arc<Mutex<Upstreams>>,
    devices: Vec<DeviceHandle>,
    /// A scenario was loaded and not stopped since (it may have no devices).
    scenario_running: bool,
    /// The running scenario, for reloads.
    current: Option<Scenario>,
    /// Watches the running scenario's file.
    watcher: Option<crate::sim::watch::Watcher>,
    timeline: Option<tokio::task::JoinHandle<()>>,
    sink: EventSink,
    reporter: DeviceReporter,
    /// Device state changes for the timeline's `after` triggers.
    states: broadcast::Sender<(String, DeviceState)>,
    /// Lets the timeline and timers send commands without keeping the engine alive.
    commands: mpsc::WeakSender<Command>,
    /// Per fault key and aspect (latency, loss, …): the change that set it last,
    /// so a timer only undoes its own change, never a later one.
    fault_generations: Arc<Mutex<std::collections::HashMap<(FaultKey, &'static str), u64>>>,
    next_fault_generation: u64,
    /// An export under way (one at a time).
    export: Option<tokio::task::JoinHandle<()>>,
    /// The TLS listener and its files, shown with the broker's state.
    tls: Option<Box<TlsInfo>>,
    /// What TLS devices connect with.
    device_tls: Option<Arc<rustls::ClientConfig>>,
    /// Credentials from `--broker mqtt://user:password@…` for devices without their own.
    credentials: Option<(String, String)>,
    /// The workbench's own MQTT client and its event loop (made on first use).
    own_client: Option<(rumqttc::v5::AsyncClient, tokio::task::JoinHandle<()>)>,
    /// The embedded broker's health, once it stopped answering (see `broker::health`).
    health: Option<crate::event::BrokerHealth>,
    /// When the last health restart was, so a second one soon after is cold.
    last_recovery: Option<std::time::Instant>,
    /// The user stopped the broker (the probe's silence is then expected).
    broker_stopped: bool,
    /// The database searches and queries read: the open capture database,
    /// or the one last opened with File → Open capture.
    query_db: Option<PathBuf>,
}

/// Start an engine on `rt` without waiting: the handle is ready to queue
/// commands at once; start-up is reported as [`Event::Broker`] and [`EngineHandle::ready`].
pub fn spawn(rt: &tokio::runtime::Handle, cfg: EngineConfig) -> EngineHandle {
    let drops = Arc::new(Drops::default());
    let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
    let (ev_tx, ev_rx) = crossbeam_channel::bounded(cfg.event_capacity);
    let bytes = Arc::new(AtomicUsize::new(0));
    let sink = EventSink {
        tx: ev_tx,
        capacity: cfg.event_capacity,
        bytes: bytes.clone(),
        max_bytes: cfg.event_bytes,
        waker: waker.clone(),
        drops: drops.clone(),
        db: Arc::default(),
        contract: Arc::default(),
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let (ready_tx, ready_rx) = watch::channel(Readiness::Starting);
    let weak = cmd_tx.downgrade();
    rt.spawn(async move {
        sink.send(Event::Broker(BrokerState::Starting));
        match Engine::start(cfg, sink.clone(), weak).await {
            Ok(engine) => {
                let _ = ready_tx.send(Readiness::Ready {
                    tap: engine.tap.local_addr(),
                    upstream: engine.upstream.lock().v4.clone(),
                    tls: engine.tap.tls_addr(),
                    addrs: engine.tap.addrs(),
                });
                engine.run(cmd_rx).await;
            }
            Err(error) => {
                let free_port = error.free_port();
                sink.send(Event::Broker(BrokerState::Failed {
                    error: error.to_string(),
                    free_port,
                }));
                let _ = ready_tx.send(Readiness::Failed(error));
            }
        }
    });
    EngineHandle {
        commands: cmd_tx,
        events: EventReceiver { rx: ev_rx, bytes },
        drops,
        waker,
        ready: ready_rx,
    }
}

/// Start an engine on the current runtime and wait until it listens.
pub async fn start(cfg: EngineConfig) -> Result<EngineHandle, EngineError> {
    let mut handle = spawn(&tokio::runtime::Handle::current(), cfg);
    handle.ready().await?;
    Ok(handle)
}

/// TLS towards an external broker: its roots and name, read (files) off the
/// async workers.
async fn upstream_tls(upstream: &Upstream) -> Result<Option<crate::tap::UpstreamTls>, EngineError> {
    let Upstream::External(b) = upstream else {
        return Ok(None);
    };
    if !b.tls {
        return Ok(None);
    }
    let (ca, host) = (b.ca.clone(), b.host.clone());
    let tls = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::tls::TlsError>(crate::tap::UpstreamTls {
            config: crate::tls::broker_client_config(ca.as_deref())?,
            name: crate::tls::server_name(&host)?,
        })
    })
    .await
    .map_err(EngineError::task("TLS to the broker"))?
    .map_err(|e| EngineError::BrokerTls(Arc::new(e)))?;
    Ok(Some(tls))
}

/// The tap could not listen: which port, and a free one to suggest.
async fn listen_error(cfg: &EngineConfig, error: std::io::Error) -> EngineError {
    let (ip, port) = (cfg.listen.ip(), cfg.listen.port());
    if error.kind() != std::io::ErrorKind::AddrInUse {
        return EngineError::Listen {
            addr: cfg.listen,
            error: Arc::new(error),
        };
    }
    // Which listener's port is taken (the plain one gets a free port offered).
    let others: Vec<(&'static str, SocketAddr)> = [
        ("TLS port", "--tls-port", cfg.tls.as_ref().map(|t| t.listen)),
        ("WebSocket port", "--ws-port", cfg.ws),
        ("secure WebSocket port", "--wss-port", cfg.wss),
    ]
    .into_iter()
    .filter_map(|(what, _, a)| a.map(|a| (what, a)))
    .collect();
    let (plain_taken, taken) = tokio::task::spawn_blocking(move || {
        let taken = |a: SocketAddr| a.port() != 0 && std::net::TcpListener::bind(a).is_err();
        let plain_taken = taken(SocketAddr::new(ip, port));
        let other = others.into_iter().find(|(_, a)| taken(*a));
        (plain_taken, other)
    })
    .await
    .unwrap_or((true, None));
    match taken {
        Some((what, addr)) if !plain_taken => EngineError::PortsInUse {
            ip,
            port: addr.port(),
            what,
            error: Arc::new(error),
        },
        _ => {
            let free_port = tokio::task::spawn_blocking(move || free_port_after(ip, port))
                .await
                .ok()
                .flatten();
            EngineError::PortInUse {
                ip,
                port,
                error: Arc::new(error),
                free_port,
            }
        }
    }
}

/// Start the embedded broker, point the tap at it, and start its health
/// probe for as long as the engine runs.
async fn start_embedded(
    cfg: &EngineConfig,
    upstreams: &Mutex<Upstreams>,
    commands: mpsc::WeakSender<Command>,
) -> Result<BrokerControl, EngineError> {
    let b = BrokerControl::start(cfg.broker_listen, "--broker-port", cfg.max_connections).await?;
    let addrs = b.addrs();
    *upstreams.lock() = Upstreams {
        v4: addrs.v4.to_string(),
        v5: addrs.v5.to_string(),
        tls: None,
        ws_url: None,
        memory: Some(b.memory()),
    };
    tokio::spawn(crate::broker::health::probe(
        addrs.v4,
        crate::broker::health::DEADLINE,
        Some(b.progress()),
        // False once the engine is gone: the probe ends.
        move |health| {
            commands.upgrade().is_some_and(|tx| {
                !matches!(
                    tx.try_send(Command::BrokerHealth(health)),
                    Err(mpsc::error::TrySendError::Closed(_))
                )
            })
        },
    ));
    Ok(b)
}

/// Open the capture database (off the async workers) and send it every frame
/// from now on; returns its path for searches and queries.
async fn open_database(
    sink: &EventSink,
    opts: crate::database::DbOptions,
) -> Result<PathBuf, EngineError> {
    let path = opts.path.clone();
    let writer = tokio::task::spawn_blocking(move || crate::database::Writer::spawn(opts))
        .await
        .map_err(EngineError::task("opening the capture database"))?
        .map_err(|e| EngineError::Database(Arc::new(e)))?;
    sink.send(Event::Database(writer.status()));
    *sink.db.write() = Some(writer);
    Ok(path)
}

/// The tap's ws:// and wss:// URLs, for the Broker menu and `run`.
fn ws_urls(tap: &Tap) -> crate::event::WsUrls {
    let url = |scheme: &str, a: SocketAddr| {
        let host = if a.ip().is_loopback() {
            "localhost".to_string()
        } else {
            a.ip().to_string()
        };
        format!("{scheme}://{host}:{}{}", a.port(), tap.ws_path().url_path())
    };
    crate::event::WsUrls {
        ws: tap.addrs().ws.map(|a| url("ws", a)),
        wss: tap.addrs().wss.map(|a| url("wss", a)),
    }
}

/// The first port after `taken` that can be bound on `ip` (looked up on the
/// engine, never on the UI thread).
fn free_port_after(ip: std::net::IpAddr, taken: u16) -> Option<u16> {
    (taken.saturating_add(1)..=taken.saturating_add(100))
        .find(|p| std::net::TcpListener::bind(SocketAddr::new(ip, *p)).is_ok())
}

impl Engine {
    /// Bind the tap, then start the broker (if embedded, on its own thread):
    /// a taken public port fails before a broker router (a thread rumqttd
    /// never stops) is spawned. A taken public port's error carries a free one.
    async fn start(
        cfg: EngineConfig,
        sink: EventSink,
        commands: mpsc::WeakSender<Command>,
    ) -> Result<Engine, EngineError> {
        let (wire_tx, wire_rx) = mpsc::channel(cfg.wire_capacity);
        let (dev_tx, dev_rx) = mpsc::channel(65_536);
        let recorder = Recorder::new(wire_tx, sink.drops.tap_queue.clone());
        let reporter = DeviceReporter::new(dev_tx, sink.drops.device_queue.clone());
        let embedded = matches!(cfg.upstream, Upstream::Embedded);
        let mut upstreams = match &cfg.upstream {
            Upstream::External(b) => Upstreams::both(b.addr.clone()),
            // Set below, once the broker listens (ready is reported after that).
            Upstream::Embedded => Upstreams::both(cfg.broker_listen.to_string()),
        };
        upstreams.tls = upstream_tls(&cfg.upstream).await?;
        if let Upstream::External(b) = &cfg.upstream {
            upstreams.ws_url = b.ws_url();
        }
        let tls_setup = match cfg.tls.clone() {
            Some(opts) => Some(
                tokio::task::spawn_blocking(move || crate::tls::setup(&opts).map(|s| (opts, s)))
                    .await
                    .map_err(EngineError::task("TLS set-up"))?
                    .map_err(|e| EngineError::Tls(Arc::new(e)))?,
            ),
            None => None,
        };
        let upstream_shared = Arc::new(Mutex::new(upstreams));
        let listeners = crate::tap::Listeners {
            plain: cfg.listen,
            acceptor: tls_setup.as_ref().map(|(_, s)| s.acceptor.clone()),
            tls: tls_setup.as_ref().map(|(o, _)| o.listen),
            ws: cfg.ws,
            wss: cfg.wss,
            ws_path: cfg.ws_path.clone(),
        };
        let tap = match Tap::start_listeners(listeners, upstream_shared.clone(), recorder, embedded)
            .await
        {
            Ok(t) => t,
            Err(error) => return Err(listen_error(&cfg, error).await),
        };
        tap.set_auth(cfg.auth.clone());
        let broker = if embedded {
            Some(start_embedded(&cfg, &upstream_shared, commands.clone()).await?)
        } else {
            None
        };
        let query_db = match &cfg.capture_db {
            Some(opts) => Some(open_database(&sink, opts.clone()).await?),
            None => None,
        };
        let upstream = {
            let u = upstream_shared.lock();
            u.ws_url.clone().unwrap_or_else(|| u.v4.clone())
        };
        let (states, _) = broadcast::channel(4096);
        tokio::spawn(batch_events(
            wire_rx,
            dev_rx,
            sink.clone(),
            states.clone(),
            reporter.ramp().clone(),
        ));
        let tls = match (&tls_setup, tap.tls_addr()) {
            (Some((opts, setup)), Some(addr)) => Some(Box::new(TlsInfo {
                addr,
                ca: setup.files.ca.clone(),
                client_cert: setup.files.client_cert.clone(),
                client_key: setup.files.client_key.clone(),
                client_cert_required: opts.require_client_cert,
            })),
            _ => None,
        };
        sink.send(Event::Broker(BrokerState::Running {
            public: tap.local_addr(),
            upstream,
            tls: tls.clone(),
            ws: ws_urls(&tap),
        }));
        let credentials = match &cfg.upstream {
            Upstream::External(b) => b
                .username
                .clone()
                .map(|u| (u, b.password.clone().unwrap_or_default())),
            Upstream::Embedded => None,
        };
        Ok(Engine {
            cfg,
            broker,
            tap,
            upstream: upstream_shared,
            devices: Vec::new(),
            scenario_running: false,
            current: None,
            watcher: None,
            timeline: None,
            sink,
            reporter,
            states,
            commands,
            fault_generations: Arc::default(),
            next_fault_generation: 0,
            export: None,
            tls,
            device_tls: tls_setup.map(|(_, s)| s.devices),
            credentials,
            own_client: None,
            health: None,
            last_recovery: None,
            broker_stopped: false,
            query_db,
        })
    }

    /// Send an event after every device report queued before it.
    async fn send_ordered(&self, ev: Event) {
        if let Err(ev) = self.reporter.marker(ev).await {
            self.sink.send(ev);
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            self.handle(cmd).await;
        }
        // Every handle is gone: stop devices so their sessions end cleanly.
        self.stop_devices().await;
        if let Some((client, task)) = self.own_client.take() {
            let _ = client.try_disconnect();
            tokio::time::sleep(Duration::from_millis(50)).await;
            task.abort();
        }
    }

    fn notice(&self, error: bool, text: impl std::fmt::Display) {
        self.sink.send(Event::Notice {
            error,
            text: text.to_string(),
        });
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::LoadScenario(source) => self.load_scenario(source).await,
            Command::ReloadScenario(source) => self.reload_scenario(source).await,
            Command::SaveCapture {
                path,
                events,
                faults,
                scenario,
            } => self.save_capture(path, events, faults, scenario),
            Command::SaveScenario { path, ron } => self.save_scenario(path, ron),
            Command::OpenCapture(path) => self.open_capture(path),
            Command::CopyFile { from, to } => self.copy_file(from, to),
            Command::StopScenario => {
                self.stop_devices().await;
                self.tap.set_auth(self.cfg.auth.clone());
            }
            // Through inject, so a click in the Devices panel is marked like any fault.
            Command::Device(target, action) => {
                self.inject(Fault::device(target, action), None).await
            }
            Command::DropConnection(id) => {
                if !self.tap.drop_connection(id) {
                    self.notice(true, format!("connection {id} is already closed"));
                }
            }
            Command::StopBroker => match &mut self.broker {
                Some(b) => match b.stop().await {
                    Ok(()) => {
                        self.broker_stopped = true;
                        self.sink.send(Event::Broker(BrokerState::Stopped))
                    }
                    Err(e) => self.notice(true, e),
                },
                None => self.notice(
                    true,
                    "the broker is external: it cannot be stopped from here",
                ),
            },
            Command::StartBroker => {
                self.broker_stopped = false;
                self.resume_broker().await
            }
            Command::BrokerHealth(health) => self.on_broker_health(health).await,
            Command::Inject(fault) => self.inject(fault, None).await,
            Command::TimelineFault { index, fault } => self.inject(fault, Some(index)).await,
            Command::Export { path, events } => self.export(path, events),
            Command::ImportSpec(path) => self.import_spec(path),
            Command::ExportSpec {
                path,
                events,
                title,
            } => self.export_spec(path, events, title),
            Command::Publish(req) => self.publish(req),
            Command::ClearRetained(topics) => self.clear_retained(topics),
            Command::CaptureDb(opts) => self.capture_db(opts).await,
            Command::SearchCapture { spec, before } => self.search_capture(spec, before),
            Command::Query(sql) => self.query(sql),
            Command::RecordVerdicts(verdicts) => {
                if let Some(db) = self.sink.db.read().as_ref() {
                    db.verdicts(verdicts);
                }
            }
        }
    }
}

fn split_host_port(addr: &str) -> (String, u16) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse().unwrap_or(1883),
        ),
        None => (addr.to_string(), 1883),
    }
}
