//! The engine: embedded broker, tap and virtual devices on a tokio runtime.
//!
//! [`start`] returns an [`EngineHandle`]: a bounded [`Command`] sender and a
//! bounded [`Event`] receiver. The engine never blocks on its consumer: when
//! the consumer lags, wire events are dropped and counted ([`EngineHandle::dropped`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::broker::{BrokerError, EmbeddedBroker, Upstream};
use crate::protocol::{BrokerState, Command, DeviceAction, Event, Target, WireEvent};
use crate::sim::device::DeviceHandle;
use crate::tap::Tap;

/// Called after events are sent, to wake the consumer (e.g. `ctx.request_repaint()`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Engine → consumer sender: bounded, never blocks, counts what it drops.
#[derive(Clone)]
pub struct EventSink {
    tx: crossbeam_channel::Sender<Event>,
    waker: Arc<Mutex<Option<Waker>>>,
    dropped: Arc<AtomicU64>,
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
                _ => 1,
            };
            self.dropped.fetch_add(n, Ordering::Relaxed);
        }
        if let Some(w) = self.waker.lock().as_ref() {
            w();
        }
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
    sink: EventSink,
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
    let sink = EventSink {
        tx: ev_tx,
        waker: waker.clone(),
        dropped: dropped.clone(),
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
    tokio::spawn(batch_wire_events(wire_rx, sink.clone()));
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
        sink,
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

/// Collect single wire events into batches (up to 8192, about every 10 ms).
async fn batch_wire_events(mut rx: mpsc::Receiver<WireEvent>, sink: EventSink) {
    let mut buf = Vec::with_capacity(8192);
    loop {
        if rx.recv_many(&mut buf, 8192).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let room = 8192usize.saturating_sub(buf.len());
        if room > 0 {
            while let Ok(ev) = rx.try_recv() {
                buf.push(ev);
                if buf.len() >= 8192 {
                    break;
                }
            }
        }
        sink.send(Event::Wire(std::mem::replace(
            &mut buf,
            Vec::with_capacity(8192),
        )));
    }
}

impl Engine {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            self.handle(cmd).await;
        }
        // Every handle is gone: stop devices so their sessions end cleanly.
        crate::sim::stop(std::mem::take(&mut self.devices), Duration::from_secs(2)).await;
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
            }
            Command::StopScenario => {
                self.stop_devices().await;
            }
            Command::Device(target, action) => {
                let mut n = 0;
                for d in &self.devices {
                    let hit = match &target {
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
                    if let (Target::Device(id), DeviceAction::Drop) = (&target, action) {
                        if self.tap.drop_client(id) == 0 {
                            self.notice(true, format!("no connection for client \"{id}\""));
                        }
                    } else {
                        self.notice(true, format!("no device matches {target:?}"));
                    }
                }
            }
            Command::DropConnection(id) => {
                if !self.tap.drop_connection(id) {
                    self.notice(true, format!("connection {id} is already closed"));
                }
            }
            Command::StopBroker => match &mut self.broker {
                Some(b) => {
                    b.stop_listener();
                    self.sink.send(Event::Broker(BrokerState::Stopped));
                }
                None => self.notice(
                    true,
                    "the broker is external: it cannot be stopped from here",
                ),
            },
            Command::StartBroker => {
                if let Some(b) = &mut self.broker {
                    match b.start_listener("--broker-port") {
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

    async fn stop_devices(&mut self) {
        if self.devices.is_empty() {
            return;
        }
        crate::sim::stop(std::mem::take(&mut self.devices), Duration::from_secs(3)).await;
        self.sink.send(Event::ScenarioStopped);
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
