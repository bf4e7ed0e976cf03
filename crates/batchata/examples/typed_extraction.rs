//! Typed structured output with citations, end to end on the built-in
//! emulator: `cargo run -p batchata --example typed_extraction`.
//!
//! With real keys, drop the emulator and the `providers(..)` line: the keys
//! and base URLs then come from ANTHROPIC_API_KEY / OPENAI_API_KEY.

use batchata::ProviderSettings;
use batchata::{Batch, DefaultParams, Job};
use serde::Deserialize;

/// What we want out of each invoice.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Invoice {
    invoice_number: String,
    total: f64,
}

#[tokio::main]
async fn main() -> batchata::Result<()> {
    let emulator = batchata_emulator::Emulator::start(Default::default())
        .await
        .map_err(|e| batchata::Error::io("start the emulator on", "127.0.0.1", e))?;
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/files");
    let out = std::env::temp_dir().join("batchata-typed-extraction");

    let mut batch = Batch::new(&out)
        .default_params(
            DefaultParams::new()
                .model("claude-sonnet-4-5")
                .max_tokens(500),
        )
        .providers(ProviderSettings::default().anthropic(|c| {
            c.api_key("emulator")
                .base_url(emulator.anthropic_base_url())
        }))
        .cost_limit_usd(1.0);
    batch.add_job(
        Job::file(
            here.join("invoice.pdf"),
            "Extract the invoice number and total.",
        )
        .id("invoice")
        .schema::<Invoice>()
        .citations(true),
    )?;

    let run = batch.run().await?;
    for result in run.results()?.completed {
        let invoice: Invoice = result.parsed()?;
        println!(
            "{}: invoice {} totals {:.2}",
            result.job_id, invoice.invoice_number, invoice.total
        );
        for (field, cites) in result.citation_mappings.iter().flatten() {
            for c in cites {
                println!(
                    "  {field} ← page {:?} ({}): {:?}",
                    c.page,
                    c.confidence.map_or("?", |c| c.as_str()),
                    c.text.trim()
                );
            }
        }
    }
    println!("results in {}", out.display());
    Ok(())
}
