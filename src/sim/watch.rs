//! Watch a scenario file and the files it names (its devices' scripts): when
//! one changes on disk, ask the engine to reload the scenario (debounced: an
//! editor's save is often several writes, or a write to a new file renamed
//! over the old one, so the folders are watched).

use std::path::PathBuf;
use std::time::Duration;

use notify::Watcher as _;
use tokio::sync::mpsc;

use crate::command::{Command, ScenarioSource};

/// Changes closer together than this are one save.
const DEBOUNCE: Duration = Duration::from_millis(300);

fn folder(p: &std::path::Path) -> PathBuf {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A file as events name it: its folder, canonical (events carry absolute
/// paths), and its name.
fn key(p: &std::path::Path) -> (PathBuf, Option<std::ffi::OsString>) {
    let dir = folder(p);
    (
        std::fs::canonicalize(&dir).unwrap_or(dir),
        p.file_name().map(|n| n.to_os_string()),
    )
}

/// Watching stops when this is dropped.
pub struct Watcher {
    _inner: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn watch(
    path: PathBuf,
    also: &[PathBuf],
    commands: mpsc::WeakSender<Command>,
) -> notify::Result<Watcher> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let files: Vec<PathBuf> = std::iter::once(path.clone())
        .chain(also.iter().cloned())
        .collect();
    let wanted: Vec<_> = files.iter().map(|p| key(p)).collect();
    let mut inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        let ours = ev.paths.iter().any(|p| wanted.contains(&key(p)));
        if ours && (ev.kind.is_modify() || ev.kind.is_create()) {
            // Full: a reload is already coming.
            let _ = tx.try_send(());
        }
    })?;
    let mut folders: Vec<PathBuf> = files.iter().map(|p| folder(p)).collect();
    folders.sort();
    folders.dedup();
    for dir in &folders {
        inner.watch(dir, notify::RecursiveMode::NonRecursive)?;
    }
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            let Some(cmd) = commands.upgrade() else {
                return;
            };
            if cmd
                .send(Command::ReloadScenario(ScenarioSource::File(path.clone())))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(Watcher {
        _inner: inner,
        task,
    })
}
