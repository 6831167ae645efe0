//! Recorded captures: every frame the tap saw (both legs, every packet kind,
//! connection opens and closes), the faults injected, timing, protocol
//! version and properties — as JSON Lines, so a capture can be opened again
//! in the window, replayed against a backend, or checked offline.
//!
//! The first line is a header; then one line per fault (`{"fault": …}`) and
//! one per frame (a [`WireEvent`], payload in base64).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A recorded capture read back (see `export::record`).
#[derive(Debug, Default)]
pub struct Recording {
    pub path: PathBuf,
    pub scenario: Option<String>,
    pub started_us: Option<u64>,
    pub events: Vec<WireEvent>,
    pub faults: Vec<FaultMarker>,
    /// Frames the capture had evicted (its bound) before it was saved: the
    /// recording starts later than the run did.
    pub evicted: u64,
}

use crate::fault::FaultMarker;
use crate::wire::WireEvent;

/// The header's `format` value.
pub const FORMAT: &str = "mqtt-workbench capture";
pub const VERSION: u32 = 1;
/// Frames a recording may hold (a full capture store is 1M events).
pub const MAX_EVENTS: usize = 5_000_000;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    #[serde(default)]
    scenario: Option<String>,
    /// When the scenario started (µs since the epoch), for offline checks.
    #[serde(default)]
    started_us: Option<u64>,
    events: usize,
    faults: usize,
    /// Frames evicted by the capture's bound before saving (0: none; older files).
    #[serde(default, skip_serializing_if = "is_zero")]
    evicted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize)]
struct FaultLine {
    fault: FaultMarker,
}

/// Write a recording; returns the number of frames written.
pub fn write<'a>(
    path: &Path,
    events: impl Iterator<Item = &'a WireEvent>,
    n: usize,
    faults: &[FaultMarker],
    scenario: Option<(&str, u64)>,
) -> std::io::Result<usize> {
    write_evicted(path, events, n, faults, scenario, 0)
}

/// [`write`], saying how many older frames the capture had evicted.
pub fn write_evicted<'a>(
    path: &Path,
    events: impl Iterator<Item = &'a WireEvent>,
    n: usize,
    faults: &[FaultMarker],
    scenario: Option<(&str, u64)>,
    evicted: u64,
) -> std::io::Result<usize> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        scenario: scenario.map(|(s, _)| s.to_string()),
        started_us: scenario.map(|(_, t)| t),
        events: n,
        faults: faults.len(),
        evicted,
    };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    for f in faults {
        serde_json::to_writer(&mut out, &FaultLine { fault: f.clone() })?;
        out.write_all(b"\n")?;
    }
    let mut written = 0;
    for e in events {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
        written += 1;
    }
    out.flush()?;
    debug_assert_eq!(written, n);
    Ok(written)
}

/// Why a recording could not be read: the file, and where in it.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{}: {error}", path.display())]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    /// At `line` (from 1): what was found, and what was expected.
    #[error("{}:{line}: {what}", path.display())]
    At {
        path: PathBuf,
        line: usize,
        what: String,
    },
}

/// Read a recording. Errors name the file and line and say what was expected;
/// nothing is returned unless the whole file read.
pub fn read(path: &Path) -> Result<Recording, RecordError> {
    let file = std::fs::File::open(path).map_err(|error| RecordError::Open {
        path: path.to_path_buf(),
        error,
    })?;
    read_from(std::io::BufReader::new(file), path)
}

/// [`read`] from any reader; `path` names it in errors and in the recording.
pub fn read_from(reader: impl std::io::BufRead, path: &Path) -> Result<Recording, RecordError> {
    let mut lines = reader.lines();
    let at = |line: usize, what: String| RecordError::At {
        path: path.to_path_buf(),
        line,
        what,
    };
    let first = lines
        .next()
        .ok_or_else(|| at(1, "empty file: expected a recorded capture".into()))?
        .map_err(|e| at(1, e.to_string()))?;
    let header: Header = serde_json::from_str(&first).map_err(|_| {
        at(
            1,
            format!("not a recorded capture: expected a header line {{\"format\": \"{FORMAT}\", …}} (save one with File → Save capture or run --record)"),
        )
    })?;
    if header.format != FORMAT || header.version > VERSION {
        return Err(at(
            1,
            format!(
                "\"{}\" version {}: expected \"{FORMAT}\" version {VERSION} or older",
                header.format, header.version
            ),
        ));
    }
    let mut rec = Recording {
        path: path.to_path_buf(),
        scenario: header.scenario,
        started_us: header.started_us,
        events: Vec::with_capacity(header.events.min(MAX_EVENTS)),
        faults: Vec::new(),
        evicted: header.evicted,
    };
    for (k, line) in lines.enumerate() {
        let n = k + 2;
        let line = line.map_err(|e| at(n, e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with("{\"fault\"") {
            let f: FaultLine =
                serde_json::from_str(&line).map_err(|e| at(n, format!("a fault line: {e}")))?;
            rec.faults.push(f.fault);
            continue;
        }
        if rec.events.len() >= MAX_EVENTS {
            return Err(at(n, format!("more than {MAX_EVENTS} frames")));
        }
        let ev: WireEvent = serde_json::from_str(&line).map_err(|e| {
            at(
                n,
                format!("expected a recorded frame (column {}): {e}", e.column()),
            )
        })?;
        rec.events.push(ev);
    }
    Ok(rec)
}

/// What [`merge`] found: the merged capture, and clients seen in more than
/// one recording (shards that overlap, or a client that moved between them).
#[derive(Debug, Default)]
pub struct Merged {
    pub recording: Recording,
    pub shared_clients: Vec<String>,
}

/// Combine the recordings of sharded runs into one capture: frames and
/// faults in time order (stable for equal times), connection ids renumbered
/// so that no two recordings share one, the earliest start as the start.
pub fn merge(recordings: Vec<Recording>) -> Merged {
    use std::collections::{BTreeMap, BTreeSet};
    let mut out = Recording {
        path: std::path::PathBuf::new(),
        scenario: recordings.iter().find_map(|r| r.scenario.clone()),
        started_us: recordings.iter().filter_map(|r| r.started_us).min(),
        events: Vec::with_capacity(recordings.iter().map(|r| r.events.len()).sum()),
        faults: Vec::new(),
        evicted: recordings.iter().map(|r| r.evicted).sum(),
    };
    let mut owners: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    for (k, r) in recordings.iter().enumerate() {
        for e in &r.events {
            if !e.client_id.is_empty() {
                owners.entry(&e.client_id).or_default().insert(k);
            }
        }
    }
    let shared_clients = owners
        .into_iter()
        .filter(|(_, o)| o.len() > 1)
        .map(|(id, _)| id.to_string())
        .collect();
    let mut offset = 0;
    for r in recordings {
        let next = offset + r.events.iter().map(|e| e.conn + 1).max().unwrap_or(0);
        out.events.extend(r.events.into_iter().map(|mut e| {
            e.conn += offset;
            e
        }));
        out.faults.extend(r.faults);
        offset = next;
    }
    out.events.sort_by_key(|e| e.t_us);
    out.faults.sort_by_key(|f| f.t_us);
    // Every shard runs the timeline: one marker per entry, the first to fire.
    let mut fired = std::collections::HashSet::new();
    out.faults
        .retain(|f| f.timeline.is_none_or(|k| fired.insert(k)));
    Merged {
        recording: out,
        shared_clients,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Direction, Injected, PacketKind, V5Props, WireDetail};
    use std::sync::Arc;

    #[test]
    fn merging_shards_orders_frames_and_keeps_connections_apart() {
        let ev = |t: u64, conn: u64, id: &str| {
            WireEvent::new(
                t,
                conn,
                Arc::from(id),
                Direction::ClientToBroker,
                PacketKind::Publish,
            )
        };
        let a = Recording {
            scenario: Some("s".into()),
            started_us: Some(100),
            events: vec![ev(110, 0, "a-1"), ev(130, 1, "a-2"), ev(150, 0, "both")],
            faults: vec![FaultMarker {
                t_us: 105,
                label: "drop".into(),
                timeline: Some(0),
            }],
            ..Recording::default()
        };
        let b = Recording {
            scenario: Some("s".into()),
            started_us: Some(90),
            events: vec![ev(120, 0, "b-1"), ev(140, 1, "both")],
            faults: vec![
                FaultMarker {
                    t_us: 125,
                    label: "drop".into(),
                    timeline: Some(0),
                },
                FaultMarker {
                    t_us: 126,
                    label: "by hand".into(),
                    timeline: None,
                },
            ],
            ..Recording::default()
        };
        let m = merge(vec![a, b]);
        let r = &m.recording;
        assert_eq!(r.started_us, Some(90));
        let order: Vec<(u64, u64, &str)> = r
            .events
            .iter()
            .map(|e| (e.t_us, e.conn, &*e.client_id))
            .collect();
        assert_eq!(
            order,
            [
                (110, 0, "a-1"),
                (120, 2, "b-1"),
                (130, 1, "a-2"),
                (140, 3, "both"),
                (150, 0, "both")
            ]
        );
        // Shard a fired timeline entry 0 too, later: one marker stays, the first.
        assert_eq!(
            r.faults.iter().map(|f| f.t_us).collect::<Vec<_>>(),
            [105, 126]
        );
        assert_eq!(m.shared_clients, ["both"]);
    }

    #[test]
    fn a_recording_round_trips_every_field() {
        let mut p = WireEvent::new(
            1_000_000,
            7,
            Arc::from("dev-1"),
            Direction::ClientToBroker,
            PacketKind::Publish,
        );
        p.topic = Some(Arc::from("a/b"));
        p.payload = Some(bytes::Bytes::from_static(&[0, 159, 146, 150, b'x']));
        p.qos = 2;
        p.retain = true;
        p.injected = Some(Injected::Delayed(120));
        p.protocol = 5;
        p.v5 = Some(Box::new(V5Props {
            user_properties: vec![("k".into(), "v".into())],
            correlation_data: Some("c-1".into()),
            ..V5Props::default()
        }));
        let mut c = WireEvent::new(
            900_000,
            7,
            Arc::from("dev-1"),
            Direction::ClientToBroker,
            PacketKind::Closed,
        );
        c.detail = WireDetail::Closed(crate::wire::CloseReason::Error("why".into()));
        let faults = vec![FaultMarker {
            t_us: 950_000,
            label: "drop dev-1".into(),
            timeline: Some(0),
        }];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cap.jsonl");
        assert_eq!(
            write(&path, [&c, &p].into_iter(), 2, &faults, Some(("s", 1))).unwrap(),
            2
        );
        let back = read(&path).unwrap();
        assert_eq!(back.faults, faults);
        assert_eq!(back.scenario.as_deref(), Some("s"));
        assert_eq!(back.events.len(), 2);
        let q = &back.events[1];
        assert_eq!(
            (q.t_us, q.conn, &*q.client_id, q.qos, q.retain),
            (1_000_000, 7, "dev-1", 2, true)
        );
        assert_eq!(q.payload, p.payload);
        assert_eq!(q.v5, p.v5);
        assert_eq!(q.injected, Some(Injected::Delayed(120)));
        assert_eq!(back.events[0].detail, c.detail);
    }

    #[test]
    fn bad_files_say_where_and_what() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        std::fs::write(&path, "time,topic\n1,a\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("x.jsonl:1: not a recorded capture"), "{e}");
        let header =
            format!("{{\"format\":\"{FORMAT}\",\"version\":1,\"events\":1,\"faults\":0}}\n");
        std::fs::write(&path, format!("{header}{{\"t_us\": \"soon\"}}\n")).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("x.jsonl:2: expected a recorded frame"), "{e}");
    }
}
