//! Reporting a run's progress: the batch rows of its status, and the
//! callback that receives the status at the application's interval.

use std::time::Duration;

use super::engine::Shared;
use super::{lock, BatchProgress, BatchRun, ProgressCallback};

pub(super) fn spawn_progress(run: BatchRun, cb: ProgressCallback, every: Duration) {
    tokio::spawn(async move {
        let mut done = run.inner.done.subscribe();
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => cb(&run.status(), run.elapsed()),
                _ = done.changed() => {
                    cb(&run.status(), run.elapsed());
                    return;
                }
            }
        }
    });
}

pub(super) fn set_batch(sh: &Shared, index: usize, f: impl FnOnce(&mut BatchProgress)) {
    let pos = lock(&sh.batch_pos).get(&index).copied();
    if let Some(p) = pos {
        let mut s = lock(&sh.run.status);
        if let Some(b) = s.batches.get_mut(p) {
            f(b);
        }
    }
}

pub(super) fn finish_batch_progress(sh: &Shared, index: usize) {
    let pos = lock(&sh.batch_pos).get(&index).copied();
    let mut s = lock(&sh.run.status);
    if let Some(b) = pos.and_then(|p| s.batches.get_mut(p)) {
        if !b.finished {
            b.finished = true;
            b.finished_at = Some(chrono::Utc::now());
            if !sh.params.keep_batch_job_ids {
                b.jobs = std::sync::Arc::from(Vec::new());
            }
            s.batches_completed += 1;
            s.batches_pending = s.batches_pending.saturating_sub(1);
        }
    }
}
