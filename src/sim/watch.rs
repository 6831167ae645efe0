//! Watch a scenario file: when it changes on disk, ask the engine to reload
//! it (debounced: an editor's save is often several writes, or a write to a
//! new file renamed over the old one, so the folder is watched).

use std::path::PathBuf;
use std::time::Duration;

use notify::Watcher as _;
use tokio::sync::mpsc;

use crate::command::{Command, ScenarioSource};

/// Changes closer together than this are one save.
const DEBOUNCE: Duration = Duration::from_millis(300);

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

pub fn watch(path: PathBuf, commands: mpsc::WeakSender<Command>) -> notify::Result<Watcher> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let name = path.file_name().map(|n| n.to_os_string());
    let mut inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        let ours = ev
            .paths
            .iter()
            .any(|p| p.file_name().map(|n| n.to_os_string()) == name);
        if ours && (ev.kind.is_modify() || ev.kind.is_create()) {
            // Full: a reload is already coming.
            let _ = tx.try_send(());
        }
    })?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    inner.watch(&dir, notify::RecursiveMode::NonRecursive)?;
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
