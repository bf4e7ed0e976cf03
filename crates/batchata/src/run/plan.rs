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
use crate::state::{JobId, JobStatus, StateStore};

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
    /// Job ids, in order.
    pub jobs: Vec<JobId>,
    /// Approximate request bytes.
    pub approx_bytes: u64,
}

/// Cuts the pending jobs of `state` into batches.
pub fn plan(
    state: &StateStore,
    catalog: &Catalog,
    items_per_batch: usize,
) -> Result<Vec<PlannedBatch>> {
    // Group key: provider, then model for one-model providers ("" otherwise).
    let mut groups: BTreeMap<(ProviderKind, String), Vec<(&JobId, u64)>> = BTreeMap::new();
    let mut first_model: BTreeMap<(ProviderKind, String), String> = BTreeMap::new();
    for id in &state.order {
        let Some(entry) = state.jobs.get(id) else {
            continue;
        };
        if entry.status != JobStatus::Pending {
            continue;
        }
        let name = state.model_of(entry);
        let model = catalog
            .lookup(name)
            .map_err(|e| Error::ModelNotSupported(format!("job '{id}': {e}")))?;
        let limits = default_limits(model.provider);
        // Grouped by the id as the user wrote it, which is what the wire
        // carries: an alias and its canonical name are different models to
        // a provider that takes one model per batch.
        let key_model = if limits.one_model_per_batch {
            name.to_string()
        } else {
            String::new()
        };
        let key = (model.provider, key_model);
        first_model
            .entry(key.clone())
            .or_insert_with(|| name.to_string());
        groups
            .entry(key)
            .or_default()
            .push((id, u64::from(entry.approx_bytes)));
    }
    let mut out = Vec::new();
    for (key, jobs) in groups {
        let limits = default_limits(key.0);
        let max_items = items_per_batch.min(limits.max_requests).max(1);
        let max_bytes = (limits.max_bytes as f64 * BYTE_HEADROOM) as u64;
        let model = first_model.get(&key).cloned().unwrap_or_default();
        // Sized up front: a batch's id list is kept for the whole run, and
        // growing it by doubling would leave up to half of it unused.
        let mut left = jobs.len();
        let mut current = PlannedBatch {
            provider: key.0,
            model: model.clone(),
            jobs: Vec::with_capacity(left.min(max_items)),
            approx_bytes: 0,
        };
        for (id, bytes) in jobs {
            if bytes > max_bytes {
                return Err(Error::Validation(format!(
                    "job '{id}': about {} MB, more than a {} batch can hold ({} MB); use a smaller file",
                    bytes / 1_000_000,
                    key.0,
                    max_bytes / 1_000_000
                )));
            }
            if !current.jobs.is_empty()
                && (current.jobs.len() >= max_items || current.approx_bytes + bytes > max_bytes)
            {
                out.push(std::mem::replace(
                    &mut current,
                    PlannedBatch {
                        provider: key.0,
                        model: model.clone(),
                        jobs: Vec::with_capacity(left.min(max_items)),
                        approx_bytes: 0,
                    },
                ));
            }
            left -= 1;
            current.jobs.push(id.clone());
            current.approx_bytes += bytes;
        }
        if !current.jobs.is_empty() {
            out.push(current);
        }
    }
    Ok(out)
}
