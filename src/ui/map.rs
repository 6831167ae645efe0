//! The fleet map: devices whose payloads carry latitude/longitude, at their
//! current positions with their trails and their scenario's waypoint routes,
//! on a plain projected plot (metres east/north of the fleet's centre; no
//! network tiles). Hover names a device; a click selects it in every panel.

use egui::Color32;
use egui_plot::{Line, LineStyle, MarkerShape, Plot, PlotPoint, PlotPoints, Points, Text};

use super::theme;
use crate::positions::Positions;

/// Metres per degree of latitude (and of longitude at the equator).
const M_PER_DEG_LAT: f64 = 110_574.0;
const M_PER_DEG_LON: f64 = 111_320.0;

/// Equirectangular projection around (lat0, lon0), in metres.
struct Projection {
    lat0: f64,
    lon0: f64,
    cos0: f64,
}

impl Projection {
    fn around(points: impl Iterator<Item = (f64, f64)>) -> Option<Projection> {
        let (mut n, mut lat, mut lon) = (0.0, 0.0, 0.0);
        for (a, o) in points {
            n += 1.0;
            lat += a;
            lon += o;
        }
        (n > 0.0).then(|| {
            let lat0 = lat / n;
            Projection {
                lat0,
                lon0: lon / n,
                cos0: lat0.to_radians().cos(),
            }
        })
    }

    fn xy(&self, (lat, lon): (f64, f64)) -> [f64; 2] {
        [
            (lon - self.lon0) * self.cos0 * M_PER_DEG_LON,
            (lat - self.lat0) * M_PER_DEG_LAT,
        ]
    }
}

fn metres(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{:.1} km", v / 1000.0)
    } else {
        format!("{v:.0} m")
    }
}

/// Draw the map; returns the device the user clicked, if any.
pub fn map_ui(
    ui: &mut egui::Ui,
    positions: &Positions,
    routes: &[(String, Vec<(f64, f64)>)],
    selected: Option<&str>,
    offline: impl Fn(&str) -> bool,
) -> Option<String> {
    let current = positions
        .tracks
        .values()
        .filter_map(|t| t.trail.back().copied());
    let Some(proj) =
        Projection::around(current.chain(routes.iter().flat_map(|(_, r)| r.iter().copied())))
    else {
        ui.add_space(theme::SECTION_GAP);
        ui.vertical_centered(|ui| {
            ui.weak("No positions yet.");
            ui.weak(
                "Devices appear here when their JSON payloads carry latitude and longitude \
                 (\"lat\"/\"lon\", at the top or one level down, like the drone fleet's \"position\").",
            );
        });
        return None;
    };
    ui.horizontal(|ui| {
        ui.label(format!(
            "{} devices with a position",
            positions.tracks.len()
        ));
        ui.separator();
        ui.weak(format!(
            "centre {:.5}, {:.5} · axes in metres east / north · dashed: waypoint routes",
            proj.lat0, proj.lon0
        ));
    });
    let mut clicked = None;
    let tracks: Vec<(&String, [f64; 2])> = positions
        .tracks
        .iter()
        .filter_map(|(id, t)| t.trail.back().map(|p| (id, proj.xy(*p))))
        .collect();
    let label_color = ui.visuals().strong_text_color();
    Plot::new("fleet-map")
        .data_aspect(1.0)
        .x_axis_label("east")
        .y_axis_label("north")
        .x_axis_formatter(|m, _| metres(m.value))
        .y_axis_formatter(|m, _| metres(m.value))
        .label_formatter(|pos| {
            Some(match pos {
                egui_plot::HoverPosition::NearDataPoint {
                    plot_name,
                    position,
                    ..
                } => format!(
                    "{plot_name}\n{} east, {} north",
                    metres(position.x),
                    metres(position.y)
                ),
                egui_plot::HoverPosition::Elsewhere { position } => {
                    format!("{} east, {} north", metres(position.x), metres(position.y))
                }
            })
        })
        .show(ui, |p| {
            for (fleet, route) in routes {
                let mut pts: Vec<[f64; 2]> = route.iter().map(|q| proj.xy(*q)).collect();
                if let Some(first) = pts.first().copied() {
                    pts.push(first);
                }
                p.line(
                    Line::new(format!("route of {fleet}"), PlotPoints::from(pts))
                        .style(LineStyle::dashed_loose())
                        .color(Color32::GRAY)
                        .allow_hover(false),
                );
            }
            for (id, t) in &positions.tracks {
                if t.trail.len() > 1 {
                    let pts: Vec<[f64; 2]> = t.trail.iter().map(|q| proj.xy(*q)).collect();
                    let mut line = Line::new(format!("trail of {id}"), PlotPoints::from(pts))
                        .width(1.0)
                        .allow_hover(false);
                    if selected == Some(id.as_str()) {
                        line = line.color(theme::WARN).width(2.0);
                    }
                    p.line(line);
                }
            }
            for (id, xy) in &tracks {
                let is_selected = selected == Some(id.as_str());
                let mut pts = Points::new(id.as_str(), PlotPoints::from(vec![*xy]))
                    .radius(if is_selected { 7.0 } else { 5.0 })
                    .shape(MarkerShape::Circle)
                    .filled(true);
                let gone = offline(id.as_str());
                if is_selected {
                    pts = pts.color(theme::WARN);
                } else if gone {
                    pts = pts.color(Color32::GRAY).filled(false);
                }
                p.points(pts);
                p.text(
                    Text::new(
                        format!("label {id}"),
                        PlotPoint::new(xy[0], xy[1]),
                        egui::RichText::new(if gone {
                            format!("   {id} (offline: last position)")
                        } else {
                            format!("   {id}")
                        })
                        .size(13.0)
                        .color(if is_selected {
                            theme::WARN
                        } else if gone {
                            Color32::GRAY
                        } else {
                            label_color
                        }),
                    )
                    .anchor(egui::Align2::LEFT_CENTER)
                    .allow_hover(false),
                );
            }
            if p.response().clicked()
                && let Some(at) = p.pointer_coordinate()
            {
                // The nearest device within 12 pixels of the click.
                let click = p.screen_from_plot(at);
                clicked = tracks
                    .iter()
                    .map(|(id, xy)| {
                        let s = p.screen_from_plot(PlotPoint::new(xy[0], xy[1]));
                        (id, s.distance(click))
                    })
                    .filter(|(_, d)| *d <= 12.0)
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(id, _)| (*id).clone());
            }
        });
    clicked
}
