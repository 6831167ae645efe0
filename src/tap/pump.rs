//! The pumps: each direction of a connection read, decoded frame by frame,
//! recorded, checked against the access rules and delayed, held or dropped
//! by the connection's network faults, then written on.

use std::task::Poll;

use bytes::Buf;
use tokio::io::AsyncWrite;

use super::*;
use crate::fault::NetFault;

/// The smallest and largest room the tap reads into (bigger frames still fit:
/// the buffer grows to hold a whole frame).
pub(super) const READ_MIN: usize = 64;
const READ_MAX: usize = 64 * 1024;

/// Bytes to forward, not before `due`.
pub(super) struct Outgoing {
    due: Instant,
    bytes: Bytes,
}

/// Frames queued between a pump's reader and writer; a full queue stops the
/// reader, so a held partition pushes back on the sender through TCP.
pub(super) const QUEUE_FRAMES: usize = 1024;

/// Copy one direction, decoding and recording every complete frame and
/// applying the connection's network faults. Ok(()) on EOF from the reading
/// side, once everything read has been written.
///
/// Not an `async fn`, and the halves are joined by a combinator, not in an
/// async block: each half's future is then kept once, at its own size, in
/// the connection's task (an async fn or block keeps room for what it
/// moves on as well; an idle connection holds two pumps, a fleet
/// thousands).
pub(super) fn pump(
    from: Reader,
    to: Writer,
    dir: Direction,
    ctx: &Arc<ConnCtx>,
    read_before: BytesMut,
    queue: Option<(flume::Sender<Outgoing>, flume::Receiver<Outgoing>)>,
    replies: Option<flume::WeakSender<Outgoing>>,
) -> impl std::future::Future<Output = Result<(), CloseReason>> + Send + use<> {
    use futures_util::FutureExt;
    let (tx, rx) = queue.unwrap_or_else(|| flume::bounded(QUEUE_FRAMES));
    let out = Arc::new(Out {
        to: parking_lot::Mutex::new(to),
        busy: AtomicBool::new(false),
    });
    let reader = read_side(
        from,
        tx,
        out.clone(),
        dir,
        ctx.clone(),
        read_before,
        replies,
    );
    let writer = write_side(out, rx, ctx.clone());
    futures_util::future::try_join(reader, writer).map(|r| r.map(|_| ()))
}

/// The writing half of a direction, shared by its reader and its writer.
/// While nothing waits in the queue and the writer is idle, the reader
/// writes a read straight on, as far as it goes out at once: no queue, no
/// second turn of the task per frame. What does not go out at once, frames
/// behind a fault, and the tap's answers go through the queue, and then
/// everything does until the writer has caught up, so a frame never
/// overtakes one read before it. The lock is held within one poll only,
/// never across an await.
struct Out {
    to: parking_lot::Mutex<Writer>,
    /// The writer holds a frame it took from the queue (until it is written).
    busy: AtomicBool,
}

impl Out {
    /// Write as much of `bytes` as goes out now, when the reader may write
    /// straight through (nothing queued, the writer idle). The rest, or
    /// everything when it may not, is for the queue.
    async fn write_now(
        &self,
        queue: &flume::Sender<Outgoing>,
        mut bytes: Bytes,
    ) -> std::io::Result<Bytes> {
        if !queue.is_empty() || self.busy.load(Ordering::Relaxed) {
            return Ok(bytes);
        }
        std::future::poll_fn(|cx| match self.poll_write_from(cx, &mut bytes) {
            Poll::Pending => Poll::Ready(Ok(())),
            done => done,
        })
        .await?;
        Ok(bytes)
    }

    /// Write all of `bytes` (the writer, with a frame from the queue).
    async fn write_all(&self, mut bytes: Bytes) -> std::io::Result<()> {
        std::future::poll_fn(|cx| self.poll_write_from(cx, &mut bytes)).await
    }

    /// Write from the front of `bytes` until it is empty (Ready) or the
    /// writing half is full (Pending); the lock is held for this poll only.
    fn poll_write_from(
        &self,
        cx: &mut std::task::Context<'_>,
        bytes: &mut Bytes,
    ) -> Poll<std::io::Result<()>> {
        let mut to = self.to.lock();
        while !bytes.is_empty() {
            match std::task::ready!(std::pin::Pin::new(&mut *to).poll_write(cx, bytes)) {
                Ok(0) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => bytes.advance(n),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Shut the writing half down (the writer, once the queue ended).
    async fn shutdown(&self) -> std::io::Result<()> {
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut *self.to.lock()).poll_shutdown(cx)).await
    }
}

/// The reading half of a direction. Not an `async fn`: an async block uses
/// its arguments where they are instead of keeping a second copy of each.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn read_side(
    mut from: Reader,
    tx: flume::Sender<Outgoing>,
    out: Arc<Out>,
    dir: Direction,
    ctx: Arc<ConnCtx>,
    // Bytes read before the pumps started (the CONNECT), then the read buffer.
    mut buf: BytesMut,
    replies: Option<flume::WeakSender<Outgoing>>,
) -> impl std::future::Future<Output = Result<(), CloseReason>> + Send {
    async move {
        let ctx = &*ctx;
        // Room for one read: small while the connection is quiet (a fleet of idle
        // devices holds thousands), doubling while reads fill it.
        let mut want = READ_MIN;
        // Bytes read before the pumps started (the CONNECT) are decoded first.
        let mut unread = !buf.is_empty();
        let v5 = ctx.protocol == 5;
        // MQTT 5 topic aliases of this direction (alias → topic).
        let mut aliases = std::collections::HashMap::new();
        let mut passthrough = false;
        let mut view = FaultView::new(ctx.faults.clone());
        // Seeded per connection and direction; made on the first fault that draws
        // from it (a fleet of idle connections never needs one).
        let mut rng: Option<Box<ChaCha8Rng>> = None;
        let seed = ctx.id.wrapping_mul(2) + dir as u64;
        let mut last_due = Instant::now();
        let closed = |_| CloseReason::Error("tap writer stopped".into());
        loop {
            // Half-dead client: stop reading it, so the broker's keepalive runs out.
            // The broker's side is still read (and held by the writer) so that the
            // tap sees the broker close the connection.
            while dir == Direction::ClientToBroker && view.refresh(ctx.id, &ctx.client_id()).stalled
            {
                Box::pin(tokio::time::sleep(Duration::from_millis(50))).await;
            }
            if !unread && read_more(&mut from, &mut buf, &mut want).await? == 0 {
                return Ok(()); // dropping tx lets the writer drain and shut down
            }
            unread = false;
            let fault = view.refresh(ctx.id, &ctx.client_id()).clone();
            if passthrough {
                let due = last_due.max(Instant::now());
                tx.send_async(Outgoing {
                    due,
                    bytes: buf.split().freeze(),
                })
                .await
                .map_err(closed)?;
                continue;
            }
            let mut frames = Vec::new();
            let mut rewritten = false;
            let outcome = decode_frames(
                &buf,
                dir,
                ctx.id,
                &ctx.client_id,
                v5.then_some(&mut aliases),
                &mut |ev, range| {
                    if ev.kind == PacketKind::Disconnect {
                        ctx.disconnect_seen.store(true, Ordering::Relaxed);
                    }
                    frames.push((ev, range, None::<Bytes>));
                },
            );
            // Access rules: refused frames are recorded, marked, and not forwarded;
            // the tap answers for the broker.
            let mut answers = Vec::new();
            if let Some(acl) = &ctx.acl {
                rewritten |= enforce(acl, ctx, dir, &buf, &mut frames, &mut answers);
            }
            let consumed = match outcome.error {
                Some(err) if v5 || ctx.embedded => {
                    // A malformed MQTT 5 frame (bad properties, AUTH, …): this connection
                    // ends with the reason; everyone else is served on.
                    for (ev, _, _) in frames {
                        ctx.rec.record(ev);
                    }
                    // In front of the embedded broker a frame the tap cannot read is
                    // not forwarded: rumqttd may crash on what the tap cannot check.
                    let version = if v5 { "MQTT 5" } else { "MQTT 3.1.1" };
                    return Err(CloseReason::Error(format!(
                        "closed by the tap: undecodable {version} frame ({err})"
                    )));
                }
                Some(err) => {
                    // Not MQTT 3.1.1 as we know it: keep forwarding, stop decoding.
                    tracing::warn!(conn = ctx.id, "tap stops decoding: {err}");
                    passthrough = true;
                    buf.len()
                }
                None => outcome.consumed,
            };
            let chunk = buf.split_to(consumed).freeze();
            if fault.is_clear() && !rewritten {
                for (ev, _, _) in frames {
                    ctx.rec.record(ev);
                }
                if chunk.is_empty() {
                    continue;
                }
                let rest = out.write_now(&tx, chunk).await.map_err(write_failed)?;
                if rest.is_empty() {
                    continue;
                }
                let due = last_due.max(Instant::now());
                tx.send_async(Outgoing { due, bytes: rest })
                    .await
                    .map_err(closed)?;
                continue;
            }
            // Faults, rewrites and the tap's answers: boxed, so that this rarely
            // taken path does not size the task of every (mostly idle) connection.
            let rng = rng.get_or_insert_with(|| Box::new(ChaCha8Rng::seed_from_u64(seed)));
            let batch = Batch {
                frames,
                chunk,
                consumed: outcome.consumed,
                answers,
            };
            Box::pin(send_faulted(
                ctx,
                &tx,
                &replies,
                &fault,
                rng,
                &mut last_due,
                batch,
            ))
            .await?;
        }
    }
}

/// What one read decoded: its frames (with the bytes that replace a
/// rewritten one), the bytes read, how many of them the frames cover, and the
/// tap's own answers to send after them.
struct Batch {
    frames: Vec<(WireEvent, std::ops::Range<usize>, Option<Bytes>)>,
    chunk: Bytes,
    consumed: usize,
    answers: Vec<Bytes>,
}

/// Read once into `buf`; the room grows while reads fill it. Ok(0): the end
/// of the stream.
async fn read_more(
    from: &mut Reader,
    buf: &mut BytesMut,
    want: &mut usize,
) -> Result<usize, CloseReason> {
    if buf.capacity() - buf.len() < *want / 2 {
        buf.reserve(*want);
    }
    let spare = buf.capacity() - buf.len();
    match from.read_buf(buf).await {
        Ok(n) => {
            if n == spare && *want < READ_MAX {
                *want *= 2;
            }
            Ok(n)
        }
        // A TLS peer that closes without close_notify (common after
        // DISCONNECT): an end of stream like any other.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(CloseReason::Error(e.to_string())),
    }
}

/// Send a batch through the connection's network faults: each frame dropped,
/// delayed or held (in order: a frame never overtakes one read before it),
/// then the tap's answers.
async fn send_faulted(
    ctx: &ConnCtx,
    tx: &flume::Sender<Outgoing>,
    replies: &Option<flume::WeakSender<Outgoing>>,
    fault: &NetFault,
    rng: &mut ChaCha8Rng,
    last_due: &mut Instant,
    batch: Batch,
) -> Result<(), CloseReason> {
    let closed = |_| CloseReason::Error("tap writer stopped".into());
    let Batch {
        frames,
        chunk,
        consumed,
        answers,
    } = batch;
    for (mut ev, range, replacement) in frames {
        if ev.injected == Some(Injected::Denied) {
            ctx.rec.record(ev);
            continue;
        }
        let now = Instant::now();
        let lost = fault.drop_pct > 0.0 && rng.random_range(0.0..100.0) < fault.drop_pct;
        if lost || fault.partition == Some(PartitionMode::Cut) {
            ev.injected = Some(Injected::Dropped);
            ctx.rec.record(ev);
            continue;
        }
        let mut delay_ms = fault.latency_ms as u64;
        if fault.jitter_ms > 0 {
            delay_ms += rng.random_range(0..=fault.jitter_ms as u64);
        }
        if fault.stall_pct > 0.0 && rng.random_range(0.0..100.0) < fault.stall_pct {
            delay_ms += fault.stall_ms as u64;
        }
        ev.injected = if fault.partition == Some(PartitionMode::Hold) {
            Some(Injected::Held)
        } else if delay_ms > 0 {
            Some(Injected::Delayed(delay_ms as u32))
        } else {
            None
        };
        ctx.rec.record(ev);
        // Keep order: a frame never overtakes one read before it.
        let due = (now + Duration::from_millis(delay_ms)).max(*last_due);
        *last_due = due;
        tx.send_async(Outgoing {
            due,
            bytes: replacement.unwrap_or_else(|| chunk.slice(range)),
        })
        .await
        .map_err(closed)?;
    }
    if chunk.len() > consumed {
        // Bytes the decoder could not frame still go through, after the frames before them.
        let due = (*last_due).max(Instant::now());
        tx.send_async(Outgoing {
            due,
            bytes: chunk.slice(consumed..),
        })
        .await
        .map_err(closed)?;
    }
    send_answers(ctx, replies, answers).await;
    Ok(())
}

/// The tap's own answers go to the client after the frames they answer.
async fn send_answers(
    ctx: &ConnCtx,
    replies: &Option<flume::WeakSender<Outgoing>>,
    answers: Vec<Bytes>,
) {
    let Some(to_client) = replies.as_ref().and_then(|w| w.upgrade()) else {
        return;
    };
    for bytes in answers {
        for ev in ctx.decode_own(&bytes, Direction::BrokerToClient, Some(Injected::FromTap)) {
            ctx.rec.record(ev);
        }
        let out = Outgoing {
            due: Instant::now(),
            bytes,
        };
        if to_client.send_async(out).await.is_err() {
            return;
        }
    }
}

/// Apply the access rules to decoded frames: mark refused ones (replaced by
/// nothing), split partly refused SUBSCRIBEs and merge their SUBACKs, and
/// queue the tap's answers. True when any frame changed.
fn enforce(
    acl: &Acl,
    ctx: &ConnCtx,
    dir: Direction,
    buf: &[u8],
    frames: &mut [(WireEvent, std::ops::Range<usize>, Option<Bytes>)],
    answers: &mut Vec<Bytes>,
) -> bool {
    let level = ctx.protocol;
    let mut changed = false;
    for (ev, range, replacement) in frames.iter_mut() {
        let pkid = ev.pkid;
        match (dir, ev.kind) {
            (Direction::ClientToBroker, PacketKind::Publish) => {
                let topic = ev.topic.as_deref().unwrap_or("");
                if !acl.spec.may_publish(&acl.grant, topic) {
                    ev.injected = Some(Injected::Denied);
                    *replacement = Some(Bytes::new());
                    answers.extend(auth::publish_refused(level, pkid, ev.qos));
                    if level != 5 && ev.qos == 2 {
                        acl.denied_qos2.lock().insert(pkid);
                    }
                    changed = true;
                }
            }
            (Direction::ClientToBroker, PacketKind::PubRel)
                if level != 5 && acl.denied_qos2.lock().remove(&pkid) =>
            {
                ev.injected = Some(Injected::Denied);
                *replacement = Some(Bytes::new());
                answers.push(auth::pubcomp(pkid));
                changed = true;
            }
            (Direction::ClientToBroker, PacketKind::Subscribe) => {
                let WireDetail::Subscribe(filters) = &ev.detail else {
                    continue;
                };
                let allowed: Vec<bool> = filters
                    .iter()
                    .map(|(f, _)| acl.spec.may_subscribe(&acl.grant, f))
                    .collect();
                if allowed.iter().all(|ok| *ok) {
                    continue;
                }
                changed = true;
                if allowed.iter().all(|ok| !ok) {
                    ev.injected = Some(Injected::Denied);
                    *replacement = Some(Bytes::new());
                    answers.push(auth::suback_refused(level, pkid, allowed.len()));
                } else if let Some(only) =
                    auth::subscribe_only(&buf[range.clone()], level, &allowed)
                {
                    *replacement = Some(only);
                    acl.split_subscribes.lock().insert(pkid, allowed);
                }
            }
            (Direction::BrokerToClient, PacketKind::SubAck) => {
                let Some(allowed) = acl.split_subscribes.lock().remove(&pkid) else {
                    continue;
                };
                if let Some(merged) = auth::suback_merged(&buf[range.clone()], level, &allowed)
                    && let Some(mut merged_ev) =
                        ctx.decode_own(&merged, dir, None).into_iter().next()
                {
                    merged_ev.t_us = ev.t_us;
                    *ev = merged_ev;
                    *replacement = Some(merged);
                    changed = true;
                }
            }
            _ => {}
        }
    }
    changed
}

fn write_failed(e: std::io::Error) -> CloseReason {
    CloseReason::Error(e.to_string())
}

async fn write_side(
    out: Arc<Out>,
    rx: flume::Receiver<Outgoing>,
    ctx: Arc<ConnCtx>,
) -> Result<(), CloseReason> {
    let ctx = &*ctx;
    let mut view = FaultView::new(ctx.faults.clone());
    while let Ok(next) = rx.recv_async().await {
        out.busy.store(true, Ordering::Relaxed);
        // Sleeps are boxed: only faults need them, and an idle connection's
        // task should not carry a timer for each direction.
        if next.due > Instant::now() {
            Box::pin(tokio::time::sleep_until(next.due)).await;
        }
        // A held partition (or a half-dead peer) lets nothing through until it ends.
        loop {
            let f = view.refresh(ctx.id, &ctx.client_id());
            if f.partition == Some(PartitionMode::Hold) || f.stalled {
                if rx.is_disconnected() && f.stalled {
                    // The sender closed while the peer is half-dead: nobody will read this.
                    return Ok(());
                }
                Box::pin(tokio::time::sleep(Duration::from_millis(20))).await;
            } else {
                break;
            }
        }
        let bps = view.current.bandwidth_bps;
        if bps > 0 {
            let pace = Duration::from_secs_f64(next.bytes.len() as f64 / bps as f64);
            Box::pin(tokio::time::sleep(pace)).await;
        }
        out.write_all(next.bytes).await.map_err(write_failed)?;
        out.busy.store(false, Ordering::Relaxed);
    }
    let _ = out.shutdown().await;
    Ok(())
}
