//! The Query tab: read-only SQL over the capture database, its rows in a
//! table, and a numeric column over time in a chart. The engine runs the
//! query (`Command::Query`); the tab shows the model's last answer.

use egui::RichText;
use egui_extras::{Column, TableBuilder};
use egui_plot::{Line, Plot, PlotPoints};

use super::{format, theme};
use crate::command::Command;
use crate::database::{QueryResult, Value};

/// A first query that shows what is there.
const EXAMPLE: &str = "SELECT topic, COUNT(*) AS messages, MAX(t_us) AS last_us
FROM frames WHERE kind = 'Publish' AND dir = 'client_to_broker'
GROUP BY topic ORDER BY messages DESC LIMIT 50";

pub struct QueryPanel {
    pub sql: String,
    /// The chart's columns: time on x (µs since the epoch), a number on y.
    x: Option<usize>,
    y: Option<usize>,
    /// The model's answer count when this panel last looked.
    seen: u64,
    pub running: bool,
}

impl Default for QueryPanel {
    fn default() -> Self {
        QueryPanel {
            sql: EXAMPLE.to_string(),
            x: None,
            y: None,
            seen: 0,
            running: false,
        }
    }
}

impl QueryPanel {
    /// `database`: a capture database is open or was opened (queries have
    /// something to read). `answers`: the model's answer count.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        database: Option<&std::path::Path>,
        result: Option<&Result<Box<QueryResult>, String>>,
        answers: u64,
        out: &mut Vec<Command>,
    ) {
        if answers != self.seen {
            self.seen = answers;
            self.running = false;
            if let Some(Ok(r)) = result {
                self.pick_chart_columns(r);
            }
        }
        ui.horizontal(|ui| {
            ui.heading("Query");
            match database {
                Some(p) => ui.weak(format!("read-only SQL over {}", p.display())),
                None => ui.colored_label(
                    theme::WARN,
                    "No capture database: turn it on with File → Keep capture in a database…, \
                     start with --capture-db FILE, or open one with File → Open capture",
                ),
            };
        });
        let label = ui.label("SQL");
        let editor = ui
            .add(
                egui::TextEdit::multiline(&mut self.sql)
                    .code_editor()
                    .desired_rows(4)
                    .desired_width(f32::INFINITY)
                    .hint_text("SELECT … FROM frames"),
            )
            .labelled_by(label.id);
        let run_key = editor.has_focus()
            && ui.input(|i| i.modifiers.command && i.key_pressed(egui::Key::Enter));
        ui.horizontal(|ui| {
            let button = ui
                .add_enabled(
                    database.is_some() && !self.running,
                    egui::Button::new(RichText::new("Run").strong()),
                )
                .on_hover_text("Ctrl+Enter in the editor");
            if (button.clicked() || (run_key && database.is_some())) && !self.sql.trim().is_empty()
            {
                out.push(Command::Query(self.sql.trim().to_string()));
                self.running = true;
            }
            if self.running {
                ui.spinner();
            }
            ui.weak("tables: frames, faults, verdicts, meta (the README lists their columns)");
        });
        ui.separator();
        match result {
            None => {
                ui.weak("Run a query to see its rows here.");
            }
            Some(Err(e)) => {
                ui.colored_label(theme::ERROR, e);
            }
            Some(Ok(r)) => self.result_ui(ui, r),
        }
    }

    /// Time on x: a column named like a time (`t_us`, `…_us`); y: the first
    /// other numeric column.
    fn pick_chart_columns(&mut self, r: &QueryResult) {
        let numeric = |i: usize| {
            r.rows
                .iter()
                .take(50)
                .any(|row| row.get(i).and_then(Value::as_f64).is_some())
        };
        self.x = r
            .columns
            .iter()
            .position(|c| c.ends_with("_us") || c == "t_us");
        self.y = (0..r.columns.len()).find(|&i| Some(i) != self.x && numeric(i));
    }

    fn result_ui(&mut self, ui: &mut egui::Ui, r: &QueryResult) {
        ui.horizontal(|ui| {
            ui.label(format!(
                "{} row(s){}",
                r.rows.len(),
                if r.truncated { " (more not shown)" } else { "" }
            ));
            if !r.columns.is_empty() {
                ui.separator();
                ui.weak("chart");
                column_combo(ui, "query-x", "time", &r.columns, &mut self.x);
                column_combo(ui, "query-y", "value", &r.columns, &mut self.y);
            }
        });
        if let (Some(x), Some(y)) = (self.x, self.y) {
            let mut points: Vec<[f64; 2]> = r
                .rows
                .iter()
                .filter_map(|row| Some([row.get(x)?.as_f64()? / 1e6, row.get(y)?.as_f64()?]))
                .collect();
            points.sort_by(|a, b| a[0].total_cmp(&b[0]));
            if !points.is_empty() {
                let name = r.columns[y].clone();
                Plot::new("query-plot")
                    .height(160.0)
                    .x_axis_formatter(|mark, _| {
                        format::time_of_day((mark.value * 1e6) as u64)
                            .chars()
                            .take(8)
                            .collect()
                    })
                    .show(ui, |plot| {
                        plot.line(Line::new(name, PlotPoints::from(points)))
                    });
            }
        }
        let widths: Vec<f32> = r
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let longest = r
                    .rows
                    .iter()
                    .take(100)
                    .map(|row| {
                        row.get(i)
                            .map_or(0, |v| v.to_string().chars().count().min(60))
                    })
                    .max()
                    .unwrap_or(0)
                    .max(c.len());
                (longest as f32 * 7.5 + 16.0).clamp(60.0, 480.0)
            })
            .collect();
        egui::ScrollArea::horizontal()
            .id_salt("query-rows")
            .show(ui, |ui| {
                let mut table = TableBuilder::new(ui).striped(true).resizable(true);
                for w in &widths {
                    table = table.column(Column::initial(*w).at_least(40.0).clip(true));
                }
                table
                    .header(20.0, |mut h| {
                        for c in &r.columns {
                            h.col(|ui| {
                                ui.strong(c);
                            });
                        }
                    })
                    .body(|body| {
                        body.rows(18.0, r.rows.len(), |mut row| {
                            let cells = &r.rows[row.index()];
                            for v in cells {
                                row.col(|ui| {
                                    let text = v.to_string();
                                    let shown: String = text.chars().take(200).collect();
                                    let label = match v {
                                        Value::Integer(_) | Value::Real(_) => {
                                            RichText::new(shown).monospace()
                                        }
                                        Value::Null => RichText::new("NULL").weak(),
                                        _ => RichText::new(shown),
                                    };
                                    ui.label(label);
                                });
                            }
                        });
                    });
            });
    }
}

fn column_combo(
    ui: &mut egui::Ui,
    id: &str,
    what: &str,
    columns: &[String],
    chosen: &mut Option<usize>,
) {
    let shown = chosen
        .and_then(|i| columns.get(i))
        .cloned()
        .unwrap_or_else(|| format!("{what}: none"));
    egui::ComboBox::from_id_salt(id)
        .selected_text(shown)
        .show_ui(ui, |ui| {
            ui.selectable_value(chosen, None, "none");
            for (i, c) in columns.iter().enumerate() {
                ui.selectable_value(chosen, Some(i), c);
            }
        });
}
