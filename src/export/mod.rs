//! Message log export: CSV and JSON Lines, one row per PUBLISH frame.

pub mod record;

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::capture::Capture;
use crate::wire::{Injected, PacketKind, WireEvent};

/// One exported message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRow {
    /// RFC 3339 UTC time with microseconds.
    pub time: String,
    pub client_id: String,
    /// client_to_broker or broker_to_client.
    pub direction: String,
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub packet_id: u16,
    /// The payload as UTF-8 text, or base64 when `binary` is true.
    pub payload: String,
    pub binary: bool,
    /// What an injected network fault did to this frame: "" (nothing),
    /// "dropped" (never arrived), "held" (by a partition) or "+N ms" (delayed).
    #[serde(default)]
    pub fault: String,
    /// MQTT protocol level of the connection: 4 (3.1.1) or 5.
    #[serde(default)]
    pub protocol: u8,
    /// MQTT 5 properties and reason code as JSON ("" when none). CSV holds the
    /// JSON text; JSON Lines an object.
    #[serde(default, deserialize_with = "json_text")]
    pub properties: String,
    /// What the run's AsyncAPI contract said of this PUBLISH: "" (no
    /// contract, or a delivery), "conforms", "undeclared", or what broke
    /// (`/battery maximum: …; qos: …`).
    #[serde(default)]
    pub contract: String,
}

/// Reads `properties` from CSV (JSON text) and from JSON Lines (an object).
fn json_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

impl ExportRow {
    pub fn from_event(e: &WireEvent) -> ExportRow {
        let payload = e.payload.as_deref().unwrap_or_default();
        let (payload, binary) = match std::str::from_utf8(payload) {
            Ok(s) => (s.to_string(), false),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(payload),
                true,
            ),
        };
        ExportRow {
            time: humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(e.t_us))
                .to_string(),
            client_id: e.client_id.to_string(),
            direction: e.dir.as_str().to_string(),
            topic: e.topic.as_deref().unwrap_or_default().to_string(),
            qos: e.qos,
            retain: e.retain,
            dup: e.dup,
            packet_id: e.pkid,
            payload,
            binary,
            protocol: e.protocol,
            properties: e
                .v5
                .as_ref()
                .and_then(|p| serde_json::to_string(p).ok())
                .unwrap_or_default(),
            fault: match e.injected {
                None => String::new(),
                Some(Injected::Dropped) => "dropped".into(),
                Some(Injected::Held) => "held".into(),
                Some(Injected::Denied) => "denied".into(),
                Some(Injected::FromTap) => "from tap".into(),
                Some(Injected::Delayed(ms)) => format!("+{ms} ms"),
            },
            contract: match e.contract.as_deref() {
                None => String::new(),
                Some(m) if m.channel.is_none() => "undeclared".into(),
                Some(m) if m.violations.is_empty() => "conforms".into(),
                Some(m) => crate::contract::describe(&m.violations),
            },
        }
    }

    /// The payload bytes (decoding base64 for binary rows).
    pub fn payload_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        if self.binary {
            base64::engine::general_purpose::STANDARD.decode(&self.payload)
        } else {
            Ok(self.payload.clone().into_bytes())
        }
    }
}

/// Every stored message of the capture as rows.
pub fn rows(capture: &Capture) -> Vec<ExportRow> {
    capture
        .messages()
        .filter(|(_, e)| e.kind == PacketKind::Publish)
        .map(|(_, e)| ExportRow::from_event(e))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    /// From the extension: .csv, or .jsonl / .ndjson / .json.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{}: unknown export format; expected a .csv or .jsonl file", .0.display())]
    UnknownFormat(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

/// Write rows to `path` in the format its extension names. Returns the row count.
pub fn write(path: &Path, rows: &[ExportRow]) -> Result<usize, ExportError> {
    write_rows(path, rows.iter().cloned(), |_| {})
}

/// Write the PUBLISH frames among `events`, calling `progress` with the rows
/// written every [`PROGRESS_EVERY`] rows. Returns the row count.
pub fn write_events<'a>(
    path: &Path,
    events: impl Iterator<Item = &'a WireEvent>,
    progress: impl FnMut(u64),
) -> Result<usize, ExportError> {
    let rows = events
        .filter(|e| e.kind == PacketKind::Publish)
        .map(ExportRow::from_event);
    write_rows(path, rows, progress)
}

/// Rows between two progress reports.
pub const PROGRESS_EVERY: u64 = 10_000;

fn write_rows(
    path: &Path,
    rows: impl Iterator<Item = ExportRow>,
    mut progress: impl FnMut(u64),
) -> Result<usize, ExportError> {
    let format =
        Format::from_path(path).ok_or_else(|| ExportError::UnknownFormat(path.to_path_buf()))?;
    let io = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Write to a sibling temp file, then rename: a failed export never leaves half a file.
    let tmp = path.with_extension(format!(
        "{}.partial",
        path.extension().and_then(|e| e.to_str()).unwrap_or("out")
    ));
    let file = File::create(&tmp).map_err(io)?;
    let mut n: u64 = 0;
    let mut tick = |n: &mut u64| {
        *n += 1;
        if (*n).is_multiple_of(PROGRESS_EVERY) {
            progress(*n);
        }
    };
    let result = match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(BufWriter::new(file));
            let mut rows = rows;
            rows.try_for_each(|r| {
                tick(&mut n);
                w.serialize(r)
            })
            .and_then(|()| w.flush().map_err(csv::Error::from))
            .map_err(|source| ExportError::Csv {
                path: path.to_path_buf(),
                source,
            })
        }
        Format::JsonLines => {
            let mut w = BufWriter::new(file);
            let mut rows = rows;
            rows.try_for_each(|r| {
                tick(&mut n);
                // The properties as an object, not as JSON inside a string.
                let mut v = serde_json::to_value(&r).map_err(std::io::Error::from)?;
                if let Some(obj) = v.as_object_mut() {
                    let props = if r.properties.is_empty() {
                        serde_json::Value::Null
                    } else {
                        serde_json::from_str(&r.properties).unwrap_or(serde_json::Value::Null)
                    };
                    obj.insert("properties".into(), props);
                }
                serde_json::to_writer(&mut w, &v).map_err(std::io::Error::from)?;
                w.write_all(b"\n")
            })
            .and_then(|()| w.flush())
            .map_err(io)
        }
    };
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(n as usize)
}

/// Read an export back (for round-trip checks and re-import).
pub fn read(path: &Path) -> Result<Vec<ExportRow>, ExportError> {
    let format =
        Format::from_path(path).ok_or_else(|| ExportError::UnknownFormat(path.to_path_buf()))?;
    let io = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    match format {
        Format::Csv => csv::Reader::from_reader(file)
            .deserialize()
            .enumerate()
            .map(|(i, r)| {
                r.map_err(|e| ExportError::Parse {
                    path: path.to_path_buf(),
                    line: i as u64 + 2,
                    message: e.to_string(),
                })
            })
            .collect(),
        Format::JsonLines => BufReader::new(file)
            .lines()
            .enumerate()
            .filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
            .map(|(i, l)| {
                let l = l.map_err(io)?;
                serde_json::from_str(&l).map_err(|e| ExportError::Parse {
                    path: path.to_path_buf(),
                    line: i as u64 + 1,
                    message: e.to_string(),
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ExportRow> {
        vec![
            ExportRow {
                time: "2026-11-24T10:00:00.000001Z".into(),
                client_id: "a".into(),
                direction: "client_to_broker".into(),
                topic: "t/1".into(),
                qos: 1,
                retain: true,
                dup: false,
                packet_id: 3,
                payload: "hello, \"world\"\nline 2".into(),
                binary: false,
                fault: String::new(),
                protocol: 4,
                properties: String::new(),
                contract: "/battery maximum: 120 is greater than the maximum of 100".into(),
            },
            ExportRow {
                binary: true,
                payload: base64::engine::general_purpose::STANDARD.encode([0u8, 159, 146, 150]),
                ..sample_one()
            },
        ]
    }

    fn sample_one() -> ExportRow {
        ExportRow {
            time: "2026-11-24T10:00:01.000000Z".into(),
            client_id: "b".into(),
            direction: "broker_to_client".into(),
            topic: "t/2".into(),
            qos: 2,
            retain: false,
            dup: true,
            packet_id: 9,
            payload: String::new(),
            binary: false,
            fault: "+250 ms".into(),
            protocol: 5,
            properties: r#"{"user_properties":[["a","1"]]}"#.into(),
            contract: String::new(),
        }
    }

    #[test]
    fn csv_and_jsonl_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["log.csv", "log.jsonl"] {
            let p = dir.path().join(name);
            assert_eq!(write(&p, &sample()).unwrap(), 2);
            let back = read(&p).unwrap();
            assert_eq!(back, sample(), "{name}");
            assert_eq!(back[1].payload_bytes().unwrap(), vec![0u8, 159, 146, 150]);
        }
        // JSON Lines hold the MQTT 5 properties as an object, CSV as JSON text.
        let jsonl = std::fs::read_to_string(dir.path().join("log.jsonl")).unwrap();
        let second: serde_json::Value =
            serde_json::from_str(jsonl.lines().nth(1).unwrap()).unwrap();
        assert_eq!(second["properties"]["user_properties"][0][1], "1");
        assert_eq!(second["protocol"], 5);
        let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        assert!(first["properties"].is_null());
    }

    #[test]
    fn fault_markers_are_exported_in_csv_and_jsonl() {
        use crate::wire::Direction;
        let dir = tempfile::tempdir().unwrap();
        let mk = |injected| {
            let mut e = WireEvent::new(
                1_000_000,
                1,
                std::sync::Arc::from("dev"),
                Direction::ClientToBroker,
                PacketKind::Publish,
            );
            e.topic = Some(std::sync::Arc::from("t"));
            e.payload = Some(bytes::Bytes::from_static(b"x"));
            e.injected = injected;
            e
        };
        let events = [
            mk(None),
            mk(Some(Injected::Dropped)),
            mk(Some(Injected::Held)),
            mk(Some(Injected::Delayed(120))),
        ];
        for name in ["faults.csv", "faults.jsonl"] {
            let p = dir.path().join(name);
            assert_eq!(write_events(&p, events.iter(), |_| {}).unwrap(), 4);
            let faults: Vec<String> = read(&p).unwrap().into_iter().map(|r| r.fault).collect();
            assert_eq!(faults, ["", "dropped", "held", "+120 ms"], "{name}");
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                text.contains("dropped") && text.contains("+120 ms"),
                "{name}: {text}"
            );
        }
        let header = std::fs::read_to_string(dir.path().join("faults.csv")).unwrap();
        assert!(
            header.lines().next().unwrap().contains(",fault,"),
            "{header}"
        );
    }

    #[test]
    fn unwritable_path_says_why_and_unknown_extension_is_refused() {
        let e = write(Path::new("/nonexistent-dir/x.csv"), &sample()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/x.csv"), "{e}");
        let e = write(Path::new("x.txt"), &sample()).unwrap_err();
        assert!(e.to_string().contains(".csv or .jsonl"), "{e}");
    }
}
