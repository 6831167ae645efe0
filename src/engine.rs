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
use crate::fault::{DeviceAction, Fault, FaultKey, NetFault, PartitionMode, Target};
use crate::scenario::Scenario;
use crate::sim::device::DeviceHandle;
use crate::sim::mqtt::ToRumqttc;
use crate::sim::{DeviceMsg, DeviceReporter};
use crate::tap::{Recorder, Tap, Upstreams};
use crate::wire::WireEvent;

/// Called after events are sent, to wake the consumer (e.g. `ctx.request_repaint()`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// What was lost because a queue was full, by queue. Shown in the status bar.
#[derive(Debug, Default)]
pub struct Drops {
    /// Wire events the tap could not queue for the batcher.
    pub tap_queue: Arc<AtomicU64>,
    /// Device state reports the devices could not queue.
    pub device_queue: Arc<AtomicU64>,
    /// Items (wire events, device updates, notices) the consumer's channel
    /// refused because it held too many events or bytes.
    pub consumer: Arc<AtomicU64>,
}

/// A copy of [`Drops`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    pub tap_queue: u64,
    pub device_queue: u64,
    pub consumer: u64,
}

impl DropCounts {
    pub fn total(&self) -> u64 {
        self.tap_queue + self.device_queue + self.consumer
    }
}

impl Drops {
    pub fn counts(&self) -> DropCounts {
        DropCounts {
            tap_queue: self.tap_queue.load(Ordering::Relaxed),
            device_queue: self.device_queue.load(Ordering::Relaxed),
            consumer: self.consumer.load(Ordering::Relaxed),
        }
    }
}

/// Engine → consumer sender: bounded by count and bytes, never blocks,
/// counts what it drops. Traffic (wire batches) leaves room for the events
/// that change state (scenario, broker, devices, notices, export), which are
/// only refused when the channel is full to the last slot.
#[derive(Clone)]
struct EventSink {
    tx: crossbeam_channel::Sender<(Event, usize)>,
    capacity: usize,
    bytes: Arc<AtomicUsize>,
    max_bytes: usize,
    waker: Arc<Mutex<Option<Waker>>>,
    drops: Arc<Drops>,
}

/// Channel slots wire batches never take.
const CONTROL_RESERVE: usize = 64;

impl EventSink {
    fn send(&self, ev: Event) {
        let size = ev.mem_bytes();
        let admitted = if matches!(ev, Event::Wire(_)) {
            self.tx.len() + CONTROL_RESERVE < self.capacity && self.reserve_bytes(size)
        } else {
            self.bytes.fetch_add(size, Ordering::Relaxed);
            true
        };
        let refused = if admitted {
            match self.tx.try_send((ev, size)) {
                Ok(()) => None,
                Err(e) => {
                    self.bytes.fetch_sub(size, Ordering::Relaxed);
                    Some(e.into_inner().0)
                }
            }
        } else {
            Some(ev)
        };
        if let Some(ev) = refused {
            self.drops.consumer.fetch_add(ev.items(), Ordering::Relaxed);
        }
        if let Some(w) = self.waker.lock().as_ref() {
            w();
        }
    }

    /// Take `size` bytes of the byte bound, if they fit (an event alone bigger
    /// than the bound passes when nothing is queued). Atomic against other senders.
    fn reserve_bytes(&self, size: usize) -> bool {
        let mut queued = self.bytes.load(Ordering::Relaxed);
        loop {
            if queued != 0 && queued + size > self.max_bytes {
                return false;
            }
            match self.bytes.compare_exchange_weak(
                queued,
                queued + size,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => queued = now,
            }
        }
    }
}

/// The consumer's end of the event channel.
pub struct EventReceiver {
    rx: crossbeam_channel::Receiver<(Event, usize)>,
    bytes: Arc<AtomicUsize>,
}

impl EventReceiver {
    pub fn try_recv(&self) -> Option<Event> {
        let (ev, size) = self.rx.try_recv().ok()?;
        self.bytes.fetch_sub(size, Ordering::Relaxed);
        Some(ev)
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Bytes queued, waiting for the consumer.
    pub fn queued_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The tap's public address: every client connects here.
    pub listen: SocketAddr,
    /// The embedded broker's internal address (port 0: any free port).
    pub broker_listen: SocketAddr,
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
    /// Access rules at the tap (`--users FILE`); a scenario's `auth` replaces them while it runs.
    pub auth: Option<Arc<crate::tap::AuthSpec>>,
    /// Run only this part of every fleet (`--shard K/N`).
    pub shard: Option<crate::sim::Shard>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            broker_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: Upstream::Embedded,
            event_capacity: 1024,
            event_bytes: 64 * 1024 * 1024,
            wire_capacity: 131_072,
            direct: false,
            watch: false,
            tls: None,
            auth: None,
            shard: None,
        }
    }
}

/// Where the engine's start-up got to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Starting,
    /// Clients connect to `tap`; it forwards to `upstream`.
    Ready {
        tap: SocketAddr,
        upstream: String,
        /// The TLS listener, when there is one.
        tls: Option<SocketAddr>,
    },
    Failed(String),
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
    pub async fn ready(&mut self) -> Result<(SocketAddr, String), String> {
        let r = self
            .ready
            .wait_for(|r| *r != Readiness::Starting)
            .await
            .map_err(|_| "the engine stopped".to_string())?
            .clone();
        match r {
            Readiness::Ready { tap, upstream, .. } => Ok((tap, upstream)),
            Readiness::Failed(e) => Err(e),
            Readiness::Starting => Err("the engine stopped".into()),
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
                });
                engine.run(cmd_rx).await;
            }
            Err((error, free_port)) => {
                let _ = ready_tx.send(Readiness::Failed(error.clone()));
                sink.send(Event::Broker(BrokerState::Failed { error, free_port }));
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
pub async fn start(cfg: EngineConfig) -> Result<EngineHandle, String> {
    let mut handle = spawn(&tokio::runtime::Handle::current(), cfg);
    handle.ready().await?;
    Ok(handle)
}

/// The first port after `taken` that can be bound on `ip` (looked up on the
/// engine, never on the UI thread).
fn free_port_after(ip: std::net::IpAddr, taken: u16) -> Option<u16> {
    (taken.saturating_add(1)..=taken.saturating_add(100))
        .find(|p| std::net::TcpListener::bind(SocketAddr::new(ip, *p)).is_ok())
}

const BATCH: usize = 8192;

/// Collect wire events and device updates into batches (about every 10 ms);
/// offer device state changes to the timeline. Markers on the devices' queue
/// (a scenario started or stopped) go out after everything queued before them.
async fn batch_events(
    mut wire: mpsc::Receiver<WireEvent>,
    mut devices: mpsc::Receiver<DeviceMsg>,
    sink: EventSink,
    states: broadcast::Sender<(String, DeviceState)>,
) {
    let mut wire_buf = Vec::with_capacity(BATCH);
    let mut dev_msgs: Vec<DeviceMsg> = Vec::new();
    let mut dev_buf: Vec<DeviceUpdate> = Vec::new();
    let flush = |wire_buf: &mut Vec<WireEvent>, dev_buf: &mut Vec<DeviceUpdate>| {
        if !dev_buf.is_empty() {
            if states.receiver_count() > 0 {
                for d in dev_buf.iter() {
                    let _ = states.send((d.client_id.clone(), d.state));
                }
            }
            sink.send(Event::Devices(std::mem::take(dev_buf)));
        }
        if !wire_buf.is_empty() {
            sink.send(Event::Wire(std::mem::replace(
                wire_buf,
                Vec::with_capacity(BATCH),
            )));
        }
    };
    loop {
        tokio::select! {
            n = wire.recv_many(&mut wire_buf, BATCH) => if n == 0 { return },
            n = devices.recv_many(&mut dev_msgs, BATCH) => if n == 0 { return },
        }
        // Let more arrive: one batch per ~10 ms keeps the consumer's work per event low.
        tokio::time::sleep(Duration::from_millis(10)).await;
        while wire_buf.len() < BATCH {
            match wire.try_recv() {
                Ok(ev) => wire_buf.push(ev),
                Err(_) => break,
            }
        }
        while let Ok(m) = devices.try_recv() {
            dev_msgs.push(m);
        }
        for m in dev_msgs.drain(..) {
            match m {
                DeviceMsg::Update(u) => dev_buf.push(u),
                DeviceMsg::Marker(ev, done) => {
                    // Everything the tap read so far goes first, too.
                    while let Ok(w) = wire.try_recv() {
                        wire_buf.push(w);
                        if wire_buf.len() >= BATCH {
                            flush(&mut wire_buf, &mut Vec::new());
                        }
                    }
                    flush(&mut wire_buf, &mut dev_buf);
                    sink.send(ev);
                    let _ = done.send(());
                }
            }
        }
        flush(&mut wire_buf, &mut dev_buf);
    }
}

impl Engine {
    /// Bind the tap, then start the broker (if embedded, on its own thread):
    /// a taken public port fails before a broker router (a thread rumqttd
    /// never stops) is spawned. On failure: the message, and a free port when
    /// the public one was taken.
    async fn start(
        cfg: EngineConfig,
        sink: EventSink,
        commands: mpsc::WeakSender<Command>,
    ) -> Result<Engine, (String, Option<u16>)> {
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
        // Certificates are files: read (or made) off the async workers.
        if let Upstream::External(b) = &cfg.upstream
            && b.tls
        {
            let (ca, host) = (b.ca.clone(), b.host.clone());
            let tls = tokio::task::spawn_blocking(move || {
                Ok::<_, String>(crate::tap::UpstreamTls {
                    config: crate::tls::broker_client_config(ca.as_deref())?,
                    name: crate::tls::server_name(&host)?,
                })
            })
            .await
            .map_err(|e| (e.to_string(), None))?
            .map_err(|e| (format!("TLS to the broker: {e}"), None))?;
            upstreams.tls = Some(tls);
        }
        let tls_setup = match cfg.tls.clone() {
            Some(opts) => Some(
                tokio::task::spawn_blocking(move || crate::tls::setup(&opts).map(|s| (opts, s)))
                    .await
                    .map_err(|e| (e.to_string(), None))?
                    .map_err(|e| (format!("TLS: {e}"), None))?,
            ),
            None => None,
        };
        let upstream_shared = Arc::new(Mutex::new(upstreams));
        // In front of the embedded rumqttd the tap works around what it cannot
        // take (keepalive 0, names that crash it), and shows it on the session.
        let tls_listen = tls_setup
            .as_ref()
            .map(|(o, s)| (o.listen, s.acceptor.clone()));
        let tap = match Tap::start_with_tls(
            cfg.listen,
            tls_listen,
            upstream_shared.clone(),
            recorder,
            embedded,
        )
        .await
        {
            Ok(t) => t,
            Err(source) => {
                let ip = cfg.listen.ip();
                let port = cfg.listen.port();
                let free = if source.kind() == std::io::ErrorKind::AddrInUse {
                    tokio::task::spawn_blocking(move || free_port_after(ip, port))
                        .await
                        .ok()
                        .flatten()
                } else {
                    None
                };
                let tls_port = cfg.tls.as_ref().map(|t| t.listen.port());
                if free.is_none()
                    && let Some(tls_port) = tls_port
                    && source.kind() == std::io::ErrorKind::AddrInUse
                {
                    return Err((
                        format!(
                            "port {port} or TLS port {tls_port} on {ip} is already in use ({source}); choose others with --port and --tls-port"
                        ),
                        None,
                    ));
                }
                return Err((
                    format!(
                        "port {port} on {ip} is already in use ({source}); choose another with --port"
                    ),
                    free,
                ));
            }
        };
        tap.set_auth(cfg.auth.clone());
        let broker = if embedded {
            let b = BrokerControl::start(cfg.broker_listen, "--broker-port")
                .await
                .map_err(|e| (e.to_string(), None))?;
            let addrs = b.addrs();
            *upstream_shared.lock() = Upstreams {
                v4: addrs.v4.to_string(),
                v5: addrs.v5.to_string(),
                tls: None,
                memory: Some(b.memory()),
            };
            // The broker's health probe, for as long as the engine runs.
            let engine = commands.clone();
            tokio::spawn(crate::broker::health::probe(
                addrs.v4,
                crate::broker::health::DEADLINE,
                // False once the engine is gone: the probe ends.
                move |health| {
                    engine.upgrade().is_some_and(|tx| {
                        !matches!(
                            tx.try_send(Command::BrokerHealth(health)),
                            Err(mpsc::error::TrySendError::Closed(_))
                        )
                    })
                },
            ));
            Some(b)
        } else {
            None
        };
        let upstream = upstream_shared.lock().v4.clone();
        let (states, _) = broadcast::channel(4096);
        tokio::spawn(batch_events(wire_rx, dev_rx, sink.clone(), states.clone()));
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

    fn notice(&self, error: bool, text: impl Into<String>) {
        self.sink.send(Event::Notice {
            error,
            text: text.into(),
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
            } => {
                let sink = self.sink.clone();
                tokio::task::spawn_blocking(move || {
                    let scenario = scenario.as_ref().map(|(n, t)| (n.as_str(), *t));
                    let (error, text) = match crate::export::record::write(
                        &path,
                        events.iter(),
                        events.len,
                        &faults,
                        scenario,
                    ) {
                        Ok(n) => (false, format!("saved {n} frames to {}", path.display())),
                        Err(e) => (true, format!("{}: {e}", path.display())),
                    };
                    sink.send(Event::Notice { error, text });
                });
            }
            Command::SaveScenario { path, ron } => {
                let sink = self.sink.clone();
                tokio::task::spawn_blocking(move || {
                    let (error, text) = match Scenario::parse(&ron, &path) {
                        Err(e) => (true, format!("not saved: {e}")),
                        Ok(_) => match std::fs::write(&path, ron) {
                            Ok(()) => (false, format!("saved {}", path.display())),
                            Err(e) => (true, format!("{}: {e}", path.display())),
                        },
                    };
                    sink.send(Event::Notice { error, text });
                });
            }
            Command::OpenCapture(path) => {
                let sink = self.sink.clone();
                tokio::task::spawn_blocking(move || {
                    sink.send(match crate::export::record::read(&path) {
                        Ok(rec) => Event::CaptureOpened(Box::new(rec)),
                        Err(text) => Event::Notice { error: true, text },
                    });
                });
            }
            Command::CopyFile { from, to } => {
                let sink = self.sink.clone();
                tokio::task::spawn_blocking(move || {
                    let (error, text) = match std::fs::copy(&from, &to) {
                        Ok(_) => (false, format!("saved {}", to.display())),
                        Err(e) => (true, format!("{}: {e}", to.display())),
                    };
                    sink.send(Event::Notice { error, text });
                });
            }
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
            Command::Publish(req) => self.publish(req),
            Command::ClearRetained(topics) => self.clear_retained(topics),
        }
    }

    /// The health probe's news: a broker that stopped answering is restarted
    /// (warm, keeping sessions; cold when a warm restart within the last
    /// minute did not help), counted, and marked on the timeline.
    async fn on_broker_health(&mut self, health: crate::event::Health) {
        use crate::event::Health;
        let why = match health {
            Health::Answering => {
                if let Some(h) = &mut self.health {
                    h.answering = true;
                    self.sink.send(Event::BrokerHealth(h.clone()));
                }
                return;
            }
            Health::NotAnswering(why) => why,
        };
        if self.broker_stopped {
            return;
        }
        let Some(b) = &mut self.broker else { return };
        let cold = self
            .last_recovery
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
        self.last_recovery = Some(std::time::Instant::now());
        let restarts = self.health.as_ref().map_or(0, |h| h.restarts) + 1;
        let h = crate::event::BrokerHealth {
            answering: false,
            restarts,
            why: why.clone(),
        };
        self.health = Some(h.clone());
        self.sink.send(Event::BrokerHealth(h));
        let how = if cold { "cold" } else { "warm" };
        tracing::error!("the embedded broker stopped answering ({why}): {how} restart");
        let restarted = if cold {
            b.cold_restart().await.map(|_| ())
        } else {
            match b.stop().await {
                Ok(()) => b.resume().await.map(|_| ()),
                Err(e) => Err(e),
            }
        };
        match restarted {
            Ok(()) => {
                self.sink.send(Event::Broker(BrokerState::Running {
                    public: self.tap.local_addr(),
                    upstream: self.upstream.lock().v4.clone(),
                    tls: self.tls.clone(),
                }));
                self.notice(
                    true,
                    format!("the embedded broker stopped answering ({why}); restarted it ({how})"),
                );
            }
            Err(e) => self.notice(
                true,
                format!("the embedded broker stopped answering ({why}) and did not restart: {e}"),
            ),
        }
        self.sink.send(Event::Fault {
            t_us: crate::time::now_us(),
            label: format!("broker not answering: {how} restart #{restarts}"),
            timeline: None,
        });
    }

    /// The workbench's own MQTT client, connected through the tap on first
    /// use (so what it sends shows in every inspector like any client's).
    /// An MQTT 5 client, so messages published by hand can carry properties.
    fn own_client(&mut self) -> rumqttc::v5::AsyncClient {
        if let Some((client, _)) = &self.own_client {
            return client.clone();
        }
        let tap = self.tap.local_addr();
        let mut opts = rumqttc::v5::MqttOptions::new(
            crate::command::WORKBENCH_CLIENT_ID,
            tap.ip().to_string(),
            tap.port(),
        );
        opts.set_keep_alive(Duration::from_secs(30));
        // As large as the tap and the broker take (rumqttc's default is 10 KiB).
        opts.set_max_packet_size(Some(1024 * 1024));
        // rumqttc sizes its inflight tables by the broker's Receive Maximum (65,535).
        opts.set_outgoing_inflight_upper_limit(100);
        let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 256);
        let task = tokio::spawn(async move {
            loop {
                if el.poll().await.is_err() {
                    // Reconnects after a broker restart; paced.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        self.own_client = Some((client.clone(), task));
        client
    }

    fn publish(&mut self, mut req: crate::command::PublishRequest) {
        use crate::command::Publisher;
        // A payload from a file is read off the async workers, then published.
        if let Some(path) = req.payload_file.take() {
            let (sink, commands) = (self.sink.clone(), self.commands.clone());
            tokio::spawn(async move {
                let read = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || -> Result<Vec<u8>, String> {
                        let len = std::fs::metadata(&path)
                            .map_err(|e| format!("{}: {e}", path.display()))?
                            .len();
                        if len > crate::tap::MAX_FRAME_BYTES as u64 - 1024 {
                            return Err(format!(
                                "{}: {len} bytes is more than the 1 MiB a message may carry here",
                                path.display()
                            ));
                        }
                        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
                    }
                })
                .await;
                match read {
                    Ok(Ok(bytes)) => {
                        req.payload = bytes::Bytes::from(bytes);
                        if let Some(tx) = commands.upgrade() {
                            let _ = tx.send(Command::Publish(req)).await;
                        }
                    }
                    Ok(Err(text)) => sink.send(Event::Notice { error: true, text }),
                    Err(e) => sink.send(Event::Notice {
                        error: true,
                        text: e.to_string(),
                    }),
                }
            });
            return;
        }
        let what = format!(
            "{} B to {} (QoS {}{})",
            req.payload.len(),
            req.topic,
            req.qos,
            if req.retain { ", retained" } else { "" }
        );
        match req.from.clone() {
            Publisher::Workbench => {
                let qos = crate::scenario::Qos(req.qos.min(2)).to_rumqttc_v5();
                let client = self.own_client();
                let sent = if req.properties.is_empty() {
                    client.try_publish(req.topic, qos, req.retain, req.payload)
                } else {
                    client.try_publish_with_properties(
                        req.topic,
                        qos,
                        req.retain,
                        req.payload,
                        crate::sim::mqtt::publish_properties(&req.properties),
                    )
                };
                match sent {
                    // Queued on the workbench's connection; the log shows when it went out.
                    Ok(()) => self.notice(false, format!("publishing {what}")),
                    Err(e) => self.notice(true, format!("cannot publish {what}: {e}")),
                }
            }
            Publisher::Device(id) => {
                let Some(d) = self.devices.iter().find(|d| d.client_id == id) else {
                    return self.notice(true, format!("no virtual device \"{id}\" is running"));
                };
                let (answer, answered) = tokio::sync::oneshot::channel();
                if d.publish.try_send(Box::new((req, answer))).is_err() {
                    return self.notice(true, format!("{id} is busy: try again"));
                }
                let sink = self.sink.clone();
                tokio::spawn(async move {
                    let (error, text) =
                        match tokio::time::timeout(Duration::from_secs(2), answered).await {
                            Ok(Ok(Ok(()))) => (false, format!("{id} is publishing {what}")),
                            Ok(Ok(Err(e))) => (true, format!("cannot publish {what}: {e}")),
                            _ => (
                                true,
                                format!("cannot publish {what}: {id} did not answer (offline?)"),
                            ),
                        };
                    sink.send(Event::Notice { error, text });
                });
            }
        }
    }

    /// An empty retained message on each topic clears what the broker holds.
    fn clear_retained(&mut self, topics: Vec<String>) {
        let client = self.own_client();
        let sink = self.sink.clone();
        tokio::spawn(async move {
            let n = topics.len();
            let mut failed = 0;
            for t in topics {
                // Awaited: a long list waits for room in the client's queue (not
                // forever: the broker may be stopped).
                let sent = tokio::time::timeout(
                    Duration::from_secs(5),
                    client.publish(
                        t,
                        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                        true,
                        Vec::new(),
                    ),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    failed += 1;
                }
            }
            let (error, text) = if failed == 0 {
                (
                    false,
                    format!(
                        "cleared {n} retained message{}",
                        if n == 1 { "" } else { "s" }
                    ),
                )
            } else {
                (
                    true,
                    format!("cleared {} of {n} retained messages", n - failed),
                )
            };
            sink.send(Event::Notice { error, text });
        });
    }

    /// Parse a scenario off the async workers and check that it fits.
    async fn parse_scenario(
        source: &ScenarioSource,
        shard: Option<crate::sim::Shard>,
        external: bool,
    ) -> Result<Scenario, String> {
        let source = source.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = Scenario::from_source(&source).map_err(|e| e.to_string())?;
            let dir = match &source {
                ScenarioSource::File(p) => p.parent().map(Path::to_path_buf),
                ScenarioSource::Text { origin, .. } => origin.parent().map(Path::to_path_buf),
            }
            .unwrap_or_default();
            s.compile_protos(&dir)?;
            let count = shard.map_or(s.device_count(), |k| k.device_count(&s));
            match crate::sys::device_capacity_for(external).refuse(count as u64) {
                Some(why) => Err(format!("{}: {why}", s.name)),
                None => Ok(s),
            }
        })
        .await
        .map_err(|e| format!("cannot load the scenario: {e}"))?
    }

    /// The tap forwards to an external broker (devices then cost a descriptor each).
    fn external(&self) -> bool {
        matches!(self.cfg.upstream, Upstream::External(_))
    }

    /// Where this scenario's devices connect (and say so when TLS is asked for but absent).
    fn device_target(&self, scenario: &Scenario) -> crate::sim::Target {
        let (host, port) = if self.cfg.direct {
            let up = self.upstream.lock().v4.clone();
            split_host_port(&up)
        } else {
            (
                self.tap.local_addr().ip().to_string(),
                self.tap.local_addr().port(),
            )
        };
        let tls = match (self.tap.tls_addr(), &self.device_tls) {
            (Some(addr), Some(config)) if !self.cfg.direct => Some(crate::sim::DeviceTls {
                port: addr.port(),
                config: config.clone(),
            }),
            _ => None,
        };
        if tls.is_none()
            && let Some(d) = scenario.devices.iter().find(|d| d.tls)
        {
            self.notice(
                true,
                format!(
                    "{}: device \"{}\" connects with TLS, but the workbench runs without a TLS listener: start it with --tls (it will not connect until then)",
                    scenario.name, d.id
                ),
            );
        }
        crate::sim::Target {
            host,
            port,
            tls,
            credentials: self.credentials.clone(),
            // In-process to the tap, unless devices bypass it.
            door: (!self.cfg.direct).then(|| self.tap.door()),
        }
    }

    fn apply_auth(&self, scenario: &Scenario) {
        self.tap.set_auth(
            scenario
                .auth
                .clone()
                .map(Arc::new)
                .or_else(|| self.cfg.auth.clone()),
        );
    }

    fn start_timeline(&mut self, scenario: &Scenario) {
        if let Some(t) = self.timeline.take() {
            t.abort();
        }
        if !scenario.timeline.is_empty() {
            let states = self.states.subscribe();
            self.timeline = Some(tokio::spawn(run_timeline(
                scenario.clone(),
                self.commands.clone(),
                states,
            )));
        }
    }

    async fn load_scenario(&mut self, source: ScenarioSource) {
        let scenario = match Self::parse_scenario(&source, self.cfg.shard, self.external()).await {
            Ok(s) => s,
            Err(e) => return self.notice(true, e),
        };
        self.stop_devices().await;
        let path = source_path(&source);
        self.send_ordered(Event::ScenarioStarted(Box::new(scenario.info(&path))))
            .await;
        self.apply_auth(&scenario);
        let target = self.device_target(&scenario);
        self.scenario_running = true;
        let shard = self.cfg.shard.map(|k| k.client_ids(&scenario));
        self.devices = crate::sim::start_some(&scenario, &target, &self.reporter, |id| {
            shard.as_ref().is_none_or(|ids| ids.contains(id))
        });
        self.start_timeline(&scenario);
        self.watch(&source);
        self.current = Some(scenario);
    }

    /// Apply a changed scenario: see [`Command::ReloadScenario`].
    async fn reload_scenario(&mut self, source: ScenarioSource) {
        let Some(old) = self.current.clone().filter(|_| self.scenario_running) else {
            return self.load_scenario(source).await;
        };
        let new = match Self::parse_scenario(&source, self.cfg.shard, self.external()).await {
            Ok(s) => s,
            Err(e) => {
                return self.notice(
                    true,
                    format!("{e}\nThe running scenario stays as it was until the file is fixed."),
                );
            }
        };
        let mut wanted: std::collections::HashMap<String, Arc<crate::scenario::DeviceSpec>> =
            std::collections::HashMap::new();
        for d in &new.devices {
            let spec = Arc::new(d.clone());
            for id in d.client_ids() {
                wanted.insert(id, spec.clone());
            }
        }
        let (mut keep, mut stop, mut restarted) = (Vec::new(), Vec::new(), Vec::new());
        for h in std::mem::take(&mut self.devices) {
            match wanted.get(&h.client_id) {
                // A fleet that only grew or shrank keeps the devices it still has.
                Some(spec) if same_but_count(spec, &h.spec) && new.seed == h.seed => keep.push(h),
                Some(_) => {
                    restarted.push(h.client_id.clone());
                    stop.push(h);
                }
                None => stop.push(h),
            }
        }
        let (kept, removed) = (keep.len(), stop.len() - restarted.len());
        // Changed and removed devices leave gracefully (DISCONNECT) first.
        crate::sim::stop(stop, Duration::from_secs(3)).await;
        let running: std::collections::HashSet<String> =
            keep.iter().map(|h| h.client_id.clone()).collect();
        self.apply_auth(&new);
        let target = self.device_target(&new);
        let shard = self.cfg.shard.map(|k| k.client_ids(&new));
        let started = crate::sim::start_some(&new, &target, &self.reporter, |id| {
            !running.contains(id) && shard.as_ref().is_none_or(|ids| ids.contains(id))
        });
        let added = started.len() - restarted.len();
        keep.extend(started);
        self.devices = keep;
        if new.timeline != old.timeline {
            self.start_timeline(&new);
        }
        let path = source_path(&source);
        self.send_ordered(Event::ScenarioReloaded {
            info: Box::new(new.info(&path)),
            restarted: restarted.clone(),
        })
        .await;
        self.notice(
            false,
            format!(
                "reloaded {}: {kept} devices kept their connections, {} restarted, {added} added, {removed} removed",
                path.display(),
                restarted.len()
            ),
        );
        self.current = Some(new);
    }

    /// Watch the scenario's file (when `cfg.watch`): a change is applied as a reload.
    fn watch(&mut self, source: &ScenarioSource) {
        self.watcher = None;
        let (true, ScenarioSource::File(path)) = (self.cfg.watch, source) else {
            return;
        };
        match crate::sim::watch::watch(path.clone(), self.commands.clone()) {
            Ok(w) => self.watcher = Some(w),
            Err(e) => self.notice(true, format!("cannot watch {}: {e}", path.display())),
        }
    }

    /// Write the PUBLISH frames of `events` on a blocking thread, reporting progress.
    fn export(&mut self, path: PathBuf, events: EventsSnapshot) {
        if self.export.as_ref().is_some_and(|t| !t.is_finished()) {
            return self.notice(true, "an export is already running");
        }
        let sink = self.sink.clone();
        self.export = Some(tokio::task::spawn_blocking(move || {
            let total = events
                .iter()
                .filter(|e| e.kind == crate::wire::PacketKind::Publish)
                .count() as u64;
            sink.send(Event::ExportProgress { done: 0, total });
            let result = crate::export::write_events(&path, events.iter(), |done| {
                sink.send(Event::ExportProgress { done, total })
            });
            sink.send(match result {
                Ok(n) => Event::Notice {
                    error: false,
                    text: format!("exported {n} messages to {}", path.display()),
                },
                Err(e) => Event::Notice {
                    error: true,
                    text: e.to_string(),
                },
            });
            sink.send(Event::ExportFinished);
        }));
    }

    async fn resume_broker(&mut self) {
        if let Some(b) = &mut self.broker {
            let state = match b.resume().await {
                Ok(addr) => BrokerState::Running {
                    public: self.tap.local_addr(),
                    upstream: addr.to_string(),
                    tls: self.tls.clone(),
                },
                Err(error) => BrokerState::Failed {
                    error,
                    free_port: None,
                },
            };
            self.sink.send(Event::Broker(state));
        }
    }

    fn device_action(&self, target: &Target, action: DeviceAction) {
        let mut n = 0;
        for d in &self.devices {
            let hit = match target {
                Target::Device(id) => &d.client_id == id,
                Target::Fleet(f) => &d.fleet == f,
                Target::All => true,
            };
            if hit && d.ctl.try_send(action).is_ok() {
                n += 1;
            }
        }
        if n == 0 {
            // Not a virtual device: an external client can still be dropped at the tap.
            if let (Target::Device(id), DeviceAction::Drop) = (target, action) {
                if self.tap.drop_client(id) == 0 {
                    self.notice(true, format!("no connection for client \"{id}\""));
                }
            } else {
                self.notice(true, format!("no device matches {target:?}"));
            }
        }
    }

    /// The tap's fault keys for a target (a fleet is its devices' client ids).
    fn fault_keys(&self, target: &Target) -> Vec<FaultKey> {
        match target {
            Target::Device(id) => vec![FaultKey::Client(id.clone())],
            Target::Fleet(f) => self
                .devices
                .iter()
                .filter(|d| &d.fleet == f)
                .map(|d| FaultKey::Client(d.client_id.clone()))
                .collect(),
            Target::All => vec![FaultKey::All],
        }
    }

    /// Change one aspect (`what`) of a target's network faults; after
    /// `duration`, undo that change unless the same aspect changed since.
    fn net_fault(
        &mut self,
        target: &Target,
        what: &'static str,
        duration: Option<Duration>,
        change: impl Fn(&mut NetFault),
        undo: fn(&mut NetFault),
    ) {
        let keys = self.fault_keys(target);
        let table = self.tap.faults().clone();
        self.next_fault_generation += 1;
        let generation = self.next_fault_generation;
        {
            let mut gens = self.fault_generations.lock();
            for k in &keys {
                table.update(k.clone(), &change);
                gens.insert((k.clone(), what), generation);
            }
        }
        self.sink.send(Event::NetFaults(table.snapshot()));
        if let Some(d) = duration {
            let gens = self.fault_generations.clone();
            let sink = self.sink.clone();
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                {
                    let gens = gens.lock();
                    for k in keys {
                        if gens.get(&(k.clone(), what)) == Some(&generation) {
                            table.update(k, undo);
                        }
                    }
                }
                sink.send(Event::NetFaults(table.snapshot()));
            });
        }
    }

    /// Apply a fault and put a marker on the plots.
    async fn inject(&mut self, fault: Fault, timeline: Option<usize>) {
        let dur = |d: &Option<Duration>| *d;
        if let Some((target, action)) = fault.device_action() {
            self.device_action(target, action);
        }
        match &fault {
            Fault::Disconnect(_)
            | Fault::Drop(_)
            | Fault::Reconnect(_)
            | Fault::Pause(_)
            | Fault::Resume(_)
            | Fault::StopAcking(_)
            | Fault::ResumeAcking(_) => {}
            Fault::Latency {
                target,
                ms,
                jitter_ms,
                duration,
            } => {
                let (ms, jitter_ms) = (*ms, *jitter_ms);
                self.net_fault(
                    target,
                    "latency",
                    dur(duration),
                    move |f| {
                        f.latency_ms = ms;
                        f.jitter_ms = jitter_ms;
                    },
                    |f| {
                        f.latency_ms = 0;
                        f.jitter_ms = 0;
                    },
                );
            }
            Fault::Loss {
                target,
                drop_pct,
                stall_pct,
                stall_ms,
                duration,
            } => {
                let (d, s, ms) = (
                    drop_pct.clamp(0.0, 100.0),
                    stall_pct.clamp(0.0, 100.0),
                    *stall_ms,
                );
                self.net_fault(
                    target,
                    "loss",
                    dur(duration),
                    move |f| {
                        f.drop_pct = d;
                        f.stall_pct = s;
                        f.stall_ms = ms;
                    },
                    |f| {
                        f.drop_pct = 0.0;
                        f.stall_pct = 0.0;
                        f.stall_ms = 0;
                    },
                );
            }
            Fault::Bandwidth {
                target,
                bytes_per_s,
                duration,
            } => {
                let bps = *bytes_per_s;
                self.net_fault(
                    target,
                    "bandwidth",
                    dur(duration),
                    move |f| f.bandwidth_bps = bps,
                    |f| f.bandwidth_bps = 0,
                );
            }
            Fault::Partition {
                target,
                duration,
                hold,
            } => {
                let mode = if *hold {
                    PartitionMode::Hold
                } else {
                    PartitionMode::Cut
                };
                self.net_fault(
                    target,
                    "partition",
                    Some(*duration),
                    move |f| f.partition = Some(mode),
                    |f| f.partition = None,
                );
            }
            Fault::HalfDead { target, duration } => {
                self.net_fault(
                    target,
                    "half-dead",
                    dur(duration),
                    |f| f.stalled = true,
                    |f| f.stalled = false,
                );
            }
            Fault::ClearNetwork(target) => {
                self.next_fault_generation += 1;
                let mut gens = self.fault_generations.lock();
                for k in self.fault_keys(target) {
                    self.tap.faults().set(k.clone(), NetFault::default());
                    // Pending timers for this key must not touch what comes next.
                    gens.retain(|(key, _), _| *key != k);
                }
                drop(gens);
                self.sink
                    .send(Event::NetFaults(self.tap.faults().snapshot()));
            }
            Fault::Takeover { client, hold } => {
                tokio::spawn(takeover(client.clone(), self.tap.local_addr(), *hold));
            }
            Fault::RestartBroker => match &mut self.broker {
                Some(b) => {
                    if let Err(e) = b.stop().await {
                        self.notice(true, e);
                    }
                    self.resume_broker().await;
                }
                None => self.notice(
                    true,
                    "the broker is external: it cannot be restarted from here",
                ),
            },
            Fault::ColdRestartBroker => match &mut self.broker {
                Some(b) => match b.cold_restart().await {
                    Ok(addr) => self.sink.send(Event::Broker(BrokerState::Running {
                        public: self.tap.local_addr(),
                        upstream: addr.to_string(),
                        tls: self.tls.clone(),
                    })),
                    Err(e) => self.notice(true, e),
                },
                None => self.notice(
                    true,
                    "the broker is external: it cannot be restarted from here",
                ),
            },
        }
        self.sink.send(Event::Fault {
            t_us: crate::time::now_us(),
            label: fault.label(),
            timeline,
        });
    }

    async fn stop_devices(&mut self) {
        if let Some(t) = self.timeline.take() {
            t.abort();
        }
        self.watcher = None;
        if !self.scenario_running {
            return;
        }
        self.scenario_running = false;
        crate::sim::stop(std::mem::take(&mut self.devices), Duration::from_secs(3)).await;
        self.tap.faults().clear_all();
        self.sink.send(Event::NetFaults(Vec::new()));
        self.send_ordered(Event::ScenarioStopped).await;
    }
}

/// Run a scenario's timeline: each entry at its time, or after its device
/// event. Every pending timer belongs to this task: aborting it (the scenario
/// stopped) cancels them all.
async fn run_timeline(
    scenario: Scenario,
    commands: mpsc::WeakSender<Command>,
    mut states: broadcast::Receiver<(String, DeviceState)>,
) {
    let start = tokio::time::Instant::now();
    let mut timers = tokio::task::JoinSet::new();
    let mut fire = |index: usize, fault: Fault, at: tokio::time::Instant| {
        let commands = commands.clone();
        timers.spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(tx) = commands.upgrade() {
                let _ = tx.send(Command::TimelineFault { index, fault }).await;
            }
        });
    };
    let mut waiting = Vec::new();
    for (i, e) in scenario.timeline.iter().enumerate() {
        match e.at {
            Some(at) => fire(i, e.fault.to_fault(), start + at.0 + e.delay.0),
            None => waiting.push((i, e.clone())),
        }
    }
    while !waiting.is_empty() {
        let (id, state) = match states.recv().await {
            Ok(x) => x,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    "timeline missed {n} device events (a large fleet changed state at once)"
                );
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        waiting.retain(|(i, e)| match e.trigger() {
            Some((want_id, want_state)) if want_id == id && want_state == state => {
                fire(
                    *i,
                    e.fault.to_fault(),
                    tokio::time::Instant::now() + e.delay.0,
                );
                false
            }
            _ => true,
        });
    }
    while timers.join_next().await.is_some() {}
}

/// A second client with the same id connects through the tap, holds, then leaves.
async fn takeover(client_id: String, tap: SocketAddr, hold: Duration) {
    let mut opts = rumqttc::MqttOptions::new(client_id, tap.ip().to_string(), tap.port());
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = rumqttc::AsyncClient::new(opts, 16);
    let _ = tokio::time::timeout(hold, async {
        // Until the original device takes its id back (the broker closes us).
        while el.poll().await.is_ok() {}
    })
    .await;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(1), el.poll()).await;
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

fn same_but_count(a: &crate::scenario::DeviceSpec, b: &crate::scenario::DeviceSpec) -> bool {
    crate::scenario::DeviceSpec {
        count: b.count,
        ..a.clone()
    } == *b
}

/// The path a scenario source names (a file, or an in-memory origin).
fn source_path(source: &ScenarioSource) -> PathBuf {
    match source {
        ScenarioSource::File(p) => p.clone(),
        ScenarioSource::Text { origin, .. } => origin.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Direction, PacketKind};

    fn sink(capacity: usize, max_bytes: usize) -> (EventSink, EventReceiver) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let bytes = Arc::new(AtomicUsize::new(0));
        let sink = EventSink {
            tx,
            capacity,
            bytes: bytes.clone(),
            max_bytes,
            waker: Arc::default(),
            drops: Arc::default(),
        };
        (sink, EventReceiver { rx, bytes })
    }

    fn wire(n: usize, payload: usize) -> Event {
        Event::Wire(
            (0..n)
                .map(|_| {
                    let mut e = WireEvent::new(
                        1,
                        1,
                        Arc::from("c"),
                        Direction::ClientToBroker,
                        PacketKind::Publish,
                    );
                    e.payload = Some(bytes::Bytes::from(vec![0u8; payload]));
                    e
                })
                .collect(),
        )
    }

    #[test]
    fn traffic_is_bounded_by_bytes_and_counted_but_state_changes_get_through() {
        let (sink, rx) = sink(CONTROL_RESERVE + 8, 64 * 1024);
        // Each batch holds ~40 KiB: the second no longer fits the byte bound.
        sink.send(wire(10, 4096));
        sink.send(wire(10, 4096));
        assert_eq!(
            sink.drops.counts().consumer,
            10,
            "the refused batch's events are counted"
        );
        // Events that change state pass even beyond the byte bound.
        sink.send(Event::ScenarioStopped);
        sink.send(Event::ExportFinished);
        assert!(rx.queued_bytes() > 0);
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(got.len(), 3);
        assert!(matches!(got[1], Event::ScenarioStopped));
        assert_eq!(rx.queued_bytes(), 0, "the receiver gives the bytes back");
        // Traffic leaves the last slots to state changes.
        for _ in 0..8 + CONTROL_RESERVE {
            sink.send(wire(1, 1));
        }
        assert_eq!(rx.rx.len(), 8, "wire batches stop at the reserved slots");
        sink.send(Event::Notice {
            error: false,
            text: "still heard".into(),
        });
        assert_eq!(rx.rx.len(), 9, "a state change takes a reserved slot");
    }
}
