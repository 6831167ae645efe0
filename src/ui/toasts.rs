//! Notices from the engine and the window, shown for a few seconds in the
//! bottom-right corner.

use super::theme;
use std::time::{Duration, Instant};

use egui::{Color32, RichText};

/// Toasts on screen at most (the oldest goes first).
const MAX_TOASTS: usize = 6;

struct Toast {
    text: String,
    error: bool,
    until: Instant,
}

#[derive(Default)]
pub struct Toasts {
    toasts: Vec<Toast>,
}

impl Toasts {
    pub fn push(&mut self, error: bool, text: impl Into<String>) {
        let text = text.into();
        if error {
            tracing::warn!("{text}");
        }
        self.toasts.push(Toast {
            text,
            error,
            until: Instant::now() + Duration::from_secs(if error { 10 } else { 5 }),
        });
        if self.toasts.len() > MAX_TOASTS {
            self.toasts.remove(0);
        }
    }

    /// Texts of the toasts on screen (for tests).
    pub fn texts(&self) -> Vec<String> {
        self.toasts.iter().map(|t| t.text.clone()).collect()
    }

    pub fn ui(&mut self, ctx: &egui::Context) {
        let now = Instant::now();
        self.toasts.retain(|t| t.until > now);
        if let Some(next) = self.toasts.iter().map(|t| t.until).min() {
            ctx.request_repaint_after(next - now);
        }
        if self.toasts.is_empty() {
            return;
        }
        egui::Area::new(egui::Id::unique("toasts"))
            .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -36.0])
            .order(egui::Order::Foreground)
            .show(ctx, |ui| {
                let mut dismiss = None;
                for (i, t) in self.toasts.iter().enumerate() {
                    let fill = if t.error {
                        theme::TOAST_ERROR
                    } else {
                        theme::TOAST_OK
                    };
                    egui::Frame::popup(ui.style()).fill(fill).show(ui, |ui| {
                        ui.set_max_width(520.0);
                        ui.horizontal(|ui| {
                            ui.label(RichText::new(&t.text).color(Color32::WHITE));
                            if ui.small_button("×").clicked() {
                                dismiss = Some(i);
                            }
                        });
                    });
                }
                if let Some(i) = dismiss {
                    self.toasts.remove(i);
                }
            });
    }
}
