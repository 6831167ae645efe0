//! Replay a recorded capture: every PUBLISH the recorded clients sent
//! (not the ones a fault dropped or the access rules refused) is published
//! again, by a client with the original client id, at the original relative
//! times scaled by the speed (or as fast as possible), so a field incident
//! can be replayed against a backend.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Outgoing, Packet, QoS};
use tokio::time::Instant;

use crate::export::record::Recording;
use crate::wire::{Direction, Injected, PacketKind};

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Original timing divided by this factor (1.0: as recorded).
    Times(f64),
    /// No waiting between messages.
    Max,
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Speed, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let n = s.trim_end_matches(['x', 'X']);
        match n.parse::<f64>() {
            Ok(f) if f > 0.0 && f.is_finite() => Ok(Speed::Times(f)),
            _ => Err(format!(
                "\"{s}\": expected a speed like 1x, 10x, 0.5x or max"
            )),
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    pub clients: usize,
    pub published: u64,
    /// Publishes the client could not queue (its connection failed).
    pub failed: u64,
    pub elapsed: Duration,
}

/// One message to publish again.
struct Item {
    at_us: u64,
    client: usize,
    topic: String,
    payload: bytes::Bytes,
    qos: u8,
    retain: bool,
}

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// Replay `rec` to the broker (or tap) at `host:port`.
pub async fn replay(
    rec: &Recording,
    host: &str,
    port: u16,
    speed: Speed,
) -> anyhow::Result<ReplayReport> {
    let publishes: Vec<_> = rec
        .events
        .iter()
        .filter(|e| {
            e.kind == PacketKind::Publish
                && e.dir == Direction::ClientToBroker
                && !matches!(e.injected, Some(Injected::Dropped | Injected::Denied))
                && !e.client_id.is_empty()
        })
        .collect();
    let Some(t0) = publishes.iter().map(|e| e.t_us).min() else {
        anyhow::bail!("{}: no published messages to replay", rec.path.display());
    };
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    let mut items = Vec::with_capacity(publishes.len());
    for e in &publishes {
        let n = ids.len();
        let client = *ids.entry(&e.client_id).or_insert(n);
        items.push(Item {
            at_us: e.t_us - t0,
            client,
            topic: e.topic.as_deref().unwrap_or_default().to_string(),
            payload: e.payload.clone().unwrap_or_default(),
            qos: e.qos,
            retain: e.retain,
        });
    }
    items.sort_by_key(|i| i.at_us);
    // Connect every recorded publisher first (bounded), then replay.
    let mut clients = Vec::with_capacity(ids.len());
    let mut loops = Vec::with_capacity(ids.len());
    // QoS 1/2 acknowledgements each client received, and how many it will need.
    let acks: Vec<Arc<AtomicU64>> = (0..ids.len()).map(|_| Arc::default()).collect();
    let mut wanted = vec![0u64; ids.len()];
    for it in &items {
        wanted[it.client] += (it.qos > 0) as u64;
    }
    let mut names: Vec<(&str, usize)> = ids.iter().map(|(k, v)| (*k, *v)).collect();
    names.sort_by_key(|(_, v)| *v);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(names.len().max(1));
    for (id, k) in &names {
        let acked = acks[*k].clone();
        let mut o = MqttOptions::new(*id, host, port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(1024 * 1024 + 1024, 1024 * 1024 + 1024);
        let (client, mut el) = AsyncClient::new(o, 1024);
        let ready = ready_tx.clone();
        loops.push(tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        let _ = ready.try_send(());
                    }
                    Ok(MqttEvent::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(MqttEvent::Outgoing(Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("replay client: {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }));
        clients.push(client);
    }
    drop(ready_tx);
    let deadline = Instant::now() + Duration::from_secs(10 + names.len() as u64 / 100);
    for _ in 0..names.len() {
        if tokio::time::timeout_at(deadline, ready_rx.recv())
            .await
            .is_err()
        {
            anyhow::bail!(
                "not every replay client connected to {host}:{port} within the time allowed"
            );
        }
    }
    let started = Instant::now();
    let mut report = ReplayReport {
        clients: clients.len(),
        ..ReplayReport::default()
    };
    for it in items {
        if let Speed::Times(f) = speed {
            let due = started + Duration::from_micros((it.at_us as f64 / f) as u64);
            tokio::time::sleep_until(due).await;
        }
        // Awaiting the queue keeps each client's order and paces a max-speed replay.
        match clients[it.client]
            .publish(it.topic, qos(it.qos), it.retain, it.payload)
            .await
        {
            Ok(()) => report.published += 1,
            Err(_) => report.failed += 1,
        }
    }
    // Every QoS 1/2 flow completes before the clients leave (bounded).
    let ack_deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < ack_deadline
        && acks
            .iter()
            .zip(&wanted)
            .any(|(a, w)| a.load(Ordering::Relaxed) < *w)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in &clients {
        let _ = c.disconnect().await;
    }
    // Each loop ends once its DISCONNECT is out (after the queued publishes).
    let all = futures_join(loops);
    let _ = tokio::time::timeout(Duration::from_secs(30), all).await;
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse() {
        assert_eq!("10x".parse::<Speed>(), Ok(Speed::Times(10.0)));
        assert_eq!("1".parse::<Speed>(), Ok(Speed::Times(1.0)));
        assert_eq!("MAX".parse::<Speed>(), Ok(Speed::Max));
        assert!("0x".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
    }
}
