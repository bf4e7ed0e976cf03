//! # batchata
//!
//! Run large numbers of LLM requests through the providers' asynchronous
//! batch APIs (Anthropic Message Batches, OpenAI Batch) at half the price of
//! the live APIs, with a cost limit that is never overspent, one result file
//! per job, and crash-safe state so a rerun resumes without paying twice.

#![warn(missing_docs)]

// The public API: the builder and its jobs, the run and its results, the
// errors, the model catalog, the provider clients (for talking to a batch
// directly, as `batchata status` and `batchata cancel` do), and two opt-in
// modules: the live display and the test documents.
pub mod batch;
pub mod catalog;
pub mod error;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod job;
#[cfg(feature = "progress")]
pub mod progress;
pub mod providers;
pub mod result;
pub mod run;

// The machinery under them, crate-private.
mod citations;
mod cost;
mod files;
mod fingerprint;
mod fsutil;
mod preflight;
mod spool;
mod state;
mod structured;
mod tokens;

#[cfg(test)]
mod tests;

pub use batch::{Batch, BatchParams, DefaultParams, RawFiles, Verbosity};
pub use catalog::{Catalog, ModelInfo, ProviderKind, Usage};
pub use error::{Error, Result};
pub use job::{Job, Message, ResponseSchema, Role};
pub use providers::{ProviderConfig, ProviderSettings};
pub use result::{Citation, Confidence, JobOutcome, JobResult};
pub use run::{BatchProgress, BatchRun, DryRunReport, RunResults, RunStatus, StopReason};

/// Not part of the API: the internals `benches/hot_paths.rs` measures
/// (request bodies, result lines, the state journal), which have no public
/// shape, and the state journal one integration test reads. Hidden from the
/// docs and free to change in any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::state::StateStore;

    /// The Anthropic request builder and result-line parser.
    pub mod anthropic {
        pub use crate::providers::anthropic::request::build_body;
        pub use crate::providers::anthropic::response::{line_result, ResultLine};
    }

    /// The OpenAI request-line builder and output-line parser.
    pub mod openai {
        pub use crate::providers::openai::request::LineBuilder;
        pub use crate::providers::openai::response::{line_result, OutputLine};
    }
}
