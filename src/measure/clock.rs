//! The project's one clock.
//!
//! Every timestamp in a profile is taken from the monotonic clock ([`Instant`]) and mapped onto
//! the Unix epoch through a single anchor taken once per process. Differences between two fields
//! are therefore exact monotonic durations, and a wall-clock step (NTP) between two phases can
//! never make a phase negative. The value is milliseconds since the epoch with microsecond
//! resolution, as the original's `profile` uses.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Anchor {
    instant: Instant,
    epoch_ms: f64,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| {
        let instant = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Anchor {
            instant,
            epoch_ms: wall.as_secs_f64() * 1000.0,
        }
    })
}

/// Fix the anchor now, if it is not fixed yet (cheap; called when a client is built so the
/// first upload does not pay for it).
pub fn init() {
    let _ = anchor();
}

/// Milliseconds since the Unix epoch, microsecond resolution, for a monotonic instant.
pub fn epoch_ms(t: Instant) -> f64 {
    let a = anchor();
    let offset_ms = match t.checked_duration_since(a.instant) {
        Some(after) => after.as_secs_f64() * 1000.0,
        None => -(a.instant.duration_since(t).as_secs_f64() * 1000.0),
    };
    round_to_micros(a.epoch_ms + offset_ms)
}

/// Round a millisecond value to whole microseconds (three decimals).
pub fn round_to_micros(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// The duration between two instants in milliseconds (0 if `end` is before `start`).
pub fn ms_between(start: Instant, end: Instant) -> f64 {
    end.saturating_duration_since(start).as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn monotonic_differences_are_exact() {
        let a = Instant::now();
        let b = a + Duration::from_micros(1234);
        let d = epoch_ms(b) - epoch_ms(a);
        assert!((d - 1.234).abs() < 0.0015, "{d}");
    }

    #[test]
    fn close_to_wall_clock() {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            * 1000.0;
        let ours = epoch_ms(Instant::now());
        assert!((wall - ours).abs() < 1000.0, "{wall} vs {ours}");
    }

    #[test]
    fn instants_before_the_anchor_map_backwards() {
        init();
        let now = Instant::now();
        if let Some(earlier) = now.checked_sub(Duration::from_millis(5)) {
            assert!(epoch_ms(earlier) < epoch_ms(now));
        }
    }
}
