//! A [`WireEvent`] as a row of `frames`, and back. Enumerations are stored
//! as their serde names (`'Publish'`, `'client_to_broker'`) so that SQL reads
//! like the capture; structured parts (`detail`, `v5`, `injected`) as JSON.

use std::sync::Arc;

use bytes::Bytes;
use rusqlite::types::Value as Sql;

use crate::wire::{WireDetail, WireEvent};

/// The columns of `frame_rows` a frame fills, in binding order.
const INSERTED: &str = "t_us, conn, client, dir, kind, pkid, qos, retain, dup, topic, payload, size, protocol, injected, detail, v5";
const PARAMS_PER_ROW: usize = 16;

/// `INSERT INTO frame_rows (…) VALUES (?, …)`: one frame a statement. (64
/// frames to a multi-row INSERT measured slower: 13 µs a frame against 10 in
/// the writer thread, `bench --devices 1000 --rate 10 --capture-db`.)
pub(super) fn insert_sql() -> String {
    format!(
        "INSERT INTO frame_rows ({INSERTED}) VALUES ({})",
        vec!["?"; PARAMS_PER_ROW].join(",")
    )
}

/// The stored frames with their names, as [`from_row`] reads them (the
/// `frames` view is the same, for SQL typed by people).
pub(super) const SELECT_FRAMES: &str = "SELECT f.id, f.t_us, f.conn, c.name, f.dir, f.kind, f.pkid,
    f.qos, f.retain, f.dup, t.name, f.payload, f.size, f.protocol, f.injected, f.detail, f.v5
    FROM frame_rows f JOIN clients c ON c.id = f.client LEFT JOIN topics t ON t.id = f.topic";

/// The columns [`from_row`] reads, in its order.
pub(super) const COLUMNS: &str = "id, t_us, conn, client_id, dir, kind, pkid, qos, retain, dup, topic, payload, size, protocol, injected, detail, v5";

/// A unit enum's serde name (`PacketKind::Publish` → "Publish").
fn name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Names kept at most, each of topics' and clients' ids (past it the cache
/// starts again; the ids are in the database).
const MAX_NAMES: usize = 200_000;

/// The serde names of packet kinds and directions, made once each (a
/// commit inserts thousands of frames with a handful of distinct ones), and
/// the ids of the topics and client ids written so far.
#[derive(Default)]
pub(super) struct Names {
    kinds: std::collections::HashMap<crate::wire::PacketKind, Arc<str>>,
    dirs: std::collections::HashMap<crate::wire::Direction, Arc<str>>,
    topics: std::collections::HashMap<Arc<str>, i64>,
    clients: std::collections::HashMap<Arc<str>, i64>,
}

/// A name's id in `topics`, added if new.
const TOPIC_ID: &str = "INSERT INTO topics (name) VALUES (?1)
    ON CONFLICT (name) DO UPDATE SET name = name RETURNING id";
/// A name's id in `clients`, added if new.
const CLIENT_ID: &str = "INSERT INTO clients (name) VALUES (?1)
    ON CONFLICT (name) DO UPDATE SET name = name RETURNING id";

/// The id of `name` by `sql` ([`TOPIC_ID`] or [`CLIENT_ID`]), cached.
fn name_id(
    conn: &rusqlite::Connection,
    sql: &'static str,
    cache: &mut std::collections::HashMap<Arc<str>, i64>,
    name: &Arc<str>,
) -> rusqlite::Result<i64> {
    if let Some(&id) = cache.get(name) {
        return Ok(id);
    }
    let id = conn
        .prepare_cached(sql)?
        .query_row([&**name], |r| r.get(0))?;
    if cache.len() >= MAX_NAMES {
        cache.clear();
    }
    cache.insert(name.clone(), id);
    Ok(id)
}

impl Names {
    fn kind(&mut self, k: crate::wire::PacketKind) -> Arc<str> {
        self.kinds
            .entry(k)
            .or_insert_with(|| Arc::from(name(&k)))
            .clone()
    }

    fn dir(&mut self, d: crate::wire::Direction) -> Arc<str> {
        self.dirs
            .entry(d)
            .or_insert_with(|| Arc::from(name(&d)))
            .clone()
    }
}

fn json<T: serde::Serialize>(v: &T) -> Option<String> {
    serde_json::to_string(v).ok()
}

/// Insert one frame (`stmt`: [`insert_sql`]); its client's and topic's ids.
pub(super) fn insert(
    conn: &rusqlite::Connection,
    stmt: &mut rusqlite::CachedStatement<'_>,
    names: &mut Names,
    ev: &WireEvent,
) -> rusqlite::Result<(i64, Option<i64>)> {
    let detail = match ev.detail {
        WireDetail::None => None,
        ref d => json(d),
    };
    let client = name_id(conn, CLIENT_ID, &mut names.clients, &ev.client_id)?;
    let topic = match &ev.topic {
        Some(t) => Some(name_id(conn, TOPIC_ID, &mut names.topics, t)?),
        None => None,
    };
    let values: [&dyn rusqlite::ToSql; PARAMS_PER_ROW] = [
        &(ev.t_us as i64),
        &(ev.conn as i64),
        &client,
        &names.dir(ev.dir),
        &names.kind(ev.kind),
        &ev.pkid,
        &ev.qos,
        &ev.retain,
        &ev.dup,
        &topic,
        &ev.payload.as_deref(),
        &ev.size,
        &ev.protocol,
        &ev.injected.as_ref().and_then(json),
        &detail,
        &ev.v5.as_ref().and_then(json),
    ];
    stmt.execute(values.as_slice())?;
    Ok((client, topic))
}

/// Parse a JSON column (NULL: None); Err names the column.
fn column<T: serde::de::DeserializeOwned>(
    what: &str,
    s: Option<String>,
) -> Result<Option<T>, String> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| format!("{what}: {e}")))
        .transpose()
}

/// An enumeration column stored as its serde name.
fn named<T: serde::de::DeserializeOwned>(what: &str, s: String) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.clone()))
        .map_err(|e| format!("{what} \"{s}\": {e}"))
}

/// The row's id and its frame (selected as [`COLUMNS`]); the inner Err says
/// which column did not read back.
pub(super) fn from_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<(i64, WireEvent), String>> {
    let id: i64 = r.get(0)?;
    let (dir, kind): (String, String) = (r.get(4)?, r.get(5)?);
    let (injected, detail, v5): (Option<String>, Option<String>, Option<String>) =
        (r.get(14)?, r.get(15)?, r.get(16)?);
    let mut ev = match (named("dir", dir), named("kind", kind)) {
        (Ok(dir), Ok(kind)) => WireEvent::new(
            r.get::<_, i64>(1)? as u64,
            r.get::<_, i64>(2)? as u64,
            Arc::from(r.get::<_, String>(3)?),
            dir,
            kind,
        ),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    ev.pkid = r.get(6)?;
    ev.qos = r.get(7)?;
    ev.retain = r.get(8)?;
    ev.dup = r.get(9)?;
    ev.topic = r.get::<_, Option<String>>(10)?.map(Arc::from);
    ev.payload = r.get::<_, Option<Vec<u8>>>(11)?.map(Bytes::from);
    ev.size = r.get(12)?;
    ev.protocol = r.get(13)?;
    let structured = (|| -> Result<(), String> {
        ev.injected = column("injected", injected)?;
        ev.detail = column("detail", detail)?.unwrap_or(WireDetail::None);
        ev.v5 = column("v5", v5)?;
        Ok(())
    })();
    Ok(structured.map(|()| (id, ev)))
}

/// A result cell as plain data (for the Query tab and `query`).
pub(super) fn cell(v: Sql) -> super::Value {
    match v {
        Sql::Null => super::Value::Null,
        Sql::Integer(i) => super::Value::Integer(i),
        Sql::Real(f) => super::Value::Real(f),
        Sql::Text(s) => super::Value::Text(s),
        Sql::Blob(b) => super::Value::Blob(b),
    }
}
