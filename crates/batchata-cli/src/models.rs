//! `batchata models`: the catalog's models, prices and capabilities.

use batchata::Catalog;

use crate::report::clip;
use crate::{classify, Failure};

/// How wide `batchata models` is without --wide.
pub(crate) const MODELS_WIDTH: usize = 100;

/// `batchata models [--json] [--wide]`.
pub(crate) fn models(json: bool, wide: bool) -> Result<u8, Failure> {
    let catalog = Catalog::load_default().map_err(classify)?;
    if json {
        let models: Vec<_> = catalog.models().collect();
        let text = serde_json::to_string_pretty(&serde_json::json!({ "models": models }))
            .map_err(Failure::other)?;
        println!("{text}");
        return Ok(0);
    }
    // Narrow columns and short capability names keep a row within 100
    // columns; --wide spells them out and adds the notes.
    let (name_w, prov_w, price_w, ctx_w, out_w) = if wide {
        (28, 10, 9, 9, 8)
    } else {
        (24, 9, 7, 8, 7)
    };
    println!(
        "{:<name_w$} {:<prov_w$} {:>price_w$} {:>price_w$} {:>ctx_w$} {:>out_w$}  capabilities",
        "model", "provider", "in $/M", "out $/M", "context", "max out"
    );
    for m in catalog.models() {
        let c = &m.capabilities;
        let mut caps: Vec<&str> = Vec::new();
        if c.files {
            caps.push("files");
        }
        if c.images {
            caps.push("images");
        }
        if c.citations {
            caps.push("citations");
        }
        if c.structured_output {
            caps.push(if wide { "json-schema" } else { "schema" });
        }
        if !c.temperature {
            caps.push(if wide { "no-temperature" } else { "no-temp" });
        }
        let row = format!(
            "{:<name_w$} {:<prov_w$} {:>price_w$.3} {:>price_w$.3} {:>ctx_w$} {:>out_w$}  {}",
            m.name,
            m.provider.as_str(),
            m.batch_input_price(),
            m.batch_output_price(),
            m.max_input_tokens,
            m.max_output_tokens,
            caps.join(if wide { ", " } else { " " }),
        );
        if wide {
            let note = m
                .note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            println!("{row}{note}");
        } else {
            println!("{}", clip(&row, MODELS_WIDTH));
        }
    }
    println!(
        "\nPrices: USD per million tokens at batch rates (list price less the batch discount)."
    );
    if !wide {
        println!("schema: JSON-schema answers; no-temp: takes no temperature. --wide adds each model's notes.");
    }
    Ok(0)
}
