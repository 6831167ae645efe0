//! Is the embedded broker still answering? A probe client on the broker's own
//! MQTT 3.1.1 listener (not through the tap, so it is not in the capture)
//! subscribes to a `$` topic of its own (no user's `#` matches it, MQTT 3.1.1
//! §4.7.2) and publishes to it at QoS 1 every [`PERIOD`]. When nothing came
//! back for [`DEADLINE`] — a listener gone, a router thread stopped, a link
//! that accepts but never answers — it reports [`Health::NotAnswering`] with
//! what it saw (again after every further [`DEADLINE`] of silence); the
//! engine restarts the broker and counts it. The first message back on each
//! new connection of the probe is reported as [`Health::Answering`].

use std::net::SocketAddr;
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

/// The probe's client id and topic.
pub const PROBE_CLIENT_ID: &str = "mqtt-workbench-health-probe";
pub const PROBE_TOPIC: &str = "$workbench/health";

/// Probe the broker at `addr` until `report` returns false (its receiver is
/// gone).
pub async fn probe(addr: SocketAddr, deadline: Duration, report: impl Fn(Health) -> bool) {
    loop {
        let mut opts = MqttOptions::new(PROBE_CLIENT_ID, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_clean_session(true);
        let (client, mut events) = AsyncClient::new(opts, 16);
        let mut last_echo = Instant::now();
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
                    if last_echo.elapsed() >= deadline {
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
        let why = format!(
            "its health probe got no QoS 1 message back for {} s (last: {last_error})",
            deadline.as_secs()
        );
        if !report(Health::NotAnswering(why)) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener that accepts and never answers: the probe says so.
    #[tokio::test]
    async fn a_broker_that_accepts_but_never_answers_is_reported() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(probe(addr, Duration::from_secs(3), move |h| {
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
        tokio::spawn(probe(addr, Duration::from_secs(3), move |h| {
            tx.try_send(h).is_ok()
        }));
        assert!(matches!(next(&mut rx).await, Health::NotAnswering(_)));
        let _broker = crate::broker::BrokerControl::start(addr, "--broker-port")
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
