//! How far a fleet got connecting: devices alive, connected now, still
//! waiting for their first CONNACK, and why the waiting ones failed last.
//!
//! Every device holds a [`RampMark`] on the engine's one [`Ramp`]; the counts
//! are atomics the devices update themselves, so they stay exact when the
//! devices' report queue is full and reports are dropped (a big fleet's
//! connect storm is exactly when that happens). The engine sends a
//! [`RampStatus`] once a second when it changed; `run`, `bench` and the
//! window show it, and give up with [`RampStatus::never_connected`] instead of
//! waiting for devices that cannot connect.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::event::RampStatus;

/// Distinct failure reasons kept; further ones are counted as [`OTHER`].
const MAX_REASONS: usize = 8;
/// The reason key past [`MAX_REASONS`].
const OTHER: &str = "other errors";

/// The engine's connect counters, shared by every device it starts.
#[derive(Debug, Default)]
pub struct Ramp {
    /// Devices started and not yet stopped.
    alive: AtomicU64,
    /// Devices connected now (between a CONNACK and the connection's end).
    connected: AtomicU64,
    /// Alive devices that never got a CONNACK accepting them.
    waiting: AtomicU64,
    /// Waiting devices whose last attempt failed, by why.
    failing: parking_lot::Mutex<HashMap<Arc<str>, u64>>,
}

impl Ramp {
    /// A device was started: it holds the mark until it ends.
    pub fn mark(self: &Arc<Self>) -> RampMark {
        self.alive.fetch_add(1, Ordering::Relaxed);
        self.waiting.fetch_add(1, Ordering::Relaxed);
        RampMark {
            ramp: self.clone(),
            waiting: true,
            connected: false,
            failing: None,
        }
    }

    pub fn status(&self) -> RampStatus {
        let mut failing: Vec<(String, u64)> = self
            .failing
            .lock()
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.to_string(), *n))
            .collect();
        failing.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        RampStatus {
            devices: self.alive.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            failing,
        }
    }

    fn unfail(&self, reason: &Arc<str>) {
        let mut f = self.failing.lock();
        if let Some(n) = f.get_mut(reason) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                f.remove(reason);
            }
        }
    }
}

/// One device's part in the [`Ramp`]; dropping it (the device ended, or its
/// task was aborted) takes the device out of every count.
#[derive(Debug)]
pub struct RampMark {
    ramp: Arc<Ramp>,
    waiting: bool,
    connected: bool,
    failing: Option<Arc<str>>,
}

impl RampMark {
    /// A CONNACK accepted the connection.
    pub fn connected(&mut self) {
        if !self.connected {
            self.connected = true;
            self.ramp.connected.fetch_add(1, Ordering::Relaxed);
        }
        if std::mem::take(&mut self.waiting) {
            self.ramp.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(r) = self.failing.take() {
            self.ramp.unfail(&r);
        }
    }

    /// The connection ended or an attempt failed, with why (rumqttc's error).
    pub fn failed(&mut self, why: &str) {
        self.closed();
        if !self.waiting {
            return;
        }
        if self.failing.as_deref() == Some(why) {
            return;
        }
        if let Some(r) = self.failing.take() {
            self.ramp.unfail(&r);
        }
        let mut f = self.ramp.failing.lock();
        let key: Arc<str> = match f.get_key_value(why) {
            Some((k, _)) => k.clone(),
            None if f.len() < MAX_REASONS => Arc::from(why),
            None => Arc::from(OTHER),
        };
        *f.entry(key.clone()).or_insert(0) += 1;
        self.failing = Some(key);
    }

    /// The connection ended on purpose (DISCONNECT, a dropped socket, a stop).
    pub fn closed(&mut self) {
        if std::mem::take(&mut self.connected) {
            self.ramp.connected.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for RampMark {
    fn drop(&mut self) {
        self.closed();
        if self.waiting {
            self.ramp.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(r) = self.failing.take() {
            self.ramp.unfail(&r);
        }
        self.ramp.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RampStatus {
    /// Every device got its first CONNACK.
    pub fn complete(&self) -> bool {
        self.waiting == 0
    }

    /// "12,000 / 80,000 devices connected", with the reasons of the waiting
    /// ones that failed.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} / {} devices connected",
            thousands(self.connected),
            thousands(self.devices)
        );
        if self.waiting > 0 {
            s.push_str(&format!(", {} waiting", thousands(self.waiting)));
        }
        if let Some((why, n)) = self.failing.first() {
            s.push_str(&format!(" ({} failing: {why})", thousands(*n)));
        }
        s
    }

    /// What did not happen: "12 of 80,000 devices never got a CONNACK within
    /// 190 s: 12 were refused: …", for the error a ramp that ran out of time
    /// ends with.
    pub fn never_connected(&self, within: std::time::Duration) -> String {
        let mut s = format!(
            "{} of {} devices never got a CONNACK within {:.0} s",
            thousands(self.waiting),
            thousands(self.devices),
            within.as_secs_f64()
        );
        let failing: u64 = self.failing.iter().map(|(_, n)| n).sum();
        if self.failing.is_empty() {
            s.push_str(": their connections neither succeeded nor failed (no answer yet)");
        } else {
            let reasons: Vec<String> = self
                .failing
                .iter()
                .map(|(why, n)| format!("{} with \"{why}\"", thousands(*n)))
                .collect();
            s.push_str(&format!(
                ": their last attempt failed, {}",
                reasons.join(", ")
            ));
            if failing < self.waiting {
                s.push_str(&format!(
                    "; {} had no answer yet",
                    thousands(self.waiting - failing)
                ));
            }
        }
        s
    }
}

/// How long a fleet of `devices` may take to connect by default: half a
/// minute and 4 ms a device, four times the devices' ramp
/// (`sim::RAMP_CONNECTS_PER_S`, 1,000 connects a second).
pub fn connect_limit(devices: u64) -> std::time::Duration {
    std::time::Duration::from_secs(30 + devices / 250)
}

/// 80000 → "80,000".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_devices_through_failures_connects_and_ends() {
        let ramp = Arc::new(Ramp::default());
        let mut a = ramp.mark();
        let mut b = ramp.mark();
        let c = ramp.mark();
        assert_eq!(ramp.status().waiting, 3);
        a.failed("Connection refused, return code: `ServiceUnavailable`");
        b.failed("Connection refused, return code: `ServiceUnavailable`");
        let s = ramp.status();
        assert_eq!(
            s.failing,
            vec![(
                "Connection refused, return code: `ServiceUnavailable`".to_string(),
                2
            )]
        );
        a.connected();
        let s = ramp.status();
        assert_eq!((s.devices, s.connected, s.waiting), (3, 1, 2));
        assert_eq!(s.failing[0].1, 1);
        // A connected device losing its connection is no longer connected, but not waiting.
        a.failed("I/O: connection reset");
        let s = ramp.status();
        assert_eq!((s.connected, s.waiting, s.failing[0].1), (0, 2, 1));
        drop(b);
        drop(c);
        let s = ramp.status();
        assert_eq!((s.devices, s.waiting), (1, 0));
        assert!(s.failing.is_empty() && s.complete());
        drop(a);
        assert_eq!(ramp.status(), RampStatus::default());
    }

    #[test]
    fn reasons_are_bounded_and_the_error_names_them() {
        let ramp = Arc::new(Ramp::default());
        let mut marks: Vec<RampMark> = (0..20).map(|_| ramp.mark()).collect();
        for (i, m) in marks.iter_mut().enumerate() {
            m.failed(&format!("reason {i}"));
        }
        let s = ramp.status();
        assert_eq!(s.failing.len(), MAX_REASONS + 1);
        assert_eq!(s.failing[0], (OTHER.to_string(), 20 - MAX_REASONS as u64));
        let text = s.never_connected(std::time::Duration::from_secs(30));
        assert!(
            text.starts_with("20 of 20 devices never got a CONNACK within 30 s: their last attempt failed, 12 with \"other errors\""),
            "{text}"
        );
        assert_eq!(thousands(80_000), "80,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
