//! When a device's timers wake: on a shared grid, catching up without bursts,
//! woken by one clock for every device of an engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// Device timers wake on a shared 10 ms grid: a fleet's publishes then wake
/// the engine (and the tap, broker and router behind it) in batches rather
/// than one by one. Each message keeps its own schedule (no drift) and
/// leaves at most 10 ms after it is due, or its [`slack`] when it repeats
/// slowly.
pub(super) const TIMER_GRID: Duration = Duration::from_millis(10);

/// How late a periodic publish may leave, in grid slots: a twentieth of its
/// period, from one slot (10 ms) to ten (100 ms). Devices of the same
/// period then wake together in fewer, larger batches (a 1 s fleet every
/// 50 ms instead of every 10 ms: a fifth as many wakes of the engine's
/// workers, the router and the subscribers' links for the same messages),
/// while a fast device keeps its 10 ms precision.
fn slack(every: Duration) -> u32 {
    let slots = (every.as_nanos() / 20 / TIMER_GRID.as_nanos()).clamp(1, 10);
    u32::try_from(slots).unwrap_or(1)
}

/// `t` rounded up to the grid of [`slack`]`(every)`: never before `t`, less
/// than the slack after it, and on the same points for every device of
/// that period.
pub(super) fn on_grid_every(t: Instant, every: Duration) -> Instant {
    let step = u64::from(slack(every));
    time_of(slot_of(t).div_ceil(step).saturating_mul(step)).unwrap_or(t)
}

/// A periodic publish woken at `now` (on the grid, so possibly several
/// periods after it was due): how many to send, and when the next is due.
/// Everything that fell due within about two grid slots is sent, so periods
/// shorter than the grid keep their rate; a device further behind (paused,
/// or a starved engine) skips instead of bursting.
pub(super) fn catch_up(due: Instant, every: Duration, now: Instant) -> (u32, Instant) {
    let every = every.max(Duration::from_micros(100));
    let most = u32::try_from((2 * TIMER_GRID).as_nanos() / every.as_nanos())
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let (mut sends, mut next) = (0, due);
    while next <= now {
        if sends == most {
            return (sends, now + every);
        }
        sends += 1;
        next += every;
    }
    (sends, next)
}

/// Where the grid starts (the first time a device asked).
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The grid slot `t` rounds up to.
fn slot_of(t: Instant) -> u64 {
    let slots = t
        .saturating_duration_since(epoch())
        .as_nanos()
        .div_ceil(TIMER_GRID.as_nanos());
    u64::try_from(slots).unwrap_or(u64::MAX)
}

/// The last grid slot whose time has come at `t`.
fn slot_reached(t: Instant) -> u64 {
    let slots = t.saturating_duration_since(epoch()).as_nanos() / TIMER_GRID.as_nanos();
    u64::try_from(slots).unwrap_or(u64::MAX)
}

/// When grid slot `slot` comes.
fn time_of(slot: u64) -> Option<Instant> {
    let nanos = u64::try_from(u128::from(slot) * TIMER_GRID.as_nanos()).ok()?;
    epoch().checked_add(Duration::from_nanos(nanos))
}

/// `t`, rounded up to the timer grid.
#[cfg(test)]
fn on_grid(t: Instant) -> Instant {
    time_of(slot_of(t)).unwrap_or(t)
}

/// Slots the clock looks ahead (about 82 s, longer than the periods and the
/// 60 s tick fleets use): a device due later is woken at the horizon and
/// looks again. With 1,024 (10 s), 80,000 devices publishing every 53 s were
/// woken 7,800 times a second for nothing: 35 % more CPU in `bench
/// --devices 80000 --rate 0.01875` than tokio's wheel.
const SLOTS: u64 = 8192;

/// One clock for the timers of an engine's devices (one per
/// [`super::DeviceReporter`], every fleet on it). A device's deadlines are grid slots; the
/// clock keeps, per slot, the wakers of the devices due then, and one task
/// wakes a slot's devices together when its time comes. In tokio's own
/// timer wheel each device kept an entry in an intrusive list: every
/// publish unlinked it (touching its neighbours), the wheel moved it down a
/// level before it fired and unlinked it again, each a cache miss on another
/// device's memory, thousands a second. Here a device's waker is pushed on
/// a slot's vector and taken off with the rest of the slot. Every deadline
/// wakes on the grid, script timers and Sparkplug's too: at most one slot
/// (10 ms) after it is due, never before.
pub struct Clock {
    /// Slots it looks ahead ([`SLOTS`]; fewer in a test).
    horizon: u64,
    /// Every slot up to this one has been woken.
    fired: AtomicU64,
    wheel: parking_lot::Mutex<Wheel>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::with_horizon(SLOTS)
    }
}

impl Drop for Clock {
    /// The ticker may be waiting with no slot to sleep for: it hears that
    /// the clock is gone and ends.
    fn drop(&mut self) {
        if let Some(t) = self.wheel.get_mut().ticker.take() {
            t.wake();
        }
    }
}

#[derive(Default)]
struct Wheel {
    /// Wakers by slot, `slot % horizon` (made on first use).
    slots: Vec<Vec<Waker>>,
    /// The earliest slot holding a waker (u64::MAX: none).
    next: u64,
    /// The clock's task, to hear of a slot earlier than the one it sleeps for.
    ticker: Option<Waker>,
    /// The clock's task, started by the first registration (again if its
    /// runtime ended it).
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Clock {
    fn with_horizon(horizon: u64) -> Clock {
        Clock {
            horizon: horizon.max(1),
            fired: AtomicU64::new(0),
            wheel: parking_lot::Mutex::default(),
        }
    }

    /// Wake `waker` at grid slot `slot` (or at the horizon, if later); the
    /// slot it will be woken at, or None if that slot's time has come.
    fn register(self: &Arc<Self>, slot: u64, waker: &Waker) -> Option<u64> {
        let mut w = self.wheel.lock();
        // Read under the lock: the ticker moves it on under the lock.
        let fired = self.fired.load(Ordering::Relaxed);
        if slot <= fired {
            return None;
        }
        let slot = slot.min(fired + self.horizon);
        if w.slots.is_empty() {
            w.slots = (0..self.horizon).map(|_| Vec::new()).collect();
            w.next = u64::MAX;
        }
        w.slots[(slot % self.horizon) as usize].push(waker.clone());
        if slot < w.next {
            w.next = slot;
            if let Some(t) = w.ticker.take() {
                t.wake();
            }
        }
        if w.task.as_ref().is_none_or(|t| t.is_finished()) {
            w.task = Some(tokio::spawn(tick(Arc::downgrade(self))));
        }
        Some(slot)
    }

    /// Take a waker out of its slot (a device that ended). A crowded slot
    /// is left alone: its wakers are dropped when it fires, at most one
    /// horizon later.
    fn forget(&self, slot: u64, waker: &Waker) {
        let mut w = self.wheel.lock();
        if slot <= self.fired.load(Ordering::Relaxed) || w.slots.is_empty() {
            return;
        }
        let wakers = &mut w.slots[(slot % self.horizon) as usize];
        if wakers.len() <= 1024
            && let Some(i) = wakers.iter().position(|w| w.will_wake(waker))
        {
            wakers.swap_remove(i);
        }
    }
}

/// The clock's task: wake each slot's devices when its time comes. Ends
/// once the clock is dropped (which wakes it).
async fn tick(clock: std::sync::Weak<Clock>) {
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    let mut due: Vec<Waker> = Vec::new();
    loop {
        let alive = std::future::poll_fn(|cx| {
            let Some(c) = clock.upgrade() else {
                return Poll::Ready(false);
            };
            let mut w = c.wheel.lock();
            if !w.ticker.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                w.ticker = Some(cx.waker().clone());
            }
            let Some(at) = (w.next != u64::MAX).then(|| time_of(w.next)).flatten() else {
                return Poll::Pending;
            };
            drop(w);
            if sleep.deadline() != at {
                sleep.as_mut().reset(at);
            }
            sleep.as_mut().poll(cx).map(|()| true)
        })
        .await;
        let Some(c) = clock.upgrade().filter(|_| alive) else {
            return;
        };
        let reached = slot_reached(Instant::now());
        {
            let mut w = c.wheel.lock();
            let fired = c.fired.load(Ordering::Relaxed);
            let horizon = c.horizon;
            for slot in fired + 1..=reached.min(fired + horizon) {
                let wakers = &mut w.slots[(slot % horizon) as usize];
                due.append(wakers);
                // A burst (a fleet connecting at once) gives its room back.
                if wakers.capacity() > 4096 {
                    *wakers = Vec::new();
                }
            }
            c.fired.store(reached.max(fired), Ordering::Relaxed);
            let fired = reached.max(fired);
            w.next = (fired + 1..=fired + horizon)
                .find(|s| !w.slots[(*s % horizon) as usize].is_empty())
                .unwrap_or(u64::MAX);
        }
        drop(c);
        for waker in due.drain(..) {
            waker.wake();
        }
        due.shrink_to(4096);
    }
}

/// A device's one alarm on its engine's clock: the earliest of its deadlines.
pub(super) struct Alarm {
    clock: Arc<Clock>,
    /// The slot this device's waker waits in, until the clock passes it,
    /// and the waker (to take it out again when the device ends: a waker
    /// keeps its task's memory).
    armed: Option<(u64, Waker)>,
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some((slot, waker)) = self.armed.take() {
            self.clock.forget(slot, &waker);
        }
    }
}

impl Alarm {
    pub(super) fn new(clock: Arc<Clock>) -> Alarm {
        Alarm { clock, armed: None }
    }

    /// Ready once `deadline` (a point on the grid) has come. Cancel safe;
    /// polled on every turn of the device's loop, it takes the clock's lock
    /// only when the device's earliest deadline moved before its slot.
    pub(super) fn at(&mut self, deadline: Instant) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| self.poll_at(deadline, cx))
    }

    fn poll_at(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if self
            .armed
            .as_ref()
            .is_some_and(|(a, _)| *a <= self.clock.fired.load(Ordering::Relaxed))
        {
            self.armed = None; // woken (or about to be)
        }
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        let slot = slot_of(deadline);
        if self.armed.as_ref().is_some_and(|(a, _)| *a <= slot) {
            return Poll::Pending; // an earlier or the same wake is due; then look again
        }
        match self.clock.register(slot, cx.waker()) {
            Some(armed) => {
                self.armed = Some((armed, cx.waker().clone()));
                Poll::Pending
            }
            None => Poll::Ready(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_clock_wakes_each_alarm_at_its_slot_never_before() {
        // A horizon of 16 slots (160 ms), so that one alarm is beyond it.
        let clock = Arc::new(Clock::with_horizon(16));
        let start = Instant::now();
        // Out of order, one beyond the horizon, two in one slot.
        let offsets_ms = [250u64, 30, 30, 120, 700, 0];
        let tasks: Vec<_> = offsets_ms
            .iter()
            .map(|&ms| {
                let clock = clock.clone();
                tokio::spawn(async move {
                    let deadline = on_grid(start + Duration::from_millis(ms));
                    let mut alarm = Alarm::new(clock);
                    alarm.at(deadline).await;
                    (deadline, Instant::now())
                })
            })
            .collect();
        for (t, ms) in tasks.into_iter().zip(offsets_ms) {
            let (deadline, woke) = tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .unwrap_or_else(|_| panic!("{ms} ms: never woken"))
                .unwrap();
            assert!(
                woke >= deadline,
                "{ms} ms: woken {:?} early",
                deadline - woke
            );
        }
        // An earlier deadline than the one armed wakes at the earlier one.
        let mut alarm = Alarm::new(clock.clone());
        let later = on_grid(Instant::now() + Duration::from_secs(5));
        let sooner = on_grid(Instant::now() + Duration::from_millis(40));
        let waker = futures_util::task::noop_waker();
        assert!(
            alarm
                .poll_at(later, &mut Context::from_waker(&waker))
                .is_pending()
        );
        tokio::time::timeout(Duration::from_secs(2), alarm.at(sooner))
            .await
            .expect("the sooner deadline woke the alarm");
        assert!(Instant::now() >= sooner);
        // A device that ends takes its waker (and so its task's memory) out.
        let queued = |c: &Clock| c.wheel.lock().slots.iter().map(Vec::len).sum::<usize>();
        let before = queued(&clock);
        let mut ending = Alarm::new(clock.clone());
        let far = on_grid(Instant::now() + Duration::from_secs(1));
        let cx = &mut Context::from_waker(&waker);
        assert!(ending.poll_at(far, cx).is_pending());
        assert_eq!(queued(&clock), before + 1);
        drop(ending);
        assert_eq!(queued(&clock), before, "the ended alarm's waker is gone");
    }

    #[test]
    fn timers_round_up_to_a_shared_grid_and_never_fire_early() {
        let base = on_grid(Instant::now());
        for offset_us in [0u64, 1, 999, 4_321, 9_999, 10_000, 10_001, 123_456] {
            let t = base + Duration::from_micros(offset_us);
            let g = on_grid(t);
            assert!(g >= t, "{offset_us} µs: woke before it was due");
            assert!(g - t < TIMER_GRID, "{offset_us} µs: woke a whole slot late");
            assert_eq!(on_grid(g), g, "{offset_us} µs: a grid point moved");
            // Everything due within one slot wakes together.
            assert_eq!((g - base).as_nanos() % TIMER_GRID.as_nanos(), 0);
        }
        assert_eq!(
            on_grid(base + Duration::from_micros(1)),
            on_grid(base + Duration::from_micros(9_999))
        );
    }

    #[test]
    fn slow_periods_share_coarser_grid_points_and_are_never_early() {
        let ms = Duration::from_millis;
        // In 10 ms slots.
        assert_eq!(slack(ms(1)), 1);
        assert_eq!(slack(ms(199)), 1);
        assert_eq!(slack(ms(400)), 2);
        assert_eq!(slack(ms(1000)), 5);
        assert_eq!(slack(Duration::from_secs(53)), 10);
        let base = on_grid_every(Instant::now(), ms(1000));
        for offset_us in [0u64, 1, 9_999, 10_001, 49_999, 50_000, 123_456] {
            let t = base + Duration::from_micros(offset_us);
            let g = on_grid_every(t, ms(1000));
            assert!(g >= t, "{offset_us} µs: woke before it was due");
            assert!(g - t < ms(50), "{offset_us} µs: later than its slack");
            assert_eq!((g - base).as_nanos() % ms(50).as_nanos(), 0);
            // A point of the coarse grid is a point of the fine one.
            assert_eq!(on_grid(g), g);
            // A fast period keeps the fine grid.
            assert_eq!(on_grid_every(t, ms(100)), on_grid(t));
        }
    }

    #[test]
    fn periods_shorter_than_the_grid_keep_their_rate_and_long_ones_never_burst() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // 1 ms period woken 9.5 ms after it was due: ten sends, schedule intact.
        assert_eq!(
            catch_up(t0, ms(1), t0 + Duration::from_micros(9_500)),
            (10, t0 + ms(10))
        );
        // On time: one send, the next one period later (no drift).
        assert_eq!(catch_up(t0, ms(1000), t0), (1, t0 + ms(1000)));
        assert_eq!(catch_up(t0, ms(1000), t0 + ms(7)), (1, t0 + ms(1000)));
        // A 1 s period three seconds behind: one send, then skip ahead.
        assert_eq!(catch_up(t0, ms(1000), t0 + ms(3000)), (1, t0 + ms(4000)));
        // A 1 ms period a whole second behind: at most two slots' worth, then skip.
        assert_eq!(catch_up(t0, ms(1), t0 + ms(1000)), (21, t0 + ms(1001)));
    }
}
