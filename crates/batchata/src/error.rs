//! The one error type of the library.
//!
//! Every variant carries a message written for the person who has to fix the
//! problem: it names the job or field at fault and says what to do. The kinds
//! follow the Python library's exceptions so users moving over find the same
//! vocabulary, plus HTTP and I/O errors that carry their context.

use std::path::PathBuf;
use std::sync::Arc;

pub use crate::preflight::{list_problems, MAX_LISTED};

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in batchata.
///
/// `Clone`, so every waiter of a run gets the error that ended it, whole;
/// new kinds may come (`#[non_exhaustive]`): match the ones you act on and
/// keep a catch-all arm.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A job, a parameter or an input file is not acceptable.
    #[error("{0}")]
    Validation(String),
    /// No provider serves the requested model.
    #[error("{0}")]
    ProviderNotFound(String),
    /// The model exists but cannot do what the job asks (files, citations, limits).
    #[error("{0}")]
    ModelNotSupported(String),
    /// A provider refused to create a batch.
    #[error("{0}")]
    BatchSubmission(String),
    /// A provider refused a whole batch for what some of its requests hold
    /// (a 400, 413 or 422 answer to the create: a document it cannot read,
    /// content it refuses). The run splits such a batch to isolate them.
    #[error("{0}")]
    BatchRejected(String),
    /// The run's state file could not be read, written or trusted.
    #[error("{0}")]
    State(String),
    /// The run stopped before every job ended, for a cause on this side or
    /// a passing one (a result that could not be recorded, results that
    /// could not be downloaded, a batch that could not be looked up).
    /// Nothing paid for is lost: a rerun with the same state file collects
    /// it, and no job was marked failed for it.
    #[error("{0}")]
    Incomplete(String),
    /// A provider reply or a user file could not be parsed.
    #[error("{0}")]
    Parse(String),
    /// A provider refused the API key (401) or its permissions (403): the
    /// run stopped without failing any job.
    #[error("{0}")]
    Auth(String),
    /// A create call failed in a way that leaves open whether the provider
    /// acted on it (a reply lost after the request was sent, a timeout, a
    /// 5xx): the batch must be looked up before it is created again.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// Another run holds the results folder or the state file.
    #[error("{0}")]
    InUse(String),
    /// An HTTP call failed; the message never contains an API key.
    #[error("{message}")]
    Http {
        /// HTTP status, when the server answered.
        status: Option<u16>,
        /// What happened and what to do, with any secret redacted.
        message: String,
        /// Whether trying again later may succeed.
        retryable: bool,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error (shared, so the error stays `Clone`).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A fault of batchata itself or of its runtime (a task that ended
    /// without reporting, a runtime that would not start): report it.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Wraps an I/O error with the operation and path it concerns.
    pub fn io(action: &str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            context: format!("could not {action} {}", path.into().display()),
            source: Arc::new(source),
        }
    }

    /// Builds a validation error for one job's field.
    pub fn job_field(job_id: &str, field: &str, problem: impl std::fmt::Display) -> Self {
        Error::Validation(format!("job '{job_id}': field '{field}': {problem}"))
    }

    /// True for a provider's 401 or 403: the key or its permissions.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Error::Auth(_)
                | Error::Http {
                    status: Some(401 | 403),
                    ..
                }
        )
    }

    /// True when the provider says the resource (a batch) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::Http {
                status: Some(404),
                ..
            }
        )
    }

    /// True for errors that may go away on their own (rate limits, outages).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Http {
                retryable: true,
                ..
            }
        )
    }
}
