//! Planning: which pending jobs go together into which provider batch.
//!
//! Jobs are grouped by provider (and by model where the provider wants one
//! model per batch), keeping their order, then cut into batches of at most
//! `items_per_batch` jobs that also respect each provider's request-count and
//! byte limits. Planning works on the run's small per-job records, never on
//! the prompts themselves.

use std::collections::BTreeMap;

use crate::catalog::{Catalog, ProviderKind};
use crate::error::{Error, Result};
use crate::providers::default_limits;
use crate::state::{JobNo, JobRanges, JobStatus, StateStore};

/// Share of a provider's byte limit a planned batch may fill; the rest is
/// headroom for our size estimate being low.
const BYTE_HEADROOM: f64 = 0.9;

/// One batch to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedBatch {
    /// The provider.
    pub provider: ProviderKind,
    /// The model id as the jobs name it, when the batch has one model
    /// (always for OpenAI), else the first job's.
    pub model: String,
    /// Its jobs, by number, in order.
    pub jobs: JobRanges,
    /// Approximate request bytes.
    pub approx_bytes: u64,
}

/// A group's batch being filled.
struct Filling {
    batch: PlannedBatch,
    max_items: usize,
    max_bytes: u64,
}

/// Cuts the pending jobs of `state` into batches, leaving out those
/// `skip` names. One pass over the job table; what it holds is the plan
/// itself, a few bytes a batch when jobs run in order.
pub fn plan(
    state: &mut StateStore,
    catalog: &Catalog,
    items_per_batch: usize,
    skip: impl Fn(JobNo) -> bool,
) -> Result<Vec<PlannedBatch>> {
    // Group key: provider, then model for one-model providers ("" otherwise).
    let mut filling: BTreeMap<(ProviderKind, String), Filling> = BTreeMap::new();
    let mut out: Vec<((ProviderKind, String), PlannedBatch)> = Vec::new();
    let mut resolved: Vec<Option<(ProviderKind, bool)>> = Vec::new();
    let names = state.model_names();
    for item in state.scan()? {
        let (no, status, rec) = item?;
        if status != JobStatus::Pending || skip(no) {
            continue;
        }
        let m = usize::from(rec.model);
        let name = names.get(m).map_or("", String::as_str);
        if resolved.len() <= m {
            resolved.resize(m + 1, None);
        }
        let (provider, one_model) = match resolved[m] {
            Some(r) => r,
            None => {
                let model = catalog
                    .lookup(name)
                    .map_err(|e| Error::ModelNotSupported(format!("job '{}': {e}", rec.id)))?;
                let r = (
                    model.provider,
                    default_limits(model.provider).one_model_per_batch,
                );
                resolved[m] = Some(r);
                r
            }
        };
        // Grouped by the id as the user wrote it, which is what the wire
        // carries: an alias and its canonical name are different models to
        // a provider that takes one model per batch.
        let key = (
            provider,
            if one_model {
                name.to_string()
            } else {
                String::new()
            },
        );
        let f = filling.entry(key.clone()).or_insert_with(|| {
            let limits = default_limits(provider);
            Filling {
                batch: PlannedBatch {
                    provider,
                    model: name.to_string(),
                    jobs: JobRanges::default(),
                    approx_bytes: 0,
                },
                max_items: items_per_batch.min(limits.max_requests).max(1),
                max_bytes: (limits.max_bytes as f64 * BYTE_HEADROOM) as u64,
            }
        });
        let bytes = u64::from(rec.approx_bytes);
        if bytes > f.max_bytes {
            return Err(Error::Validation(format!(
                "job '{}': about {} MB, more than a {} batch can hold ({} MB); use a smaller file",
                rec.id,
                bytes / 1_000_000,
                provider,
                f.max_bytes / 1_000_000
            )));
        }
        if !f.batch.jobs.is_empty()
            && (f.batch.jobs.len() >= f.max_items || f.batch.approx_bytes + bytes > f.max_bytes)
        {
            let next = PlannedBatch {
                provider,
                model: f.batch.model.clone(),
                jobs: JobRanges::default(),
                approx_bytes: 0,
            };
            out.push((key, std::mem::replace(&mut f.batch, next)));
        }
        f.batch.jobs.push(no);
        f.batch.approx_bytes += bytes;
    }
    for (key, f) in filling {
        if !f.batch.jobs.is_empty() {
            out.push((key, f.batch));
        }
    }
    // Groups one after another, by provider then model (a stable sort
    // keeps each group's batches in job order).
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().map(|(_, b)| b).collect())
}
