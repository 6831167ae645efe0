//! File jobs: saving and opening captures, saving scenarios, copying files
//! and exporting, each on a blocking thread that reports back as an event.

use super::*;

impl Engine {
    /// Run `job` on a blocking thread and send the event it returns.
    fn file_job(&self, job: impl FnOnce() -> Event + Send + 'static) {
        let sink = self.sink.clone();
        tokio::task::spawn_blocking(move || sink.send(job()));
    }

    pub(super) fn save_capture(
        &self,
        path: PathBuf,
        events: EventsSnapshot,
        faults: Vec<crate::fault::FaultMarker>,
        scenario: Option<(String, u64)>,
    ) {
        self.file_job(move || {
            let scenario = scenario.as_ref().map(|(n, t)| (n.as_str(), *t));
            notice(
                crate::export::record::write(&path, events.iter(), events.len, &faults, scenario)
                    .map(|n| format!("saved {n} frames to {}", path.display()))
                    .map_err(|e| format!("{}: {e}", path.display())),
            )
        });
    }

    pub(super) fn save_scenario(&self, path: PathBuf, ron: String) {
        self.file_job(move || {
            notice(match Scenario::parse(&ron, &path) {
                Err(e) => Err(format!("not saved: {e}")),
                Ok(_) => std::fs::write(&path, ron)
                    .map(|()| format!("saved {}", path.display()))
                    .map_err(|e| format!("{}: {e}", path.display())),
            })
        });
    }

    pub(super) fn open_capture(&self, path: PathBuf) {
        self.file_job(move || match crate::export::record::read(&path) {
            Ok(rec) => Event::CaptureOpened(Box::new(rec)),
            Err(text) => Event::Notice { error: true, text },
        });
    }

    pub(super) fn copy_file(&self, from: PathBuf, to: PathBuf) {
        self.file_job(move || {
            notice(
                std::fs::copy(&from, &to)
                    .map(|_| format!("saved {}", to.display()))
                    .map_err(|e| format!("{}: {e}", to.display())),
            )
        });
    }

    /// Write the PUBLISH frames of `events` on a blocking thread, reporting progress.
    pub(super) fn export(&mut self, path: PathBuf, events: EventsSnapshot) {
        if self.export.as_ref().is_some_and(|t| !t.is_finished()) {
            return self.notice(true, "an export is already running");
        }
        let sink = self.sink.clone();
        self.export = Some(tokio::task::spawn_blocking(move || {
            let total = events
                .iter()
                .filter(|e| e.kind == crate::wire::PacketKind::Publish)
                .count() as u64;
            sink.send(Event::ExportProgress { done: 0, total });
            let result = crate::export::write_events(&path, events.iter(), |done| {
                sink.send(Event::ExportProgress { done, total })
            });
            sink.send(match result {
                Ok(n) => Event::Notice {
                    error: false,
                    text: format!("exported {n} messages to {}", path.display()),
                },
                Err(e) => Event::Notice {
                    error: true,
                    text: e.to_string(),
                },
            });
            sink.send(Event::ExportFinished);
        }));
    }
}

/// A job's outcome as a notice: its text, an error or not.
fn notice(result: Result<String, String>) -> Event {
    match result {
        Ok(text) => Event::Notice { error: false, text },
        Err(text) => Event::Notice { error: true, text },
    }
}
