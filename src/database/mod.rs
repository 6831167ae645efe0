//! The capture database: every captured frame (both legs, connection opens
//! and closes with their reasons, MQTT 5 properties, injected-fault marks),
//! the faults and the check verdicts, written to SQLite so that hours of
//! traffic outlast the in-memory capture.
//!
//! [`Writer::spawn`] starts a thread ("capture-db") that owns the write
//! connection and commits what it is sent in batched transactions. Its queue
//! is bounded (frames and bytes); what does not fit, or fails to be written,
//! is counted in [`DbStatus`], never silently lost. Retention removes the
//! oldest frames past a size or an age. The file is in WAL mode: a reader
//! (the Query tab, `mqtt-workbench query`, Debian's `sqlite3`) sees every
//! committed transaction while the writer goes on, and a killed process
//! leaves everything committed before the kill.
//!
//! The schema is [`SCHEMA`] (the README documents it); rows map to and from
//! [`WireEvent`]s in `row.rs`; reading back, searching and read-only SQL are
//! in `read.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::checks::Verdict;
use crate::fault::FaultMarker;
use crate::wire::WireEvent;

mod postings;
mod read;
mod row;

pub use read::{QueryResult, SearchPage, SearchSpec, Value, query, read, search};

/// The tables, indexes and views of a capture database (format 3).
///
/// Frames are stored in `frame_rows` with their topic and client id as
/// numbers into `topics` and `clients`; the view `frames` joins the names
/// back, so SQL reads (and Debian's `sqlite3` shows) one row per frame with
/// its topic and client id as text. Which frames a topic or a client has is
/// in `topic_postings` and `client_postings` (see `postings.rs`), readable
/// as pairs through `topic_frame_ids` and `client_frame_ids`.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS clients (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
-- One row per captured frame or connection marker, in capture order.
CREATE TABLE IF NOT EXISTS frame_rows (
    id        INTEGER PRIMARY KEY,  -- capture order
    t_us      INTEGER NOT NULL,     -- µs since the UNIX epoch, when the tap read it
    conn      INTEGER NOT NULL,     -- the tap's connection number
    client    INTEGER NOT NULL REFERENCES clients (id),  -- '' before the CONNECT
    dir       TEXT    NOT NULL,     -- 'client_to_broker' | 'broker_to_client'
    kind      TEXT    NOT NULL,     -- 'Publish', 'Connect', 'Closed', 'PubAck', …
    pkid      INTEGER NOT NULL,
    qos       INTEGER NOT NULL,
    retain    INTEGER NOT NULL,     -- 0 | 1
    dup       INTEGER NOT NULL,     -- 0 | 1
    topic     INTEGER REFERENCES topics (id),  -- PUBLISH only
    payload   BLOB,                 -- PUBLISH (and the will in detail)
    size      INTEGER NOT NULL,     -- bytes on the wire
    protocol  INTEGER NOT NULL,     -- 4 (3.1.1) or 5; 0 before the CONNECT
    injected  TEXT,                 -- JSON: \"Dropped\", {\"Delayed\": 120}, \"Held\", … or NULL
    detail    TEXT,                 -- JSON: CONNECT flags, CONNACK code, SUBACK codes, close reason …
    v5        TEXT                  -- JSON: MQTT 5 reason codes and properties, or NULL
);
-- One row per transaction: the frames it wrote and the times they cover.
-- It stands in for an index on t_us (one row a second instead of an entry a
-- frame): the frames between two times are those of the spans that overlap
-- them, and ids are capture order, so
--   SELECT * FROM frames WHERE t_us BETWEEN :a AND :b AND id BETWEEN
--     (SELECT MIN(first_id) FROM spans WHERE t_max >= :a) AND
--     (SELECT MAX(last_id) FROM spans WHERE t_min <= :b)
-- reads only those.
CREATE TABLE IF NOT EXISTS spans (
    id       INTEGER PRIMARY KEY,   -- transaction order
    first_id INTEGER NOT NULL,      -- frame_rows ids
    last_id  INTEGER NOT NULL,
    t_min    INTEGER NOT NULL,      -- the frames' earliest and latest t_us
    t_max    INTEGER NOT NULL
);
-- Which frames have a topic, and which a client: one row (a posting) per
-- topic and per client each transaction, its frames' ids as a JSON array in
-- capture order, instead of an index entry a frame (postings.rs says why).
CREATE TABLE IF NOT EXISTS topic_postings (
    id       INTEGER PRIMARY KEY,   -- the order they were written in
    topic    INTEGER NOT NULL,      -- topics (id)
    first_id INTEGER NOT NULL,      -- the oldest and newest frame_rows id listed
    last_id  INTEGER NOT NULL,
    ids      TEXT    NOT NULL       -- JSON array of frame_rows ids, ascending
);
CREATE INDEX IF NOT EXISTS topic_postings_key ON topic_postings (topic, first_id);
CREATE TABLE IF NOT EXISTS client_postings (
    id       INTEGER PRIMARY KEY,
    client   INTEGER NOT NULL,      -- clients (id)
    first_id INTEGER NOT NULL,
    last_id  INTEGER NOT NULL,
    ids      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS client_postings_key ON client_postings (client, first_id);
-- (topic, frame id) and (client_id, frame id) pairs, for SQL:
-- SELECT * FROM frames WHERE id IN (SELECT id FROM topic_frame_ids WHERE topic = 'a/b')
CREATE VIEW IF NOT EXISTS topic_frame_ids AS
    SELECT t.name AS topic, j.value AS id
    FROM topic_postings p JOIN topics t ON t.id = p.topic, json_each(p.ids) j;
CREATE VIEW IF NOT EXISTS client_frame_ids AS
    SELECT c.name AS client_id, j.value AS id
    FROM client_postings p JOIN clients c ON c.id = p.client, json_each(p.ids) j;
CREATE VIEW IF NOT EXISTS frames AS
    SELECT f.id, f.t_us, f.conn, c.name AS client_id, f.dir, f.kind, f.pkid, f.qos,
           f.retain, f.dup, t.name AS topic, f.payload, f.size, f.protocol,
           f.injected, f.detail, f.v5
    FROM frame_rows f JOIN clients c ON c.id = f.client LEFT JOIN topics t ON t.id = f.topic;
CREATE TABLE IF NOT EXISTS faults (
    id       INTEGER PRIMARY KEY,
    t_us     INTEGER NOT NULL,
    label    TEXT    NOT NULL,
    timeline INTEGER              -- the scenario's timeline entry, when it fired it
);
CREATE TABLE IF NOT EXISTS verdicts (
    id       INTEGER PRIMARY KEY,
    t_us     INTEGER NOT NULL,    -- when it was recorded
    name     TEXT    NOT NULL,
    state    TEXT    NOT NULL,    -- 'Passed' | 'Failed' | 'NotTriggered' | 'Pending'
    evidence TEXT    NOT NULL,
    decided_us INTEGER            -- when the frame that decided it was seen
);
";

/// The `meta` table's `format` value.
pub const FORMAT: &str = "mqtt-workbench capture db 3";
/// Format 2 (indexes on topic and client instead of postings) still reads.
const FORMAT_2: &str = "mqtt-workbench capture db 2";

/// Where the database is and how much of it to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbOptions {
    pub path: PathBuf,
    /// Remove the oldest frames once the frames take more than this.
    pub max_bytes: Option<u64>,
    /// Remove frames older than this.
    pub max_age: Option<Duration>,
}

/// Why the database could not be opened or read; it names the file.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{}: {error}", path.display())]
    Sqlite {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error("{}: not a capture database (expected a `meta` table with format \"{FORMAT}\")", path.display())]
    NotACapture { path: PathBuf },
    #[error("{}: written by an earlier version (\"{FORMAT_2}\"): it still opens and answers queries, but new frames go in a new file", path.display())]
    OlderFormat { path: PathBuf },
    #[error("{}: a stored frame does not read back: {why}", path.display())]
    BadRow { path: PathBuf, why: String },
}

impl DbError {
    pub(crate) fn sqlite(path: &Path) -> impl FnOnce(rusqlite::Error) -> DbError + '_ {
        move |error| DbError::Sqlite {
            path: path.to_path_buf(),
            error,
        }
    }
}

/// What the writer has done so far (shown in the status bar and by `run`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbStatus {
    pub path: PathBuf,
    /// Frames committed.
    pub written: u64,
    /// Frames not written: the queue was full (the writer fell behind).
    pub dropped: u64,
    /// Frames whose transaction failed.
    pub failed: u64,
    /// Frames removed by retention.
    pub retired: u64,
    /// The file's size in bytes (with its write-ahead log).
    pub bytes: u64,
    /// The last write error, if any.
    pub error: Option<String>,
}

impl DbStatus {
    /// Frames that should be in the database and are not.
    pub fn lost(&self) -> u64 {
        self.dropped + self.failed
    }
}

/// What the writer is sent.
enum Item {
    Frames(Vec<WireEvent>),
    Fault(FaultMarker),
    Verdicts(Vec<Verdict>),
    Meta(String, String),
    /// Commit now and answer.
    Flush(crossbeam_channel::Sender<()>),
}

/// Batches queued for the writer before new ones are dropped and counted.
const QUEUE_BATCHES: usize = 256;
/// Bytes of frames queued for the writer, at most.
const QUEUE_BYTES: u64 = 64 * 1024 * 1024;
/// Longest a frame waits for its transaction.
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// How often retention runs.
const RETAIN_EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    retired: AtomicU64,
    bytes: AtomicU64,
    queued_bytes: AtomicU64,
    error: parking_lot::Mutex<Option<String>>,
}

/// The sending side of the writer thread; cheap to clone. Dropping the last
/// clone lets the thread commit what is queued and end.
#[derive(Clone)]
pub struct Writer {
    tx: crossbeam_channel::Sender<Item>,
    counters: Arc<Counters>,
    path: PathBuf,
}

impl Writer {
    /// Open (or create) the database and start the writer thread.
    pub fn spawn(opts: DbOptions) -> Result<Writer, DbError> {
        let conn = open_for_writing(&opts.path)?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_BATCHES);
        let counters = Arc::new(Counters::default());
        std::thread::Builder::new()
            .name("capture-db".into())
            .spawn({
                let counters = counters.clone();
                let opts = opts.clone();
                move || write_loop(conn, rx, &counters, &opts)
            })
            .map_err(|e| DbError::Sqlite {
                path: opts.path.clone(),
                error: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(Writer {
            tx,
            counters,
            path: opts.path,
        })
    }

    /// Queue frames; never blocks. What does not fit is counted as dropped.
    pub fn frames(&self, frames: Vec<WireEvent>) {
        let n = frames.len() as u64;
        let bytes: u64 = frames.iter().map(|e| e.mem_bytes() as u64).sum();
        let queued = self
            .counters
            .queued_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        if queued > 0 && queued + bytes > QUEUE_BYTES {
            self.counters
                .queued_bytes
                .fetch_sub(bytes, Ordering::Relaxed);
            self.counters.dropped.fetch_add(n, Ordering::Relaxed);
            return;
        }
        if self.tx.try_send(Item::Frames(frames)).is_err() {
            self.counters
                .queued_bytes
                .fetch_sub(bytes, Ordering::Relaxed);
            self.counters.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn fault(&self, marker: FaultMarker) {
        let _ = self.tx.try_send(Item::Fault(marker));
    }

    /// Record the verdicts as they stand now (one row each).
    pub fn verdicts(&self, verdicts: Vec<Verdict>) {
        let _ = self.tx.try_send(Item::Verdicts(verdicts));
    }

    /// Set a `meta` entry (the scenario's name, when it started).
    pub fn meta(&self, key: &str, value: String) {
        let _ = self.tx.try_send(Item::Meta(key.to_string(), value));
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn status(&self) -> DbStatus {
        let c = &self.counters;
        DbStatus {
            path: self.path.clone(),
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retired: c.retired.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            error: c.error.lock().clone(),
        }
    }

    /// Wait until everything queued before this call is committed (at most
    /// 10 s). Blocks: call off the UI thread and the async workers.
    pub fn flush(&self) -> DbStatus {
        let (done, committed) = crossbeam_channel::bounded(1);
        if self
            .tx
            .send_timeout(Item::Flush(done), Duration::from_secs(10))
            .is_ok()
        {
            let _ = committed.recv_timeout(Duration::from_secs(10));
        }
        self.status()
    }
}

/// Whether `path` is an SQLite file (its first 16 bytes say so).
pub fn is_database(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"SQLite format 3\0")
}

/// Open the file for the writer: WAL, the schema, the format mark.
fn open_for_writing(path: &Path) -> Result<rusqlite::Connection, DbError> {
    let err = DbError::sqlite(path);
    let conn = rusqlite::Connection::open(path).map_err(DbError::sqlite(path))?;
    // What the file is, before anything is written to it: a capture of this
    // format, or a new (empty) file. Any other file is left as it was.
    let tables: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(DbError::sqlite(path))?;
    let format: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
            r.get(0)
        })
        .ok();
    match format.as_deref() {
        Some(FORMAT) => {}
        None if tables == 0 => {}
        Some(FORMAT_2) => {
            return Err(DbError::OlderFormat {
                path: path.to_path_buf(),
            });
        }
        _ => {
            return Err(DbError::NotACapture {
                path: path.to_path_buf(),
            });
        }
    }
    // WAL with NORMAL sync: a committed transaction survives the process
    // being killed (not a power cut: that needs FULL, and an fsync a commit).
    // A bigger page cache and rarer checkpoints for tens of thousands of
    // frames a second. The bundled SQLite is built with foreign keys on; the
    // writer takes every topic and client id from the name tables itself, so
    // checking each frame's REFERENCES again costs two parent-table lookups a
    // row for nothing: they stay as documentation.
    conn.pragma_update(None, "foreign_keys", false)
        .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
        .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
        .and_then(|()| conn.pragma_update(None, "cache_size", -65_536))
        .and_then(|()| conn.pragma_update(None, "wal_autocheckpoint", 4_096))
        .and_then(|()| conn.pragma_update(None, "temp_store", "MEMORY"))
        .and_then(|()| conn.execute_batch(SCHEMA))
        .and_then(|()| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('format', ?1)
                 ON CONFLICT (key) DO NOTHING",
                [FORMAT],
            )
        })
        .map_err(err)?;
    Ok(conn)
}

fn write_loop(
    conn: rusqlite::Connection,
    rx: crossbeam_channel::Receiver<Item>,
    counters: &Counters,
    opts: &DbOptions,
) {
    let mut tx = Open::new(conn);
    let mut last_retain = Instant::now();
    loop {
        // A transaction stays open while items arrive, and commits a second
        // after it began: the indexes' pages are then written once a second,
        // not once a batch.
        if tx.began.is_some_and(|t| t.elapsed() >= COMMIT_EVERY) {
            tx.commit(counters);
        }
        let item = match tx.began {
            Some(t) => rx.recv_deadline(t + COMMIT_EVERY),
            None => rx
                .recv()
                .map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
        };
        match item {
            Ok(Item::Flush(done)) => {
                tx.commit(counters);
                let _ = done.send(());
            }
            Ok(item) => tx.write(item, counters),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => tx.commit(counters),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                tx.commit(counters);
                return;
            }
        }
        if tx.began.is_none() {
            if last_retain.elapsed() >= RETAIN_EVERY {
                last_retain = Instant::now();
                retain(&tx.conn, opts, counters);
            }
            counters
                .bytes
                .store(file_bytes(&opts.path), Ordering::Relaxed);
        }
    }
}

/// The write connection and the transaction it has open, if any.
struct Open {
    conn: rusqlite::Connection,
    /// When the open transaction began (None: none is open).
    began: Option<Instant>,
    /// Frames written in the open transaction.
    frames: u64,
    /// The open transaction failed: what follows is not written until it ends.
    failed: bool,
    names: row::Names,
    /// The open transaction's frames by topic and client, written at commit.
    pending: postings::Pending,
}

impl Open {
    fn new(conn: rusqlite::Connection) -> Open {
        Open {
            conn,
            began: None,
            frames: 0,
            failed: false,
            names: row::Names::default(),
            pending: postings::Pending::default(),
        }
    }

    fn write(&mut self, item: Item, counters: &Counters) {
        if let Item::Frames(batch) = &item {
            let bytes: u64 = batch.iter().map(|e| e.mem_bytes() as u64).sum();
            counters.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.frames += batch.len() as u64;
        }
        if self.began.is_none() {
            self.began = Some(Instant::now());
            if let Err(e) = self.conn.execute_batch("BEGIN") {
                self.fail(&e, counters);
            }
        }
        if self.failed {
            return;
        }
        if let Err(e) = write_item(&self.conn, &mut self.names, &mut self.pending, item) {
            self.fail(&e, counters);
        }
    }

    fn fail(&mut self, e: &rusqlite::Error, counters: &Counters) {
        self.failed = true;
        tracing::error!("capture database: {e}");
        *counters.error.lock() = Some(e.to_string());
    }

    /// Commit the open transaction; its frames are counted written or failed.
    fn commit(&mut self, counters: &Counters) {
        if self.began.take().is_none() {
            return;
        }
        if !self.failed
            && let Err(e) = self
                .pending
                .write(&self.conn)
                .and_then(|()| self.conn.execute_batch("COMMIT"))
        {
            self.fail(&e, counters);
        }
        let frames = std::mem::take(&mut self.frames);
        if std::mem::take(&mut self.failed) {
            // Nothing of it is kept, not even the names it added.
            let _ = self.conn.execute_batch("ROLLBACK");
            self.names = row::Names::default();
            self.pending.clear();
            counters.failed.fetch_add(frames, Ordering::Relaxed);
        } else {
            counters.written.fetch_add(frames, Ordering::Relaxed);
        }
    }
}

fn write_item(
    conn: &rusqlite::Connection,
    names: &mut row::Names,
    pending: &mut postings::Pending,
    item: Item,
) -> rusqlite::Result<()> {
    match item {
        Item::Frames(batch) => {
            let mut stmt = conn.prepare_cached(&row::insert_sql())?;
            for ev in &batch {
                let (client, topic) = row::insert(conn, &mut stmt, names, ev)?;
                pending.add(conn.last_insert_rowid(), ev.t_us as i64, client, topic);
            }
        }
        Item::Fault(m) => {
            conn.prepare_cached("INSERT INTO faults (t_us, label, timeline) VALUES (?1, ?2, ?3)")?
                .execute(rusqlite::params![
                    m.t_us as i64,
                    m.label,
                    m.timeline.map(|t| t as i64)
                ])?;
        }
        Item::Verdicts(vs) => {
            let now = crate::time::now_us() as i64;
            let mut verdict = conn.prepare_cached(
                "INSERT INTO verdicts (t_us, name, state, evidence, decided_us)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for v in vs {
                verdict.execute(rusqlite::params![
                    now,
                    v.name,
                    format!("{:?}", v.state),
                    v.evidence,
                    v.t_us.map(|t| t as i64)
                ])?;
            }
        }
        Item::Meta(k, v) => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [k, v],
            )?;
        }
        Item::Flush(_) => {}
    }
    Ok(())
}

/// Remove the oldest frames past the age, then past the size (a tenth at a
/// time, so the file stops growing; SQLite reuses the freed pages).
fn retain(conn: &rusqlite::Connection, opts: &DbOptions, counters: &Counters) {
    let mut removed = 0;
    if let Some(age) = opts.max_age {
        let cutoff = crate::time::now_us().saturating_sub(age.as_micros() as u64) as i64;
        removed += postings::remove_older(conn, cutoff).unwrap_or(0);
    }
    if let Some(max) = opts.max_bytes {
        let used = |c: &rusqlite::Connection| -> u64 {
            let pages: i64 = c
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .unwrap_or(0);
            let free: i64 = c
                .query_row("PRAGMA freelist_count", [], |r| r.get(0))
                .unwrap_or(0);
            let size: i64 = c
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap_or(4096);
            ((pages - free).max(0) * size) as u64
        };
        for _ in 0..10 {
            if used(conn) <= max {
                break;
            }
            let n = conn
                .execute(
                    "DELETE FROM frame_rows WHERE id IN
                     (SELECT id FROM frame_rows ORDER BY id LIMIT
                      (SELECT MAX(COUNT(*) / 10, 1) FROM frame_rows))",
                    [],
                )
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            removed += n;
        }
    }
    if removed > 0
        && let Err(e) = postings::retire(conn)
    {
        tracing::warn!("capture database: retiring postings: {e}");
    }
    counters
        .retired
        .fetch_add(removed as u64, Ordering::Relaxed);
}

/// The database file and its write-ahead log, in bytes.
fn file_bytes(path: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    size(path) + size(Path::new(&wal))
}

/// Retention by size, now (the writer runs it every few seconds).
#[cfg(test)]
pub(super) fn retain_now(path: &Path, max_bytes: u64) -> Result<u64, DbError> {
    let conn = open_for_writing(path)?;
    let counters = Counters::default();
    let opts = DbOptions {
        path: path.to_path_buf(),
        max_bytes: Some(max_bytes),
        max_age: None,
    };
    retain(&conn, &opts, &counters);
    Ok(counters.retired.load(Ordering::Relaxed))
}
