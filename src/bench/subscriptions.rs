//! `bench --subscriptions N`: what subscriptions cost. One client subscribes
//! N distinct filters (in SUBSCRIBE packets of [`PER_PACKET`]), then
//! [`SHARERS`] clients subscribe one filter they all share; the figure is
//! this process's RSS growth (broker, tap and capture together) per filter
//! and per sharer, each measured from the clients already connected.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};

use super::settle;
use crate::engine::{self, EngineConfig, EngineHandle};
use crate::model::Model;

/// Filters a SUBSCRIBE carries.
const PER_PACKET: usize = 100;
/// Clients that subscribe the same filter.
pub const SHARERS: usize = 1000;

/// What `bench --subscriptions` measured.
#[derive(Debug, Clone)]
pub struct SubscriptionsReport {
    pub filters: usize,
    /// RSS growth with the filters granted, bytes.
    pub filters_bytes: i64,
    pub filters_s: f64,
    pub sharers: usize,
    /// RSS growth with every sharer subscribed, bytes.
    pub sharers_bytes: i64,
}

impl std::fmt::Display for SubscriptionsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: i64| b as f64 / (1024.0 * 1024.0);
        writeln!(
            f,
            "one client, {} filters   {:.1} MiB ({:.0} bytes a filter), granted in {:.1}s",
            self.filters,
            mib(self.filters_bytes),
            self.filters_bytes as f64 / self.filters.max(1) as f64,
            self.filters_s
        )?;
        writeln!(
            f,
            "{} clients, one filter   {:.1} MiB ({:.0} bytes a subscriber)",
            self.sharers,
            mib(self.sharers_bytes),
            self.sharers_bytes as f64 / self.sharers.max(1) as f64
        )?;
        writeln!(
            f,
            "(RSS growth of this process: broker, tap and capture; the clients connected before)"
        )
    }
}

/// A client of the tap, and how many SUBACK return codes and CONNACKs it got.
struct Client {
    client: AsyncClient,
    granted: Arc<AtomicU64>,
    connected: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

fn connect(addr: std::net::SocketAddr, id: String) -> Client {
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(60));
    let (client, mut el) = AsyncClient::new(opts, 64);
    let granted = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn({
        let (granted, connected) = (granted.clone(), connected.clone());
        async move {
            while let Ok(ev) = el.poll().await {
                match ev {
                    Event::Incoming(Packet::SubAck(ack)) => {
                        granted.fetch_add(ack.return_codes.len() as u64, Ordering::Relaxed);
                    }
                    Event::Incoming(Packet::ConnAck(_)) => {
                        connected.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
    });
    Client {
        client,
        granted,
        connected,
        task,
    }
}

/// Drain the model until `done`, at most `limit`.
async fn until(
    handle: &EngineHandle,
    model: &mut Model,
    what: &str,
    limit: Duration,
    done: impl Fn() -> bool,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    while !done() {
        anyhow::ensure!(t0.elapsed() < limit, "{what}: not done after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        model.drain(handle, None);
    }
    Ok(())
}

fn rss() -> i64 {
    crate::sys::rss_bytes().unwrap_or(0) as i64
}

pub async fn run(engine: EngineConfig, filters: usize) -> anyhow::Result<SubscriptionsReport> {
    let handle = engine::start(engine).await?;
    let mut model = Model::default();
    let addr = match handle.readiness() {
        engine::Readiness::Ready { tap, .. } => tap,
        other => anyhow::bail!("the engine is not ready: {other:?}"),
    };
    let limit = Duration::from_secs(60) + Duration::from_millis(filters as u64);

    // One client, N filters.
    let one = connect(addr, "bench-filters".into());
    until(&handle, &mut model, "bench-filters connects", limit, || {
        one.connected.load(Ordering::Relaxed) > 0
    })
    .await?;
    settle(&mut model, &handle, 500).await;
    let before = rss();
    let t0 = Instant::now();
    for start in (0..filters).step_by(PER_PACKET) {
        let packet = (start..filters.min(start + PER_PACKET))
            .map(|i| SubscribeFilter::new(format!("bench/f/{i}/+"), QoS::AtLeastOnce));
        one.client.subscribe_many(packet).await?;
    }
    until(&handle, &mut model, "the filters granted", limit, || {
        one.granted.load(Ordering::Relaxed) >= filters as u64
    })
    .await?;
    let filters_s = t0.elapsed().as_secs_f64();
    settle(&mut model, &handle, 1000).await;
    let filters_bytes = rss() - before;

    // Many clients, one filter.
    let sharers: Vec<Client> = (0..SHARERS)
        .map(|i| connect(addr, format!("bench-share-{i}")))
        .collect();
    until(&handle, &mut model, "the sharers connect", limit, || {
        sharers
            .iter()
            .all(|c| c.connected.load(Ordering::Relaxed) > 0)
    })
    .await?;
    settle(&mut model, &handle, 1000).await;
    let before = rss();
    for c in &sharers {
        c.client
            .subscribe("bench/shared/#", QoS::AtLeastOnce)
            .await?;
    }
    until(
        &handle,
        &mut model,
        "the shared filter granted",
        limit,
        || {
            sharers
                .iter()
                .all(|c| c.granted.load(Ordering::Relaxed) > 0)
        },
    )
    .await?;
    settle(&mut model, &handle, 1000).await;
    let sharers_bytes = rss() - before;
    for c in sharers.iter().chain([&one]) {
        let _ = c.client.try_disconnect();
        c.task.abort();
    }
    Ok(SubscriptionsReport {
        filters,
        filters_bytes,
        filters_s,
        sharers: SHARERS,
        sharers_bytes,
    })
}
