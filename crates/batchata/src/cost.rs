//! `CostTracker`: thread-safe reservation of estimated cost against the
//! run's limit, adjusted to actual cost when results arrive.
//!
//! A batch reserves its worst-case cost before it is submitted. When that
//! would pass the limit while other batches hold reservations, it waits:
//! their reservations settle to what the provider actually billed (usually
//! far less than the worst case), and the difference may make room. Only
//! when nothing is reserved and it still does not fit is it refused.

use std::sync::Mutex;

/// Spend accounting for one run.
#[derive(Debug)]
pub struct CostTracker {
    limit: Option<f64>,
    inner: Mutex<Inner>,
    /// Woken whenever a reservation settles or is released.
    changed: tokio::sync::Notify,
}

/// What [`CostTracker::try_reserve`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved.
    Reserved,
    /// Does not fit now, but other reservations are outstanding: wait for
    /// [`CostTracker::changed`] and try again.
    Wait,
    /// Does not fit even with nothing else reserved.
    Refused,
}

#[derive(Debug, Default)]
struct Inner {
    used: f64,
    reserved: f64,
}

impl CostTracker {
    /// A tracker with an optional limit in USD, starting from `already_used`
    /// (spend recorded by earlier runs of the same state).
    pub fn new(limit: Option<f64>, already_used: f64) -> Self {
        CostTracker {
            limit,
            inner: Mutex::new(Inner {
                used: already_used,
                reserved: 0.0,
            }),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `amount`; false (and nothing reserved) when it would pass the limit.
    #[cfg(test)]
    pub fn reserve(&self, amount: f64) -> bool {
        self.try_reserve(amount) == Reservation::Reserved
    }

    /// Reserves `amount`, or says whether waiting for other reservations
    /// to settle may help.
    pub fn try_reserve(&self, amount: f64) -> Reservation {
        let mut g = self.lock();
        if let Some(limit) = self.limit {
            if g.used + g.reserved + amount > limit + 1e-12 {
                return if g.reserved > 0.0 {
                    Reservation::Wait
                } else {
                    Reservation::Refused
                };
            }
        }
        g.reserved += amount;
        Reservation::Reserved
    }

    /// Takes back a reservation recorded by an earlier process (a batch
    /// re-attached on resume), whatever the limit: the batch is already
    /// at the provider.
    pub fn restore(&self, amount: f64) {
        self.lock().reserved += amount;
    }

    /// Resolves when a reservation settles or is released. Create the
    /// future before checking, so a change in between is not missed.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Replaces a reservation by the actual cost.
    pub fn settle(&self, reserved: f64, actual: f64) {
        {
            let mut g = self.lock();
            g.reserved = (g.reserved - reserved).max(0.0);
            g.used += actual;
        }
        self.changed.notify_waiters();
    }

    /// Releases a reservation without cost (a batch never submitted).
    pub fn release(&self, reserved: f64) {
        {
            let mut g = self.lock();
            g.reserved = (g.reserved - reserved).max(0.0);
        }
        self.changed.notify_waiters();
    }

    /// Actual spend so far.
    pub fn used(&self) -> f64 {
        self.lock().used
    }

    /// Reserved but not yet settled.
    pub fn reserved(&self) -> f64 {
        self.lock().reserved
    }

    /// What can still be reserved.
    #[cfg(test)]
    pub fn remaining(&self) -> Option<f64> {
        let g = self.lock();
        self.limit.map(|l| (l - g.used - g.reserved).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_settle_release() {
        let t = CostTracker::new(Some(1.0), 0.0);
        assert!(t.reserve(0.6));
        assert!(!t.reserve(0.5), "0.6 + 0.5 passes the limit");
        t.settle(0.6, 0.1);
        assert!((t.used() - 0.1).abs() < 1e-12);
        assert!(t.reserve(0.5));
        t.release(0.5);
        assert_eq!(t.reserved(), 0.0);
        assert!((t.remaining().unwrap() - 0.9).abs() < 1e-12);
        assert!(t.reserve(0.5));
        assert_eq!(
            t.try_reserve(0.5),
            Reservation::Wait,
            "0.5 is reserved elsewhere"
        );
        t.settle(0.5, 0.05);
        assert_eq!(t.try_reserve(0.5), Reservation::Reserved);
        t.release(0.5);
        assert_eq!(
            t.try_reserve(0.9),
            Reservation::Refused,
            "0.15 used leaves 0.85"
        );
        t.restore(0.4);
        assert!((t.reserved() - 0.4).abs() < 1e-12);
        let unlimited = CostTracker::new(None, 2.0);
        assert!(unlimited.reserve(1e9));
        assert_eq!(unlimited.remaining(), None);
    }
}
