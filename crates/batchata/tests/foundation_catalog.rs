//! Foundation tests of the model catalog: the embedded data checked against
//! the provider reference's price tables, the older ids the Python library
//! knows, lookup by alias, close-match suggestions, batch pricing, and
//! adding or overriding models from a user's file through the builder.
//! (The `BATCHATA_MODELS_FILE` variable has its own test binary, so no
//! other test here can see it set.)

use std::collections::HashSet;

use batchata::catalog::{Catalog, MaxTokensParam, ProviderKind, Usage};
use batchata::{Batch, DefaultParams, Error, Job};
use serde_json::json;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn the_builtin_catalog_is_consistent() {
    let c = Catalog::builtin();
    let mut names = HashSet::new();
    let mut count = 0;
    for m in c.models() {
        count += 1;
        for n in std::iter::once(&m.name).chain(&m.aliases) {
            assert!(names.insert(n.clone()), "{n} appears twice");
            assert_eq!(c.get(n).unwrap().name, m.name, "{n}");
        }
        assert!(m.input_price > 0.0 && m.output_price > 0.0, "{}", m.name);
        assert!(m.output_price >= m.input_price, "{}", m.name);
        assert!(
            close(m.batch_discount, 0.5),
            "{}: all three discount batches 50%",
            m.name
        );
        assert!(
            m.max_output_tokens > 0 && (m.max_output_tokens as u64) < m.max_input_tokens,
            "{}",
            m.name
        );
        if let Some(r) = m.cache_read_price {
            assert!(r < m.input_price, "{}: cache reads are cheaper", m.name);
        }
        if let Some(w) = m.cache_write_price {
            assert!(w >= m.input_price, "{}: cache writes cost more", m.name);
        }
        // Every file type a model lists is one the library can send: a
        // unit test in files.rs (the file kinds are the crate's own).
        let caps = &m.capabilities;
        assert_eq!(
            caps.citations,
            m.provider == ProviderKind::Anthropic
                && m.name != "claude-3-haiku-20240307"
                && !m.name.starts_with("claude-3-opus")
                && !m.name.starts_with("claude-3-sonnet"),
            "{}: citations are an Anthropic feature",
            m.name
        );
        match m.provider {
            ProviderKind::Anthropic => {
                assert_eq!(
                    caps.max_tokens_param,
                    MaxTokensParam::MaxTokens,
                    "{}",
                    m.name
                );
                assert!(close(caps.temperature_max, 1.0), "{}", m.name);
                assert_eq!(caps.tokenizer, "estimate", "{}", m.name);
            }
            ProviderKind::OpenAi => {
                assert_eq!(caps.tokenizer, "o200k_base", "{}", m.name);
                assert!(close(caps.temperature_max, 2.0), "{}", m.name);
                // Reasoning models take max_completion_tokens and only their default temperature.
                let reasoning = m.name.starts_with("gpt-5") || m.name.starts_with('o');
                assert_eq!(caps.temperature, !reasoning, "{}", m.name);
                let want = if reasoning {
                    MaxTokensParam::MaxCompletionTokens
                } else {
                    MaxTokensParam::MaxTokens
                };
                assert_eq!(caps.max_tokens_param, want, "{}", m.name);
            }
            ProviderKind::Gemini => {
                assert_eq!(
                    caps.max_tokens_param,
                    MaxTokensParam::MaxOutputTokens,
                    "{}",
                    m.name
                );
            }
        }
    }
    assert!(count >= 40, "{count} models");
}

/// Prices copied by hand from /work/shared/reference/provider-apis.md §7
/// (USD per million tokens): (model, input, output, cache read, 5-minute cache write).
type PriceRow = (&'static str, f64, f64, Option<f64>, Option<f64>);

const REFERENCE_PRICES: &[PriceRow] = &[
    // §7.1 Anthropic
    ("claude-opus-5", 5.0, 25.0, Some(0.5), Some(6.25)),
    ("claude-opus-4-8", 5.0, 25.0, Some(0.5), Some(6.25)),
    ("claude-opus-4-7", 5.0, 25.0, Some(0.5), Some(6.25)),
    ("claude-opus-4-6", 5.0, 25.0, Some(0.5), Some(6.25)),
    ("claude-opus-4-5", 5.0, 25.0, Some(0.5), Some(6.25)),
    ("claude-sonnet-4-6", 3.0, 15.0, Some(0.3), Some(3.75)),
    ("claude-sonnet-4-5", 3.0, 15.0, Some(0.3), Some(3.75)),
    ("claude-sonnet-5", 2.0, 10.0, Some(0.2), Some(2.5)),
    ("claude-haiku-4-5", 1.0, 5.0, Some(0.1), Some(1.25)),
    ("claude-opus-4-1", 15.0, 75.0, Some(1.5), Some(18.75)),
    ("claude-opus-4-0", 15.0, 75.0, Some(1.5), Some(18.75)),
    ("claude-fable-5", 10.0, 50.0, Some(1.0), Some(12.5)),
    ("claude-mythos-5", 10.0, 50.0, Some(1.0), Some(12.5)),
    // §7.2 OpenAI
    ("gpt-5.5", 5.0, 30.0, Some(0.5), None),
    ("gpt-5.4", 2.5, 15.0, Some(0.25), None),
    ("gpt-5.4-mini", 0.75, 4.5, Some(0.075), None),
    ("gpt-5.4-nano", 0.2, 1.25, Some(0.02), None),
    ("gpt-5", 1.25, 10.0, Some(0.125), None),
    ("gpt-5-mini", 0.25, 2.0, Some(0.025), None),
    ("gpt-4.1", 2.0, 8.0, Some(0.5), None),
    ("gpt-4o-mini", 0.15, 0.6, Some(0.075), None),
    // §7.3 Gemini (≤200k-token prompt tier where tiered)
    ("gemini-2.5-pro", 1.25, 10.0, None, None),
    ("gemini-2.5-flash", 0.3, 2.5, None, None),
    ("gemini-2.5-flash-lite", 0.1, 0.4, None, None),
    ("gemini-3.1-pro-preview", 2.0, 12.0, None, None),
    ("gemini-3.5-flash", 1.5, 9.0, None, None),
    ("gemini-3.8-flash", 0.75, 3.75, None, None),
];

#[test]
fn prices_match_the_provider_reference() {
    let c = Catalog::builtin();
    for &(name, input, output, read, write) in REFERENCE_PRICES {
        let m = c.lookup(name).unwrap();
        assert!(
            close(m.input_price, input),
            "{name} input {}",
            m.input_price
        );
        assert!(
            close(m.output_price, output),
            "{name} output {}",
            m.output_price
        );
        match (m.cache_read_price, read) {
            (Some(a), Some(b)) => assert!(close(a, b), "{name} cache read {a}"),
            (a, b) => assert_eq!(a, b, "{name} cache read"),
        }
        match (m.cache_write_price, write) {
            (Some(a), Some(b)) => assert!(close(a, b), "{name} cache write {a}"),
            (a, b) => assert_eq!(a, b, "{name} cache write"),
        }
        // Batch prices are half the list prices (§7: all three discount 50%).
        assert!(close(m.batch_input_price(), input / 2.0), "{name}");
        assert!(close(m.batch_output_price(), output / 2.0), "{name}");
    }
}

#[test]
fn current_models_of_each_provider_are_known() {
    let c = Catalog::builtin();
    // Model ids from the SDKs' model lists as quoted in the reference.
    for (name, provider) in [
        ("claude-opus-5", ProviderKind::Anthropic),
        ("claude-sonnet-5", ProviderKind::Anthropic),
        ("claude-opus-4-8", ProviderKind::Anthropic),
        ("claude-haiku-4-5-20251001", ProviderKind::Anthropic),
        ("claude-opus-4-5-20251101", ProviderKind::Anthropic),
        ("claude-sonnet-4-5-20250929", ProviderKind::Anthropic),
        ("gpt-5.5", ProviderKind::OpenAi),
        ("gpt-5.4-nano", ProviderKind::OpenAi),
        ("gpt-5.2", ProviderKind::OpenAi),
        ("gpt-5.1", ProviderKind::OpenAi),
        ("gpt-5-mini", ProviderKind::OpenAi),
        ("gemini-3.8-flash", ProviderKind::Gemini),
        ("gemini-2.5-flash-lite", ProviderKind::Gemini),
    ] {
        assert_eq!(c.lookup(name).unwrap().provider, provider, "{name}");
    }
}

#[test]
fn every_model_id_the_python_library_knows_resolves() {
    // batchata 0.4.7: providers/{anthropic,openai,gemini}/models.py.
    let c = Catalog::builtin();
    let python = [
        ("claude-opus-4-20250514", ProviderKind::Anthropic, 200_000),
        ("claude-sonnet-4-20250514", ProviderKind::Anthropic, 200_000),
        (
            "claude-3-7-sonnet-20250219",
            ProviderKind::Anthropic,
            200_000,
        ),
        ("claude-3-7-sonnet-latest", ProviderKind::Anthropic, 200_000),
        (
            "claude-3-5-sonnet-20241022",
            ProviderKind::Anthropic,
            200_000,
        ),
        ("claude-3-5-sonnet-latest", ProviderKind::Anthropic, 200_000),
        (
            "claude-3-5-sonnet-20240620",
            ProviderKind::Anthropic,
            200_000,
        ),
        (
            "claude-3-5-haiku-20241022",
            ProviderKind::Anthropic,
            200_000,
        ),
        ("claude-3-5-haiku-latest", ProviderKind::Anthropic, 200_000),
        ("claude-3-haiku-20240307", ProviderKind::Anthropic, 200_000),
        ("claude-3-opus-20240229", ProviderKind::Anthropic, 200_000),
        ("claude-3-sonnet-20240229", ProviderKind::Anthropic, 200_000),
        ("gpt-4.1-2025-04-14", ProviderKind::OpenAi, 1_047_576),
        ("o4-mini-2025-04-16", ProviderKind::OpenAi, 200_000),
        ("o3-2025-04-16", ProviderKind::OpenAi, 200_000),
        ("gpt-4.1-nano-2025-04-14", ProviderKind::OpenAi, 1_047_576),
        ("gpt-4o-mini-2024-07-18", ProviderKind::OpenAi, 128_000),
        ("gemini-2.5-pro", ProviderKind::Gemini, 1_048_576),
        ("gemini-2.5-flash", ProviderKind::Gemini, 1_048_576),
        ("gemini-2.5-flash-lite", ProviderKind::Gemini, 1_048_576),
        ("gemini-2.0-flash", ProviderKind::Gemini, 1_048_576),
        ("gemini-2.0-flash-lite", ProviderKind::Gemini, 1_048_576),
    ];
    for (name, provider, context) in python {
        let m = c
            .lookup(name)
            .unwrap_or_else(|e| panic!("{name} is missing: {e}"));
        assert_eq!(m.provider, provider, "{name}");
        assert_eq!(m.max_input_tokens, context, "{name}");
    }
    // Older jobs can be added with their dated ids.
    let mut b = Batch::new("unused");
    b.add_job(Job::prompt("Hi").model("claude-3-5-sonnet-20241022"))
        .unwrap();
    b.add_job(Job::prompt("Hi").model("o3-2025-04-16")).unwrap();
}

#[test]
fn aliases_resolve_to_the_canonical_model() {
    let c = Catalog::builtin();
    let m = c.lookup("claude-haiku-4-5-20251001").unwrap();
    assert_eq!(m.name, "claude-haiku-4-5");
    assert!(std::sync::Arc::ptr_eq(
        &m,
        &c.get("claude-haiku-4-5").unwrap()
    ));
    assert!(
        c.get("Claude-Haiku-4-5").is_none(),
        "ids are exact, as the APIs take them"
    );
}

#[test]
fn unknown_models_get_the_closest_known_names() {
    let c = Catalog::builtin();
    for (typo, want) in [
        ("claude-haiku-4.5", "claude-haiku-4-5"),
        ("claude-sonet-4-5", "claude-sonnet-4-5"),
        ("gpt5-mini", "gpt-5-mini"),
        ("gpt-4o-mni", "gpt-4o-mini"),
        ("gemini-2.5-flsh", "gemini-2.5-flash"),
        ("CLAUDE-OPUS-5", "claude-opus-5"),
    ] {
        let e = c.lookup(typo).unwrap_err();
        assert!(matches!(e, Error::ModelNotSupported(_)), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("unknown model '{typo}'")), "{msg}");
        assert!(msg.contains(&format!("'{want}'")), "{typo}: {msg}");
        let near = c.closest(typo, 3);
        assert!(!near.is_empty() && near.len() <= 3, "{near:?}");
        assert!(near.contains(&want.to_string()), "{typo}: {near:?}");
    }
    // Suggestions are canonical names, never an alias of one already listed.
    let near = c.closest("claude-haiku-4-5-2025", 3);
    assert_eq!(near[0], "claude-haiku-4-5", "{near:?}");
    assert_eq!(near.iter().collect::<HashSet<_>>().len(), near.len());
    // Nothing close: no guesses, but the way to add a model.
    let msg = c.lookup("zzzz").unwrap_err().to_string();
    assert!(!msg.contains("did you mean"), "{msg}");
    assert!(msg.contains("BATCHATA_MODELS_FILE"), "{msg}");
}

#[test]
fn batch_cost_prices_every_kind_of_token_at_half() {
    let c = Catalog::builtin();
    let haiku = c.lookup("claude-haiku-4-5").unwrap();
    // 1M uncached input at $1, 1M output at $5, 1M cache reads at $0.10,
    // 1M cache writes at $1.25 — halved for batch: 0.5 + 2.5 + 0.05 + 0.625.
    let usage = Usage {
        input_tokens: 1_000_000,
        output_tokens: 1_000_000,
        cache_read_tokens: 1_000_000,
        cache_write_tokens: 1_000_000,
    };
    assert!(
        close(haiku.batch_cost(&usage), 3.675),
        "{}",
        haiku.batch_cost(&usage)
    );
    assert_eq!(usage.total_input(), 3_000_000);
    // 1,234 input and 567 output tokens of gpt-4o-mini: 1234 × 0.075/1M + 567 × 0.30/1M.
    let mini = c.lookup("gpt-4o-mini").unwrap();
    let u = Usage {
        input_tokens: 1_234,
        output_tokens: 567,
        ..Default::default()
    };
    assert!(
        close(mini.batch_cost(&u), 0.00009255 + 0.0001701),
        "{}",
        mini.batch_cost(&u)
    );
    // No cache prices listed: cached tokens cost the input price.
    let flash = c.lookup("gemini-2.5-flash").unwrap();
    let u = Usage {
        cache_read_tokens: 2_000_000,
        ..Default::default()
    };
    assert!(
        close(flash.batch_cost(&u), 0.30),
        "{}",
        flash.batch_cost(&u)
    );
    assert_eq!(haiku.batch_cost(&Usage::default()), 0.0);
}

#[test]
fn file_types_follow_the_model_capabilities() {
    let c = Catalog::builtin();
    let sonnet = c.lookup("claude-sonnet-4-5").unwrap();
    for ext in ["pdf", "txt", "docx", "png", "jpeg", "webp"] {
        assert!(sonnet.accepts_file_type(ext), "{ext}");
    }
    assert!(!sonnet.accepts_file_type("exe"));
    assert!(
        !sonnet.accepts_file_type("PDF"),
        "extensions are lowercased by the caller"
    );
    let haiku3 = c.lookup("claude-3-haiku-20240307").unwrap();
    assert!(!haiku3.accepts_file_type("pdf"));
    assert!(haiku3.accepts_file_type("png"));

    // An image-only model (files off, images on) takes images but no documents.
    let mut m = (*sonnet).clone();
    m.capabilities.files = false;
    assert!(m.accepts_file_type("png"));
    assert!(!m.accepts_file_type("pdf"));
    m.capabilities.images = false;
    assert!(!m.accepts_file_type("png"));
}

fn model_json(
    name: &str,
    provider: &str,
    max_output: u32,
    input: f64,
    output: f64,
) -> serde_json::Value {
    json!({
        "name": name,
        "provider": provider,
        "aliases": [format!("{name}-latest")],
        "max_input_tokens": 100000,
        "max_output_tokens": max_output,
        "input_price": input,
        "output_price": output,
        "batch_discount": 0.5,
        "capabilities": {
            "files": true, "images": false, "citations": false, "structured_output": true,
            "file_types": ["txt"], "temperature": true, "temperature_max": 1.0,
            "max_tokens_param": "max_tokens", "tokenizer": "estimate"
        }
    })
}

#[test]
fn models_file_adds_and_overrides_models_through_the_builder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.json");
    let mut haiku =
        serde_json::to_value(&*Catalog::builtin().lookup("claude-haiku-4-5").unwrap()).unwrap();
    haiku["max_output_tokens"] = json!(100);
    haiku["input_price"] = json!(2.0);
    let file = json!({ "models": [
        model_json("acme-large", "anthropic", 2000, 4.0, 8.0),
        haiku,
    ]});
    std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();

    let mut b = Batch::new("unused")
        .models_file(&path)
        .default_params(DefaultParams::new().model("acme-large"));
    // The new model and its alias.
    b.add_job(Job::prompt("Hi").max_tokens(2000)).unwrap();
    b.add_job(Job::prompt("Hi").model("acme-large-latest"))
        .unwrap();
    let e = b
        .add_job(Job::prompt("Hi").max_tokens(2001))
        .unwrap_err()
        .to_string();
    assert!(e.contains("2000"), "the file's limit applies: {e}");
    assert!(close(
        b.catalog()
            .lookup("acme-large")
            .unwrap()
            .batch_input_price(),
        2.0
    ));
    // The override replaces the built-in entry, aliases included.
    let e = b
        .add_job(Job::prompt("Hi").model("claude-haiku-4-5").max_tokens(101))
        .unwrap_err()
        .to_string();
    assert!(e.contains("100"), "{e}");
    let via_alias = b.catalog().lookup("claude-haiku-4-5-20251001").unwrap();
    assert_eq!(via_alias.max_output_tokens, 100);
    assert!(close(via_alias.input_price, 2.0));
    // Other models are untouched, and the built-in catalog itself is unchanged.
    assert_eq!(
        b.catalog()
            .lookup("claude-sonnet-4-5")
            .unwrap()
            .max_output_tokens,
        64_000
    );
    assert_eq!(
        Catalog::builtin()
            .lookup("claude-haiku-4-5")
            .unwrap()
            .max_output_tokens,
        64_000
    );
    assert!(Catalog::builtin().get("acme-large").is_none());
    assert!(Batch::new("unused").catalog().get("acme-large").is_none());
}

#[test]
fn a_bad_models_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    // The setter keeps the chain going; the problem is reported by check
    // (and so by plan, run and start), and jobs are refused meanwhile.
    let mut b = Batch::new("unused").models_file(&missing);
    let e = b.check().unwrap_err();
    assert!(matches!(e, Error::Validation(_)), "{e:?}");
    assert!(e.to_string().contains("missing.json"), "{e}");
    let e = b
        .add_job(batchata::Job::prompt("Hi").model("claude-haiku-4-5"))
        .unwrap_err();
    assert!(e.to_string().contains("missing.json"), "{e}");

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, r#"{"models": [{"name": "x"}]}"#).unwrap();
    let e = Batch::new("unused")
        .models_file(&broken)
        .check()
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("broken.json") && msg.contains("missing field"),
        "{msg}"
    );

    let e = Catalog::from_json("not json").unwrap_err();
    assert!(matches!(e, Error::Parse(_)), "{e:?}");
    let e = Catalog::from_json(
        &json!({"models": [model_json("m", "mistral", 10, 1.0, 1.0)]}).to_string(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("mistral"),
        "unknown provider named: {e}"
    );
}
