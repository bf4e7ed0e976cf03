//! Runs an emulator in its own process until killed (or Ctrl+C), for SDK
//! shape checks and manual poking:
//!
//! ```text
//! cargo run -p batchata-emulator --example serve -- 8765 [--delay-ms N] [--error-rate F] [--api-key K]
//! ```

use std::time::Duration;

use batchata_emulator::{serve, EmulatorConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut port: u16 = 8765;
    let mut config = EmulatorConfig::default();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--delay-ms" => config.processing_delay = Duration::from_millis(value()?.parse()?),
            "--error-rate" => config.error_rate = value()?.parse()?,
            "--api-key" => config.api_key = Some(value()?),
            "--seed" => config.seed = value()?.parse()?,
            other => {
                port = other
                    .parse()
                    .map_err(|_| format!("unknown argument '{other}'"))?
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        println!("batchata emulator on http://127.0.0.1:{port} (Ctrl+C to stop)");
        serve(config, port).await
    })?;
    Ok(())
}
