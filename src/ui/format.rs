//! Text formatting shared by the panels.

use std::fmt::Write as _;

/// "HH:MM:SS.mmm" (UTC) for microseconds since the UNIX epoch.
pub fn time_of_day(t_us: u64) -> String {
    let ms = t_us / 1000;
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

/// Human duration for microseconds: "850 µs", "12.4 ms", "3.20 s".
pub fn duration_us(us: u64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// What an injected fault did to a frame, for tables ("" when nothing).
pub fn injected(i: Option<crate::wire::Injected>) -> String {
    match i {
        None => String::new(),
        Some(crate::wire::Injected::Dropped) => "dropped".into(),
        Some(crate::wire::Injected::Held) => "held".into(),
        Some(crate::wire::Injected::Denied) => "denied by access rules".into(),
        Some(crate::wire::Injected::FromTap) => "answered by the tap".into(),
        Some(crate::wire::Injected::Delayed(ms)) => format!("+{ms} ms"),
    }
}

/// A table header: one strong label per column.
pub fn header_cells(h: &mut egui_extras::TableRow<'_, '_>, titles: &[&str]) {
    for t in titles {
        h.col(|ui| {
            ui.strong(*t);
        });
    }
}

/// The trailing cells every message table shares: QoS, Ret, Dup, Size, Network, Payload.
/// The message columns shared by the log and the topic history; `v5`: with
/// the MQTT 5 column (once any MQTT 5 properties were captured).
pub fn message_cells(
    row: &mut egui_extras::TableRow<'_, '_>,
    e: &crate::wire::WireEvent,
    payload_chars: usize,
    v5: bool,
) {
    let payload = e.payload.as_deref().unwrap_or_default();
    row.col(|ui| {
        ui.label(e.qos.to_string());
    });
    row.col(|ui| {
        ui.label(if e.retain { "R" } else { "" });
    });
    row.col(|ui| {
        ui.label(if e.dup { "D" } else { "" });
    });
    row.col(|ui| {
        ui.label(bytes(payload.len() as u64));
    });
    row.col(|ui| {
        ui.label(injected(e.injected))
            .on_hover_text("What an injected network fault did to this frame");
    });
    if v5 {
        row.col(|ui| match &e.v5 {
            Some(p) => {
                let text = p.summary();
                ui.label(&text).on_hover_text(text);
            }
            None => {
                ui.label("");
            }
        });
    }
    row.col(|ui| {
        // On one line: the badge, then the payload (a cell lays out top-down;
        // `horizontal` would ask for a taller row than the table's).
        ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
            if let Some(mark) = &e.contract {
                contract_badge(ui, mark);
            }
            ui.label(preview(payload, payload_chars));
        });
    });
}

/// A PUBLISH the run's AsyncAPI contract refused (red, what broke on hover)
/// or does not declare (amber); nothing when it conforms.
pub fn contract_badge(ui: &mut egui::Ui, mark: &crate::wire::ContractMark) {
    match &mark.channel {
        Some(channel) if !mark.violations.is_empty() => {
            ui.label(
                egui::RichText::new("● breaks contract")
                    .color(super::theme::ERROR)
                    .strong(),
            )
            .on_hover_text(format!(
                "Breaks channel {channel} of the AsyncAPI contract:\n{}",
                mark.violations
                    .iter()
                    .map(|v| format!(
                        "• {} {}: {}",
                        if v.pointer.is_empty() {
                            "(payload)"
                        } else {
                            &v.pointer
                        },
                        v.keyword,
                        v.message
                    ))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        Some(_) => {}
        None => {
            ui.label(egui::RichText::new("undeclared").color(super::theme::WARN))
                .on_hover_text("No channel of the AsyncAPI contract has this topic");
        }
    }
}

/// Header labels of a message table: `head`, the MQTT 5 column when shown, "Payload".
pub fn message_headers<'a>(head: &[&'a str], v5: bool) -> Vec<&'a str> {
    let mut h = head.to_vec();
    if v5 {
        h.push("MQTT 5");
    }
    h.push("Payload");
    h
}

/// "1,234,567" (the engine's formatter, so the CLI and the window agree).
pub use crate::sim::ramp::thousands as count;

pub fn bytes(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
    }
}

/// One line of a payload for tables: text (newlines shown as ↵) or hex when binary.
pub fn preview(payload: &[u8], max_chars: usize) -> String {
    match std::str::from_utf8(payload) {
        Ok(s) => {
            let mut out: String = s
                .chars()
                .take(max_chars)
                .map(|c| if c == '\n' { '↵' } else { c })
                .collect();
            if s.chars().count() > max_chars {
                out.push('…');
            }
            out
        }
        Err(_) => {
            let mut out = String::from("0x");
            for b in payload.iter().take(max_chars / 2) {
                let _ = write!(out, "{b:02x}");
            }
            if payload.len() > max_chars / 2 {
                out.push('…');
            }
            out
        }
    }
}

/// Sort key for ids that end in numbers: "car-2" before "car-10".
pub fn natural_key(s: &str) -> (String, u64, String) {
    let trimmed = s.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = &s[trimmed.len()..];
    (
        trimmed.to_string(),
        digits.parse().unwrap_or(0),
        s.to_string(),
    )
}

pub fn pretty_json(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if !(v.is_object() || v.is_array()) {
        return None;
    }
    serde_json::to_string_pretty(&v).ok()
}

/// Classic hex dump: offset, 16 bytes, ASCII.
pub fn hex_dump(payload: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in payload.chunks(16).enumerate() {
        let _ = write!(out, "{:06x}  ", i * 16);
        for k in 0..16 {
            match chunk.get(k) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
        }
        out.push(' ');
        out.extend(chunk.iter().map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
    out
}

/// The number in a payload: the whole payload, or the dotted JSON field.
pub fn number(payload: &[u8], field: Option<&str>) -> Option<f64> {
    let text = std::str::from_utf8(payload).ok()?.trim();
    match field {
        None | Some("") => text.parse().ok(),
        Some(path) => {
            let mut v: serde_json::Value = serde_json::from_str(text).ok()?;
            for part in path.split('.') {
                v = v.get(part)?.clone();
            }
            v.as_f64()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(12), "12");
        let mut ids = vec!["car-10", "car-2", "app", "car-1"];
        ids.sort_by_key(|s| natural_key(s));
        assert_eq!(ids, ["app", "car-1", "car-2", "car-10"]);
        assert_eq!(
            time_of_day(((13 * 3600 + 5 * 60 + 9) * 1000 + 42) * 1000),
            "13:05:09.042"
        );
        assert_eq!(duration_us(1500), "1.5 ms");
        assert_eq!(preview(b"a\nb", 10), "a↵b");
        assert_eq!(preview(&[0xff, 0x00], 10), "0xff00");
        assert_eq!(number(br#"{"p":{"lat":1.5}}"#, Some("p.lat")), Some(1.5));
        assert_eq!(number(b" 3 ", None), Some(3.0));
        assert!(hex_dump(b"hello").starts_with("000000  68 65 6c 6c 6f"));
    }
}

/// `s` quoted for a POSIX shell.
fn shell_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A command that publishes `e` again with mosquitto_pub (to the tap at
/// `broker`, else localhost:1883). A payload that is not UTF-8 goes
/// through `printf` and `-s` (stdin), byte for byte.
pub fn mosquitto_pub(e: &crate::wire::WireEvent, broker: Option<std::net::SocketAddr>) -> String {
    let (host, port) = broker.map_or(("localhost".to_string(), 1883), |a| {
        (a.ip().to_string(), a.port())
    });
    let mut cmd = format!(
        "mosquitto_pub -h {host} -p {port}{} -t {} -q {}",
        if e.protocol == 5 { " -V mqttv5" } else { "" },
        shell_quoted(e.topic.as_deref().unwrap_or_default()),
        e.qos
    );
    if e.retain {
        cmd += " -r";
    }
    let payload = e.payload.as_deref().unwrap_or_default();
    if payload.is_empty() {
        return cmd + " -n";
    }
    match std::str::from_utf8(payload) {
        Ok(text) => format!("{cmd} -m {}", shell_quoted(text)),
        Err(_) => {
            let escaped: String = payload.iter().map(|b| format!("\\x{b:02x}")).collect();
            format!("printf '{escaped}' | {cmd} -s")
        }
    }
}

#[cfg(test)]
mod mosquitto_pub_tests {
    use super::*;

    #[test]
    fn a_message_becomes_a_command_that_publishes_it_again() {
        let mut e = crate::wire::WireEvent::new(
            0,
            1,
            std::sync::Arc::from("c"),
            crate::wire::Direction::ClientToBroker,
            crate::wire::PacketKind::Publish,
        );
        e.topic = Some(std::sync::Arc::from("a/it's"));
        e.payload = Some(bytes::Bytes::from_static(b"{\"on\": true}"));
        e.qos = 1;
        e.retain = true;
        let addr = "127.0.0.1:18830".parse().ok();
        assert_eq!(
            mosquitto_pub(&e, addr),
            r#"mosquitto_pub -h 127.0.0.1 -p 18830 -t 'a/it'\''s' -q 1 -r -m '{"on": true}'"#
        );
        e.payload = Some(bytes::Bytes::from_static(&[0, 0xff]));
        e.retain = false;
        assert_eq!(
            mosquitto_pub(&e, addr),
            r"printf '\x00\xff' | mosquitto_pub -h 127.0.0.1 -p 18830 -t 'a/it'\''s' -q 1 -s"
        );
    }
}
