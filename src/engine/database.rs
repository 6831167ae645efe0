//! The capture database on the engine: opened and closed at run time,
//! searched and queried off the async workers (`database` does the work).

use super::*;

/// Rows a search page holds.
const PAGE: usize = 200;
/// Rows a query answers with at most (the rest is counted as truncated).
const QUERY_ROWS: usize = 10_000;

impl Engine {
    /// Open a database (replacing one that is open) or close it.
    pub(super) async fn capture_db(&mut self, opts: Option<crate::database::DbOptions>) {
        let old = self.sink.db.write().take();
        if let Some(old) = old {
            let sink = self.sink.clone();
            // Commits what it had queued; its thread ends with the last sender.
            tokio::task::spawn_blocking(move || {
                sink.send(Event::DatabaseClosed(old.flush()));
            });
        }
        if let Some(opts) = opts {
            match open_database(&self.sink, opts).await {
                Ok(path) => self.query_db = Some(path),
                Err(e) => self.notice(true, e),
            }
        }
    }

    fn database_path(&self) -> Result<PathBuf, EngineError> {
        self.query_db.clone().ok_or(EngineError::NoDatabase)
    }

    pub(super) fn search_capture(&self, spec: crate::database::SearchSpec, before: Option<i64>) {
        let path = self.database_path();
        let sink = self.sink.clone();
        tokio::task::spawn_blocking(move || {
            let page = path.and_then(|p| {
                crate::database::search(&p, &spec, before, PAGE)
                    .map_err(|e| EngineError::Database(Arc::new(e)))
            });
            sink.send(Event::SearchResults(
                page.map(Box::new).map_err(|e| e.to_string()),
            ));
        });
    }

    pub(super) fn query(&self, sql: String) {
        let path = self.database_path();
        let sink = self.sink.clone();
        tokio::task::spawn_blocking(move || {
            let result = path.and_then(|p| {
                crate::database::query(&p, &sql, QUERY_ROWS)
                    .map_err(|e| EngineError::Database(Arc::new(e)))
            });
            sink.send(Event::QueryResult(
                result.map(Box::new).map_err(|e| e.to_string()),
            ));
        });
    }

    /// A database opened with File → Open capture is what searches and
    /// queries read from then on.
    pub(super) fn query_database(&mut self, path: PathBuf) {
        self.query_db = Some(path);
    }
}
