//! Scenarios on the engine: parse off the UI thread, start, reload as a
//! difference, watch the file, run the timeline, stop.

use super::*;

impl Engine {
    /// Parse a scenario off the async workers and check that it fits.
    pub(super) async fn parse_scenario(
        source: &ScenarioSource,
        shard: Option<crate::sim::Shard>,
        external: bool,
    ) -> Result<Scenario, EngineError> {
        let source = source.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = Scenario::from_source(&source)?;
            let dir = match &source {
                ScenarioSource::File(p) => p.parent().map(Path::to_path_buf),
                ScenarioSource::Text { origin, .. } => origin.parent().map(Path::to_path_buf),
            }
            .unwrap_or_default();
            s.compile_protos(&dir).map_err(EngineError::ProtoSchema)?;
            s.load_scripts(&dir).map_err(EngineError::Script)?;
            s.load_contract(&dir)?;
            crate::sim::script::check(&s).map_err(|e| EngineError::Script(e.to_string()))?;
            let count = shard.map_or(s.device_count(), |k| k.device_count(&s));
            match crate::sys::device_capacity_for(external).refuse(count as u64) {
                Some(why) => Err(EngineError::ScenarioRefused {
                    scenario: s.name.clone(),
                    why,
                }),
                None => Ok(s),
            }
        })
        .await
        .map_err(EngineError::task("cannot load the scenario"))?
    }

    /// The tap forwards to an external broker (devices then cost a descriptor each).
    pub(super) fn external(&self) -> bool {
        matches!(self.cfg.upstream, Upstream::External(_))
    }

    /// Where this scenario's devices connect (and say so when TLS is asked for but absent).
    pub(super) fn device_target(&self, scenario: &Scenario) -> crate::sim::Target {
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
            && let Some(d) = scenario
                .devices
                .iter()
                .find(|d| d.tls || d.transport == crate::scenario::Transport::Wss)
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

    pub(super) fn apply_auth(&self, scenario: &Scenario) {
        self.tap.set_auth(
            scenario
                .auth
                .clone()
                .map(Arc::new)
                .or_else(|| self.cfg.auth.clone()),
        );
    }

    pub(super) fn start_timeline(&mut self, scenario: &Scenario) {
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

    pub(super) async fn load_scenario(&mut self, source: ScenarioSource) {
        let scenario = match Self::parse_scenario(&source, self.cfg.shard, self.external()).await {
            Ok(s) => s,
            Err(e) => return self.notice(true, e),
        };
        self.stop_devices().await;
        let path = source_path(&source);
        self.send_ordered(Event::ScenarioStarted(Box::new(scenario.info(&path))))
            .await;
        self.apply_auth(&scenario);
        *self.sink.contract.write() = scenario.contract.clone();
        let target = self.device_target(&scenario);
        self.scenario_running = true;
        let shard = self.cfg.shard.map(|k| k.client_ids(&scenario));
        self.devices = crate::sim::start_some(&scenario, &target, &self.reporter, |id| {
            shard.as_ref().is_none_or(|ids| ids.contains(id))
        });
        self.start_timeline(&scenario);
        self.watch(&source, &scenario.script_paths());
        self.current = Some(scenario);
    }

    /// Apply a changed scenario: see [`Command::ReloadScenario`].
    pub(super) async fn reload_scenario(&mut self, source: ScenarioSource) {
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
        *self.sink.contract.write() = new.contract.clone();
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
        if new.script_paths() != old.script_paths() {
            self.watch(&source, &new.script_paths());
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

    /// Watch the scenario's file and its scripts (when `cfg.watch`): a change
    /// is applied as a reload (a changed script restarts only its devices).
    pub(super) fn watch(&mut self, source: &ScenarioSource, scripts: &[PathBuf]) {
        self.watcher = None;
        let (true, ScenarioSource::File(path)) = (self.cfg.watch, source) else {
            return;
        };
        match crate::sim::watch::watch(path.clone(), scripts, self.commands.clone()) {
            Ok(w) => self.watcher = Some(w),
            Err(e) => self.notice(true, format!("cannot watch {}: {e}", path.display())),
        }
    }

    pub(super) async fn stop_devices(&mut self) {
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
        *self.sink.contract.write() = None;
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
