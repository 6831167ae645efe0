//! The engine → consumer channel: events bounded by count and bytes, with
//! room kept for state changes when traffic fills it ([`EventSink`]); what
//! a full channel drops is counted ([`Drops`]); and the batching of wire
//! events and device updates before they are sent ([`batch_events`]).

use super::*;

/// Called after events are sent, to wake the consumer (e.g. `ctx.request_repaint()`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// What was lost because a queue was full, by queue. Shown in the status bar.
#[derive(Debug, Default)]
pub struct Drops {
    /// Wire events the tap could not queue for the batcher.
    pub tap_queue: Arc<AtomicU64>,
    /// Device state reports the devices could not queue.
    pub device_queue: Arc<AtomicU64>,
    /// Items (wire events, device updates, notices) the consumer's channel
    /// refused because it held too many events or bytes.
    pub consumer: Arc<AtomicU64>,
}

impl Drops {
    pub fn counts(&self) -> DropCounts {
        DropCounts {
            tap_queue: self.tap_queue.load(Ordering::Relaxed),
            device_queue: self.device_queue.load(Ordering::Relaxed),
            consumer: self.consumer.load(Ordering::Relaxed),
        }
    }
}

/// Engine → consumer sender: bounded by count and bytes, never blocks,
/// counts what it drops. Traffic (wire batches) leaves room for the events
/// that change state (scenario, broker, devices, notices, export), which are
/// only refused when the channel is full to the last slot.
#[derive(Clone)]
pub(super) struct EventSink {
    pub(super) tx: crossbeam_channel::Sender<(Event, usize)>,
    pub(super) capacity: usize,
    pub(super) bytes: Arc<AtomicUsize>,
    pub(super) max_bytes: usize,
    pub(super) waker: Arc<Mutex<Option<Waker>>>,
    pub(super) drops: Arc<Drops>,
    /// The capture database, when one is open: it is sent every frame and
    /// fault, whether or not the consumer keeps up.
    pub(super) db: Arc<parking_lot::RwLock<Option<crate::database::Writer>>>,
    /// The running scenario's AsyncAPI document: every client PUBLISH is
    /// marked with what it says (`WireEvent::contract`) before it goes out.
    pub(super) contract: Arc<parking_lot::RwLock<Option<Arc<crate::contract::Contract>>>>,
}

/// Check every PUBLISH a client sent against the contract (bounded: a few
/// violations a frame; the schemas were compiled when the document was read).
fn mark(contract: &crate::contract::Contract, batch: &mut [WireEvent]) {
    for ev in batch {
        if ev.kind != crate::wire::PacketKind::Publish
            || ev.dir != crate::wire::Direction::ClientToBroker
            || ev.contract.is_some()
        {
            continue;
        }
        let topic = ev.topic.as_deref().unwrap_or("");
        let payload = ev.payload.as_deref().unwrap_or_default();
        ev.contract = Some(Box::new(contract.check(topic, payload, ev.qos, ev.retain)));
    }
}

/// Channel slots wire batches never take.
const CONTROL_RESERVE: usize = 64;

impl EventSink {
    pub(super) fn send(&self, mut ev: Event) {
        if let Event::Wire(batch) = &mut ev
            && let Some(contract) = self.contract.read().as_ref()
        {
            mark(contract, batch);
        }
        if let Some(db) = self.db.read().as_ref() {
            match &ev {
                Event::Wire(batch) => db.frames(batch.clone()),
                Event::Fault {
                    t_us,
                    label,
                    timeline,
                } => db.fault(crate::fault::FaultMarker {
                    t_us: *t_us,
                    label: label.clone(),
                    timeline: *timeline,
                }),
                _ => {}
            }
        }
        let size = ev.mem_bytes();
        let admitted = if matches!(ev, Event::Wire(_)) {
            self.tx.len() + CONTROL_RESERVE < self.capacity && self.reserve_bytes(size)
        } else {
            self.bytes.fetch_add(size, Ordering::Relaxed);
            true
        };
        let refused = if admitted {
            match self.tx.try_send((ev, size)) {
                Ok(()) => None,
                Err(e) => {
                    self.bytes.fetch_sub(size, Ordering::Relaxed);
                    Some(e.into_inner().0)
                }
            }
        } else {
            Some(ev)
        };
        if let Some(ev) = refused {
            self.drops.consumer.fetch_add(ev.items(), Ordering::Relaxed);
        }
        if let Some(w) = self.waker.lock().as_ref() {
            w();
        }
    }

    /// Take `size` bytes of the byte bound, if they fit (an event alone bigger
    /// than the bound passes when nothing is queued). Atomic against other senders.
    fn reserve_bytes(&self, size: usize) -> bool {
        let mut queued = self.bytes.load(Ordering::Relaxed);
        loop {
            if queued != 0 && queued + size > self.max_bytes {
                return false;
            }
            match self.bytes.compare_exchange_weak(
                queued,
                queued + size,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => queued = now,
            }
        }
    }
}

/// The consumer's end of the event channel.
pub struct EventReceiver {
    pub(super) rx: crossbeam_channel::Receiver<(Event, usize)>,
    pub(super) bytes: Arc<AtomicUsize>,
}

impl EventReceiver {
    pub fn try_recv(&self) -> Option<Event> {
        let (ev, size) = self.rx.try_recv().ok()?;
        self.bytes.fetch_sub(size, Ordering::Relaxed);
        Some(ev)
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Bytes queued, waiting for the consumer.
    pub fn queued_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

const BATCH: usize = 8192;

/// Collect wire events and device updates into batches (about every 10 ms);
/// offer device state changes to the timeline; send the capture database's
/// progress once a second and the devices' connect counts when they changed.
/// Markers on the devices' queue (a scenario started or stopped) go out after
/// everything queued before them.
pub(super) async fn batch_events(
    mut wire: mpsc::Receiver<WireEvent>,
    mut devices: mpsc::Receiver<DeviceMsg>,
    sink: EventSink,
    states: broadcast::Sender<(String, DeviceState)>,
    ramp: Arc<crate::sim::ramp::Ramp>,
) {
    let mut last_ramp = crate::sim::ramp::RampStatus::default();
    let mut wire_buf = Vec::with_capacity(BATCH);
    let mut dev_msgs: Vec<DeviceMsg> = Vec::new();
    let mut dev_buf: Vec<DeviceUpdate> = Vec::new();
    let mut last_db_status = std::time::Instant::now();
    let flush = |wire_buf: &mut Vec<WireEvent>, dev_buf: &mut Vec<DeviceUpdate>| {
        if !dev_buf.is_empty() {
            if states.receiver_count() > 0 {
                for d in dev_buf.iter() {
                    let _ = states.send((d.client_id.clone(), d.state));
                }
            }
            sink.send(Event::Devices(std::mem::take(dev_buf)));
        }
        if !wire_buf.is_empty() {
            sink.send(Event::Wire(std::mem::replace(
                wire_buf,
                Vec::with_capacity(BATCH),
            )));
        }
    };
    let mut last_ramp_check = std::time::Instant::now();
    // A tenth of a second: a fleet's last CONNACKs show without traffic after them.
    let mut status_tick = tokio::time::interval(Duration::from_millis(100));
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = wire.recv_many(&mut wire_buf, BATCH) => if n == 0 { return },
            n = devices.recv_many(&mut dev_msgs, BATCH) => if n == 0 { return },
            // The capture database's progress goes out even when traffic stops.
            _ = status_tick.tick() => {}
        }
        // Let more arrive: one batch per ~10 ms keeps the consumer's work per event low.
        tokio::time::sleep(Duration::from_millis(10)).await;
        while wire_buf.len() < BATCH {
            match wire.try_recv() {
                Ok(ev) => wire_buf.push(ev),
                Err(_) => break,
            }
        }
        while let Ok(m) = devices.try_recv() {
            dev_msgs.push(m);
        }
        for m in dev_msgs.drain(..) {
            match m {
                DeviceMsg::Update(u) => dev_buf.push(u),
                DeviceMsg::Note(ev) => {
                    flush(&mut wire_buf, &mut dev_buf);
                    sink.send(ev);
                }
                DeviceMsg::Marker(ev, done) => {
                    // Everything the tap read so far goes first, too.
                    while let Ok(w) = wire.try_recv() {
                        wire_buf.push(w);
                        if wire_buf.len() >= BATCH {
                            flush(&mut wire_buf, &mut Vec::new());
                        }
                    }
                    flush(&mut wire_buf, &mut dev_buf);
                    sink.send(ev);
                    let _ = done.send(());
                }
            }
        }
        flush(&mut wire_buf, &mut dev_buf);
        // The capture database's progress, about once a second while frames flow.
        if last_db_status.elapsed() >= Duration::from_secs(1) {
            last_db_status = std::time::Instant::now();
            let status = sink.db.read().as_ref().map(|db| db.status());
            if let Some(status) = status {
                sink.send(Event::Database(status));
            }
        }
        // The devices' connect counts, when they changed.
        if last_ramp_check.elapsed() >= Duration::from_millis(100) {
            last_ramp_check = std::time::Instant::now();
            let status = ramp.status();
            if status != last_ramp {
                last_ramp = status.clone();
                sink.send(Event::Ramp(status));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Direction, PacketKind};

    fn sink(capacity: usize, max_bytes: usize) -> (EventSink, EventReceiver) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let bytes = Arc::new(AtomicUsize::new(0));
        let sink = EventSink {
            tx,
            capacity,
            bytes: bytes.clone(),
            max_bytes,
            waker: Arc::default(),
            drops: Arc::default(),
            db: Arc::default(),
            contract: Arc::default(),
        };
        (sink, EventReceiver { rx, bytes })
    }

    fn wire(n: usize, payload: usize) -> Event {
        Event::Wire(
            (0..n)
                .map(|_| {
                    let mut e = WireEvent::new(
                        1,
                        1,
                        Arc::from("c"),
                        Direction::ClientToBroker,
                        PacketKind::Publish,
                    );
                    e.payload = Some(bytes::Bytes::from(vec![0u8; payload]));
                    e
                })
                .collect(),
        )
    }

    #[test]
    fn traffic_is_bounded_by_bytes_and_counted_but_state_changes_get_through() {
        let (sink, rx) = sink(CONTROL_RESERVE + 8, 64 * 1024);
        // Each batch holds ~40 KiB: the second no longer fits the byte bound.
        sink.send(wire(10, 4096));
        sink.send(wire(10, 4096));
        assert_eq!(
            sink.drops.counts().consumer,
            10,
            "the refused batch's events are counted"
        );
        // Events that change state pass even beyond the byte bound.
        sink.send(Event::ScenarioStopped);
        sink.send(Event::ExportFinished);
        assert!(rx.queued_bytes() > 0);
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(got.len(), 3);
        assert!(matches!(got[1], Event::ScenarioStopped));
        assert_eq!(rx.queued_bytes(), 0, "the receiver gives the bytes back");
        // Traffic leaves the last slots to state changes.
        for _ in 0..8 + CONTROL_RESERVE {
            sink.send(wire(1, 1));
        }
        assert_eq!(rx.rx.len(), 8, "wire batches stop at the reserved slots");
        sink.send(Event::Notice {
            error: false,
            text: "still heard".into(),
        });
        assert_eq!(rx.rx.len(), 9, "a state change takes a reserved slot");
    }
}
