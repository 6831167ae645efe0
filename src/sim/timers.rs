//! When a device's timers wake: on a shared grid, catching up without bursts.

use std::time::Duration;

use tokio::time::Instant;

/// Device timers wake on a shared 10 ms grid: a fleet's publishes then wake
/// the engine (and the tap, broker and router behind it) in batches rather
/// than one by one. Each message keeps its own schedule (no drift) and
/// leaves at most 10 ms after it is due.
pub(super) const TIMER_GRID: Duration = Duration::from_millis(10);

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

/// `t`, rounded up to the timer grid.
pub(super) fn on_grid(t: Instant) -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let grid = TIMER_GRID.as_nanos();
    let slots = t.saturating_duration_since(epoch).as_nanos().div_ceil(grid);
    match u64::try_from(slots * grid) {
        Ok(n) => epoch + Duration::from_nanos(n),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
