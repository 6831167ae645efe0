//! Checks: the running scenario's expectations, pending / passed / failed
//! live, with their evidence; a click on one with a frame opens it in the
//! Message log.

use egui::{Color32, RichText};
use egui_extras::{Column, TableBuilder};

use super::theme;
use crate::checks::Checks;
use crate::checks::VerdictState;

fn badge(state: VerdictState) -> RichText {
    match state {
        VerdictState::Pending => RichText::new("● pending").color(Color32::GRAY),
        VerdictState::Passed => RichText::new("● passed").color(theme::OK).strong(),
        VerdictState::Failed => RichText::new("● failed").color(theme::ERROR).strong(),
        VerdictState::NotTriggered => RichText::new("● not triggered").color(Color32::GRAY),
    }
}

/// Draw the checks; returns the capture sequence number of the evidence the
/// user clicked, if any.
pub fn checks_ui(ui: &mut egui::Ui, checks: Option<&Checks>) -> Option<u64> {
    let Some(checks) = checks.filter(|c| !c.is_empty()) else {
        ui.add_space(theme::SECTION_GAP);
        ui.vertical_centered(|ui| {
            ui.weak("The running scenario has no expectations.");
            ui.weak(
                "Add an `expect: [...]` section to the scenario (see README, Testing your system in CI): \
                 each check shows here live, and `mqtt-workbench test` turns them into a CI verdict.",
            );
        });
        return None;
    };
    let count = |s| checks.verdicts().filter(|v| v.state == s).count();
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("{} passed", count(VerdictState::Passed))).color(theme::OK));
        ui.separator();
        let failed = count(VerdictState::Failed);
        ui.label(if failed > 0 {
            RichText::new(format!("{failed} failed"))
                .color(theme::ERROR)
                .strong()
        } else {
            RichText::new("0 failed")
        });
        ui.separator();
        ui.weak(format!(
            "{} pending · {} not triggered",
            count(VerdictState::Pending),
            count(VerdictState::NotTriggered)
        ));
    });
    let mut clicked = None;
    let verdicts: Vec<_> = checks.with_progress().collect();
    // A click anywhere on a row selects it (a selectable label would take it).
    ui.style_mut().interaction.selectable_labels = false;
    ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
    TableBuilder::new(ui)
        .id_salt("checks")
        .striped(true)
        .sense(egui::Sense::click())
        .column(Column::exact(120.0))
        .column(Column::initial(280.0).resizable(true))
        .column(Column::remainder())
        .header(20.0, |mut h| {
            for title in ["Verdict", "Expectation", "Evidence"] {
                h.col(|ui| {
                    ui.strong(title);
                });
            }
        })
        .body(|body| {
            body.rows(20.0, verdicts.len(), |mut row| {
                let (v, progress) = &verdicts[row.index()];
                row.col(|ui| {
                    ui.label(badge(v.state));
                });
                row.col(|ui| {
                    let name = ui.add(egui::Label::new(&v.name).sense(egui::Sense::click()));
                    if name.clicked() {
                        clicked = v.seq;
                    }
                });
                row.col(|ui| {
                    if !progress.is_empty() {
                        ui.weak(progress);
                        return;
                    }
                    let r = ui.label(&v.evidence);
                    if v.seq.is_some() {
                        r.on_hover_text(format!(
                            "{}\n\nClick to open the frame in the Message log",
                            v.evidence
                        ));
                    } else {
                        r.on_hover_text(&v.evidence);
                    }
                });
                if row.response().clicked() {
                    clicked = clicked.or(v.seq);
                }
            });
        });
    clicked
}
