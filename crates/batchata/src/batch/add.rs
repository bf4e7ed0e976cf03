//! Adding jobs to a [`Batch`]: defaults merged, the job checked against its
//! model and the provider's limits (preflight), its fingerprint taken and
//! its id given or checked unique, then the job spooled to disk.

use crate::catalog::{ModelInfo, ProviderKind};
use crate::error::{Error, Result};
use crate::job::Job;

use super::{Batch, DEFAULT_MAX_TOKENS};

/// The ids of the jobs added, as digests: about 14 bytes a job where a
/// set of strings costs 60 ([`crate::digest`]), dropped when the run starts.
#[derive(Clone, Default)]
pub(crate) struct AddedIds {
    /// Digests of the ids the user gave.
    user: crate::digest::DigestMap<()>,
    /// Jobs without an id get one from their fingerprint: how many jobs
    /// so far had each fingerprint (first 64 bits), for the `-N` suffix of
    /// identical ones.
    generated: crate::digest::DigestMap<u32>,
    /// Jobs announced by [`Batch::reserve_jobs`]: the table that takes the
    /// first of them is sized for them all at once.
    expected: usize,
}

impl Batch {
    /// Says how many more jobs are about to be added (a hint; more or fewer
    /// may come). The table that finds duplicate ids is then sized once
    /// rather than grown step by step, which at each step holds the old
    /// table beside the new one: at a million jobs, the run's peak memory.
    pub fn reserve_jobs(&mut self, additional: usize) {
        self.ids.expected = additional;
    }

    /// Merges the defaults into `job`, validates it and adds it; returns its id.
    pub fn add_job(&mut self, job: Job) -> Result<String> {
        if let Some(e) = &self.models_file_error {
            return Err(Error::Validation(format!(
                "cannot add jobs while the models file is unusable: {e}"
            )));
        }
        let mut job = self.prepare(job)?;
        // Preflight has just read the job's file: its hash is known.
        let file_hash = job
            .file
            .as_deref()
            .and_then(|p| self.file_checks.file_sha256(p));
        let fingerprint = crate::fingerprint::of_job_with(&job, file_hash)?;
        let expected = std::mem::take(&mut self.ids.expected);
        let id = match &job.id {
            Some(id) => {
                self.ids.user.reserve(expected);
                self.ids.user.entry(crate::digest::digest(id));
                id.clone()
            }
            None => {
                self.ids.generated.reserve(expected);
                // Identical jobs share a fingerprint: the N-th gets `-N`.
                let (n, _) = self
                    .ids
                    .generated
                    .entry(crate::fingerprint::short(Some(&fingerprint)));
                *n += 1;
                let id = crate::fingerprint::generated_id(&fingerprint, *n);
                job.id = Some(id.clone());
                id
            }
        };
        job.fingerprint = Some(fingerprint);
        self.jobs.push(&job)?;
        Ok(id)
    }

    /// Whether a job already added has this id. The digest table answers
    /// "no" exactly; its rare "maybe" (the id was added, or another id
    /// shares its digest) is settled by reading the added jobs back.
    fn id_taken(&self, id: &str) -> Result<bool> {
        if self.ids.user.get(crate::digest::digest(id)).is_none() {
            return Ok(false);
        }
        for job in self.jobs.iter()? {
            if job?.id.as_deref() == Some(id) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Merges defaults and validates, without adding. A job without an id
    /// gets one from its fingerprint when it is added.
    pub(crate) fn prepare(&mut self, mut job: Job) -> Result<Job> {
        job.check_shape()?;
        if let Some(id) = &job.id {
            if crate::fingerprint::looks_generated(id) {
                return Err(Error::Validation(format!(
                    "job id '{id}' has the form of a generated id ('job-' and 16 hex digits), which is kept for jobs without an id; choose another id, or leave the id out"
                )));
            }
            if self.id_taken(id)? {
                return Err(Error::Validation(format!(
                    "job id '{id}' is used twice in this batch; give each job its own id, or leave the id out to have one generated"
                )));
            }
        }
        if let Some(f) = &job.file {
            // Stored absolute, so a rerun from another folder finds it.
            if let Some(abs) = self.file_checks.absolute(f) {
                job.file = Some(abs);
            }
        }
        let d = &self.params.default_params;
        let temperature_from_job = job.temperature.is_some();
        if job.model.is_none() {
            job.model = d.model.clone();
        }
        if job.temperature.is_none() {
            job.temperature = d.temperature;
        }
        if job.max_tokens.is_none() {
            job.max_tokens = Some(d.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS));
        }
        if job.response_schema.is_none() {
            if let Some(schema) = &d.response_schema {
                if !self.default_schema_checked {
                    schema.check().map_err(|e| {
                        Error::job_field(
                            job.label(),
                            "response_schema",
                            format!("(from default_params) {e}"),
                        )
                    })?;
                    self.default_schema_checked = true;
                }
                job.response_schema = Some(schema.clone());
            }
        }
        if !job.enable_citations && job.file.is_some() {
            job.enable_citations = d.enable_citations.unwrap_or(false);
        }
        let id = job.label().to_string();
        let model_name = job.model.clone().ok_or_else(|| {
            Error::job_field(
                &id,
                "model",
                "no model given; set it on the job or in default_params",
            )
        })?;
        let model = self
            .catalog
            .lookup(&model_name)
            .map_err(|e| Error::ModelNotSupported(format!("job '{id}': {e}")))?;
        if !model.capabilities.temperature && job.temperature.is_some() {
            if temperature_from_job {
                return Err(Error::job_field(
                    &id,
                    "temperature",
                    format!(
                        "model '{}' takes only its default temperature; remove temperature from this job",
                        model.name
                    ),
                ));
            }
            job.temperature = None;
        }
        validate_with(&job, &model, &mut self.file_checks)?;
        Ok(job)
    }
}

/// Checks a merged job against what its model can do, and its request
/// against what the provider accepts (request size, pages, images). When the
/// request has several problems, the error lists them all.
pub fn validate_against_model(job: &Job, model: &ModelInfo) -> Result<()> {
    validate_with(job, model, &mut Default::default())
}

/// [`validate_against_model`] keeping what it learns about files in `files`.
pub(crate) fn validate_with(
    job: &Job,
    model: &ModelInfo,
    files: &mut crate::preflight::FileChecks,
) -> Result<()> {
    let id = job.label();
    if let Some(t) = job.temperature {
        let top = model.capabilities.temperature_max;
        if !(0.0..=top).contains(&t) {
            return Err(Error::job_field(
                id,
                "temperature",
                format!("{t} is outside {}'s range; use 0 to {top}", model.name),
            ));
        }
    }
    let max = job.max_tokens_or_default();
    if max == 0 {
        return Err(Error::job_field(id, "max_tokens", "must be at least 1"));
    }
    if max > model.max_output_tokens {
        return Err(Error::job_field(
            id,
            "max_tokens",
            format!(
                "{max} is above {}'s limit of {}; lower it",
                model.name, model.max_output_tokens
            ),
        ));
    }
    if job.enable_citations && model.provider == ProviderKind::Gemini {
        return Err(crate::providers::gemini::citations_refused(id, &model.name));
    }
    if job.enable_citations && !model.capabilities.citations {
        return Err(Error::ModelNotSupported(format!(
            "job '{id}': field 'enable_citations': model '{}' ({}) does not support citations; use an Anthropic Claude model or turn citations off",
            model.name, model.provider
        )));
    }
    if let Some(e) = crate::preflight::combine(files.check_job(job, model)) {
        return Err(e);
    }
    if model.provider == ProviderKind::Anthropic {
        if let Some(msgs) = &job.messages {
            crate::providers::anthropic::request::check_alternation(id, msgs)?;
        }
    }
    Ok(())
}
