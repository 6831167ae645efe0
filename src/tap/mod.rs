//! The tap: an MQTT-aware TCP proxy in front of the broker.
//!
//! Every client connects to the tap's port; the tap opens a matching
//! connection to the broker and forwards bytes both ways unchanged. On the way
//! it frames and decodes each MQTT 3.1.1 packet with rumqttc's `mqttbytes` and
//! records it as a [`WireEvent`]. It can cut a connection abruptly on command.

mod decode;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::engine::Recorder;
use crate::protocol::{CloseReason, ConnId, Direction, PacketKind, WireDetail, WireEvent};

pub use decode::{decode_frames, now_us};

/// Largest MQTT frame the tap decodes (bigger ones end the connection).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024 + 1024;

/// Control handle for one proxied connection.
struct ConnCtl {
    client_id: Arc<OnceLock<Arc<str>>>,
    kill: Arc<Notify>,
}

/// A running tap.
pub struct Tap {
    local_addr: SocketAddr,
    conns: Arc<Mutex<HashMap<ConnId, ConnCtl>>>,
    accept_task: tokio::task::JoinHandle<()>,
}

/// Shared state of one proxied connection.
struct ConnCtx {
    id: ConnId,
    client_id: Arc<OnceLock<Arc<str>>>,
    disconnect_seen: AtomicBool,
    rec: Recorder,
}

impl ConnCtx {
    fn client_id(&self) -> Arc<str> {
        self.client_id
            .get()
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    fn marker(&self, kind: PacketKind, detail: WireDetail) {
        self.rec.record(WireEvent {
            t_us: now_us(),
            conn: self.id,
            client_id: self.client_id(),
            dir: Direction::ClientToBroker,
            kind,
            pkid: 0,
            qos: 0,
            retain: false,
            dup: false,
            topic: None,
            payload: None,
            size: 0,
            detail,
        });
    }
}

impl Tap {
    /// Bind `listen` and forward every accepted connection to `upstream` (`host:port`).
    pub async fn start(
        listen: SocketAddr,
        upstream: Arc<Mutex<String>>,
        rec: Recorder,
    ) -> std::io::Result<Tap> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let conns: Arc<Mutex<HashMap<ConnId, ConnCtl>>> = Arc::default();
        let next_id = Arc::new(AtomicU64::new(1));
        let conns2 = conns.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("tap accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let ctx = Arc::new(ConnCtx {
                    id,
                    client_id: Arc::default(),
                    disconnect_seen: AtomicBool::new(false),
                    rec: rec.clone(),
                });
                let kill = Arc::new(Notify::new());
                conns2.lock().insert(
                    id,
                    ConnCtl {
                        client_id: ctx.client_id.clone(),
                        kill: kill.clone(),
                    },
                );
                let upstream = upstream.lock().clone();
                let conns3 = conns2.clone();
                tokio::spawn(async move {
                    proxy(stream, peer, upstream, ctx, kill).await;
                    conns3.lock().remove(&id);
                });
            }
        });
        Ok(Tap {
            local_addr,
            conns,
            accept_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Number of connections currently proxied.
    pub fn connection_count(&self) -> usize {
        self.conns.lock().len()
    }

    /// Cut one connection abruptly (no DISCONNECT reaches the broker: the will fires).
    pub fn drop_connection(&self, id: ConnId) -> bool {
        match self.conns.lock().get(&id) {
            Some(c) => {
                c.kill.notify_one();
                true
            }
            None => false,
        }
    }

    /// Cut every connection whose CONNECT carried `client_id`. Returns how many.
    pub fn drop_client(&self, client_id: &str) -> usize {
        let conns = self.conns.lock();
        let mut n = 0;
        for c in conns.values() {
            if c.client_id.get().is_some_and(|id| &**id == client_id) {
                c.kill.notify_one();
                n += 1;
            }
        }
        n
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.accept_task.abort();
        for c in self.conns.lock().values() {
            c.kill.notify_one();
        }
    }
}

async fn proxy(
    client: TcpStream,
    peer: SocketAddr,
    upstream: String,
    ctx: Arc<ConnCtx>,
    kill: Arc<Notify>,
) {
    ctx.marker(PacketKind::Opened, WireDetail::Opened { peer });
    let broker = match TcpStream::connect(&upstream).await {
        Ok(s) => s,
        Err(e) => {
            ctx.marker(
                PacketKind::Closed,
                WireDetail::Closed(CloseReason::Error(format!(
                    "broker {upstream} unreachable: {e}"
                ))),
            );
            return;
        }
    };
    // Latency matters more than throughput for an inspector; rumqttd never sets it.
    let _ = client.set_nodelay(true);
    let _ = broker.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (br, bw) = broker.into_split();
    let reason = tokio::select! {
        r = pump(cr, bw, Direction::ClientToBroker, &ctx) => match r {
            Ok(()) if ctx.disconnect_seen.load(Ordering::Relaxed) => CloseReason::Graceful,
            Ok(()) => CloseReason::ClientClosed,
            Err(e) => e,
        },
        r = pump(br, cw, Direction::BrokerToClient, &ctx) => match r {
            Ok(()) if ctx.disconnect_seen.load(Ordering::Relaxed) => CloseReason::Graceful,
            Ok(()) => CloseReason::BrokerClosed,
            Err(e) => e,
        },
        _ = kill.notified() => CloseReason::DroppedByTap,
    };
    ctx.marker(PacketKind::Closed, WireDetail::Closed(reason));
}

/// Copy one direction, decoding and recording every complete frame.
/// Ok(()) on EOF from the reading side.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    dir: Direction,
    ctx: &ConnCtx,
) -> Result<(), CloseReason> {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut passthrough = false;
    loop {
        let n = from
            .read_buf(&mut buf)
            .await
            .map_err(|e| CloseReason::Error(e.to_string()))?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        let ready = if passthrough {
            buf.split()
        } else {
            let outcome = decode_frames(&buf, dir, ctx.id, &ctx.client_id, &mut |ev| {
                if ev.kind == PacketKind::Disconnect {
                    ctx.disconnect_seen.store(true, Ordering::Relaxed);
                }
                ctx.rec.record(ev)
            });
            if let Some(err) = outcome.error {
                // Not MQTT 3.1.1 as we know it: keep forwarding, stop decoding.
                tracing::warn!(conn = ctx.id, "tap stops decoding: {err}");
                passthrough = true;
                buf.split()
            } else {
                buf.split_to(outcome.consumed)
            }
        };
        if !ready.is_empty() {
            to.write_all(&ready)
                .await
                .map_err(|e| CloseReason::Error(e.to_string()))?;
        }
    }
}
