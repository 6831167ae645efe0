//! Faults: each kind's [`Effect`](crate::fault::Effect) carried out on the
//! devices, the tap's network rules or the broker, then marked on the timeline.

use super::*;

impl Engine {
    pub(super) fn device_action(&mut self, target: &Target, action: DeviceAction) {
        let mut n = 0;
        for d in &mut self.devices {
            let hit = match target {
                Target::Device(id) => &d.client_id == id,
                Target::Fleet(f) => &d.fleet == f,
                Target::All => true,
            };
            if hit && d.mail.try_send(Mail::Action(action)).is_ok() {
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
    pub(super) fn fault_keys(&self, target: &Target) -> Vec<FaultKey> {
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
    pub(super) fn net_fault(
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
    /// Carry out a fault's effect (`fault::Effect`), then mark it on the timeline.
    pub(super) async fn inject(&mut self, fault: Fault, timeline: Option<usize>) {
        let target = fault.kind().target().cloned().unwrap_or(Target::All);
        match fault.kind().effect() {
            Effect::Device(action) => self.device_action(&target, action),
            Effect::Net {
                what,
                duration,
                change,
                undo,
            } => self.net_fault(&target, what, duration, change, undo),
            Effect::ClearNetwork => {
                self.next_fault_generation += 1;
                let mut gens = self.fault_generations.lock();
                for k in self.fault_keys(&target) {
                    self.tap.faults().set(k.clone(), NetFault::default());
                    // Pending timers for this key must not touch what comes next.
                    gens.retain(|(key, _), _| *key != k);
                }
                drop(gens);
                self.sink
                    .send(Event::NetFaults(self.tap.faults().snapshot()));
            }
            Effect::Takeover { client, hold } => {
                tokio::spawn(takeover(client, self.tap.local_addr(), hold));
            }
            Effect::RestartBroker { cold: false } => match &mut self.broker {
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
            Effect::RestartBroker { cold: true } => match &mut self.broker {
                Some(b) => match b.cold_restart().await {
                    Ok(addr) => self.sink.send(Event::Broker(BrokerState::Running {
                        public: self.tap.local_addr(),
                        upstream: addr.to_string(),
                        tls: self.tls.clone(),
                        ws: super::ws_urls(&self.tap),
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
