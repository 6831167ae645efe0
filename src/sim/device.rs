//! One virtual device: a rumqttc client driven by its scenario entry.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event as MqttEvent, LastWill, MqttOptions, Outgoing, Packet};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};

use super::DeviceReporter;
use super::generators::{DeviceCtx, PayloadSampler, Sampler, number_from_payload};
use super::scenario::{Action, DeviceSpec, PublishSpec, expand};
use crate::protocol::{DeviceAction, DeviceState, DeviceUpdate, PublishRequest};

/// A message to publish by hand as this device; answered with why not, if not.
pub type HandPublish = (
    PublishRequest,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

/// Everything one device task needs to run.
pub struct DevicePlan {
    pub client_id: String,
    /// The template id of its scenario entry (the fleet's name).
    pub fleet: String,
    /// 1-based index within the fleet.
    pub index: u32,
    pub spec: Arc<DeviceSpec>,
    pub seed: u64,
    pub broker_host: String,
    pub broker_port: u16,
    /// Wait this long before the first connect (ramps big fleets).
    pub start_delay: Duration,
}

/// The engine's handle on a running device.
pub struct DeviceHandle {
    pub client_id: String,
    pub fleet: String,
    pub ctl: mpsc::Sender<DeviceAction>,
    /// Messages published by hand as this device.
    pub publish: mpsc::Sender<HandPublish>,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn spawn(plan: DevicePlan, sink: DeviceReporter) -> DeviceHandle {
    let (tx, rx) = mpsc::channel(16);
    let (pub_tx, pub_rx) = mpsc::channel(16);
    let client_id = plan.client_id.clone();
    let fleet = plan.fleet.clone();
    let task = tokio::spawn(run(plan, rx, pub_rx, sink));
    DeviceHandle {
        client_id,
        fleet,
        ctl: tx,
        publish: pub_tx,
        task,
    }
}

struct PublishRt {
    spec: PublishSpec,
    topic: String,
    sampler: PayloadSampler,
    next: Option<Instant>,
    was_true: bool,
}

enum ActionRt {
    SetVarFromPayload(String),
    SetVar(String, f64),
    SetState(String),
    Publish {
        topic: String,
        sampler: PayloadSampler,
        qos: rumqttc::QoS,
        retain: bool,
    },
}

struct ReactionRt {
    filter: String,
    actions: Vec<ActionRt>,
}

struct Device {
    plan: DevicePlan,
    ctx: DeviceCtx,
    publishes: Vec<PublishRt>,
    signals: Vec<(String, Sampler)>,
    reactions: Vec<ReactionRt>,
    state_since: Instant,
    paused: bool,
    /// false: incoming QoS 1/2 messages are not acknowledged (the broker redelivers on reconnect).
    acking: bool,
    sink: DeviceReporter,
    state: DeviceState,
    /// Publishes and acks the client's request queue refused (lost, never sent).
    publish_failed: u64,
    ack_failed: u64,
    /// When the failure counters were last reported (they are throttled to 1/s).
    failures_reported: Option<Instant>,
}

impl Device {
    fn new(plan: DevicePlan, sink: DeviceReporter) -> Device {
        let spec = plan.spec.clone();
        let id = plan.client_id.clone();
        let initial = spec
            .states
            .as_ref()
            .map(|s| s.initial.clone())
            .unwrap_or_default();
        let ctx = DeviceCtx::new(plan.seed, &id, plan.index, spec.vars.clone(), initial);
        let tick_s = spec.tick.0.as_secs_f64();
        let publishes = spec
            .publish
            .iter()
            .map(|p| PublishRt {
                topic: expand(&p.topic, plan.index, &id),
                sampler: PayloadSampler::new(
                    &p.payload,
                    p.every.map_or(1.0, |e| e.0.as_secs_f64()),
                ),
                spec: p.clone(),
                next: None,
                was_true: false,
            })
            .collect();
        let signals = spec
            .signals
            .iter()
            .map(|(k, g)| (k.clone(), Sampler::new(g.clone(), tick_s)))
            .collect();
        let reactions = spec
            .react
            .iter()
            .map(|r| ReactionRt {
                filter: expand(&r.on, plan.index, &id),
                actions: r
                    .actions
                    .iter()
                    .map(|a| match a {
                        Action::SetVarFromPayload(v) => ActionRt::SetVarFromPayload(v.clone()),
                        Action::SetVar(v, x) => ActionRt::SetVar(v.clone(), *x),
                        Action::SetState(s) => ActionRt::SetState(s.clone()),
                        Action::Publish {
                            topic,
                            payload,
                            qos,
                            retain,
                        } => ActionRt::Publish {
                            topic: expand(topic, plan.index, &id),
                            sampler: PayloadSampler::new(payload, 1.0),
                            qos: qos.to_rumqttc(),
                            retain: *retain,
                        },
                    })
                    .collect(),
            })
            .collect();
        Device {
            plan,
            ctx,
            publishes,
            signals,
            reactions,
            state_since: Instant::now(),
            paused: false,
            acking: true,
            sink,
            state: DeviceState::Connecting,
            publish_failed: 0,
            ack_failed: 0,
            failures_reported: None,
        }
    }

    fn set_state(&mut self, state: DeviceState) {
        self.state = state;
        self.report();
    }

    fn report(&mut self) {
        self.sink.report(DeviceUpdate {
            client_id: self.plan.client_id.clone(),
            fleet: self.plan.fleet.clone(),
            state: self.state,
            publish_failed: self.publish_failed,
            ack_failed: self.ack_failed,
        });
    }

    /// A request the client refused: counted, and shown on the device (at most once a second).
    fn failed(&mut self, ack: bool) {
        if ack {
            self.ack_failed += 1;
        } else {
            self.publish_failed += 1;
        }
        if self
            .failures_reported
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.failures_reported = Some(Instant::now());
            self.report();
        }
    }

    /// Pause/resume/acking commands that apply in every state.
    fn control(&mut self, action: DeviceAction) {
        match action {
            DeviceAction::Pause => self.paused = true,
            DeviceAction::Resume => {
                self.paused = false;
                self.schedule(Instant::now());
            }
            DeviceAction::StopAcking => self.acking = false,
            DeviceAction::ResumeAcking => self.acking = true,
            DeviceAction::Disconnect | DeviceAction::Drop | DeviceAction::Reconnect => {}
        }
    }

    fn options(&self) -> MqttOptions {
        let spec = &self.plan.spec;
        let mut o = MqttOptions::new(
            &self.plan.client_id,
            &self.plan.broker_host,
            self.plan.broker_port,
        );
        o.set_keep_alive(spec.keep_alive.0);
        o.set_clean_session(spec.clean_session);
        o.set_max_packet_size(1024 * 1024, 1024 * 1024);
        // We acknowledge ourselves, so a device can stop acknowledging on command.
        o.set_manual_acks(true);
        if let Some(w) = &spec.will {
            let mut sampler = PayloadSampler::new(&w.payload, 1.0);
            let mut ctx = DeviceCtx::new(
                self.plan.seed,
                &self.plan.client_id,
                self.plan.index,
                spec.vars.clone(),
                self.ctx.state.clone(),
            );
            let payload = sampler.render(&mut ctx, 2, None);
            o.set_last_will(LastWill::new(
                expand(&w.topic, self.plan.index, &self.plan.client_id),
                payload,
                w.qos.to_rumqttc(),
                w.retain,
            ));
        }
        if let Some(u) = &spec.username {
            o.set_credentials(u, spec.password.clone().unwrap_or_default());
        }
        o
    }

    /// Spread a fleet's periodic publishes over their period (golden-ratio phases).
    fn schedule(&mut self, now: Instant) {
        let phase = (self.plan.index as f64 * 0.618_033_988_75).fract();
        for p in &mut self.publishes {
            p.next = p.spec.every.map(|e| now + e.0.mul_f64(phase));
        }
    }

    fn next_due(&self) -> Option<Instant> {
        if self.paused {
            return None;
        }
        self.publishes.iter().filter_map(|p| p.next).min()
    }

    fn publish_now(&mut self, client: &AsyncClient, k: usize) {
        let p = &mut self.publishes[k];
        if let Some(cond) = &p.spec.when {
            let holds = self.ctx.holds(cond);
            let rising = holds && !p.was_true;
            p.was_true = holds;
            if !holds || (p.spec.on_change && !rising) {
                return;
            }
        }
        self.ctx.seq += 1;
        let payload = p.sampler.render(&mut self.ctx, p.spec.decimals, None);
        let topic = self.ctx.fill(&p.topic, None);
        // try_publish: awaiting here would deadlock, this task also polls the event loop.
        let (qos, retain) = (p.spec.qos.to_rumqttc(), p.spec.retain);
        if let Err(e) = client.try_publish(topic, qos, retain, payload) {
            tracing::debug!(client = %self.plan.client_id, "publish queue full: {e}");
            self.failed(false);
        }
    }

    fn fire_due(&mut self, client: &AsyncClient, now: Instant) {
        for k in 0..self.publishes.len() {
            let Some(due) = self.publishes[k].next else {
                continue;
            };
            if due > now {
                continue;
            }
            let every = self.publishes[k]
                .spec
                .every
                .map_or(Duration::from_secs(1), |e| e.0);
            let mut next = due + every;
            if next <= now {
                next = now + every; // fell behind: skip, don't burst
            }
            self.publishes[k].next = Some(next);
            self.publish_now(client, k);
        }
    }

    fn on_connected(&mut self, client: &AsyncClient) {
        for s in &self.plan.spec.subscribe {
            let filter = expand(&s.filter, self.plan.index, &self.plan.client_id);
            let _ = client.try_subscribe(filter, s.qos.to_rumqttc());
        }
        for k in 0..self.publishes.len() {
            if self.publishes[k].spec.every.is_none() {
                self.publish_now(client, k);
            }
        }
        self.schedule(Instant::now());
    }

    fn tick(&mut self) {
        for (name, s) in &mut self.signals {
            if let Some(x) = s.sample(&mut self.ctx, 6).as_f64() {
                self.ctx.vars.insert(name.clone(), x);
            }
        }
        if let Some(sm) = &self.plan.spec.states {
            let elapsed = self.state_since.elapsed();
            if let Some(t) = sm
                .transitions
                .iter()
                .find(|t| t.from == self.ctx.state && elapsed >= t.after.0)
            {
                self.ctx.state = t.to.clone();
                self.state_since = Instant::now();
            }
        }
    }

    fn react(&mut self, client: &AsyncClient, topic: &str, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload).into_owned();
        let mut refused = 0;
        for r in &mut self.reactions {
            if !crate::capture::topic_matches(topic, &r.filter) {
                continue;
            }
            for a in &mut r.actions {
                match a {
                    ActionRt::SetVarFromPayload(v) => {
                        if let Some(x) = number_from_payload(payload, v) {
                            self.ctx.vars.insert(v.clone(), x);
                        }
                    }
                    ActionRt::SetVar(v, x) => {
                        self.ctx.vars.insert(v.clone(), *x);
                    }
                    ActionRt::SetState(s) => {
                        let s = self.ctx.fill(s, Some(&text));
                        if self.ctx.state != s {
                            self.ctx.state = s;
                            self.state_since = Instant::now();
                        }
                    }
                    ActionRt::Publish {
                        topic,
                        sampler,
                        qos,
                        retain,
                    } => {
                        self.ctx.seq += 1;
                        let body = sampler.render(&mut self.ctx, 2, Some(&text));
                        let t = self.ctx.fill(topic, Some(&text));
                        let (qos, retain) = (*qos, *retain);
                        if client.try_publish(t, qos, retain, body).is_err() {
                            refused += 1;
                        }
                    }
                }
            }
        }
        for _ in 0..refused {
            self.failed(false);
        }
    }
}

/// What ended a connected period.
enum Next {
    /// Connect again (after Reconnect).
    Reconnect,
    /// The engine dropped the handle: the scenario stopped.
    Stop,
}

async fn wait_for_reconnect(ctl: &mut mpsc::Receiver<DeviceAction>, dev: &mut Device) -> Next {
    loop {
        match ctl.recv().await {
            None => return Next::Stop,
            Some(DeviceAction::Reconnect) => return Next::Reconnect,
            Some(a) => dev.control(a),
        }
    }
}

/// Runs rumqttc's event loop in its own task: `poll()` connects inside
/// itself, so it must never be cancelled by a `select!` (a slow CONNECT
/// would restart forever). Polling after an error reconnects, after a pause.
fn spawn_event_loop(
    mut el: rumqttc::EventLoop,
) -> (
    tokio::task::JoinHandle<()>,
    mpsc::Receiver<Result<MqttEvent, String>>,
) {
    let (tx, rx) = mpsc::channel(256);
    let task = tokio::spawn(async move {
        loop {
            let r = el.poll().await.map_err(|e| e.to_string());
            let failed = r.is_err();
            if tx.send(r).await.is_err() {
                return;
            }
            if failed {
                sleep(Duration::from_secs(1)).await;
            }
        }
    });
    (task, rx)
}

async fn run(
    plan: DevicePlan,
    mut ctl: mpsc::Receiver<DeviceAction>,
    mut hand: mpsc::Receiver<HandPublish>,
    sink: DeviceReporter,
) {
    let delay = plan.start_delay;
    let mut dev = Device::new(plan, sink);
    dev.set_state(DeviceState::Connecting);
    if !delay.is_zero() {
        sleep(delay).await;
    }
    let mut next_tick = Instant::now() + dev.plan.spec.tick.0;
    loop {
        let (client, mut el) = AsyncClient::new(dev.options(), 256);
        let mut net = el.network_options();
        net.set_connection_timeout(30);
        el.set_network_options(net);
        let (poller, mut events) = spawn_event_loop(el);
        let mut connected = false;
        let next = loop {
            let due = dev.next_due().filter(|_| connected);
            tokio::select! {
                cmd = ctl.recv() => match cmd {
                    None => {
                        if connected {
                            graceful_disconnect(&client, &mut events).await;
                        }
                        break Next::Stop;
                    }
                    Some(DeviceAction::Disconnect) => {
                        if connected {
                            graceful_disconnect(&client, &mut events).await;
                        }
                        poller.abort();
                        dev.set_state(DeviceState::Offline);
                        break wait_for_reconnect(&mut ctl, &mut dev).await;
                    }
                    Some(DeviceAction::Drop) => {
                        // Close the socket without DISCONNECT: the broker fires the will.
                        poller.abort();
                        dev.set_state(DeviceState::Offline);
                        break wait_for_reconnect(&mut ctl, &mut dev).await;
                    }
                    Some(DeviceAction::Reconnect) => {}
                    Some(a) => dev.control(a),
                },
                ev = events.recv() => match ev {
                    Some(Ok(MqttEvent::Incoming(Packet::ConnAck(_)))) => {
                        connected = true;
                        dev.set_state(DeviceState::Connected);
                        dev.on_connected(&client);
                    }
                    Some(Ok(MqttEvent::Incoming(Packet::Publish(p)))) => {
                        if dev.acking && client.try_ack(&p).is_err() {
                            dev.failed(true);
                        }
                        dev.react(&client, &p.topic, &p.payload);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        // The event loop waits a second, then reconnects.
                        tracing::debug!(client = %dev.plan.client_id, "connection lost: {e}");
                        connected = false;
                        dev.set_state(DeviceState::Reconnecting);
                    }
                    None => break Next::Stop,
                },
                Some((req, answer)) = hand.recv() => {
                    let result = if !connected {
                        Err(format!("{} is not connected", dev.plan.client_id))
                    } else {
                        let qos = crate::sim::scenario::Qos(req.qos.min(2)).to_rumqttc();
                        client
                            .try_publish(req.topic, qos, req.retain, req.payload)
                            .map_err(|e| format!("{}: {e}", dev.plan.client_id))
                    };
                    let _ = answer.send(result);
                }
                _ = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    dev.fire_due(&client, Instant::now());
                }
                _ = sleep_until(next_tick) => {
                    dev.tick();
                    next_tick += dev.plan.spec.tick.0;
                    if next_tick < Instant::now() {
                        next_tick = Instant::now() + dev.plan.spec.tick.0;
                    }
                }
            }
        };
        poller.abort();
        match next {
            Next::Reconnect => dev.set_state(DeviceState::Connecting),
            Next::Stop => break,
        }
    }
    dev.set_state(DeviceState::Stopped);
}

/// Send DISCONNECT and wait until it is on the wire (at most 2 s).
async fn graceful_disconnect(
    client: &AsyncClient,
    events: &mut mpsc::Receiver<Result<MqttEvent, String>>,
) {
    if client.try_disconnect().is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match events.recv().await {
                Some(Ok(MqttEvent::Outgoing(Outgoing::Disconnect))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
}
