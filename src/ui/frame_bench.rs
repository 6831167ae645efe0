//! `mqtt-workbench bench --gui`: the window's own cost per frame under load.
//! The capture starts with `preload` messages, a fleet publishes at the
//! requested rate, and the window shows each inspector tab in turn; at the
//! end it prints the average and worst CPU time per frame (our `logic` +
//! `ui`, not the GPU's present) per tab and overall, then closes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::commands::Tab;
use crate::capture::Capture;
use crate::wire::{Direction, PacketKind, WireEvent};

/// What `bench --gui` asks of the window.
#[derive(Debug, Clone)]
pub struct FrameBench {
    /// Messages in the capture before the first measured frame.
    pub preload: u64,
    /// How long each tab is shown (after the fleet connected).
    pub per_tab: Duration,
    /// Devices the fleet has (the report names them).
    pub devices: u32,
    pub rate_hz: f64,
    /// QoS of the fleet's messages (1 and 2 also exercise the QoS flows).
    pub qos: u8,
}

/// Frame times of one tab.
#[derive(Default, Clone)]
struct TabFrames {
    frames: Vec<Duration>,
}

impl TabFrames {
    fn summary(&self) -> (usize, f64, f64) {
        let n = self.frames.len();
        let avg = self.frames.iter().map(Duration::as_secs_f64).sum::<f64>() / n.max(1) as f64;
        let max = self.frames.iter().max().map_or(0.0, Duration::as_secs_f64);
        (n, avg * 1e3, max * 1e3)
    }
}

/// The running benchmark: which tab, since when, the frames seen.
pub struct FrameBenchRun {
    pub cfg: FrameBench,
    started: Option<Instant>,
    tabs: Vec<(Tab, TabFrames)>,
    pub done: bool,
}

impl FrameBenchRun {
    pub fn new(cfg: FrameBench) -> FrameBenchRun {
        FrameBenchRun {
            cfg,
            started: None,
            tabs: Tab::ALL
                .iter()
                .map(|t| (*t, TabFrames::default()))
                .collect(),
            done: false,
        }
    }

    /// Fill the capture with `preload` messages on 1,000 topics, both legs.
    pub fn preload(&self, capture: &mut Capture) {
        let t0 = crate::time::now_us().saturating_sub(self.cfg.preload * 100);
        let sink: Arc<str> = Arc::from("bench-sink");
        let ids: Vec<Arc<str>> = (1..=1000)
            .map(|i| Arc::from(format!("bench-{i}")))
            .collect();
        let topics: Vec<Arc<str>> = (1..=1000)
            .map(|i| Arc::from(format!("bench/{i}")))
            .collect();
        for n in 0..self.cfg.preload {
            let k = (n % 1000) as usize;
            let dir = if n % 2 == 0 {
                Direction::ClientToBroker
            } else {
                Direction::BrokerToClient
            };
            let who = if dir == Direction::ClientToBroker {
                ids[k].clone()
            } else {
                sink.clone()
            };
            let mut e = WireEvent::new(t0 + n * 100, 0, who, dir, PacketKind::Publish);
            e.topic = Some(topics[k].clone());
            e.payload = Some(Bytes::from(format!("{{\"v\":{}}}", n / 2)));
            e.size = 30;
            capture.ingest(e);
        }
    }

    /// The tab to show now, or None when the benchmark is over.
    pub fn tab(&mut self, fleet_connected: bool) -> Option<Tab> {
        if !fleet_connected && self.started.is_none() {
            return Some(Tab::Topics);
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let i = (started.elapsed().as_secs_f64() / self.cfg.per_tab.as_secs_f64()) as usize;
        self.tabs.get(i).map(|(t, _)| *t)
    }

    /// Record one frame's CPU time for the tab it showed.
    pub fn record(&mut self, tab: Tab, took: Duration) {
        if self.started.is_none() {
            return;
        }
        if let Some((_, f)) = self.tabs.iter_mut().find(|(t, _)| *t == tab) {
            f.frames.push(took);
        }
    }

    pub fn report(&self, captured: usize) -> String {
        let mut out = format!(
            "window frame benchmark: {} messages preloaded, {} devices × {} Hz at QoS {} arriving, {} captured at the end\n\
             CPU per frame (logic + ui, our code and egui's layout; not the GPU):\n",
            self.cfg.preload, self.cfg.devices, self.cfg.rate_hz, self.cfg.qos, captured
        );
        let mut all = TabFrames::default();
        for (t, f) in &self.tabs {
            let (n, avg, max) = f.summary();
            out += &format!(
                "  {:<12} {n:>5} frames  avg {avg:>6.2} ms  worst {max:>6.2} ms\n",
                t.label()
            );
            all.frames.extend(&f.frames);
        }
        let (n, avg, max) = all.summary();
        out += &format!(
            "  {:<12} {n:>5} frames  avg {avg:>6.2} ms  worst {max:>6.2} ms\n",
            "all"
        );
        out
    }
}
