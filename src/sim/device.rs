//! One virtual device: a rumqttc client driven by its scenario entry (and
//! its script, in `device/scripted.rs`).

mod connect;
mod scripted;
mod sparkplug;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5 as m5;
use tokio::time::{Instant, sleep};

use super::DeviceReporter;
use super::client::{Client, ClientError, Net, NetEvent, Received, graceful_disconnect};
use super::generators::{DeviceCtx, PayloadSampler, Sampler, number_from_payload};
use crate::command::PublishRequest;
use crate::event::{DeviceState, DeviceUpdate};
use crate::fault::DeviceAction;
use crate::scenario::{Action, DeviceSpec, MessageProps, PublishSpec, expand};
use crate::sim::script::Hook as ScriptHook;
use crate::sim::timers::{catch_up, on_grid_every};

/// QoS 1/2 messages a device has unacknowledged before it waits: 20, like
/// mosquitto's default `max_inflight_messages` (rumqttc's 100 costs every
/// device 6 KiB of table it rarely uses).
const INFLIGHT: u16 = 20;

/// A message to publish by hand as this device; answered with why not, if not.
/// Boxed: one pointer per queued slot, for every device.
pub type HandPublish = Box<(
    PublishRequest,
    tokio::sync::oneshot::Sender<Result<(), HandPublishError>>,
)>;

/// Why a message published by hand as a device did not go out.
#[derive(Debug, thiserror::Error)]
pub enum HandPublishError {
    #[error("{0} is not connected")]
    NotConnected(String),
    #[error(
        "{0} speaks MQTT 3.1.1, which has no properties: publish as the workbench or an MQTT 5 device"
    )]
    NoProperties(String),
    #[error("{client}: {error}")]
    Client { client: String, error: ClientError },
}

/// Everything one device task needs to run.
pub struct DevicePlan {
    pub client_id: String,
    /// The template id of its scenario entry (the fleet's name).
    pub fleet: String,
    /// 1-based index within the fleet.
    pub index: u32,
    pub spec: Arc<DeviceSpec>,
    pub seed: u64,
    pub target: super::Target,
    /// Wait this long before the first connect (ramps big fleets).
    pub start_delay: Duration,
}

/// The engine's handle on a running device.
pub struct DeviceHandle {
    pub client_id: String,
    pub fleet: String,
    /// Its scenario entry and seed, to tell whether a reload changes it.
    pub spec: Arc<DeviceSpec>,
    pub seed: u64,
    /// Its mailbox: controls and faults, and messages published by hand.
    /// Dropping it stops the device (gracefully).
    pub mail: MailSender,
    pub task: tokio::task::JoinHandle<()>,
}

/// What the engine sends a running device.
pub enum Mail {
    Action(DeviceAction),
    Publish(HandPublish),
}

/// The sending end of a device's mailbox.
pub type MailSender = futures_channel::mpsc::Sender<Mail>;

/// Mail a device may have waiting; more is refused (the sender hears "busy").
/// Controls and hand publishes share it: room for 16 of each, as when each
/// had a channel of its own (queued mail only is allocated).
const MAILBOX: usize = 32;

pub fn spawn(plan: DevicePlan, sink: DeviceReporter) -> DeviceHandle {
    let (tx, rx) = futures_channel::mpsc::channel(MAILBOX);
    let client_id = plan.client_id.clone();
    let fleet = plan.fleet.clone();
    let (spec, seed) = (plan.spec.clone(), plan.seed);
    // Counted from now on, so a fleet's size is known before its tasks run.
    let mark = sink.ramp().mark();
    let task = tokio::spawn(run(Device::new(plan, sink), rx, mark));
    DeviceHandle {
        client_id,
        fleet,
        spec,
        seed,
        mail: tx,
        task,
    }
}

struct PublishRt {
    spec: PublishSpec,
    topic: String,
    sampler: PayloadSampler,
    next: Option<Instant>,
    was_true: bool,
    /// MQTT 5: the topic alias was set on this connection (later publishes send the alias only).
    alias_set: bool,
}

impl PublishRt {
    /// When a periodic publish is next due, and its period (None: not
    /// periodic, or paused by its schedule).
    fn due(&self) -> Option<(Instant, Duration)> {
        Some((self.next?, self.spec.every?.0))
    }
}

enum ActionRt {
    SetVarFromPayload(String),
    SetVar(String, f64),
    SetState(String),
    Publish {
        topic: String,
        sampler: PayloadSampler,
        qos: crate::scenario::Qos,
        retain: bool,
    },
    Respond {
        sampler: PayloadSampler,
        qos: crate::scenario::Qos,
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
    /// Its script, while it runs (None after an error).
    /// (Boxed, as the Sparkplug role: most devices have neither, and a
    /// fleet's idle tasks should not carry their room.)
    script: Option<Box<scripted::ScriptRt>>,
    script_error: Option<String>,
    /// What the last report said of the script.
    script_view: Option<Arc<crate::event::ScriptView>>,
    /// Its Sparkplug B role (edge node or primary host), if any.
    sparkplug: Option<Box<crate::sim::sparkplug::Role>>,
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
                alias_set: false,
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
                            qos: *qos,
                            retain: *retain,
                        },
                        Action::Respond { payload, qos } => ActionRt::Respond {
                            sampler: PayloadSampler::new(payload, 1.0),
                            qos: *qos,
                        },
                    })
                    .collect(),
            })
            .collect();
        let sparkplug = spec
            .sparkplug
            .as_ref()
            .map(|r| Box::new(crate::sim::sparkplug::Role::new(r, &id, plan.index)));
        let mut dev = Device {
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
            script: None,
            script_error: None,
            script_view: None,
            sparkplug,
        };
        // Signals have a value from the first publish on, not from the first tick.
        dev.sample_signals();
        dev
    }

    fn sample_signals(&mut self) {
        for (name, s) in &mut self.signals {
            if let Some(x) = s.sample(&mut self.ctx, 6).as_f64() {
                self.ctx.vars.insert(name.clone(), x);
            }
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
            script: self.script_view.clone(),
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
        self.publishes
            .iter()
            .filter_map(|p| p.due().map(|(next, every)| on_grid_every(next, every)))
            .min()
    }

    fn publish_now(&mut self, client: &Client, k: usize) {
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
        let mut topic = self.ctx.fill(&p.topic, None);
        let props = match client {
            Client::V5(_) if !p.spec.properties.is_empty() => {
                let props = message_props(&p.spec.properties, &mut self.ctx);
                // The alias stands for the topic once it was set on this connection.
                if props.topic_alias.is_some() {
                    if p.alias_set {
                        topic.clear();
                    }
                    p.alias_set = true;
                }
                Some(props)
            }
            _ => None,
        };
        // try_publish: awaiting here would deadlock, this task also polls the event loop.
        let (qos, retain) = (p.spec.qos, p.spec.retain);
        if let Err(e) = client.publish(topic, qos, retain, payload, props) {
            tracing::debug!(client = %self.plan.client_id, "publish queue full: {e}");
            self.failed(false);
        }
    }

    fn fire_due(&mut self, client: &Client, now: Instant) {
        for k in 0..self.publishes.len() {
            let Some((due, every)) = self.publishes[k].due() else {
                continue;
            };
            if due > now {
                continue;
            }
            let (sends, next) = catch_up(due, every, now);
            self.publishes[k].next = Some(next);
            for _ in 0..sends {
                self.publish_now(client, k);
            }
        }
    }

    fn on_connected(&mut self, client: &Client) {
        self.sparkplug_connected(client);
        for s in &self.plan.spec.subscribe {
            let filter = expand(&s.filter, self.plan.index, &self.plan.client_id);
            client.subscribe(filter, s.qos);
        }
        // Topic aliases live as long as one connection.
        for p in &mut self.publishes {
            p.alias_set = false;
        }
        for k in 0..self.publishes.len() {
            if self.publishes[k].spec.every.is_none() {
                self.publish_now(client, k);
            }
        }
        self.schedule(Instant::now());
    }

    fn tick(&mut self) {
        self.sample_signals();
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

    fn react(&mut self, client: &Client, msg: &Received) {
        let topic = msg.topic();
        let topic = topic.as_ref();
        let payload = msg.payload();
        let text = String::from_utf8_lossy(payload).into_owned();
        let mut refused = 0;
        for r in &mut self.reactions {
            if !crate::wire::topic_matches(topic, &r.filter) {
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
                        if client.publish(t, qos, retain, body, None).is_err() {
                            refused += 1;
                        }
                    }
                    ActionRt::Respond { sampler, qos } => {
                        // Only requests that name a response topic get an answer.
                        let Some((to, correlation)) = msg.response() else {
                            continue;
                        };
                        self.ctx.seq += 1;
                        let body = sampler.render(&mut self.ctx, 2, Some(&text));
                        let props = m5::PublishProperties {
                            correlation_data: correlation,
                            ..Default::default()
                        };
                        if client.publish(to, *qos, false, body, Some(props)).is_err() {
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

impl Device {
    /// A message published by hand as this device (`client`: None when not connected).
    fn hand_publish(
        &mut self,
        client: Option<&Client>,
        req: PublishRequest,
    ) -> Result<(), HandPublishError> {
        let id = || self.plan.client_id.clone();
        let client = client.ok_or_else(|| HandPublishError::NotConnected(id()))?;
        let qos = crate::scenario::Qos(req.qos.min(2));
        let props = (!req.properties.is_empty())
            .then(|| crate::sim::mqtt::publish_properties(&req.properties));
        if props.is_some() && matches!(client, Client::V4(_)) {
            return Err(HandPublishError::NoProperties(id()));
        }
        client
            .publish(req.topic, qos, req.retain, req.payload.to_vec(), props)
            .map_err(|error| HandPublishError::Client {
                client: id(),
                error,
            })
    }
}

/// What ended a connected period.
enum Next {
    /// Connect again (after Reconnect).
    Reconnect,
    /// The engine dropped the handle: the scenario stopped.
    Stop,
}

async fn wait_for_reconnect(inbox: &mut Inbox, dev: &mut Device) -> Next {
    loop {
        match inbox.next().await {
            None => return Next::Stop,
            Some(Mail::Action(DeviceAction::Reconnect)) => return Next::Reconnect,
            Some(Mail::Action(a)) => dev.control(a),
            // Answered at once: offline, it cannot go out.
            Some(Mail::Publish(boxed)) => {
                let (req, answer) = *boxed;
                let _ = answer.send(dev.hand_publish(None, req));
            }
        }
    }
}

/// The mailbox a device's loop looks at on every turn of its `select!`, so
/// looking must be cheap: futures-channel's receiver finds it empty with a
/// few atomic reads and keeps its waker registered in place (flume's, two of
/// them, took a lock each and a waiting-list entry per message).
struct Inbox(futures_channel::mpsc::Receiver<Mail>);

impl Inbox {
    /// The next mail; None once the engine dropped the sender. Cancel safe.
    fn next(&mut self) -> impl std::future::Future<Output = Option<Mail>> + '_ {
        std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut self.0), cx)
        })
    }
}

/// The MQTT 5 properties of one periodic publish (templates filled now).
fn message_props(spec: &MessageProps, ctx: &mut DeviceCtx) -> m5::PublishProperties {
    m5::PublishProperties {
        message_expiry_interval: spec
            .message_expiry
            .map(|d| d.0.as_secs().min(u32::MAX as u64) as u32),
        content_type: spec.content_type.clone(),
        user_properties: spec.user_properties.clone(),
        response_topic: spec.response_topic.as_ref().map(|t| ctx.fill(t, None)),
        correlation_data: spec
            .correlation
            .as_ref()
            .map(|c| Bytes::from(ctx.fill(c, None))),
        topic_alias: spec.topic_alias,
        ..Default::default()
    }
}

/// A device's task. Not an `async fn`: that would keep room for each
/// argument twice (as it was passed and as it is used), in every device of
/// a fleet; an `async` block uses what it captures in place.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn run(
    mut dev: Device,
    mail: futures_channel::mpsc::Receiver<Mail>,
    mut mark: super::ramp::RampMark,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let delay = dev.plan.start_delay;
        Box::pin(dev.open_script()).await;
        dev.set_state(DeviceState::Connecting);
        if !delay.is_zero() {
            // Boxed, as the other rare waits: the task keeps no room for them.
            Box::pin(sleep(delay)).await;
        }
        let mut next_tick = Instant::now() + dev.plan.spec.tick.0;
        // One alarm for every deadline (publishes, script timers, Sparkplug,
        // the tick), set to the earliest, on the engine's clock (`timers::Clock`).
        let mut alarm = super::timers::Alarm::new(dev.sink.clock().clone());
        let mut inbox = Inbox(mail);
        loop {
            let (client, el) = dev.connect();
            let mut net = Net::new(el);
            let mut connected = false;
            let next = loop {
                let due = dev.next_due().filter(|_| connected);
                let timer = dev.next_timer();
                let sp_due = dev.sparkplug_due().filter(|_| connected);
                let tick = on_grid_every(next_tick, dev.plan.spec.tick.0);
                let earliest = [due, timer, sp_due]
                    .into_iter()
                    .flatten()
                    .fold(tick, Instant::min);
                tokio::select! {
                    mail = inbox.next() => match mail {
                        None => {
                            if connected {
                                dev.sparkplug_farewell(&client);
                                graceful_disconnect(&client, &mut net).await;
                            }
                            break Next::Stop;
                        }
                        Some(Mail::Action(a @ (DeviceAction::Disconnect | DeviceAction::Drop))) => {
                            // Drop: close the socket without DISCONNECT (the
                            // broker fires the will).
                            if a == DeviceAction::Disconnect && connected {
                                dev.sparkplug_farewell(&client);
                                graceful_disconnect(&client, &mut net).await;
                            }
                            net.close();
                            mark.closed();
                            dev.sparkplug_disconnected();
                            dev.set_state(DeviceState::Offline);
                            dev.script_hook(None, ScriptHook::Disconnect).await;
                            break wait_for_reconnect(&mut inbox, &mut dev).await;
                        }
                        Some(Mail::Action(DeviceAction::Reconnect)) => {}
                        Some(Mail::Action(a)) => dev.control(a),
                        Some(Mail::Publish(boxed)) => {
                            let (req, answer) = *boxed;
                            let _ = answer.send(dev.hand_publish(connected.then_some(&client), req));
                        }
                    },
                    ev = net.next() => match ev {
                        Some(Ok(NetEvent::ConnAck)) => {
                            connected = true;
                            mark.connected();
                            dev.set_state(DeviceState::Connected);
                            dev.on_connected(&client);
                            dev.script_hook(Some(&client), ScriptHook::Connect).await;
                        }
                        Some(Ok(NetEvent::Publish(p))) => {
                            if dev.acking && !client.ack(&p) {
                                dev.failed(true);
                            }
                            dev.react(&client, &p);
                            if dev.script.is_some() {
                                dev.script_hook(Some(&client), Device::message_hook(&p)).await;
                            }
                            if dev.sparkplug_message(&client, &p) {
                                // Its primary host went offline: NDEATH sent, now a new session.
                                graceful_disconnect(&client, &mut net).await;
                                dev.sparkplug_disconnected();
                                break Next::Reconnect;
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            // The event loop waits a second, then reconnects.
                            tracing::debug!(client = %dev.plan.client_id, "connection lost: {e}");
                            mark.failed(&e.to_string());
                            if connected {
                                dev.script_hook(None, ScriptHook::Disconnect).await;
                            }
                            connected = false;
                            dev.set_state(DeviceState::Reconnecting);
                            dev.sparkplug_disconnected();
                            if dev.sparkplug.is_some() {
                                // A new CONNECT with a new will (the next bdSeq), not rumqttc's retry.
                                net.close();
                                Box::pin(sleep(Duration::from_secs(1))).await;
                                break Next::Reconnect;
                            }
                        }
                        None => break Next::Stop,
                    },
                    () = alarm.at(earliest) => {
                        let now = Instant::now();
                        let reached = |t: Option<Instant>| t.is_some_and(|t| t <= now);
                        if reached(sp_due) {
                            dev.sparkplug_fire(&client);
                        }
                        if reached(due) {
                            dev.fire_due(&client, now);
                        }
                        if reached(timer) {
                            Box::pin(dev.fire_timers(connected.then_some(&client))).await;
                        }
                        if tick <= now {
                            dev.tick();
                            dev.script_hook(connected.then_some(&client), ScriptHook::Tick).await;
                            next_tick += dev.plan.spec.tick.0;
                            if next_tick < Instant::now() {
                                next_tick = Instant::now() + dev.plan.spec.tick.0;
                            }
                        }
                    }
                }
            };
            net.close();
            mark.closed();
            match next {
                Next::Reconnect => dev.set_state(DeviceState::Connecting),
                Next::Stop => break,
            }
        }
        dev.set_state(DeviceState::Stopped);
    }
}
