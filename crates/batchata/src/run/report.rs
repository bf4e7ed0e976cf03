//! Reporting a run's progress: the one function through which the stages
//! report events (folded into the status by `events.rs`), and the callback
//! that receives the status at the application's interval.

use std::time::Duration;

use super::engine::Shared;
use super::events::RunEvent;
use super::{lock, BatchRun, ProgressCallback};

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

/// Reports what happened to the run's status: the one way a stage changes
/// it (the reducer is `Progress::apply`).
pub(super) fn emit(sh: &Shared, event: RunEvent<'_>) {
    lock(&sh.run.status).apply(event);
}

/// Reports batch `index` as needing nothing more (once; again is a no-op).
pub(super) fn batch_ended(sh: &Shared, index: usize) {
    emit(
        sh,
        RunEvent::Ended {
            index,
            at: chrono::Utc::now(),
        },
    );
}
