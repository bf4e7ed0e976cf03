//! Tests that reach below the public API: token estimates, JSON extraction
//! and the schema dialects, citation-to-field mapping, and the preflight
//! checks of files and request bodies. They were integration tests; the
//! modules they test are the crate's own, so they live inside it.

mod citation_mapping;
#[cfg(feature = "tokenizers")]
mod foundation_tokens;
mod preflight;
mod structured_output;
