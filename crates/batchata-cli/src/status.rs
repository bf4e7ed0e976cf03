//! `batchata status`: what a state file says of a run, with the providers'
//! live counts of its batches in flight when asked (`--refresh`).

use std::path::{Path, PathBuf};

use batchata::progress::usd;
use batchata::run::StateReport;
use batchata::ResultsFormat;
use serde_json::Value;

use crate::report::{clip, money};
use crate::Failure;

/// The state file `status` and `cancel` read: `--state` when given (a
/// folder holding the default name is taken as that folder), else the
/// default name inside the results folder.
pub(crate) fn state_path(dir: Option<&Path>, state: Option<&Path>) -> PathBuf {
    match (state, dir) {
        (Some(s), _) if s.is_dir() => s.join(crate::run::DEFAULT_STATE_NAME),
        (Some(s), _) => s.to_path_buf(),
        (None, Some(d)) => d.join(crate::run::DEFAULT_STATE_NAME),
        (None, None) => PathBuf::from(".").join(crate::run::DEFAULT_STATE_NAME),
    }
}

/// What a provider says of a batch now (`status --refresh`).
pub(crate) struct Live {
    pub(crate) status: String,
    pub(crate) counts: batchata::providers::RequestCounts,
}

/// `batchata status [DIR] [--state FILE] [--json] [--refresh]`. `live` holds
/// what the providers said of the batches in flight, by index, when asked.
pub(crate) fn status(
    state: &Path,
    json: bool,
    live: &std::collections::HashMap<usize, Result<Live, String>>,
) -> Result<u8, Failure> {
    let mut r = load_state(state)?;
    // Indexes of batches never created (skipped by the cost limit) hold no jobs.
    r.batches.retain(|b| b.jobs > 0);
    if json {
        let c = r.counts;
        let batches: Vec<Value> = r
            .batches
            .iter()
            .map(|b| {
                let state = match (&b.batch_id, &b.ended) {
                    (None, _) => "not_created",
                    (Some(_), None) => "in_flight",
                    (Some(_), Some(_)) => "ended",
                };
                let mut v = serde_json::json!({
                    "index": b.index,
                    "provider": b.provider.as_str(),
                    "batch_id": b.batch_id,
                    "jobs": b.jobs,
                    "state": state,
                    "final_status": b.ended,
                });
                match live.get(&b.index) {
                    Some(Ok(l)) => {
                        v["provider_status"] = l.status.clone().into();
                        v["provider_counts"] = serde_json::json!({
                            "total": l.counts.total,
                            "processing": l.counts.processing,
                            "succeeded": l.counts.succeeded,
                            "errored": l.counts.errored,
                            "cancelled": l.counts.cancelled,
                            "expired": l.counts.expired,
                        });
                    }
                    Some(Err(e)) => v["provider_error"] = e.clone().into(),
                    None => {}
                }
                v
            })
            .collect();
        let v = serde_json::json!({
            "run_id": r.run_id,
            "created_at": r.created_at,
            "results_dir": r.results_dir,
            "results_format": r.results_format,
            "state_file": state,
            "counts": {
                "total": c.total,
                "pending": c.pending,
                "running": c.running,
                "completed": c.completed,
                "failed": c.failed,
                "cancelled": c.cancelled,
            },
            "cost_used_usd": money(r.cost_used_usd),
            "batches": batches,
        });
        let text = serde_json::to_string_pretty(&v).map_err(Failure::other)?;
        println!("{text}");
        return Ok(0);
    }
    let c = r.counts;
    println!(
        "run      {} (started {})",
        r.run_id,
        r.created_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    match r.results_format {
        ResultsFormat::Jsonl => println!(
            "results  {} (jsonl)",
            r.results_dir.join(batchata::RESULTS_JSONL).display()
        ),
        _ => println!("results  {}", r.results_dir.display()),
    }
    println!(
        "jobs     {} total: {} completed, {} failed, {} cancelled, {} running, {} pending",
        c.total, c.completed, c.failed, c.cancelled, c.running, c.pending
    );
    println!("cost     {}", usd(r.cost_used_usd));
    let in_flight = r.batches.iter().filter(|b| b.ended.is_none()).count();
    println!("batches  {} ({in_flight} in flight)", r.batches.len());
    for b in &r.batches {
        let what = match (&b.ended, live.get(&b.index)) {
            // The provider's own end word, when it says more than "ended".
            (Some(end), _) if end == "ended" => "ended".to_string(),
            (Some(end), _) => format!("ended ({end})"),
            (None, Some(Ok(l))) => {
                let k = &l.counts;
                format!(
                    "in flight: {} — {} succeeded, {} errored, {} cancelled, {} expired, {} processing",
                    l.status, k.succeeded, k.errored, k.cancelled, k.expired, k.processing
                )
            }
            (None, Some(Err(e))) => format!("in flight (provider: {})", clip(e, 60)),
            (None, None) => "in flight".to_string(),
        };
        println!(
            "  #{:<4} {:<9} {:<42} {:>6} jobs  {what}",
            b.index,
            b.provider.as_str(),
            b.batch_id.as_deref().unwrap_or("(not created)"),
            b.jobs,
        );
    }
    if in_flight > 0 && live.is_empty() {
        println!("(--refresh asks the providers for live counts of the batches in flight)");
    }
    Ok(0)
}

/// Reads a state for `status`, with an error that says where one is.
pub(crate) fn load_state(state: &Path) -> Result<StateReport, Failure> {
    if !state.is_file() {
        return Err(Failure::input(format!(
            "no state file at {}; give the run's results folder (`batchata status DIR`, read from DIR/{}) or its --state",
            state.display(),
            crate::run::DEFAULT_STATE_NAME
        )));
    }
    StateReport::load(state).map_err(|e| {
        // A state that cannot be read is bad input (exit 2), as `run` says.
        Failure::input(e)
    })
}
