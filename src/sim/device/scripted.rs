//! A device's script on its task: opened with the device, its hooks called
//! as things happen, what it did carried out in order (`sim::script` runs
//! the JavaScript). A script that fails or runs past its budget stops being
//! called; the device stays connected and shows the error.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5 as m5;
use tokio::time::Instant;

use super::Device;
use crate::event::ScriptView;
use crate::sim::client::{Client, Received};
use crate::sim::script::{Hook, Script, ScriptAction, ScriptHost, ScriptLimits, Snapshot};

/// A running device's script and the calls it scheduled.
pub(super) struct ScriptRt {
    script: Script,
    /// (when, timer id), in no order.
    timers: Vec<(Instant, u64)>,
    /// When the view was last reported (at most once a second).
    reported: Option<Instant>,
    /// Its last `device.log` line.
    last_log: Option<String>,
    /// Log lines not put on the timeline (more than one a second).
    logs_skipped: u64,
    logged: Option<Instant>,
}

/// Timers a script may have pending (more are refused with an error).
const MAX_TIMERS: usize = 1_000;

impl Device {
    /// Load the device's script, if it has one; an error is shown on the device.
    pub(super) async fn open_script(&mut self) {
        let spec = self.plan.spec.clone();
        let Some(source) = spec.script_source.clone() else {
            return;
        };
        let limits = ScriptLimits {
            budget: spec
                .script_budget
                .map_or(ScriptLimits::default().budget, |d| d.0),
            memory_bytes: spec
                .script_memory_mib
                .map_or(ScriptLimits::default().memory_bytes, |m| (m as usize) << 20),
        };
        // Its own draw from the device's seeded generator: Math.random replays with the seed.
        let seed = rand::Rng::random::<u64>(self.ctx.rng());
        let Some(host) = ScriptHost::shared() else {
            self.script_failed("the scripts thread could not be started".into());
            return;
        };
        match host
            .open(&self.plan.client_id, self.plan.index, seed, source, limits)
            .await
        {
            Ok(script) => {
                self.script = Some(Box::new(ScriptRt {
                    script,
                    timers: Vec::new(),
                    reported: None,
                    last_log: None,
                    logs_skipped: 0,
                    logged: None,
                }));
            }
            Err(e) => self.script_failed(e.to_string()),
        }
        self.report_script(true);
    }

    fn script_failed(&mut self, error: String) {
        tracing::warn!(client = %self.plan.client_id, "script: {error}");
        self.script = None;
        self.script_error = Some(error);
        self.report_script(true);
    }

    /// The next scheduled script call, if any.
    pub(super) fn next_timer(&self) -> Option<Instant> {
        self.script
            .as_ref()
            .and_then(|s| s.timers.iter().map(|t| t.0).min())
    }

    /// Call the timers that are due.
    pub(super) async fn fire_timers(&mut self, client: Option<&Client>) {
        let now = Instant::now();
        let due: Vec<u64> = match &mut self.script {
            Some(s) => {
                let mut due: Vec<(Instant, u64)> = Vec::new();
                s.timers.retain(|&(t, id)| {
                    if t <= now {
                        due.push((t, id));
                        false
                    } else {
                        true
                    }
                });
                due.sort();
                due.into_iter().map(|(_, id)| id).collect()
            }
            None => return,
        };
        for id in due {
            self.script_hook(client, Hook::Timer(id)).await;
        }
    }

    /// The message as the script's `onMessage` sees it.
    pub(super) fn message_hook(msg: &Received) -> Hook {
        let (response_topic, correlation) = match msg.response() {
            Some((t, c)) => (Some(t), c.map(|c| String::from_utf8_lossy(&c).into_owned())),
            None => (None, None),
        };
        Hook::Message {
            topic: msg.topic().into_owned(),
            payload: bytes::Bytes::copy_from_slice(msg.payload()),
            qos: msg.qos(),
            retain: msg.retain(),
            response_topic,
            correlation,
            user_properties: msg.user_properties(),
        }
    }

    /// Call a hook and carry out what the script did (`client`: None when
    /// not connected; its publishes and subscriptions are then dropped and
    /// counted as failed).
    ///
    /// Not an `async fn`: the call is boxed (its future is large) and made
    /// only for a device with a script, so the device's task keeps room for
    /// a pointer here, not for the hook's arguments (most of a fleet has no
    /// script).
    pub(super) fn script_hook<'a>(
        &'a mut self,
        client: Option<&'a Client>,
        hook: Hook,
    ) -> impl std::future::Future<Output = ()> + Send + 'a {
        let call = self
            .script
            .is_some()
            .then(|| Box::pin(self.call_hook(client, hook)));
        async move {
            if let Some(call) = call {
                call.await;
            }
        }
    }

    async fn call_hook(&mut self, client: Option<&Client>, hook: Hook) {
        let Some(s) = &self.script else {
            return;
        };
        let snapshot = Snapshot {
            vars: self.ctx.vars.clone(),
            state: self.ctx.state.clone(),
        };
        let reply = s.script.call(hook, snapshot).await;
        for a in reply.actions {
            self.script_action(client, a);
        }
        match reply.error {
            Some(e) => self.script_failed(e.to_string()),
            None => self.report_script(false),
        }
    }

    fn script_action(&mut self, client: Option<&Client>, a: ScriptAction) {
        match a {
            ScriptAction::Publish {
                topic,
                payload,
                qos,
                retain,
                properties,
            } => {
                let props = match (client, properties) {
                    (Some(Client::V5(_)), Some(p)) => Some(m5::PublishProperties {
                        response_topic: p.response_topic,
                        correlation_data: p.correlation.map(bytes::Bytes::from),
                        content_type: p.content_type,
                        user_properties: p.user_properties,
                        ..Default::default()
                    }),
                    _ => None,
                };
                self.ctx.seq += 1;
                let sent = client.is_some_and(|c| {
                    c.publish(topic, crate::scenario::Qos(qos), retain, payload, props)
                        .is_ok()
                });
                if !sent {
                    self.failed(false);
                }
            }
            ScriptAction::Subscribe { filter, qos } => {
                if let Some(c) = client {
                    c.subscribe(filter, crate::scenario::Qos(qos));
                }
            }
            ScriptAction::SetVar(name, value) => {
                self.ctx.vars.insert(name, value);
            }
            ScriptAction::SetState(state) => {
                if self.ctx.state != state {
                    self.ctx.state = state;
                    self.state_since = Instant::now();
                }
            }
            ScriptAction::After(after, id) => {
                if let Some(s) = &mut self.script {
                    if s.timers.len() < MAX_TIMERS {
                        s.timers.push((Instant::now() + after, id));
                    } else {
                        tracing::debug!(client = %self.plan.client_id, "script: too many timers");
                    }
                }
            }
            ScriptAction::Log(text) => self.script_log(text),
        }
    }

    /// `device.log`: on the timeline, at most once a second per device.
    fn script_log(&mut self, text: String) {
        let Some(s) = &mut self.script else {
            return;
        };
        s.last_log = Some(text.clone());
        if s.logged
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            s.logs_skipped += 1;
            return;
        }
        s.logged = Some(Instant::now());
        self.sink.note(
            crate::time::now_us(),
            format!("{}: {text}", self.plan.client_id),
        );
    }

    /// Tell the engine the script's vars, state and last error (at most
    /// once a second unless `now`).
    pub(super) fn report_script(&mut self, now: bool) {
        if self.plan.spec.script.is_none() {
            return;
        }
        if let Some(s) = &mut self.script {
            if !now
                && s.reported
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
            {
                return;
            }
            s.reported = Some(Instant::now());
        }
        self.script_view = Some(Arc::new(ScriptView {
            file: self
                .plan
                .spec
                .script
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            error: self.script_error.clone(),
            vars: self
                .ctx
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), format!("{v}")))
                .collect(),
            state: self.ctx.state.clone(),
            last_log: self.script.as_ref().and_then(|s| s.last_log.clone()),
        }));
        self.report();
    }
}
