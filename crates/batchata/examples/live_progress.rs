//! The CLI's live display in your own program (cargo feature `progress`):
//! 60 jobs over both providers, on the built-in emulator with batches that
//! take a few seconds, so there is something to watch.
//!
//! `cargo run -p batchata --features progress --example live_progress`
//!
//! On a terminal it redraws in place: the job bar with rate and ETA, a line
//! per active batch, cost against the limit; piped (`| cat`) it prints plain
//! lines instead. Either way it ends with the summary table.

use std::time::Duration;

use batchata::ProviderSettings;
use batchata::{Batch, DefaultParams, Job};

#[tokio::main]
async fn main() -> batchata::Result<()> {
    let emulator = batchata_emulator::Emulator::start(
        batchata_emulator::EmulatorConfig::new().processing_delay(Duration::from_secs(4)),
    )
    .await
    .map_err(|e| batchata::Error::io("start the emulator on", "127.0.0.1", e))?;
    let poll = Duration::from_millis(200);
    let out = std::env::temp_dir().join("batchata-live-progress");

    let mut batch = Batch::new(&out)
        .state_file(out.join("state.jsonl"))
        .fresh_state() // start over each time
        .default_params(DefaultParams::new().max_tokens(200))
        .items_per_batch(6)
        .max_parallel_batches(6)
        .cost_limit_usd(1.0)
        .providers(
            ProviderSettings::default()
                .anthropic(|c| {
                    c.api_key("emulator")
                        .base_url(emulator.anthropic_base_url())
                        .poll_interval(poll)
                })
                .openai(|c| {
                    c.api_key("emulator")
                        .base_url(emulator.openai_base_url())
                        .poll_interval(poll)
                }),
        );
    for i in 0..60 {
        let model = if i % 3 == 2 {
            "gpt-4o-mini"
        } else {
            "claude-haiku-4-5"
        };
        batch.add_job(
            Job::prompt(format!("Give one fact about the number {i}."))
                .id(format!("fact-{i:02}"))
                .model(model),
        )?;
    }

    // The display, then the summary on stderr when the run ends.
    let run = batch.live_progress().run().await?;
    let results = run.results()?;
    println!(
        "\n{} answers, e.g. {}: {}",
        results.completed.len(),
        results.completed[0].job_id,
        results.completed[0].raw_response.as_deref().unwrap_or("")
    );
    Ok(())
}
