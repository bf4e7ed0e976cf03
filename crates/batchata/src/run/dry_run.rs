//! The dry run: the plan and its price, with nothing submitted.
//!
//! It shows the worst case (every job writing its full `max_tokens`), which
//! is what the cost limit guards against, beside an expected cost with output
//! at a typical fraction of `max_tokens` — the worst case alone overstated
//! real spend thirteen-fold in the Python library.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::batch::Batch;
use crate::catalog::ProviderKind;
use crate::error::Result;
use crate::providers::estimate_jobs_cost;
use crate::state::StateStore;

/// One planned batch of a dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRunBatch {
    /// Provider.
    pub provider: ProviderKind,
    /// Model; every model of the batch, comma-separated, for providers that mix them.
    pub model: String,
    /// Jobs in the batch.
    pub jobs: usize,
    /// Estimated input tokens.
    pub input_tokens: u64,
    /// Worst-case cost (USD).
    pub worst_case_usd: f64,
    /// Expected cost (USD).
    pub expected_usd: f64,
}

/// The plan and price of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRunReport {
    /// Planned batches.
    pub batches: Vec<DryRunBatch>,
    /// Jobs.
    pub total_jobs: usize,
    /// Worst-case total (USD).
    pub worst_case_usd: f64,
    /// Expected total (USD).
    pub expected_usd: f64,
    /// Output fraction used for the expected cost.
    pub expected_output_fraction: f64,
    /// The cost limit.
    pub cost_limit_usd: Option<f64>,
    /// Batches that fit under the limit at worst case, in submission order.
    pub batches_within_limit: usize,
    /// Provider batches in flight at once.
    pub max_parallel_batches: usize,
    /// Jobs per batch.
    pub items_per_batch: usize,
}

pub(super) fn dry_run(batch: &Batch) -> Result<DryRunReport> {
    // Plan exactly as the run would, on a throwaway state.
    let dir = tempfile::tempdir().map_err(|e| {
        crate::error::Error::io(
            "create the dry run's scratch folder in",
            std::env::temp_dir(),
            e,
        )
    })?;
    let mut store = StateStore::create(
        &dir.path().join("plan.jsonl"),
        "dry-run",
        &batch.params.results_dir,
    )?;
    let jobs = batch.jobs();
    for job in &jobs {
        store.add_job(job)?;
    }
    // A new state numbers its jobs in the order they were added.
    let planned = super::plan::plan(
        &mut store,
        &batch.catalog,
        batch.params.items_per_batch,
        |_| false,
    )?;
    let fraction = batch.params.expected_output_fraction;
    let mut report = DryRunReport {
        batches: Vec::new(),
        total_jobs: jobs.len(),
        worst_case_usd: 0.0,
        expected_usd: 0.0,
        expected_output_fraction: fraction,
        cost_limit_usd: batch.params.cost_limit_usd,
        batches_within_limit: 0,
        max_parallel_batches: batch.params.max_parallel_batches,
        items_per_batch: batch.params.items_per_batch,
    };
    let mut running = 0.0;
    for p in planned {
        let jobs: Vec<crate::job::Job> = p
            .jobs
            .iter()
            .filter_map(|n| jobs.get(n as usize).cloned())
            .collect();
        let est = estimate_jobs_cost(&batch.catalog, &jobs)?;
        // A provider that mixes models in a batch: name them all.
        let mut models: Vec<&str> = jobs.iter().map(|j| j.model_name()).collect();
        models.sort_unstable();
        models.dedup();
        let model = if models.len() > 1 {
            models.join(", ")
        } else {
            p.model
        };
        let b = DryRunBatch {
            provider: p.provider,
            model,
            jobs: jobs.len(),
            input_tokens: est.input_tokens,
            worst_case_usd: est.worst_case_usd,
            expected_usd: est.expected_usd(fraction),
        };
        running += b.worst_case_usd;
        if batch
            .params
            .cost_limit_usd
            .is_none_or(|l| running <= l + 1e-12)
        {
            report.batches_within_limit += 1;
        }
        report.worst_case_usd += b.worst_case_usd;
        report.expected_usd += b.expected_usd;
        report.batches.push(b);
    }
    Ok(report)
}

impl fmt::Display for DryRunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Dry run: {} jobs in {} provider batches (up to {} per batch, {} in parallel); nothing submitted.",
            self.total_jobs, self.batches.len(), self.items_per_batch, self.max_parallel_batches)?;
        writeln!(f)?;
        writeln!(
            f,
            "  {:>5}  {:<10} {:<26} {:>7} {:>12} {:>12} {:>12}",
            "batch", "provider", "model", "jobs", "in tokens", "worst $", "expected $"
        )?;
        for (i, b) in self.batches.iter().enumerate() {
            writeln!(
                f,
                "  {:>5}  {:<10} {:<26} {:>7} {:>12} {:>12.4} {:>12.4}",
                i,
                b.provider.as_str(),
                b.model,
                b.jobs,
                b.input_tokens,
                b.worst_case_usd,
                b.expected_usd
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  worst case (all output at max_tokens): ${:.4}",
            self.worst_case_usd
        )?;
        writeln!(
            f,
            "  expected (output at {:.0}% of max_tokens):   ${:.4}",
            self.expected_output_fraction * 100.0,
            self.expected_usd
        )?;
        match self.cost_limit_usd {
            Some(l) if self.worst_case_usd <= l => writeln!(f, "  cost limit ${l:.2}: every batch fits at worst case"),
            Some(l) => writeln!(f, "  cost limit ${l:.2}: {} of {} batches fit at worst case; the rest would fail with \"Cost limit exceeded\" unless earlier batches cost less than estimated",
                self.batches_within_limit, self.batches.len()),
            None => writeln!(f, "  no cost limit set"),
        }
    }
}
