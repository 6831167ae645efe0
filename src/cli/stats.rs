//! `run --stats`: one JSON line of resources and message accounting per interval.

use anyhow::Context;
use std::time::Duration;

use crate::capture::FlowState;
use crate::model::Model;

/// One line of `run --stats`: this process's resources and the message
/// accounting so far, for soak runs (scripts/soak.py).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Seconds since the run started.
    pub t_s: u64,
    pub rss_kib: u64,
    pub open_fds: u64,
    pub threads: u64,
    /// Live tokio tasks (devices, tap connections, engine).
    pub tasks: u64,
    pub clients_connected: u64,
    /// PUBLISH frames clients sent / the broker delivered, all topics.
    pub published: u64,
    pub delivered: u64,
    /// QoS 1/2 handshakes on both legs, by outcome.
    pub qos_completed: u64,
    pub qos_open: u64,
    /// Open for longer than a minute: neither completed nor explained by a
    /// fault (a closed connection, or a frame of it discarded by one).
    pub qos_stuck: u64,
    /// Open because an injected fault discarded one of their frames.
    pub qos_lost_to_faults: u64,
    pub qos_interrupted: u64,
    pub qos_superseded: u64,
    pub qos_abandoned: u64,
    pub qos_evicted: u64,
    pub faults: u64,
    pub captured: u64,
    pub capture_kib: u64,
    pub evicted: u64,
    pub dropped: u64,
}

impl Stats {
    pub fn now(model: &Model, elapsed: Duration) -> Stats {
        let c = &model.capture;
        let now = crate::time::now_us();
        let mut st = Stats {
            t_s: elapsed.as_secs(),
            rss_kib: crate::sys::rss_bytes().unwrap_or(0) / 1024,
            open_fds: crate::sys::open_fds().unwrap_or(0),
            threads: crate::sys::threads().unwrap_or(0),
            tasks: tokio::runtime::Handle::try_current()
                .map(|h| h.metrics().num_alive_tasks() as u64)
                .unwrap_or(0),
            clients_connected: c.connected_clients() as u64,
            published: c.topics.values().map(|t| t.published).sum(),
            delivered: c.topics.values().map(|t| t.delivered).sum(),
            qos_completed: c.flows.completed,
            qos_open: 0,
            qos_stuck: 0,
            qos_lost_to_faults: 0,
            qos_interrupted: 0,
            qos_superseded: 0,
            qos_abandoned: 0,
            qos_evicted: c.flows.evicted,
            faults: model.faults.total,
            captured: c.len() as u64,
            capture_kib: c.bytes() as u64 / 1024,
            evicted: c.evicted,
            dropped: c.dropped,
        };
        for f in c.flows.incomplete_iter() {
            match f.state {
                FlowState::Open if f.lost_to_fault => st.qos_lost_to_faults += 1,
                FlowState::Open => {
                    st.qos_open += 1;
                    let last = f.steps.last().map_or(0, |s| s.t_us);
                    st.qos_stuck += (now.saturating_sub(last) > 60_000_000) as u64;
                }
                FlowState::Interrupted => st.qos_interrupted += 1,
                FlowState::Superseded => st.qos_superseded += 1,
                FlowState::Abandoned => st.qos_abandoned += 1,
                FlowState::Complete => {}
            }
        }
        st
    }
}

pub(super) fn append_stats(path: &std::path::Path, st: &Stats) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(st)?)?;
    Ok(())
}
