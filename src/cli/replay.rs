//! `mqtt-workbench replay`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::report::{summary, verdicts_text};
use super::run::save_recording;
use crate::engine::{self, EngineConfig, Readiness};
use crate::model::Model;
use crate::scenario::Scenario;

/// `mqtt-workbench replay`: the broker and tap as `run` starts them, the
/// recording's publishes replayed through the tap, then the summary.
pub async fn replay(
    capture: PathBuf,
    speed: crate::replay::Speed,
    record: Option<PathBuf>,
    check: Option<PathBuf>,
    engine_cfg: EngineConfig,
) -> anyhow::Result<usize> {
    let expectations = match &check {
        Some(path) => Scenario::load_with_contract(path)?.expect,
        None => Vec::new(),
    };
    let rec = tokio::task::spawn_blocking(move || crate::export::record::read(&capture)).await??;
    let handle = engine::start(engine_cfg).await?;
    let (tap, upstream) = match handle.readiness() {
        Readiness::Ready { tap, upstream, .. } => (tap, upstream),
        other => anyhow::bail!("the engine is not ready: {other:?}"),
    };
    eprintln!(
        "MQTT Workbench {}: replaying {} ({} frames) through mqtt://{tap} (forwarding to {upstream}) at {speed:?}",
        crate::VERSION,
        rec.path.display(),
        rec.events.len()
    );
    let mut model = Model::default();
    if !expectations.is_empty() {
        model.checks = Some(crate::checks::Checks::new(
            &expectations,
            crate::time::now_us(),
        ));
    }
    let started = Instant::now();
    let host = tap.ip().to_string();
    let work = crate::replay::replay(&rec, &host, tap.port(), speed);
    tokio::pin!(work);
    let report = loop {
        tokio::select! {
            r = &mut work => break r?,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                model.drain(&handle, None);
            }
        }
    };
    // Let the last deliveries and closes arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    model.drain(&handle, None);
    print!("{}", summary(&model.capture, started.elapsed()));
    eprintln!(
        "replayed {} messages from {} clients in {:.1} s ({} could not be sent)",
        report.published,
        report.clients,
        report.elapsed.as_secs_f64(),
        report.failed
    );
    if let Some(path) = &record {
        let n = save_recording(&model, None, path).await?;
        eprintln!("recorded {n} frames to {}", path.display());
    }
    Ok(match &mut model.checks {
        Some(checks) => {
            checks.finish(crate::time::now_us());
            print!("\n{}", verdicts_text(checks.verdicts()));
            checks.failed()
        }
        None => 0,
    })
}
