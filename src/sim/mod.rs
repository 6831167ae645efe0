//! Scenario-driven virtual devices.

pub mod device;
pub mod generators;
pub mod scenario;

use std::sync::Arc;
use std::time::Duration;

pub use scenario::{DeviceSpec, Scenario, ScenarioError};

use crate::engine::EventSink;
use device::{DeviceHandle, DevicePlan};

/// Connects per second when ramping up a big fleet (rumqttd paces accepts too).
const RAMP_CONNECTS_PER_S: u64 = 500;

/// Spawn every device of `scenario`, connecting to `host:port`.
pub fn start(scenario: &Scenario, host: &str, port: u16, sink: &EventSink) -> Vec<DeviceHandle> {
    let total = scenario.device_count() as u64;
    let ramp = if total > 50 {
        Duration::from_micros(1_000_000 / RAMP_CONNECTS_PER_S)
    } else {
        Duration::ZERO
    };
    let mut handles = Vec::with_capacity(total as usize);
    let mut n: u32 = 0;
    for spec in &scenario.devices {
        let spec = Arc::new(spec.clone());
        for (k, client_id) in spec.client_ids().into_iter().enumerate() {
            let plan = DevicePlan {
                client_id,
                fleet: spec.id.clone(),
                index: k as u32 + 1,
                spec: spec.clone(),
                seed: scenario.seed,
                broker_host: host.to_string(),
                broker_port: port,
                start_delay: ramp * n,
            };
            n += 1;
            handles.push(device::spawn(plan, sink.clone()));
        }
    }
    handles
}

/// Stop devices gracefully (DISCONNECT), waiting at most `grace` before aborting.
pub async fn stop(handles: Vec<DeviceHandle>, grace: Duration) {
    let tasks: Vec<_> = handles
        .into_iter()
        .map(|h| {
            drop(h.ctl);
            h.task
        })
        .collect();
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    let all = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(grace, all).await.is_err() {
        for a in aborts {
            a.abort();
        }
    }
}
