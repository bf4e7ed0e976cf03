//! The clock of a batch: when it ends, which requests are done at a moment,
//! and what cancel or expiry leaves behind.
//!
//! Nothing runs in the background. A batch stores its creation instant, the
//! processing delay and, once cancelled, the moment of the cancel; its state
//! at any instant is a pure function of those (and of whether the provider
//! has been made to forget it). Each request gets a fixed
//! "finish fraction" (a hash of its `custom_id`): it is done once the batch's
//! progress passes that fraction. So requests finish progressively, and a
//! cancel or an expiry splits them into done and not done deterministically.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// 2^32: finish fractions are `u32`s read as `x / 2^32`.
const SCALE: u64 = 1 << 32;

/// The timing facts of one batch.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    /// Wall-clock creation time (what clients see).
    pub(crate) created_wall: DateTime<Utc>,
    /// Monotonic creation time (what the state machine uses).
    created: Instant,
    /// Processing delay: the batch ends this long after creation.
    pub(crate) delay: Duration,
    /// Requests make progress between `window.0 * delay` and `window.1 * delay`.
    window: (f64, f64),
    /// Time from cancel to end.
    cancel_delay: Duration,
    /// Elapsed time at which cancel was requested.
    pub(crate) cancel_at: Option<Duration>,
    /// Requests whose fraction is at or above this never finish (expiry).
    cutoff: u64,
    /// Whether this batch expires instead of completing.
    pub(crate) expiring: bool,
    /// Set once the provider has been told to forget the batch
    /// (`/_emulator/forget`): from then on it is unknown.
    pub(crate) forgotten: bool,
    /// The batch becomes unknown this long after creation
    /// (`forget_batches_after`).
    pub(crate) forget_after: Option<Duration>,
}

impl Timeline {
    /// A timeline starting now.
    ///
    /// `window` is the part of the delay during which requests progress (as
    /// fractions of the delay); `keep` is the share of requests an expiring
    /// batch finishes before it expires.
    pub(crate) fn start(
        delay: Duration,
        window: (f64, f64),
        cancel_delay: Duration,
        expiring: bool,
        keep: f64,
    ) -> Self {
        let cutoff = if expiring {
            (keep.clamp(0.0, 1.0) * SCALE as f64) as u64
        } else {
            SCALE
        };
        Self {
            created_wall: Utc::now(),
            created: Instant::now(),
            delay,
            window,
            cancel_delay,
            cancel_at: None,
            cutoff,
            expiring,
            forgotten: false,
            forget_after: None,
        }
    }

    /// Whether the provider has forgotten the batch at `now`: every call
    /// naming it then answers 404 and lists leave it out.
    pub(crate) fn is_forgotten(&self, now: Instant) -> bool {
        self.forgotten || self.forget_after.is_some_and(|d| self.elapsed(now) >= d)
    }

    /// Time since creation.
    pub(crate) fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }

    /// The wall-clock moment `at` after creation.
    pub(crate) fn wall(&self, at: Duration) -> DateTime<Utc> {
        self.created_wall + chrono::Duration::from_std(at).unwrap_or(chrono::Duration::zero())
    }

    /// `fraction * delay`.
    pub(crate) fn at_fraction(&self, fraction: f64) -> Duration {
        self.delay.mul_f64(fraction.clamp(0.0, 1.0))
    }

    /// The moment cancellation completes, if cancelled.
    pub(crate) fn cancel_end(&self) -> Option<Duration> {
        self.cancel_at.map(|c| c + self.cancel_delay)
    }

    /// Progress in `[0, 1]` of the request window at elapsed time `e`.
    fn progress(&self, e: Duration) -> f64 {
        let start = self.at_fraction(self.window.0);
        let end = self.at_fraction(self.window.1);
        if e >= end {
            return 1.0;
        }
        if e <= start {
            return 0.0;
        }
        (e - start).as_secs_f64() / (end - start).as_secs_f64()
    }

    /// Requests with a finish fraction below this value are done at `e`
    /// (taking a cancel into account: progress stops when cancel is asked).
    pub(crate) fn threshold(&self, e: Duration) -> u64 {
        let e = match self.cancel_at {
            Some(c) if c < e => c,
            _ => e,
        };
        let p = self.progress(e);
        if p >= 1.0 {
            self.cutoff
        } else {
            ((p * SCALE as f64) as u64).min(self.cutoff)
        }
    }
}

/// How many of `sorted` (ascending finish fractions) are done below `threshold`.
pub(crate) fn count_done(sorted: &[u32], threshold: u64) -> usize {
    sorted.partition_point(|&f| u64::from(f) < threshold)
}

/// Whether one request with fraction `frac` is done below `threshold`.
pub(crate) fn is_done(frac: u32, threshold: u64) -> bool {
    u64::from(frac) < threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_delay_is_done_at_once() {
        let t = Timeline::start(Duration::ZERO, (0.0, 1.0), Duration::ZERO, false, 0.5);
        assert_eq!(t.threshold(Duration::ZERO), SCALE);
        assert!(is_done(u32::MAX, t.threshold(Duration::ZERO)));
    }

    #[test]
    fn expiring_keeps_a_share() {
        let t = Timeline::start(Duration::ZERO, (0.0, 1.0), Duration::ZERO, true, 0.5);
        let thr = t.threshold(Duration::from_secs(1));
        assert!(is_done(1, thr));
        assert!(!is_done(u32::MAX, thr));
    }

    #[test]
    fn forgetting_on_request_or_after_a_while() {
        let mut t = Timeline::start(Duration::ZERO, (0.0, 1.0), Duration::ZERO, false, 0.5);
        let now = Instant::now();
        assert!(!t.is_forgotten(now));
        t.forget_after = Some(Duration::from_secs(60));
        assert!(!t.is_forgotten(now));
        assert!(t.is_forgotten(now + Duration::from_secs(61)));
        t.forget_after = None;
        t.forgotten = true;
        assert!(t.is_forgotten(now));
    }

    #[test]
    fn progress_is_linear_and_freezes_on_cancel() {
        let mut t = Timeline::start(
            Duration::from_secs(10),
            (0.0, 1.0),
            Duration::ZERO,
            false,
            0.5,
        );
        let half = t.threshold(Duration::from_secs(5));
        assert!((half as f64 / SCALE as f64 - 0.5).abs() < 1e-6);
        t.cancel_at = Some(Duration::from_secs(2));
        let frozen = t.threshold(Duration::from_secs(9));
        assert!((frozen as f64 / SCALE as f64 - 0.2).abs() < 1e-6);
        let sorted = [0u32, u32::MAX / 10, u32::MAX / 2, u32::MAX];
        assert_eq!(count_done(&sorted, frozen), 2);
    }
}
