//! SKELETON — being written; see request.rs / response.rs.

pub mod request;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::catalog::{Catalog, ModelInfo, ProviderKind};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::providers::*;

/// The Anthropic provider.
pub struct AnthropicProvider {
    catalog: Arc<Catalog>,
}

impl AnthropicProvider {
    /// Builds the client from its settings.
    pub fn new(_config: &ProviderConfig, catalog: Arc<Catalog>) -> Result<Self> {
        Ok(AnthropicProvider { catalog })
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }
    fn validate_job(&self, _job: &Job, _model: &ModelInfo) -> Result<()> {
        Ok(())
    }
    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_requests: 50_000,
            max_bytes: 200_000_000,
            one_model_per_batch: true,
        }
    }
    fn polling_interval(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn estimate_cost(&self, jobs: &[Job]) -> Result<CostEstimate> {
        estimate_jobs_cost(&self.catalog, jobs)
    }
    async fn create_batch(&self, _request: BatchRequest<'_>) -> Result<CreatedBatch> {
        Err(Error::BatchSubmission("not written yet".into()))
    }
    async fn get_batch_status(&self, _batch_id: &str) -> Result<BatchStatus> {
        Err(Error::BatchSubmission("not written yet".into()))
    }
    async fn get_batch_results(
        &self,
        _batch_id: &str,
        _ctx: ResultsContext<'_>,
        _sink: &mut ResultSink<'_>,
    ) -> Result<()> {
        Err(Error::BatchSubmission("not written yet".into()))
    }
    async fn cancel_batch(&self, _batch_id: &str) -> Result<()> {
        Err(Error::BatchSubmission("not written yet".into()))
    }
    async fn find_batch(&self, _probe: BatchProbe<'_>) -> Result<Option<String>> {
        Ok(None)
    }
}
