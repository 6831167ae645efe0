//! Which frames belong to a topic or a client, written once a transaction
//! instead of as an index entry a frame.
//!
//! An SQLite index on `frame_rows (topic)` or `(client)` takes every frame
//! to a different leaf page (a thousand devices: a thousand hot pages), and
//! those two random inserts were most of what the database cost the
//! pipeline (README, "The capture database": +45–57 % CPU per 1k messages
//! with them, +15–20 % without). So the writer collects, while a transaction
//! is open, the frame ids of each topic and each client, and writes one row
//! per topic and per client when it commits: a *posting*, the ids as a JSON
//! array (so `json_each` reads them in any SQLite, the `topic_frame_ids` and
//! `client_frame_ids` views of [`super::SCHEMA`]). A thousand rows a second
//! instead of forty thousand index entries.
//!
//! Within one topic (or client) the postings are disjoint and in capture
//! order: a transaction's frames all come after the previous one's. A search
//! then merges the postings of the topics it names, newest first
//! ([`Newest`]).

use std::collections::{BinaryHeap, HashMap};

/// The two kinds of posting, by the table they are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    Topic,
    Client,
}

impl Key {
    fn table(self) -> &'static str {
        match self {
            Key::Topic => "topic_postings",
            Key::Client => "client_postings",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Key::Topic => "topic",
            Key::Client => "client",
        }
    }
}

/// The open transaction's frame ids by topic and by client, and the ids and
/// times it covers (its row in `spans`).
#[derive(Default)]
pub(super) struct Pending {
    topics: HashMap<i64, Vec<i64>>,
    clients: HashMap<i64, Vec<i64>>,
    /// (first id, last id, earliest t_us, latest t_us)
    span: Option<(i64, i64, i64, i64)>,
}

impl Pending {
    /// Frame `id` (its `frame_rows` row id), captured at `t_us`, has this
    /// client and topic.
    pub(super) fn add(&mut self, id: i64, t_us: i64, client: i64, topic: Option<i64>) {
        let (first, _, t_min, t_max) = self.span.unwrap_or((id, id, t_us, t_us));
        self.span = Some((first, id, t_min.min(t_us), t_max.max(t_us)));
        self.clients.entry(client).or_default().push(id);
        if let Some(t) = topic {
            self.topics.entry(t).or_default().push(id);
        }
    }

    /// Forget what was collected (the transaction rolled back).
    pub(super) fn clear(&mut self) {
        self.topics.clear();
        self.clients.clear();
        self.span = None;
    }

    /// Write one posting per topic and per client, inside the transaction
    /// about to commit, and start empty.
    pub(super) fn write(&mut self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        if let Some((first, last, t_min, t_max)) = self.span.take() {
            conn.prepare_cached(
                "INSERT INTO spans (first_id, last_id, t_min, t_max) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute([first, last, t_min, t_max])?;
        }
        for (key, map) in [
            (Key::Topic, &mut self.topics),
            (Key::Client, &mut self.clients),
        ] {
            let mut stmt = conn.prepare_cached(&format!(
                "INSERT INTO {} ({}, first_id, last_id, ids) VALUES (?1, ?2, ?3, ?4)",
                key.table(),
                key.column()
            ))?;
            for (k, ids) in map.drain() {
                let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
                    continue;
                };
                stmt.execute(rusqlite::params![k, first, last, json_ids(&ids)])?;
            }
        }
        Ok(())
    }
}

/// `[1,2,3]`: what `json_each` reads (written by hand: the ids are all
/// there is, and this runs for every frame).
fn json_ids(ids: &[i64]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(ids.len() * 9 + 2);
    s.push('[');
    for (n, id) in ids.iter().enumerate() {
        if n > 0 {
            s.push(',');
        }
        let _ = write!(s, "{id}");
    }
    s.push(']');
    s
}

/// The frames captured before `cutoff_us`, as retention by age removes
/// them: those of the transactions whose latest frame is older (the
/// `spans`, so that no index on `t_us` is needed).
pub(super) fn remove_older(conn: &rusqlite::Connection, cutoff_us: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM frame_rows WHERE id <=
            (SELECT MAX(last_id) FROM spans WHERE t_max < ?1)",
        [cutoff_us],
    )
}

/// Remove the postings and spans that only list frames retention removed:
/// every row before the first (in the order they were written) that lists
/// a frame still there. A few postings at the boundary may stay; a reader
/// skips ids that have no row.
pub(super) fn retire(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let oldest: Option<i64> = conn.query_row("SELECT MIN(id) FROM frame_rows", [], |r| r.get(0))?;
    let oldest = oldest.unwrap_or(i64::MAX);
    for t in ["topic_postings", "client_postings", "spans"] {
        conn.execute(
            &format!(
                "DELETE FROM {t} WHERE rowid < COALESCE(
                    (SELECT rowid FROM {t} WHERE last_id >= ?1 ORDER BY rowid LIMIT 1),
                    (SELECT MAX(rowid) + 1 FROM {t}))"
            ),
            [oldest],
        )?;
    }
    Ok(())
}

/// Whether the file has postings (format 3; format 2 had indexes instead).
pub(super) fn present(conn: &rusqlite::Connection) -> bool {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'topic_postings'",
        [],
        |_| Ok(()),
    )
    .is_ok()
}

/// One topic's (or client's) frame ids below a bound, newest first, read a
/// posting at a time.
struct Stream<'c> {
    stmt: rusqlite::Statement<'c>,
    key: i64,
    /// The next posting starts below this frame id.
    below: i64,
    /// The current posting's ids below the bound, oldest first (popped from the end).
    ids: Vec<i64>,
    done: bool,
}

impl Stream<'_> {
    /// The next id, newest first.
    fn next(&mut self) -> rusqlite::Result<Option<i64>> {
        while self.ids.is_empty() && !self.done {
            let posting: Option<(i64, String)> = self
                .stmt
                .query_row([self.key, self.below], |r| Ok((r.get(0)?, r.get(1)?)))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?;
            match posting {
                None => self.done = true,
                Some((first, ids)) => {
                    let bound = self.below;
                    self.below = first;
                    self.ids = serde_json::from_str::<Vec<i64>>(&ids)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                    self.ids.retain(|&id| id < bound);
                }
            }
        }
        Ok(self.ids.pop())
    }
}

/// The frame ids of some topics (or clients) below a bound, newest first: a
/// merge of each one's postings.
pub(super) struct Newest<'c> {
    streams: Vec<Stream<'c>>,
    heap: BinaryHeap<(i64, usize)>,
}

impl<'c> Newest<'c> {
    pub(super) fn new(
        conn: &'c rusqlite::Connection,
        key: Key,
        keys: &[i64],
        before: i64,
    ) -> rusqlite::Result<Newest<'c>> {
        let sql = format!(
            "SELECT first_id, ids FROM {} WHERE {} = ?1 AND first_id < ?2
             ORDER BY first_id DESC LIMIT 1",
            key.table(),
            key.column()
        );
        let mut streams = Vec::with_capacity(keys.len());
        let mut heap = BinaryHeap::with_capacity(keys.len());
        for &k in keys {
            let mut s = Stream {
                stmt: conn.prepare(&sql)?,
                key: k,
                below: before,
                ids: Vec::new(),
                done: false,
            };
            if let Some(id) = s.next()? {
                heap.push((id, streams.len()));
            }
            streams.push(s);
        }
        Ok(Newest { streams, heap })
    }

    /// The next frame id, newest first.
    pub(super) fn next(&mut self) -> rusqlite::Result<Option<i64>> {
        let Some((id, n)) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(next) = self.streams[n].next()? {
            self.heap.push((next, n));
        }
        Ok(Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_json_that_sqlite_reads() {
        assert_eq!(json_ids(&[]), "[]");
        assert_eq!(json_ids(&[7]), "[7]");
        assert_eq!(json_ids(&[1, 22, 333]), "[1,22,333]");
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let sum: i64 = conn
            .query_row(
                "SELECT SUM(value) FROM json_each(?1)",
                [json_ids(&[1, 22, 333])],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(sum, 356);
    }
}
