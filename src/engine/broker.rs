//! The embedded broker's life on the engine: resumed after a stop, and
//! restarted when its health probe stops hearing it.

use super::*;

impl Engine {
    /// The health probe's news: a broker that stopped answering is restarted
    /// (warm, keeping sessions; cold when a warm restart within the last
    /// minute did not help), counted, and marked on the timeline.
    pub(super) async fn on_broker_health(&mut self, health: crate::event::Health) {
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
                    ws: super::ws_urls(&self.tap),
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

    pub(super) async fn resume_broker(&mut self) {
        if let Some(b) = &mut self.broker {
            let state = match b.resume().await {
                Ok(addr) => BrokerState::Running {
                    public: self.tap.local_addr(),
                    upstream: addr.to_string(),
                    tls: self.tls.clone(),
                    ws: super::ws_urls(&self.tap),
                },
                Err(error) => BrokerState::Failed {
                    error: error.to_string(),
                    free_port: None,
                },
            };
            self.sink.send(Event::Broker(state));
        }
    }
}
