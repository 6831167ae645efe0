//! Reading a capture database: back into a [`Recording`] (File → Open
//! capture), a paged payload search, and read-only SQL. Every reader opens
//! the file read-only, so the writer goes on while it reads.

use std::path::{Path, PathBuf};

use super::{DbError, FORMAT, FORMAT_2, postings, row};
use crate::checks::{PayloadCheck, PayloadMatcher};
use crate::export::record::Recording;
use crate::fault::FaultMarker;
use crate::wire::{WireEvent, topic_matches};

/// Frames a recording read from a database holds at most (the newest).
pub const MAX_READ: usize = 500_000;

fn open_read_only(path: &Path) -> Result<rusqlite::Connection, DbError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(DbError::sqlite(path))?;
    let format: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
            r.get(0)
        })
        .ok();
    if format.as_deref() != Some(FORMAT) && format.as_deref() != Some(FORMAT_2) {
        return Err(DbError::NotACapture {
            path: path.to_path_buf(),
        });
    }
    Ok(conn)
}

/// The newest [`MAX_READ`] frames and every fault, as a recording.
pub fn read(path: &Path) -> Result<Recording, DbError> {
    let conn = open_read_only(path)?;
    let sql = format!(
        "SELECT {} FROM (SELECT * FROM frames ORDER BY id DESC LIMIT {MAX_READ}) ORDER BY id",
        row::COLUMNS
    );
    let err = DbError::sqlite(path);
    let mut stmt = conn.prepare(&sql).map_err(DbError::sqlite(path))?;
    let mut events = Vec::new();
    let mut rows = stmt.query([]).map_err(DbError::sqlite(path))?;
    while let Some(r) = rows.next().map_err(DbError::sqlite(path))? {
        match row::from_row(r).map_err(DbError::sqlite(path))? {
            Ok((_, ev)) => events.push(ev),
            Err(why) => {
                return Err(DbError::BadRow {
                    path: path.to_path_buf(),
                    why,
                });
            }
        }
    }
    let total: i64 = conn
        .query_row("SELECT COUNT(*) FROM frames", [], |r| r.get(0))
        .map_err(DbError::sqlite(path))?;
    let mut faults = Vec::new();
    let mut stmt = conn
        .prepare("SELECT t_us, label, timeline FROM faults ORDER BY id")
        .map_err(DbError::sqlite(path))?;
    let found = stmt
        .query_map([], |r| {
            Ok(FaultMarker {
                t_us: r.get::<_, i64>(0)? as u64,
                label: r.get(1)?,
                timeline: r.get::<_, Option<i64>>(2)?.map(|t| t as usize),
            })
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(err)?;
    faults.extend(found);
    let meta = |key: &str| -> Option<String> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .ok()
    };
    Ok(Recording {
        path: path.to_path_buf(),
        scenario: meta("scenario"),
        started_us: meta("started_us").and_then(|s| s.parse().ok()),
        evicted: (total as u64).saturating_sub(events.len() as u64),
        events,
        faults,
    })
}

/// What to look for: PUBLISH frames on `topic` (a filter with wildcards, or
/// text the topic contains), from or to `client` (text the client id
/// contains), whose payload passes `payload`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchSpec {
    pub topic: String,
    pub client: String,
    pub payload: Option<PayloadCheck>,
}

/// One page of results, newest first.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub path: PathBuf,
    pub spec: SearchSpec,
    /// (row id, frame), newest first.
    pub rows: Vec<(i64, WireEvent)>,
    /// Where the next (older) page starts, when there may be one.
    pub next_before: Option<i64>,
    /// Frames examined for this page.
    pub scanned: u64,
}

/// Topic or client ids a search names in its SQL at most.
const MAX_IDS: usize = 10_000;

/// Rows a page examines at most (a rare match in a large file takes several pages).
const SCAN_PER_PAGE: u64 = 200_000;

/// Topics (or clients) whose postings a search merges at most; past it the
/// matches are dense, and reading the frames newest first finds them sooner.
const MAX_MERGED: usize = 64;

/// A page of at most `limit` matches with ids below `before` (None: from the newest).
pub fn search(
    path: &Path,
    spec: &SearchSpec,
    before: Option<i64>,
    limit: usize,
) -> Result<SearchPage, DbError> {
    let conn = open_read_only(path)?;
    let matcher = spec
        .payload
        .clone()
        .map(PayloadMatcher::new)
        .transpose()
        .map_err(|why| DbError::BadRow {
            path: path.to_path_buf(),
            why,
        })?;
    let topic = spec.topic.trim().to_string();
    let wildcard = topic.contains(['+', '#']);
    let (topic_lc, client_lc) = (topic.to_lowercase(), spec.client.trim().to_lowercase());
    let topic_ok = |name: &str| {
        topic.is_empty()
            || if wildcard {
                topic_matches(name, &topic)
            } else {
                name.to_lowercase().contains(&topic_lc)
            }
    };
    let client_ok = |name: &str| client_lc.is_empty() || name.to_lowercase().contains(&client_lc);
    // The topics and clients that match, by their names (a small table
    // each), then their frames through the postings.
    let topics = (!topic.is_empty())
        .then(|| matching_ids(&conn, "topics", topic_ok))
        .transpose()
        .map_err(DbError::sqlite(path))?;
    let clients = (!client_lc.is_empty())
        .then(|| matching_ids(&conn, "clients", client_ok))
        .transpose()
        .map_err(DbError::sqlite(path))?;
    let mut page = SearchPage {
        path: path.to_path_buf(),
        spec: spec.clone(),
        ..SearchPage::default()
    };
    if topics.as_ref().is_some_and(Vec::is_empty) || clients.as_ref().is_some_and(Vec::is_empty) {
        return Ok(page);
    }
    let before = before.unwrap_or(i64::MAX);
    let mut last = None;
    // A selected row as (id, frame), or why it does not read back.
    let decode = |r: &rusqlite::Row<'_>| {
        row::from_row(r)
            .map_err(DbError::sqlite(path))?
            .map_err(|why| DbError::BadRow {
                path: path.to_path_buf(),
                why,
            })
    };
    // Whether a frame read is a match; true when the page is full.
    let mut take = |page: &mut SearchPage, id: i64, ev: WireEvent| {
        page.scanned += 1;
        last = Some(id);
        let payload_ok = matcher
            .as_ref()
            .is_none_or(|m| m.matches(ev.payload.as_deref().unwrap_or(&[])));
        let names_ok = topic_ok(ev.topic.as_deref().unwrap_or("")) && client_ok(&ev.client_id);
        if names_ok && payload_ok {
            page.rows.push((id, ev));
        }
        page.rows.len() >= limit || page.scanned >= SCAN_PER_PAGE
    };
    fn few(ids: &Option<Vec<i64>>) -> Option<&Vec<i64>> {
        ids.as_ref().filter(|ids| ids.len() <= MAX_MERGED)
    }
    let merged = if !postings::present(&conn) {
        None
    } else if let Some(ids) = few(&topics) {
        Some((postings::Key::Topic, ids))
    } else {
        few(&clients).map(|ids| (postings::Key::Client, ids))
    };
    if let Some((key, ids)) = merged {
        // The named topics' (or clients') frames, newest first, by their postings.
        let sql = format!(
            "{} WHERE f.id = ?1 AND f.kind = 'Publish'",
            row::SELECT_FRAMES
        );
        let mut stmt = conn.prepare(&sql).map_err(DbError::sqlite(path))?;
        let mut newest =
            postings::Newest::new(&conn, key, ids, before).map_err(DbError::sqlite(path))?;
        while let Some(id) = newest.next().map_err(DbError::sqlite(path))? {
            let mut rows = stmt.query([id]).map_err(DbError::sqlite(path))?;
            // No row: not a PUBLISH (client postings list every frame), or retired.
            let Some(r) = rows.next().map_err(DbError::sqlite(path))? else {
                continue;
            };
            let (id, ev) = decode(r)?;
            if take(&mut page, id, ev) {
                break;
            }
        }
    } else {
        // Every frame newest first, the names filtered in SQL as well when
        // the list is short enough to write out.
        let among = |column: &str, ids: &Option<Vec<i64>>| match ids {
            Some(ids) if ids.len() <= MAX_IDS => {
                let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!(" AND f.{column} IN ({})", list.join(","))
            }
            _ => String::new(),
        };
        let sql = format!(
            "{} WHERE f.kind = 'Publish' AND f.id < ?1{}{} ORDER BY f.id DESC LIMIT {SCAN_PER_PAGE}",
            row::SELECT_FRAMES,
            among("topic", &topics),
            among("client", &clients),
        );
        let mut stmt = conn.prepare(&sql).map_err(DbError::sqlite(path))?;
        let mut rows = stmt.query([before]).map_err(DbError::sqlite(path))?;
        while let Some(r) = rows.next().map_err(DbError::sqlite(path))? {
            let (id, ev) = decode(r)?;
            if take(&mut page, id, ev) {
                break;
            }
        }
    }
    // More may follow unless the scan reached the oldest row.
    let exhausted = page.rows.len() < limit && page.scanned < SCAN_PER_PAGE;
    page.next_before = if exhausted { None } else { last };
    Ok(page)
}

/// The ids in `table` (`topics` or `clients`) whose name passes `keep`.
fn matching_ids(
    conn: &rusqlite::Connection,
    table: &str,
    keep: impl Fn(&str) -> bool,
) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare(&format!("SELECT id, name FROM {table}"))?;
    let mut rows = stmt.query([])?;
    let mut ids = Vec::new();
    while let Some(r) = rows.next()? {
        let name: String = r.get(1)?;
        if keep(&name) {
            ids.push(r.get(0)?);
        }
    }
    Ok(ids)
}

/// A result cell.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    #[serde(serialize_with = "blob_as_text")]
    Blob(Vec<u8>),
}

fn blob_as_text<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}

impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(i) => Some(*i as f64),
            Value::Real(f) => Some(*f),
            Value::Text(t) => t.trim().parse().ok(),
            Value::Null | Value::Blob(_) => None,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Real(x) => write!(f, "{x}"),
            Value::Text(t) => f.write_str(t),
            Value::Blob(b) => f.write_str(&String::from_utf8_lossy(b)),
        }
    }
}

/// The answer to a read-only SQL statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    pub sql: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// More rows followed than `max_rows`.
    pub truncated: bool,
}

/// Run one statement read-only (the connection cannot write, and
/// `query_only` refuses even a write through an attached file); at most
/// `max_rows` rows are kept.
pub fn query(path: &Path, sql: &str, max_rows: usize) -> Result<QueryResult, DbError> {
    let conn = open_read_only(path)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(DbError::sqlite(path))?;
    let mut stmt = conn.prepare(sql).map_err(DbError::sqlite(path))?;
    let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
    let n = columns.len();
    let mut out = QueryResult {
        sql: sql.to_string(),
        columns,
        ..QueryResult::default()
    };
    let mut rows = stmt.query([]).map_err(DbError::sqlite(path))?;
    while let Some(r) = rows.next().map_err(DbError::sqlite(path))? {
        if out.rows.len() >= max_rows {
            out.truncated = true;
            break;
        }
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            let v: rusqlite::types::Value = r.get(i).map_err(DbError::sqlite(path))?;
            cells.push(row::cell(v));
        }
        out.rows.push(cells);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{DbOptions, Writer};
    use super::*;
    use crate::wire::{Direction, Injected, PacketKind, V5Props, WireDetail};
    use std::sync::Arc;

    fn frames() -> Vec<WireEvent> {
        let mut connect = WireEvent::new(
            1_000,
            7,
            Arc::from("dev-1"),
            Direction::ClientToBroker,
            PacketKind::Connect,
        );
        connect.protocol = 5;
        connect.detail = WireDetail::Connect {
            protocol: 5,
            clean_session: false,
            keep_alive_s: 30,
            will: None,
            username: Some("u".into()),
        };
        connect.v5 = Some(Box::new(V5Props {
            session_expiry_s: Some(60),
            ..V5Props::default()
        }));
        let mut publish = WireEvent::new(
            2_000,
            7,
            Arc::from("dev-1"),
            Direction::ClientToBroker,
            PacketKind::Publish,
        );
        publish.topic = Some(Arc::from("plant/ü/temp"));
        publish.payload = Some(bytes::Bytes::from_static(b"{\"t\": 21.5}"));
        publish.qos = 2;
        publish.pkid = 9;
        publish.retain = true;
        publish.dup = true;
        publish.size = 33;
        publish.injected = Some(Injected::Delayed(120));
        let mut binary = publish.clone();
        binary.t_us = 2_500;
        binary.payload = Some(bytes::Bytes::from_static(&[0, 159, 146, 150]));
        binary.injected = None;
        let closed = WireEvent::new(
            3_000,
            7,
            Arc::from("dev-1"),
            Direction::ClientToBroker,
            PacketKind::Closed,
        );
        vec![connect, publish, binary, closed]
    }

    fn as_json(e: &WireEvent) -> serde_json::Value {
        serde_json::to_value(e).expect("a frame serializes")
    }

    #[test]
    fn frames_read_back_field_for_field_and_search_and_query_find_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let w = Writer::spawn(DbOptions {
            path: path.clone(),
            max_bytes: None,
            max_age: None,
        })
        .unwrap();
        w.frames(frames());
        w.fault(FaultMarker {
            t_us: 2_200,
            label: "latency 120 ms".into(),
            timeline: Some(0),
        });
        let st = w.flush();
        assert_eq!((st.written, st.lost()), (4, 0), "{st:?}");
        let rec = read(&path).unwrap();
        let want: Vec<_> = frames().iter().map(as_json).collect();
        let got: Vec<_> = rec.events.iter().map(as_json).collect();
        assert_eq!(got, want);
        assert_eq!(rec.faults.len(), 1);
        assert_eq!(rec.faults[0].timeline, Some(0));

        let spec = SearchSpec {
            topic: "plant/+/temp".into(),
            client: "DEV".into(),
            payload: Some(PayloadCheck::Json {
                field: "t".into(),
                equals: None,
                above: Some(20.0),
                below: None,
                outside: None,
                inside: None,
            }),
        };
        let page = search(&path, &spec, None, 10).unwrap();
        assert_eq!(page.rows.len(), 1, "only the JSON payload above 20");
        assert_eq!(page.rows[0].1.t_us, 2_000);
        assert_eq!(page.next_before, None);

        let q = query(
            &path,
            "SELECT kind, COUNT(*) AS n FROM frames GROUP BY kind ORDER BY kind",
            100,
        )
        .unwrap();
        assert_eq!(q.columns, ["kind", "n"]);
        assert_eq!(
            q.rows,
            [
                [Value::Text("Closed".into()), Value::Integer(1)],
                [Value::Text("Connect".into()), Value::Integer(1)],
                [Value::Text("Publish".into()), Value::Integer(2)],
            ]
        );
        let refused = query(&path, "DELETE FROM frame_rows", 10).unwrap_err();
        assert!(refused.to_string().contains("c.sqlite"), "{refused}");
        assert_eq!(read(&path).unwrap().events.len(), 4, "nothing was deleted");
    }

    /// Publishes on `a/<k % 3>` from `dev-<k % 2>`, in `commits` transactions.
    fn interleaved(path: &Path, n: u64, commits: u64) {
        let w = Writer::spawn(DbOptions {
            path: path.to_path_buf(),
            max_bytes: None,
            max_age: None,
        })
        .unwrap();
        let all: Vec<WireEvent> = (0..n)
            .map(|k| {
                let mut e = frames()[1].clone();
                e.t_us = k;
                e.client_id = Arc::from(format!("dev-{}", k % 2));
                e.topic = Some(Arc::from(format!("a/{}", k % 3)));
                e.payload = Some(bytes::Bytes::from(format!("{{\"k\": {k}}}")));
                e
            })
            .collect();
        for part in all.chunks((n / commits) as usize) {
            w.frames(part.to_vec());
            // A flush commits: each part is a transaction of its own.
            w.flush();
        }
        assert_eq!(w.flush().written, n);
    }

    /// Every match, a page at a time (`limit` each), newest first: their `t_us`.
    fn every_page(path: &Path, spec: &SearchSpec, limit: usize) -> Vec<u64> {
        let mut found = Vec::new();
        let mut before = None;
        for _ in 0..1000 {
            let page = search(path, spec, before, limit).unwrap();
            assert!(page.rows.len() <= limit);
            found.extend(page.rows.iter().map(|(_, e)| e.t_us));
            match page.next_before {
                Some(b) => before = Some(b),
                None => return found,
            }
        }
        panic!("the pages never ended");
    }

    #[test]
    fn a_search_merges_the_postings_of_many_transactions_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sqlite");
        interleaved(&path, 600, 6);
        let spec = |topic: &str, client: &str| SearchSpec {
            topic: topic.into(),
            client: client.into(),
            payload: None,
        };
        let want = |keep: &dyn Fn(u64) -> bool| -> Vec<u64> {
            (0..600).rev().filter(|&k| keep(k)).collect()
        };
        // One topic (its postings), two topics by a wildcard (merged), a
        // client (its postings), a topic and a client (topic postings, the
        // client checked), and a payload predicate on top.
        assert_eq!(
            every_page(&path, &spec("a/1", ""), 7),
            want(&|k| k % 3 == 1)
        );
        assert_eq!(every_page(&path, &spec("a/+", ""), 50), want(&|_| true));
        assert_eq!(
            every_page(&path, &spec("", "dev-1"), 30),
            want(&|k| k % 2 == 1)
        );
        assert_eq!(
            every_page(&path, &spec("a/2", "dev-0"), 11),
            want(&|k| k % 3 == 2 && k % 2 == 0)
        );
        let mut above = spec("a/0", "");
        above.payload = Some(PayloadCheck::Json {
            field: "k".into(),
            equals: None,
            above: Some(590.0),
            below: None,
            outside: None,
            inside: None,
        });
        assert_eq!(every_page(&path, &above, 200), [597, 594, 591]);

        // SQL reaches the same frames through the views.
        let q = query(
            &path,
            "SELECT COUNT(*), MIN(t_us), MAX(t_us) FROM frames
             WHERE id IN (SELECT id FROM topic_frame_ids WHERE topic = 'a/1')
               AND id IN (SELECT id FROM client_frame_ids WHERE client_id = 'dev-1')",
            10,
        )
        .unwrap();
        assert_eq!(
            q.rows,
            [[Value::Integer(100), Value::Integer(1), Value::Integer(595)]]
        );
        // A time range through the spans, as the schema's comment says.
        let q = query(
            &path,
            "SELECT COUNT(*), MIN(t_us), MAX(t_us) FROM frames WHERE t_us BETWEEN 150 AND 349
             AND id BETWEEN (SELECT MIN(first_id) FROM spans WHERE t_max >= 150)
                        AND (SELECT MAX(last_id) FROM spans WHERE t_min <= 349)",
            10,
        )
        .unwrap();
        assert_eq!(
            q.rows,
            [[
                Value::Integer(200),
                Value::Integer(150),
                Value::Integer(349)
            ]]
        );
    }

    #[test]
    fn a_file_that_is_not_a_capture_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sqlite");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE t (x)").unwrap();
        drop(c);
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("other.sqlite: not a capture database"), "{e}");
        let spawn = |p: &Path| {
            Writer::spawn(DbOptions {
                path: p.to_path_buf(),
                max_bytes: None,
                max_age: None,
            })
            .err()
            .map(|e| e.to_string())
        };
        let e = spawn(&path).unwrap_or_default();
        assert!(e.contains("other.sqlite: not a capture database"), "{e}");
        let objects = |p: &Path| -> Vec<String> {
            let c = rusqlite::Connection::open(p).unwrap();
            let mut stmt = c
                .prepare("SELECT name FROM sqlite_master ORDER BY name")
                .unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(
            objects(&path),
            ["t"],
            "the writer left the other file as it was"
        );

        // A format-2 file (indexes on topic and client, no postings) still
        // reads and searches; the writer leaves it alone, new frames go to a
        // new file.
        let old = dir.path().join("old.sqlite");
        let c = rusqlite::Connection::open(&old).unwrap();
        c.execute_batch(super::super::SCHEMA).unwrap();
        c.execute_batch(
            "DROP VIEW topic_frame_ids; DROP VIEW client_frame_ids;
             DROP TABLE topic_postings; DROP TABLE client_postings; DROP TABLE spans;
             CREATE INDEX frames_t ON frame_rows (t_us);
             CREATE INDEX frames_topic ON frame_rows (topic);
             CREATE INDEX frames_client ON frame_rows (client);
             INSERT INTO topics (id, name) VALUES (1, 'old/topic');
             INSERT INTO clients (id, name) VALUES (1, 'old-dev');
             INSERT INTO frame_rows (t_us, conn, client, dir, kind, pkid, qos, retain, dup,
                                     topic, payload, size, protocol)
             VALUES (5, 1, 1, 'client_to_broker', 'Publish', 0, 0, 0, 0, 1, X'7B7D', 20, 4);",
        )
        .unwrap();
        c.execute(
            "INSERT INTO meta VALUES ('format', ?1)",
            [super::super::FORMAT_2],
        )
        .unwrap();
        drop(c);
        let before = objects(&old);
        let e = spawn(&old).unwrap_or_default();
        assert!(
            e.contains("old.sqlite: written by an earlier version"),
            "{e}"
        );
        assert_eq!(objects(&old), before, "the writer added nothing to it");
        assert_eq!(read(&old).unwrap().events.len(), 1);
        let spec = SearchSpec {
            topic: "old/topic".into(),
            ..SearchSpec::default()
        };
        assert_eq!(every_page(&old, &spec, 10), [5]);
        assert!(
            Writer::spawn(DbOptions {
                path: dir.path().join("missing-dir/x.sqlite"),
                max_bytes: None,
                max_age: None,
            })
            .is_err()
        );
    }

    #[test]
    fn retention_keeps_the_newest_frames_under_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        let w = Writer::spawn(DbOptions {
            path: path.clone(),
            max_bytes: Some(256 * 1024),
            max_age: None,
        })
        .unwrap();
        let mut big = frames()[1].clone();
        big.payload = Some(bytes::Bytes::from(vec![b'x'; 1024]));
        let batch = (0..1000u64)
            .map(|k| {
                let mut e = big.clone();
                e.t_us = k;
                e
            })
            .collect();
        w.frames(batch);
        assert_eq!(w.flush().written, 1000);
        let conn = open_read_only(&path).unwrap();
        let before: i64 = conn
            .query_row("SELECT COUNT(*) FROM frames", [], |r| r.get(0))
            .unwrap();
        assert_eq!(before, 1000);
        drop(conn);
        super::super::retain_now(&path, 256 * 1024).unwrap();
        let conn = open_read_only(&path).unwrap();
        let (n, oldest): (i64, i64) = conn
            .query_row("SELECT COUNT(*), MIN(t_us) FROM frames", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert!(n < 1000 && n > 50, "kept {n}");
        assert_eq!(oldest, 1000 - n, "the newest are kept");
        // The postings of removed frames went with them; a search finds the rest.
        let listed: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM topic_frame_ids WHERE id >= (SELECT MIN(id) FROM frame_rows)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(listed, n);
        let spec = SearchSpec {
            topic: "plant/ü/temp".into(),
            ..SearchSpec::default()
        };
        assert_eq!(every_page(&path, &spec, 100).len() as i64, n);
    }

    #[test]
    fn retention_retires_the_postings_of_removed_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        interleaved(&path, 600, 6);
        let postings = |p: &Path| -> i64 {
            let conn = open_read_only(p).unwrap();
            conn.query_row(
                "SELECT (SELECT COUNT(*) FROM topic_postings) + (SELECT COUNT(*) FROM client_postings)",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        // Six transactions, three topics and two clients each.
        assert_eq!(postings(&path), 6 * 5);
        let conn = rusqlite::Connection::open(&path).unwrap();
        // Retention by age takes whole transactions: before 250 µs are the
        // first two (0–99, 100–199); the third (200–299) has later frames.
        let removed = super::super::postings::remove_older(&conn, 250).unwrap();
        assert_eq!(removed, 200);
        // By size, the oldest frames go whatever their transaction: the
        // third's postings then list some removed frames and some kept.
        conn.execute("DELETE FROM frame_rows WHERE t_us < 250", [])
            .unwrap();
        super::super::postings::retire(&conn).unwrap();
        let spans: i64 = conn
            .query_row("SELECT COUNT(*) FROM spans", [], |r| r.get(0))
            .unwrap();
        drop(conn);
        assert_eq!((postings(&path), spans), (4 * 5, 4));
        let spec = SearchSpec {
            topic: "a/0".into(),
            ..SearchSpec::default()
        };
        let want: Vec<u64> = (250..600).rev().filter(|k| k % 3 == 0).collect();
        assert_eq!(every_page(&path, &spec, 40), want);
    }
}
