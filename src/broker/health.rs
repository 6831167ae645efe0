//! Is the embedded broker still answering? A probe client on the broker's own
//! MQTT 3.1.1 listener (not through the tap, so it is not in the capture)
//! subscribes to a `$` topic of its own (no user's `#` matches it, MQTT 3.1.1
//! §4.7.2) and publishes to it at QoS 1 every [`PERIOD`]. When nothing came
//! back for [`DEADLINE`] — a listener gone, a router thread stopped, a link
//! that accepts but never answers — it reports [`Health::NotAnswering`] with
//! what it saw (again after every further [`DEADLINE`] of silence); the
//! engine restarts the broker and counts it. The first message back on each
//! new connection of the probe is reported as [`Health::Answering`].
//!
//! A router that is only far behind is not restarted: while its loop keeps
//! turning (the `progress` counter rumqttd's router keeps, a patch in
//! `vendor/rumqttd`), silence counts as not answering only after
//! [`BUSY_DEADLINE`]. A connect storm of 80,000 persistent sessions keeps the
//! router's queue minutes deep; restarting it then dropped every client it
//! had connected (`run` of the car-sharing scenario at 80,000 cars: six
//! restarts in 100 s before this).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::event::Health;
use tokio::time::Instant;

/// How often the probe publishes.
pub const PERIOD: Duration = Duration::from_secs(2);
/// How long without its own message back before the broker counts as not
/// answering (generous: a router busy with a connect burst of 80,000 clients
/// still echoes within seconds).
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How long a router that keeps working may stay silent to the probe.
pub const BUSY_DEADLINE: Duration = Duration::from_secs(120);

/// The probe's client id and topic.
pub const PROBE_CLIENT_ID: &str = "mqtt-workbench-health-probe";
pub const PROBE_TOPIC: &str = "$workbench/health";

/// Probe the broker at `addr` until `report` returns false (its receiver is
/// gone). `progress`: the router's turn counter, when the probe can see it.
pub async fn probe(
    addr: SocketAddr,
    deadline: Duration,
    progress: Option<Arc<AtomicU64>>,
    report: impl Fn(Health) -> bool,
) {
    let turns = || progress.as_ref().map(|p| p.load(Ordering::Relaxed));
    loop {
        let mut opts = MqttOptions::new(PROBE_CLIENT_ID, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_clean_session(true);
        let (client, mut events) = AsyncClient::new(opts, 16);
        let mut last_echo = Instant::now();
        // The router's turn count when last seen changing, and when.
        let mut moved = (turns(), Instant::now());
        let mut last_error = String::from("no CONNACK yet");
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // After a connection error the event loop is polled again on the next
        // tick only (polling at once would reconnect in a busy loop).
        let mut paused = false;
        let mut seq = 0u64;
        // Connected, and no message back on this connection yet.
        let mut fresh = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    paused = false;
                    seq += 1;
                    let _ = client.try_publish(PROBE_TOPIC, QoS::AtLeastOnce, false, seq.to_string());
                    let now = turns();
                    if now != moved.0 {
                        moved = (now, Instant::now());
                    }
                    let working = now.is_some() && moved.1.elapsed() < deadline;
                    let silent = last_echo.elapsed();
                    if silent >= deadline && (!working || silent >= BUSY_DEADLINE) {
                        break;
                    }
                }
                event = events.poll(), if !paused => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        fresh = true;
                        let _ = client.try_subscribe(PROBE_TOPIC, QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == PROBE_TOPIC => {
                        last_echo = Instant::now();
                        if std::mem::take(&mut fresh) && !report(Health::Answering) {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        last_error = e.to_string();
                        paused = true;
                    }
                },
            }
        }
        // Nothing back within the deadline: say so, then start over with a
        // fresh client (the broker may be restarted meanwhile).
        let stuck = match turns() {
            Some(_) if moved.1.elapsed() < deadline => {
                " while its router kept working (too far behind)".to_string()
            }
            Some(_) => format!(
                ", its router made no progress for {} s",
                moved.1.elapsed().as_secs()
            ),
            None => String::new(),
        };
        let why = format!(
            "its health probe got no QoS 1 message back for {} s{stuck} (last: {last_error})",
            last_echo.elapsed().as_secs()
        );
        if !report(Health::NotAnswering(why)) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener that accepts connections and never answers; abort the task to close it.
    async fn silent_listener() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        (addr, hold)
    }

    /// A silent broker whose router keeps turning is busy, not stuck: the
    /// probe waits; once the router stops turning, it reports.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_router_is_not_reported_until_it_stops_working() {
        let (addr, hold) = silent_listener().await;
        let turns = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let working = Duration::from_secs(5);
        let bumper = tokio::spawn({
            let turns = turns.clone();
            async move {
                while t0.elapsed() < working {
                    turns.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(probe(addr, Duration::from_secs(1), Some(turns), move |h| {
            tx.try_send(h).is_ok()
        }));
        let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("a report once the router stopped")
            .expect("a report");
        assert!(
            t0.elapsed() >= working,
            "reported after {:?}, while the router still worked: {first:?}",
            t0.elapsed()
        );
        match first {
            Health::NotAnswering(why) => {
                assert!(why.contains("its router made no progress for"), "{why}")
            }
            other => panic!("expected NotAnswering, got {other:?}"),
        }
        bumper.abort();
        hold.abort();
    }

    /// A listener that accepts and never answers: the probe says so.
    #[tokio::test]
    async fn a_broker_that_accepts_but_never_answers_is_reported() {
        let (addr, hold) = silent_listener().await;
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(probe(addr, Duration::from_secs(3), None, move |h| {
            tx.try_send(h).is_ok()
        }));
        let first = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a report within the deadline")
            .expect("a report");
        match first {
            Health::NotAnswering(why) => assert!(why.contains("no QoS 1 message back"), "{why}"),
            other => panic!("expected NotAnswering, got {other:?}"),
        }
        hold.abort();
    }

    async fn next(rx: &mut tokio::sync::mpsc::Receiver<Health>) -> Health {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a report in time")
            .expect("a report")
    }

    /// No broker on the port: not answering; then a broker starts there:
    /// answering again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broker_that_comes_back_is_reported_answering() {
        let port = crate::broker::free_loopback_port().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(probe(addr, Duration::from_secs(3), None, move |h| {
            tx.try_send(h).is_ok()
        }));
        assert!(matches!(next(&mut rx).await, Health::NotAnswering(_)));
        let _broker = crate::broker::BrokerControl::start(
            addr,
            "--broker-port",
            crate::broker::DEFAULT_MAX_CONNECTIONS,
        )
        .await
        .unwrap();
        // Answering once its client connects (a deadline may pass first).
        for _ in 0..3 {
            if next(&mut rx).await == Health::Answering {
                return;
            }
        }
        panic!("the probe never reported the broker answering");
    }
}
