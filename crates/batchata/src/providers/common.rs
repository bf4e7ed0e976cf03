//! What every provider client shares, written once: the settings besides
//! its HTTP client (catalog, poll interval, batch limits), the model lookup,
//! and the checks a batch must pass before any of it is built or sent.
//!
//! The [`Provider`](super::Provider) trait's `kind`, `limits`,
//! `polling_interval` and `estimate_cost` are default methods reading
//! [`ProviderBase`], and the three clients make the same pre-checks through
//! [`ProviderBase::batch_checks`], so the same problem is the same error
//! kind, in the same words, whichever provider meets it:
//!
//! * a batch the provider cannot take as planned (empty, too many requests,
//!   too many bytes, an id twice, two models where one is required) is
//!   [`Error::BatchSubmission`];
//! * a job that is not what a batch needs (no id) is [`Error::Validation`];
//! * a model the catalog lacks is [`Error::ModelNotSupported`], one served
//!   by another provider [`Error::ProviderNotFound`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::{default_limits, BatchLimits, ProviderConfig};
use crate::catalog::{Catalog, ModelInfo, ProviderKind};
use crate::error::{Error, Result};
use crate::job::Job;

/// The settings every provider client keeps besides its HTTP client.
#[derive(Debug, Clone)]
pub struct ProviderBase {
    kind: ProviderKind,
    catalog: Arc<Catalog>,
    poll_interval: Duration,
    limits: BatchLimits,
}

impl ProviderBase {
    /// The base of a `kind` client: the configured poll interval or
    /// `default_poll`, and the provider's [`default_limits`].
    pub(crate) fn new(
        kind: ProviderKind,
        config: &ProviderConfig,
        catalog: Arc<Catalog>,
        default_poll: Duration,
    ) -> Self {
        ProviderBase {
            kind,
            catalog,
            poll_interval: config.poll_interval.unwrap_or(default_poll),
            limits: default_limits(kind),
        }
    }

    /// Which provider this is.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The catalog the jobs' models are looked up in.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// How often a batch is polled.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// The per-batch limits.
    pub fn limits(&self) -> BatchLimits {
        self.limits
    }

    /// Replaces the per-batch limits (smaller quotas, and tests).
    pub(crate) fn set_limits(&mut self, limits: BatchLimits) {
        self.limits = limits;
    }

    /// The catalog entry of `job`'s model, which this provider must serve.
    pub(crate) fn model(&self, job: &Job) -> Result<Arc<ModelInfo>> {
        let model = self
            .catalog
            .lookup(job.model_name())
            .map_err(|e| Error::ModelNotSupported(format!("job '{}': {e}", job.id_str())))?;
        self.check_serves(job, &model)?;
        Ok(model)
    }

    /// Refuses a job whose model another provider serves.
    pub(crate) fn check_serves(&self, job: &Job, model: &ModelInfo) -> Result<()> {
        if model.provider != self.kind {
            return Err(Error::ProviderNotFound(format!(
                "job '{}': model '{}' is served by {}, not {}",
                job.id_str(),
                model.name,
                model.provider,
                brand(self.kind)
            )));
        }
        Ok(())
    }

    /// The checks every batch passes before its requests are built: it has
    /// jobs, no more than the provider takes, each with an id and no id
    /// twice (results are matched by id), and one model where the provider
    /// runs one model per batch. The jobs are read one at a time
    /// ([`super::JobSource`]): the count is checked here, each job with
    /// [`BatchChecks::job`] as it comes.
    pub(crate) fn batch_checks(&self, index: usize, len: usize) -> Result<BatchChecks<'_>> {
        let name = brand(self.kind);
        if len == 0 {
            return Err(Error::BatchSubmission(format!(
                "batch {index} has no jobs; a batch needs at least one"
            )));
        }
        let max = self.limits.max_requests;
        if len > max {
            return Err(Error::BatchSubmission(format!(
                "batch {index} has {len} requests; {name} takes at most {max} per batch — set items_per_batch to {max} or less"
            )));
        }
        Ok(BatchChecks {
            base: self,
            index,
            seen: HashSet::with_capacity(len),
            first: None,
        })
    }

    /// The error for an input file that passes the byte limit at job `id`,
    /// `at` (0-based) of `total`.
    pub(crate) fn input_too_large_at(&self, id: &str, at: usize, total: usize) -> Error {
        let max = self.limits.max_bytes;
        Error::BatchSubmission(format!(
            "the batch's input file would be larger than {}'s limit of {max} bytes ({} MB): it passed the limit at job '{id}' ({} of {total} jobs); lower items_per_batch, or send smaller files",
            brand(self.kind),
            max / 1_000_000,
            at + 1,
        ))
    }
}

/// Reads a batch's jobs to build its requests, a job at a time: the checks
/// every provider makes ([`ProviderBase::batch_checks`]), the job's model,
/// and the provider's own checks of the job
/// ([`Provider::validate_job`](super::Provider::validate_job)); then `build`
/// gets the job's position, the job and its model. A check that fails ends
/// the reading, before anything is sent.
pub(crate) fn build_checked<P: super::Provider + ?Sized>(
    provider: &P,
    jobs: &dyn super::JobSource,
    index: usize,
    mut build: impl FnMut(usize, &Job, &Arc<ModelInfo>) -> Result<()>,
) -> Result<()> {
    let base = provider.base();
    let mut checks = base.batch_checks(index, jobs.len())?;
    for (i, job) in jobs.jobs()?.enumerate() {
        let job = job?;
        checks.job(&job)?;
        let model = base.model(&job)?;
        provider.validate_job(&job, &model)?;
        build(i, &job, &model)?;
    }
    Ok(())
}

/// The per-job part of [`ProviderBase::batch_checks`], made as the jobs
/// come.
pub(crate) struct BatchChecks<'a> {
    base: &'a ProviderBase,
    index: usize,
    seen: HashSet<String>,
    /// The first job's id and model, for the one-model rule.
    first: Option<(String, String)>,
}

impl BatchChecks<'_> {
    /// Every check of one job.
    pub(crate) fn job(&mut self, job: &Job) -> Result<()> {
        self.id(job)?;
        self.model(job)
    }

    /// The job has an id, not seen before in the batch.
    pub(crate) fn id(&mut self, job: &Job) -> Result<()> {
        let index = self.index;
        let Some(id) = job.id.as_deref() else {
            return Err(Error::Validation(format!(
                "batch {index}: a job has no id (prompt starting {:?}); jobs must be added through Batch::add_job",
                job.prompt.as_deref().unwrap_or("").chars().take(40).collect::<String>()
            )));
        };
        if !self.seen.insert(id.to_string()) {
            return Err(Error::BatchSubmission(format!(
                "batch {index}: job id '{id}' appears twice; results are matched by id, so ids must be unique"
            )));
        }
        Ok(())
    }

    /// Where the provider runs one model per batch, the job's is the first
    /// job's.
    pub(crate) fn model(&mut self, job: &Job) -> Result<()> {
        if !self.base.limits.one_model_per_batch {
            return Ok(());
        }
        let Some((first_id, model)) = &self.first else {
            self.first = Some((job.id_str().to_string(), job.model_name().to_string()));
            return Ok(());
        };
        if job.model_name() != model {
            return Err(Error::BatchSubmission(format!(
                "batch {}: a {} batch runs one model, but job '{first_id}' uses '{model}' and job '{}' uses '{}'; put jobs of different models in different batches",
                self.index,
                brand(self.base.kind),
                job.id_str(),
                job.model_name()
            )));
        }
        Ok(())
    }
}

/// The catalog entries of a batch's models while its results are read,
/// each looked up once.
pub(crate) struct ResultModels<'a> {
    catalog: &'a Catalog,
    batch_id: &'a str,
    models: HashMap<String, Arc<ModelInfo>>,
}

impl<'a> ResultModels<'a> {
    /// For the results of batch `batch_id`.
    pub(crate) fn new(catalog: &'a Catalog, batch_id: &'a str) -> Self {
        ResultModels {
            catalog,
            batch_id,
            models: HashMap::new(),
        }
    }

    /// The model of `job`, to price its result. A model gone from the
    /// catalog since the batch was sent is an error that says how to
    /// collect the batch once it is back.
    pub(crate) fn get(&mut self, job: &Job) -> Result<Arc<ModelInfo>> {
        let name = job.model_name();
        if let Some(m) = self.models.get(name) {
            return Ok(m.clone());
        }
        let m = self.catalog.lookup(name).map_err(|e| {
            Error::ModelNotSupported(format!(
                "job '{}': cannot price its result: {e}; add the model back (BATCHATA_MODELS_FILE) and rerun with the same state file to collect batch {}",
                job.id_str(),
                self.batch_id
            ))
        })?;
        self.models.insert(name.to_string(), m.clone());
        Ok(m)
    }
}

/// Whether `id` can go into a URL path as it is: not empty, and only ASCII
/// letters, digits, '_' and '-', which is what the providers' ids are made
/// of.
pub(crate) fn is_wire_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What a refused create call means for the batch. Refused for good (a bad
/// request, too large): [`Error::BatchRejected`] for 400, 413 and 422,
/// [`Error::BatchSubmission`] for the other 4xx. A refused key (401, 403)
/// stays an HTTP error: it stops the run, it does not fail the jobs. Rate
/// limits and outages stay retryable HTTP errors.
pub(crate) fn submission_error(e: Error) -> Error {
    match e {
        Error::Http {
            status: Some(400 | 413 | 422),
            message,
            retryable: false,
        } => Error::BatchRejected(message),
        Error::Http {
            status: Some(s),
            message,
            retryable: false,
        } if (400..500).contains(&s) && s != 401 && s != 403 => Error::BatchSubmission(message),
        other => other,
    }
}

/// The provider's name as its makers write it, for messages.
fn brand(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Anthropic => "Anthropic",
        ProviderKind::OpenAi => "OpenAI",
        ProviderKind::Gemini => "Gemini",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(kind: ProviderKind) -> ProviderBase {
        let mut b = ProviderBase::new(
            kind,
            &ProviderConfig::default(),
            Arc::new(Catalog::builtin().clone()),
            Duration::from_secs(1),
        );
        b.set_limits(BatchLimits {
            max_requests: 2,
            ..b.limits()
        });
        b
    }

    /// The checks as a provider makes them, a job at a time.
    fn check(kind: ProviderKind, jobs: &[Job]) -> Result<()> {
        let base = base(kind);
        let mut checks = base.batch_checks(4, jobs.len())?;
        jobs.iter().try_for_each(|j| checks.job(j))
    }

    #[test]
    fn every_provider_refuses_the_same_batches_with_the_same_kind() {
        let job = |id: &str, model: &str| Job::prompt("hi").id(id).model(model);
        for (kind, model, other) in [
            (ProviderKind::Anthropic, "claude-3-5-haiku-latest", None),
            (ProviderKind::OpenAi, "gpt-4o-mini", Some("gpt-4o")),
            (
                ProviderKind::Gemini,
                "gemini-2.5-flash",
                Some("gemini-2.5-pro"),
            ),
        ] {
            let e = check(kind, &[]).unwrap_err();
            assert!(matches!(e, Error::BatchSubmission(_)), "{kind}: {e:?}");
            assert!(e.to_string().contains("batch 4 has no jobs"), "{e}");

            let three = [job("a", model), job("b", model), job("c", model)];
            let e = check(kind, &three).unwrap_err();
            assert!(matches!(e, Error::BatchSubmission(_)), "{kind}: {e:?}");
            assert!(e.to_string().contains("items_per_batch to 2"), "{e}");

            let twice = [job("a", model), job("a", model)];
            let e = check(kind, &twice).unwrap_err();
            assert!(matches!(e, Error::BatchSubmission(_)), "{kind}: {e:?}");
            assert!(e.to_string().contains("'a' appears twice"), "{e}");

            let no_id = [Job::prompt("hi").model(model)];
            let e = check(kind, &no_id).unwrap_err();
            assert!(matches!(e, Error::Validation(_)), "{kind}: {e:?}");

            let mixed = [job("a", model), job("b", other.unwrap_or(model))];
            match other {
                Some(o) => {
                    let e = check(kind, &mixed).unwrap_err();
                    assert!(matches!(e, Error::BatchSubmission(_)), "{kind}: {e:?}");
                    assert!(e.to_string().contains(o), "{e}");
                }
                None => check(kind, &mixed).unwrap(),
            }

            let e = base(kind).input_too_large_at("b", 1, 3);
            assert!(matches!(e, Error::BatchSubmission(_)), "{kind}: {e:?}");
            assert!(e.to_string().contains("job 'b' (2 of 3 jobs)"), "{e}");
        }
    }

    #[test]
    fn a_model_of_another_provider_is_refused() {
        let e = base(ProviderKind::Anthropic)
            .model(&Job::prompt("hi").id("a").model("gpt-4o-mini"))
            .unwrap_err();
        assert!(matches!(e, Error::ProviderNotFound(_)), "{e:?}");
        assert!(e.to_string().contains("not Anthropic"), "{e}");
        let e = base(ProviderKind::OpenAi)
            .model(&Job::prompt("hi").id("a").model("no-such-model"))
            .unwrap_err();
        assert!(matches!(e, Error::ModelNotSupported(_)), "{e:?}");
    }
}
