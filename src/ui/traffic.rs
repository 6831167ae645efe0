//! Traffic plot: messages per second over time, total and per plotted topic.

use std::collections::BTreeMap;

use egui_plot::{Legend, Line, Plot, PlotPoints, VLine};

use super::faults::FaultLog;
use super::format;
use crate::capture::Capture;

#[derive(Default)]
pub struct TrafficPanel {
    /// Seconds of history shown.
    window_s: u64,
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
        let now_s = crate::tap::now_us() / 1_000_000;
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
        for t in topics.iter().take(6) {
            let Some(st) = capture.topics.get(t) else {
                continue;
            };
            let mut buckets: BTreeMap<u64, u32> = BTreeMap::new();
            for &seq in &st.history {
                if let Some(e) = capture.get(seq) {
                    let s = e.t_us / 1_000_000;
                    if s >= from && s < now_s {
                        *buckets.entry(s).or_default() += 1;
                    }
                }
            }
            per_topic.push((
                t.clone(),
                buckets
                    .into_iter()
                    .map(|(s, n)| [s as f64, n as f64])
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
                for (t_us, _label) in faults.markers.iter().filter(|(t, _)| t / 1_000_000 >= from) {
                    p.vline(
                        VLine::new("injected faults", *t_us as f64 / 1e6)
                            .color(egui::Color32::from_rgb(255, 152, 0)),
                    );
                }
            });
    }
}
