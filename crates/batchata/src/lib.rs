//! # batchata
//!
//! Run large numbers of LLM requests through the providers' asynchronous
//! batch APIs (Anthropic Message Batches, OpenAI Batch, Gemini batch mode)
//! at half the price of the live APIs, with a cost limit that is never
//! overspent, one result file per job, and crash-safe state so a rerun
//! resumes without paying twice.
//!
//! ## Example
//!
//! With `batchata = "0.1"`, `serde = { version = "1", features = ["derive"] }`
//! and `schemars = "1"` in `Cargo.toml` (the same example as the README's,
//! which a test keeps identical to this one):
//!
//! ```rust,no_run
//! use batchata::{Batch, DefaultParams, Job};
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize, schemars::JsonSchema)]
//! struct Invoice {
//!     invoice_number: String,
//!     total: f64,
//! }
//!
//! fn main() -> batchata::Result<()> {
//!     let mut batch = Batch::new("results")
//!         .state_file("results/state.jsonl") // a rerun resumes
//!         .default_params(DefaultParams::new().model("claude-sonnet-4-5").max_tokens(500))
//!         .cost_limit_usd(5.0)
//!         .time_limit_hms(1, 0, 0)
//!         .items_per_batch(500);
//!     batch.add_job(Job::prompt("Name three rivers in Spain."))?;
//!     batch.add_job(
//!         Job::file("invoice.pdf", "Extract the invoice number and total.")
//!             .schema::<Invoice>() // typed structured output
//!             .citations(true),    // each field mapped to the page that backs it
//!     )?;
//!     println!("{}", batch.plan()?); // the plan and its cost; nothing is submitted
//!     let run = batch.run_blocking()?;
//!     for result in run.results()?.completed {
//!         if let Ok(invoice) = result.parsed::<Invoice>() {
//!             println!("{} totals {}", invoice.invoice_number, invoice.total);
//!             for (field, cites) in result.citation_mappings.iter().flatten() {
//!                 println!("  {field}: page {:?}, {:?}", cites[0].page, cites[0].confidence);
//!             }
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! [`Batch::start`] returns a [`BatchRun`] handle at once instead; inside an
//! async program use [`Batch::run`]`.await` ([`Batch::run_blocking`] starts
//! a runtime of its own and refuses to run inside one).
//!
//! ## What the library leaves to the application
//!
//! It prints nothing, never exits the process, installs no `tracing`
//! subscriber and no signal handler unless asked
//! ([`Batch::handle_interrupts`]): the `batchata` CLI and the Python package
//! are the applications that do. [`Batch::plan`] returns the dry run's
//! report for the application to print.
//!
//! ## Cargo features
//!
//! - `tokenizers` (default): exact `o200k_base` / `cl100k_base` token counts
//!   for OpenAI models in cost estimates; without it every model gets the
//!   conservative estimate.
//! - `progress`: `batchata::progress`, the live terminal display the CLI
//!   shows (`Batch::live_progress`).
//! - `fixtures`: `batchata::fixtures`, small PDF and DOCX files made in
//!   memory, for tests.

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
mod digest;
mod files;
mod fingerprint;
mod fsutil;
mod json_out;
mod layout;
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
pub use layout::{ResultsFormat, RESULTS_JSONL};
pub use providers::{ProviderConfig, ProviderSettings};
pub use result::{Citation, Confidence, JobOutcome, JobResult};
pub use run::{
    BatchPhase, BatchProgress, BatchRun, DryRunReport, RunResults, RunStatus, StopReason,
};

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
