//! Traffic plot: messages per second over time, total and per plotted topic.

use std::collections::{BTreeMap, HashMap};

use egui_plot::{Legend, Line, Plot, PlotPoints, VLine};

use super::format;
use super::theme;
use crate::capture::Capture;
use crate::model::FaultLog;

/// Messages per second of one plotted topic, counted incrementally from its history.
#[derive(Default)]
struct TopicRate {
    /// Store sequence number of the next message to count.
    next_seq: u64,
    clears: u64,
    per_s: BTreeMap<u64, u32>,
}

/// Seconds of per-topic counts kept (the longest window shown).
const MAX_TOPIC_SECONDS: usize = 3600;

#[derive(Default)]
pub struct TrafficPanel {
    /// Seconds of history shown.
    window_s: u64,
    topic_rates: HashMap<String, TopicRate>,
}

impl TrafficPanel {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        capture: &Capture,
        topics: &[String],
        faults: &FaultLog,
    ) {
        if self.window_s == 0 {
            self.window_s = 300;
        }
        ui.horizontal(|ui| {
            ui.strong("Traffic (msgs/s)");
            for (s, label) in [(60, "1 min"), (300, "5 min"), (3600, "1 h")] {
                ui.selectable_value(&mut self.window_s, s, label);
            }
        });
        let now_s = crate::time::now_us() / 1_000_000;
        let from = now_s.saturating_sub(self.window_s);
        // The current second is still filling: plot complete seconds only.
        let secs: Vec<&(u64, u32, u32)> = capture
            .rates
            .seconds
            .iter()
            .filter(|b| b.0 >= from && b.0 < now_s)
            .collect();
        let x0 = secs
            .first()
            .map_or(now_s.saturating_sub(60), |b| b.0)
            .max(from);
        let published: Vec<[f64; 2]> = secs.iter().map(|b| [b.0 as f64, b.1 as f64]).collect();
        let delivered: Vec<[f64; 2]> = secs.iter().map(|b| [b.0 as f64, b.2 as f64]).collect();
        let mut per_topic = Vec::new();
        self.topic_rates
            .retain(|t, _| topics.iter().take(6).any(|x| x == t));
        for t in topics.iter().take(6) {
            let Some(st) = capture.topics.get(t) else {
                continue;
            };
            let rate = self.topic_rates.entry(t.clone()).or_default();
            if rate.clears != capture.clears {
                *rate = TopicRate {
                    clears: capture.clears,
                    ..TopicRate::default()
                };
            }
            // Only the messages not counted yet (the history is in order).
            let from_idx = st.history.partition_point(|&q| q < rate.next_seq);
            for &seq in st.history.range(from_idx..) {
                if let Some(e) = capture.get(seq) {
                    *rate.per_s.entry(e.t_us / 1_000_000).or_default() += 1;
                }
            }
            rate.next_seq = capture.end_seq();
            while rate.per_s.len() > MAX_TOPIC_SECONDS {
                rate.per_s.pop_first();
            }
            per_topic.push((
                t.clone(),
                rate.per_s
                    .range(from..now_s)
                    .map(|(s, n)| [*s as f64, f64::from(*n)])
                    .collect::<Vec<_>>(),
            ));
        }
        Plot::new("traffic")
            .legend(Legend::default())
            .allow_scroll(false)
            .include_y(0.0)
            // From the first traffic (or the last minute, before any) up to now.
            .include_x(x0 as f64)
            .include_x(now_s as f64)
            .x_axis_formatter(|mark, _| {
                format::time_of_day((mark.value * 1e6) as u64)
                    .chars()
                    .take(8)
                    .collect()
            })
            .show(ui, |p| {
                p.line(Line::new("published", PlotPoints::from(published)));
                p.line(Line::new("delivered", PlotPoints::from(delivered)));
                for (t, pts) in per_topic {
                    p.line(Line::new(t, PlotPoints::from(pts)));
                }
                // A marker for every injected fault in the window.
                for m in faults.markers.iter().filter(|m| m.t_us / 1_000_000 >= from) {
                    p.vline(
                        VLine::new("faults and script notes", m.t_us as f64 / 1e6)
                            .color(theme::FAULT_MARK),
                    );
                }
            });
    }
}
