//! The engine: embedded broker, tap and virtual devices on a tokio runtime.
//!
//! [`start`] returns an [`EngineHandle`]: a bounded [`Command`] sender and a
//! bounded [`Event`] receiver. The engine never blocks on its consumer: when
//! the consumer lags, events are dropped and counted ([`EngineHandle::dropped`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc};

use crate::broker::{BrokerError, EmbeddedBroker, Upstream};
use crate::protocol::{
    BrokerState, Command, DeviceAction, DeviceState, DeviceUpdate, Event, Target, WireEvent,
};
use crate::sim::device::DeviceHandle;
use crate::sim::scenario::{Fault, Scenario};
use crate::tap::Tap;
use crate::tap::faults::{FaultKey, NetFault, PartitionMode};

/// Called after events are sent, to wake the consumer (e.g. `ctx.request_repaint()`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Engine → consumer sender: bounded, never blocks, counts what it drops.
#[derive(Clone)]
pub struct EventSink {
    tx: crossbeam_channel::Sender<Event>,
    waker: Arc<Mutex<Option<Waker>>>,
    dropped: Arc<AtomicU64>,
    devices: mpsc::Sender<DeviceUpdate>,
    /// Device state changes for the timeline's `after` triggers.
    states: broadcast::Sender<(String, DeviceState)>,
}

impl EventSink {
    pub fn send(&self, ev: Event) {
        if let Err(
            crossbeam_channel::TrySendError::Full(ev)
            | crossbeam_channel::TrySendError::Disconnected(ev),
        ) = self.tx.try_send(ev)
        {
            let n = match ev {
                Event::Wire(batch) => batch.len() as u64,
                Event::Devices(batch) => batch.len() as u64,
                _ => 1,
            };
            self.dropped.fetch_add(n, Ordering::Relaxed);
        }
        if let Some(w) = self.waker.lock().as_ref() {
            w();
        }
    }

    /// A device changed state: batched with the others (a fleet of thousands
    /// changes state at once), and offered to the timeline.
    pub fn device_state(&self, client_id: &str, fleet: &str, state: DeviceState) {
        let _ = self.states.send((client_id.to_string(), state));
        let update = DeviceUpdate {
            client_id: client_id.to_string(),
            fleet: fleet.to_string(),
            state,
        };
        if self.devices.try_send(update).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl EventSink {
    /// A sink for devices running outside an engine (a fleet in its own
    /// process): engine events are discarded, device updates come back here.
    pub fn standalone() -> (EventSink, mpsc::Receiver<DeviceUpdate>) {
        let (tx, _) = crossbeam_channel::bounded(1);
        let (devices, rx) = mpsc::channel(65_536);
        let (states, _) = broadcast::channel(16);
        let sink = EventSink {
            tx,
            waker: Arc::default(),
            dropped: Arc::default(),
            devices,
            states,
        };
        (sink, rx)
    }
}

/// Tap → batcher: one wire event at a time, bounded, drops counted.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<WireEvent>,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    pub fn record(&self, ev: WireEvent) {
        if self.tx.try_send(ev).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
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
    /// Wire events queued between the tap and the batcher.
    pub wire_capacity: usize,
    /// Devices connect straight to the broker, bypassing the tap (raw-scale runs).
    pub direct: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            listen: "127.0.0.1:1883".parse().expect("valid address"),
            broker_listen: "127.0.0.1:0".parse().expect("valid address"),
            upstream: Upstream::Embedded,
            event_capacity: 1024,
            wire_capacity: 131_072,
            direct: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("port {port} on {ip} is already in use ({source}); choose another with --port")]
    PortInUse {
        ip: std::net::IpAddr,
        port: u16,
        source: std::io::Error,
    },
}

/// The consumer's side of a running engine.
pub struct EngineHandle {
    pub commands: mpsc::Sender<Command>,
    pub events: crossbeam_channel::Receiver<Event>,
    /// Where clients connect (the tap).
    pub tap_addr: SocketAddr,
    /// What the tap forwards to.
    pub upstream: String,
    dropped: Arc<AtomicU64>,
    waker: Arc<Mutex<Option<Waker>>>,
}

impl EngineHandle {
    /// Wire events and event batches dropped because a queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Set the function called whenever events are sent.
    pub fn set_waker(&self, waker: Waker) {
        *self.waker.lock() = Some(waker);
    }

    /// Queue a command without blocking; false if the engine is gone or busy.
    pub fn send(&self, cmd: Command) -> bool {
        self.commands.try_send(cmd).is_ok()
    }
}

struct Engine {
    cfg: EngineConfig,
    broker: Option<EmbeddedBroker>,
    tap: Tap,
    upstream: Arc<Mutex<String>>,
    devices: Vec<DeviceHandle>,
    timeline: Option<tokio::task::JoinHandle<()>>,
    sink: EventSink,
    /// Lets the timeline and timers send commands without keeping the engine alive.
    commands: mpsc::WeakSender<Command>,
    /// Per fault key and aspect (latency, loss, …): the change that set it last,
    /// so a timer only undoes its own change, never a later one.
    fault_generations: Arc<Mutex<std::collections::HashMap<(FaultKey, &'static str), u64>>>,
    next_fault_generation: u64,
}

/// Start the broker (if embedded), the tap and the engine task on the current runtime.
pub async fn start(cfg: EngineConfig) -> Result<EngineHandle, EngineError> {
    let (broker, upstream) = match &cfg.upstream {
        Upstream::Embedded => {
            let b = EmbeddedBroker::start(cfg.broker_listen, "--broker-port")?;
            let addr = b.addr().to_string();
            (Some(b), addr)
        }
        Upstream::External(addr) => (None, addr.clone()),
    };
    let dropped = Arc::new(AtomicU64::new(0));
    let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
    let (ev_tx, ev_rx) = crossbeam_channel::bounded(cfg.event_capacity);
    let (dev_tx, dev_rx) = mpsc::channel(65_536);
    let (states, _) = broadcast::channel(4096);
    let sink = EventSink {
        tx: ev_tx,
        waker: waker.clone(),
        dropped: dropped.clone(),
        devices: dev_tx,
        states,
    };
    let (wire_tx, wire_rx) = mpsc::channel(cfg.wire_capacity);
    let recorder = Recorder {
        tx: wire_tx,
        dropped: dropped.clone(),
    };
    let upstream_shared = Arc::new(Mutex::new(upstream.clone()));
    let tap = Tap::start(cfg.listen, upstream_shared.clone(), recorder)
        .await
        .map_err(|source| EngineError::PortInUse {
            ip: cfg.listen.ip(),
            port: cfg.listen.port(),
            source,
        })?;
    let tap_addr = tap.local_addr();
    tokio::spawn(batch_events(wire_rx, dev_rx, sink.clone()));
    sink.send(Event::Broker(BrokerState::Running {
        public: tap_addr,
        upstream: upstream.clone(),
    }));
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let engine = Engine {
        cfg,
        broker,
        tap,
        upstream: upstream_shared,
        devices: Vec::new(),
        timeline: None,
        sink,
        commands: cmd_tx.downgrade(),
        fault_generations: Arc::default(),
        next_fault_generation: 0,
    };
    tokio::spawn(engine.run(cmd_rx));
    Ok(EngineHandle {
        commands: cmd_tx,
        events: ev_rx,
        tap_addr,
        upstream,
        dropped,
        waker,
    })
}

const BATCH: usize = 8192;

/// Collect wire events and device updates into batches (about every 10 ms).
async fn batch_events(
    mut wire: mpsc::Receiver<WireEvent>,
    mut devices: mpsc::Receiver<DeviceUpdate>,
    sink: EventSink,
) {
    let mut wire_buf = Vec::with_capacity(BATCH);
    let mut dev_buf = Vec::new();
    loop {
        tokio::select! {
            n = wire.recv_many(&mut wire_buf, BATCH) => if n == 0 { return },
            n = devices.recv_many(&mut dev_buf, BATCH) => if n == 0 { return },
        }
        // Let more arrive: one batch per ~10 ms keeps the consumer's work per event low.
        tokio::time::sleep(Duration::from_millis(10)).await;
        while wire_buf.len() < BATCH {
            match wire.try_recv() {
                Ok(ev) => wire_buf.push(ev),
                Err(_) => break,
            }
        }
        while let Ok(d) = devices.try_recv() {
            dev_buf.push(d);
        }
        if !dev_buf.is_empty() {
            sink.send(Event::Devices(std::mem::take(&mut dev_buf)));
        }
        if !wire_buf.is_empty() {
            sink.send(Event::Wire(std::mem::replace(
                &mut wire_buf,
                Vec::with_capacity(BATCH),
            )));
        }
    }
}

impl Engine {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            self.handle(cmd).await;
        }
        // Every handle is gone: stop devices so their sessions end cleanly.
        self.stop_devices().await;
    }

    fn notice(&self, error: bool, text: impl Into<String>) {
        self.sink.send(Event::Notice {
            error,
            text: text.into(),
        });
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::LoadScenario(scenario) => {
                self.stop_devices().await;
                let (host, port) = if self.cfg.direct {
                    let up = self.upstream.lock().clone();
                    split_host_port(&up)
                } else {
                    ("127.0.0.1".to_string(), self.tap.local_addr().port())
                };
                self.devices = crate::sim::start(&scenario, &host, port, &self.sink);
                self.sink.send(Event::ScenarioStarted {
                    name: scenario.name.clone(),
                    devices: self
                        .devices
                        .iter()
                        .map(|d| (d.client_id.clone(), d.fleet.clone()))
                        .collect(),
                });
                if !scenario.timeline.is_empty() {
                    let states = self.sink.states.subscribe();
                    self.timeline = Some(tokio::spawn(run_timeline(
                        scenario,
                        self.commands.clone(),
                        states,
                    )));
                }
            }
            Command::StopScenario => {
                self.stop_devices().await;
            }
            // Through inject, so a click in the Devices panel is marked like any fault.
            Command::Device(target, action) => self.inject(Fault::device(target, action), None),
            Command::DropConnection(id) => {
                if !self.tap.drop_connection(id) {
                    self.notice(true, format!("connection {id} is already closed"));
                }
            }
            Command::StopBroker => match &mut self.broker {
                Some(b) => {
                    tokio::task::block_in_place(|| b.stop_listener());
                    self.sink.send(Event::Broker(BrokerState::Stopped));
                }
                None => self.notice(
                    true,
                    "the broker is external: it cannot be stopped from here",
                ),
            },
            Command::StartBroker => self.start_broker(),
            Command::Inject(fault) => self.inject(fault, None),
            Command::TimelineFault { index, fault } => self.inject(fault, Some(index)),
            Command::Export { path, rows } => {
                let result = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || crate::export::write(&path, &rows)
                })
                .await;
                match result {
                    Ok(Ok(n)) => self.notice(
                        false,
                        format!("exported {n} messages to {}", path.display()),
                    ),
                    Ok(Err(e)) => self.notice(true, e.to_string()),
                    Err(e) => self.notice(true, format!("export failed: {e}")),
                }
            }
        }
    }

    fn start_broker(&mut self) {
        if let Some(b) = &mut self.broker {
            // Binding waits for the port (and for rumqttd to accept): not on an async worker.
            match tokio::task::block_in_place(|| b.start_listener("--broker-port")) {
                Ok(()) => self.sink.send(Event::Broker(BrokerState::Running {
                    public: self.tap.local_addr(),
                    upstream: b.addr().to_string(),
                })),
                Err(e) => self
                    .sink
                    .send(Event::Broker(BrokerState::Failed(e.to_string()))),
            }
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
    fn inject(&mut self, fault: Fault, timeline: Option<usize>) {
        let dur = |d: &Option<crate::sim::scenario::Dur>| d.map(|d| d.0);
        match &fault {
            Fault::Disconnect(t) => self.device_action(t, DeviceAction::Disconnect),
            Fault::Drop(t) => self.device_action(t, DeviceAction::Drop),
            Fault::Reconnect(t) => self.device_action(t, DeviceAction::Reconnect),
            Fault::Pause(t) => self.device_action(t, DeviceAction::Pause),
            Fault::Resume(t) => self.device_action(t, DeviceAction::Resume),
            Fault::StopAcking(t) => self.device_action(t, DeviceAction::StopAcking),
            Fault::ResumeAcking(t) => self.device_action(t, DeviceAction::ResumeAcking),
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
                    Some(duration.0),
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
                tokio::spawn(takeover(
                    client.clone(),
                    self.tap.local_addr().port(),
                    hold.0,
                ));
            }
            Fault::RestartBroker => match &mut self.broker {
                Some(b) => {
                    tokio::task::block_in_place(|| b.stop_listener());
                    self.start_broker();
                }
                None => self.notice(
                    true,
                    "the broker is external: it cannot be restarted from here",
                ),
            },
            Fault::ColdRestartBroker => match &mut self.broker {
                Some(b) => match tokio::task::block_in_place(|| b.cold_restart("--broker-port")) {
                    Ok(()) => self.sink.send(Event::Broker(BrokerState::Running {
                        public: self.tap.local_addr(),
                        upstream: b.addr().to_string(),
                    })),
                    Err(e) => self.notice(true, e.to_string()),
                },
                None => self.notice(
                    true,
                    "the broker is external: it cannot be restarted from here",
                ),
            },
        }
        self.sink.send(Event::Fault {
            t_us: crate::tap::now_us(),
            label: fault.label(),
            timeline,
        });
    }

    async fn stop_devices(&mut self) {
        if let Some(t) = self.timeline.take() {
            t.abort();
        }
        if self.devices.is_empty() {
            return;
        }
        crate::sim::stop(std::mem::take(&mut self.devices), Duration::from_secs(3)).await;
        self.tap.faults().clear_all();
        self.sink.send(Event::NetFaults(Vec::new()));
        self.sink.send(Event::ScenarioStopped);
    }
}

/// Run a scenario's timeline: each entry at its time, or after its device
/// event. Every pending timer belongs to this task: aborting it (the scenario
/// stopped) cancels them all.
async fn run_timeline(
    scenario: Box<Scenario>,
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
            Some(at) => fire(i, e.fault.clone(), start + at.0 + e.delay.0),
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
                fire(*i, e.fault.clone(), tokio::time::Instant::now() + e.delay.0);
                false
            }
            _ => true,
        });
    }
    while timers.join_next().await.is_some() {}
}

/// A second client with the same id connects through the tap, holds, then leaves.
async fn takeover(client_id: String, port: u16, hold: Duration) {
    let mut opts = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
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
