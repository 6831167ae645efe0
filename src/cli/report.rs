//! What the headless commands print: the status line, the closing summary,
//! verdicts, and how to reach the TLS listener.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::capture::{Capture, FlowState, SessionEventKind};
use crate::checks::{Verdict, VerdictState};
use crate::model::Model;

/// One line per verdict: PASS / FAIL / SKIP (not triggered), name, evidence.
pub fn verdicts_text<'a>(verdicts: impl Iterator<Item = &'a Verdict>) -> String {
    let mut out = String::from("Expectations:\n");
    for v in verdicts {
        let tag = match v.state {
            VerdictState::Passed => "PASS",
            VerdictState::Failed => "FAIL",
            VerdictState::NotTriggered => "SKIP",
            VerdictState::Pending => "....",
        };
        let _ = writeln!(out, "  {tag}  {}: {}", v.name, v.evidence);
    }
    out
}

pub fn status_line(model: &Model, elapsed: Duration) -> String {
    let now = crate::time::now_us();
    let c = &model.capture;
    let health = match &model.broker_health {
        Some(h) if !h.answering => format!(" | BROKER NOT ANSWERING: restart #{}", h.restarts),
        Some(h) => format!(" | broker restarted {}× (it stopped answering)", h.restarts),
        None => String::new(),
    };
    format!(
        "[{:>4}s] {} msg/s published, {} msg/s delivered | clients {} connected / {} seen | captured {} evicted {} dropped {}{health}",
        elapsed.as_secs(),
        c.rates.published_per_s(now),
        c.rates.delivered_per_s(now),
        c.connected_clients(),
        c.sessions.len(),
        c.len(),
        c.evicted,
        c.dropped,
    ) + &match &model.database {
        Some(db) if model.database_open => {
            format!(" | db {} written, {} lost", db.written, db.lost())
        }
        _ => String::new(),
    } + &if model.ramp.ramping() {
        format!(" | {}", model.ramp.line())
    } else {
        String::new()
    }
}

/// What the capture database holds and lost, in one line.
pub fn database_line(db: &crate::database::DbStatus) -> String {
    let mut s = format!(
        "capture database {}: {} frames written ({:.1} MiB on disk)",
        db.path.display(),
        db.written,
        db.bytes as f64 / (1024.0 * 1024.0)
    );
    if db.retired > 0 {
        s += &format!(", {} oldest removed by retention", db.retired);
    }
    if db.lost() > 0 {
        s += &format!(
            ", {} NOT written ({} dropped: the writer fell behind; {} failed{})",
            db.lost(),
            db.dropped,
            db.failed,
            db.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    s
}

/// Why a run fails although its checks passed: the embedded broker had to be
/// restarted because it stopped answering (what a user's green run must not hide).
pub fn broker_health_failure(model: &Model) -> Option<String> {
    model.broker_health.as_ref().map(|h| {
        format!(
            "the embedded broker stopped answering and was restarted {}× ({}): failing the run",
            h.restarts, h.why
        )
    })
}

/// The closing summary: per-topic counts, per-client sessions, QoS flows.
pub fn summary(c: &Capture, elapsed: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n== Summary after {:.1}s ==", elapsed.as_secs_f64());
    let _ = writeln!(s, "\nTopics ({}):", c.topics.len());
    let _ = writeln!(
        s,
        "  {:<48} {:>9} {:>9} {:>8}",
        "topic", "published", "delivered", "retained"
    );
    const MAX_ROWS: usize = 40;
    let mut topics: Vec<_> = c.topics.iter().collect();
    topics.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (t, st) in topics.into_iter().take(MAX_ROWS) {
        let _ = writeln!(
            s,
            "  {:<48} {:>9} {:>9} {:>8}",
            t,
            st.published,
            st.delivered,
            if st.retained.is_some() { "yes" } else { "" }
        );
    }
    if c.topics.len() > MAX_ROWS {
        let _ = writeln!(s, "  … and {} more topics", c.topics.len() - MAX_ROWS);
    }
    let _ = writeln!(s, "\nSessions ({}):", c.sessions.len());
    let _ = writeln!(
        s,
        "  {:<28} {:<10} {:<10} {:>5} {:>6} {:>6} {:>5}  last disconnect",
        "client", "state", "session", "subs", "sent", "recv", "conn"
    );
    let mut sessions: Vec<_> = c.sessions.iter().collect();
    sessions.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (id, ss) in sessions.into_iter().take(MAX_ROWS) {
        let connects = ss
            .history
            .iter()
            .filter(|e| matches!(e.kind, SessionEventKind::Connected { .. }))
            .count();
        let _ = writeln!(
            s,
            "  {:<28} {:<10} {:<10} {:>5} {:>6} {:>6} {:>5}  {}",
            id,
            if ss.connected { "connected" } else { "offline" },
            if ss.clean_session {
                "clean"
            } else {
                "persistent"
            },
            ss.subscriptions.len(),
            ss.published,
            ss.received,
            connects,
            ss.last_disconnect().map(|r| r.label()).unwrap_or_default()
        );
    }
    if c.sessions.len() > MAX_ROWS {
        let _ = writeln!(s, "  … and {} more clients", c.sessions.len() - MAX_ROWS);
    }
    let mut by_state: HashMap<FlowState, usize> = HashMap::new();
    let mut deviations = 0;
    for f in c.flows.iter() {
        *by_state.entry(f.state).or_default() += 1;
        deviations += f.deviation.is_some() as usize;
    }
    let _ = writeln!(
        s,
        "\nQoS flows: {} completed, {} incomplete ({} open, {} interrupted, {} superseded, {} abandoned), {} evicted",
        c.flows.completed,
        c.flows.incomplete(),
        by_state.get(&FlowState::Open).unwrap_or(&0),
        by_state.get(&FlowState::Interrupted).unwrap_or(&0),
        by_state.get(&FlowState::Superseded).unwrap_or(&0),
        by_state.get(&FlowState::Abandoned).unwrap_or(&0),
        c.flows.evicted,
    );
    if deviations > 0 {
        let _ = writeln!(
            s,
            "  {deviations} deliveries at a QoS other than min(published, granted): rumqttd delivers at the subscription's QoS"
        );
    }
    let _ = writeln!(
        s,
        "\nCaptured {} events ({} KiB), evicted {}, dropped {}",
        c.len(),
        c.bytes() / 1024,
        c.evicted,
        c.dropped
    );
    s
}

/// How to reach the TLS listener, in a few lines a user can copy from.
pub fn tls_summary(t: &crate::event::TlsInfo) -> String {
    let mut out = format!("TLS on mqtts://{}", t.addr);
    if let Some(ca) = &t.ca {
        out += &format!(
            " (generated certificate for localhost, 127.0.0.1 and ::1); trust this CA in your clients: {}",
            ca.display()
        );
    }
    if t.client_cert_required {
        out += "\nclients must present a certificate";
        if let (Some(c), Some(k)) = (&t.client_cert, &t.client_key) {
            out += &format!(
                " (one signed by the generated CA: --cert {} --key {})",
                c.display(),
                k.display()
            );
        }
    }
    out
}
