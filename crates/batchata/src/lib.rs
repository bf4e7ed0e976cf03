//! # batchata
//!
//! Run large numbers of LLM requests through the providers' asynchronous
//! batch APIs (Anthropic Message Batches, OpenAI Batch) at half the price of
//! the live APIs, with a cost limit that is never overspent, one result file
//! per job, and crash-safe state so a rerun resumes without paying twice.

#![warn(missing_docs)]

pub mod batch;
pub mod catalog;
pub mod citations;
pub mod cost;
pub mod error;
pub mod files;
pub mod fingerprint;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
mod fsutil;
pub mod job;
pub mod preflight;
#[cfg(feature = "progress")]
pub mod progress;
pub mod providers;
pub mod result;
pub mod run;
pub mod spool;
pub mod state;
pub mod structured;
pub mod tokens;

pub use batch::{Batch, BatchParams, DefaultParams, RawFiles, Verbosity};
pub use catalog::{Catalog, ModelInfo, ProviderKind, Usage};
pub use error::{Error, Result};
pub use job::{Job, Message, ResponseSchema, Role};
pub use providers::{ProviderConfig, ProviderSettings};
pub use result::{Citation, JobOutcome, JobResult};
pub use run::{BatchProgress, BatchRun, DryRunReport, RunResults, RunStatus, StopReason};
