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
                    .map_err(EngineError::file(&path)),
            )
        });
    }

    pub(super) fn save_scenario(&self, path: PathBuf, ron: String) {
        self.file_job(move || match Scenario::parse(&ron, &path) {
            Err(e) => Event::Notice {
                error: true,
                text: format!("not saved: {e}"),
            },
            Ok(_) => notice(
                std::fs::write(&path, ron)
                    .map(|()| format!("saved {}", path.display()))
                    .map_err(EngineError::file(&path)),
            ),
        });
    }

    /// Read a recording or a capture database (told apart by the file's
    /// first bytes), as one capture.
    pub(super) fn open_capture(&mut self, path: PathBuf) {
        let database = crate::database::is_database(&path);
        if database {
            self.query_database(path.clone());
        }
        self.file_job(move || {
            let read = if database {
                crate::database::read(&path).map_err(|e| e.to_string())
            } else {
                crate::export::record::read(&path).map_err(|e| e.to_string())
            };
            match read {
                Ok(rec) => Event::CaptureOpened(Box::new(rec)),
                Err(text) => Event::Notice { error: true, text },
            }
        });
    }

    pub(super) fn copy_file(&self, from: PathBuf, to: PathBuf) {
        self.file_job(move || {
            notice(
                std::fs::copy(&from, &to)
                    .map(|_| format!("saved {}", to.display()))
                    .map_err(EngineError::file(&to)),
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

impl Engine {
    /// Write a scenario from an AsyncAPI document beside it, then run it.
    pub(super) fn import_spec(&self, spec: PathBuf) {
        let commands = self.commands.clone();
        self.file_job(move || {
            let contract = match crate::contract::Contract::load(&spec) {
                Ok(c) => c,
                Err(e) => {
                    return Event::Notice {
                        error: true,
                        text: e.to_string(),
                    };
                }
            };
            let name = spec
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let out = spec.with_extension("scenario.ron");
            let imported = crate::scenario::import_contract(&contract, &name, Default::default());
            let written = std::fs::write(&out, &imported.ron);
            if let Some(tx) = commands.upgrade() {
                let _ = tx.try_send(Command::LoadScenario(ScenarioSource::Text {
                    origin: out.clone(),
                    ron: imported.ron,
                }));
            }
            let mut text = match written {
                Ok(()) => format!(
                    "imported {}: {} channels; the scenario is {}",
                    spec.display(),
                    contract.channels.len(),
                    out.display()
                ),
                Err(e) => format!(
                    "imported {} (the scenario could not be saved as {}: {e})",
                    spec.display(),
                    out.display()
                ),
            };
            if !imported.warnings.is_empty() {
                text.push_str(&format!("\n{} not carried over:", imported.warnings.len()));
                for w in imported.warnings.iter().take(5) {
                    text.push_str(&format!("\n{w}"));
                }
            }
            Event::Notice { error: false, text }
        });
    }

    /// Write an AsyncAPI document inferred from the capture.
    pub(super) fn export_spec(&self, path: PathBuf, events: EventsSnapshot, title: String) {
        self.file_job(move || {
            let doc =
                crate::contract::infer(events.iter(), &crate::contract::InferOptions { title });
            let channels = doc
                .get("channels")
                .and_then(|c| c.as_object())
                .map_or(0, |c| c.len());
            notice(
                std::fs::write(&path, crate::contract::yaml::write(&doc))
                    .map(|()| {
                        format!(
                            "wrote an AsyncAPI 3.0 document with {channels} channels to {}",
                            path.display()
                        )
                    })
                    .map_err(EngineError::file(&path)),
            )
        });
    }
}

/// A job's outcome as a notice: its text, or its error's.
fn notice(result: Result<String, EngineError>) -> Event {
    match result {
        Ok(text) => Event::Notice { error: false, text },
        Err(e) => Event::Notice {
            error: true,
            text: e.to_string(),
        },
    }
}
