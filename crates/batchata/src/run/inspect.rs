//! Reading a state without running it: what `batchata status` shows and
//! what `batchata cancel` cancels. Both only read the state file, so they
//! work while a run holds it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, ProviderKind};
use crate::error::Result;
use crate::providers::{create_provider, Provider, ProviderSettings};
use crate::state::StateStore;

/// What a state file says about its run (for `batchata status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateReport {
    /// Run id.
    pub run_id: String,
    /// When the run started.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Results folder.
    pub results_dir: PathBuf,
    /// How the run lays its results out.
    #[serde(default)]
    pub results_format: crate::layout::ResultsFormat,
    /// Job counts.
    pub counts: crate::state::StateCounts,
    /// Cost billed.
    pub cost_used_usd: f64,
    /// Batches: (index, provider, provider batch id, final status or None while in flight, jobs).
    pub batches: Vec<StateBatch>,
}

/// One batch of a state report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateBatch {
    /// Index.
    pub index: usize,
    /// Provider.
    pub provider: ProviderKind,
    /// Provider batch id.
    pub batch_id: Option<String>,
    /// Final status; `None` while in flight.
    pub ended: Option<String>,
    /// Jobs it was created with (the journal lets go of an ended batch's
    /// job list, not of its size).
    pub jobs: usize,
}

impl StateReport {
    /// Reads a state file without writing to it.
    pub fn load(path: &Path) -> Result<StateReport> {
        let st = StateStore::inspect(path)?;
        Ok(StateReport {
            run_id: st.run_id.clone(),
            created_at: st.created_at,
            results_dir: st.results_dir.clone(),
            results_format: st.results_format,
            counts: st.counts(),
            cost_used_usd: st.cost_used(),
            batches: st
                .batches
                .iter()
                .map(|b| StateBatch {
                    index: b.index,
                    provider: b.provider,
                    batch_id: b.batch_id.clone(),
                    ended: b.ended.clone(),
                    jobs: b.size,
                })
                .collect(),
        })
    }
}

/// Cancels at the provider every batch of a state that is still in flight;
/// returns the ids cancelled. Reads the state without writing to it, so it is
/// safe while the run itself is still going (that run then collects what the
/// batches finished).
pub async fn cancel_from_state(
    path: &Path,
    settings: &ProviderSettings,
    catalog: Arc<Catalog>,
) -> Result<Vec<String>> {
    let st = StateStore::inspect(path)?;
    let mut out = Vec::new();
    let mut clients: HashMap<ProviderKind, Arc<dyn Provider>> = HashMap::new();
    for b in st.batches.iter().filter(|b| b.ended.is_none()) {
        let Some(id) = &b.batch_id else { continue };
        let client = match clients.get(&b.provider) {
            Some(c) => c.clone(),
            None => {
                let c = create_provider(b.provider, settings.get(b.provider), catalog.clone())?;
                clients.insert(b.provider, c.clone());
                c
            }
        };
        client.cancel_batch(id).await?;
        out.push(id.clone());
    }
    Ok(out)
}
