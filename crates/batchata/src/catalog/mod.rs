//! The model catalog: which models exist, who serves them, what they cost and
//! what they can do.
//!
//! Prices and limits change more often than code, so they are data: a JSON
//! file embedded in the library (`models.json`), which users can extend or
//! override with their own file (the `BATCHATA_MODELS_FILE` environment
//! variable, or [`crate::Batch::models_file`]) without waiting for a release.
//! An entry in the user's file replaces the built-in entry of the same name.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Environment variable naming a JSON file of extra or overriding models.
pub const MODELS_FILE_ENV: &str = "BATCHATA_MODELS_FILE";

const BUILTIN: &str = include_str!("models.json");

/// The provider family a model belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Anthropic Message Batches.
    Anthropic,
    /// OpenAI Files + Batch.
    #[serde(rename = "openai")]
    OpenAi,
    /// Google Gemini API batch mode.
    Gemini,
}

impl ProviderKind {
    /// The provider's lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Gemini => "gemini",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which request field carries the output-token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensParam {
    /// `max_tokens` (Anthropic, older OpenAI chat models).
    MaxTokens,
    /// `max_completion_tokens` (OpenAI reasoning models).
    MaxCompletionTokens,
    /// `maxOutputTokens` (Gemini).
    MaxOutputTokens,
}

/// What a model can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Takes documents.
    pub files: bool,
    /// Takes images.
    pub images: bool,
    /// Can cite its documents.
    pub citations: bool,
    /// Has native JSON-schema output.
    pub structured_output: bool,
    /// Accepted file extensions (lowercase, no dot).
    pub file_types: Vec<String>,
    /// Takes a `temperature` other than the default.
    pub temperature: bool,
    /// Highest temperature accepted.
    pub temperature_max: f64,
    /// Which field carries the output-token limit.
    pub max_tokens_param: MaxTokensParam,
    /// `o200k_base` / `cl100k_base` for exact counts, `estimate` otherwise.
    pub tokenizer: String,
}

/// One model of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The API id.
    pub name: String,
    /// Who serves it.
    pub provider: ProviderKind,
    /// Other ids that mean the same model (dated snapshots).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Context window.
    pub max_input_tokens: u64,
    /// Largest `max_tokens`.
    pub max_output_tokens: u32,
    /// List price per million input tokens, USD.
    pub input_price: f64,
    /// List price per million output tokens, USD.
    pub output_price: f64,
    /// List price per million cache-read tokens, where priced.
    #[serde(default)]
    pub cache_read_price: Option<f64>,
    /// List price per million cache-write tokens, where priced.
    #[serde(default)]
    pub cache_write_price: Option<f64>,
    /// Fraction taken off list prices for batch traffic (0.5 = half price).
    pub batch_discount: f64,
    /// What the model can do.
    pub capabilities: Capabilities,
    /// Free text, e.g. "retired".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Tokens billed for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens (including reasoning tokens).
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
}

impl Usage {
    /// All input tokens, cached or not.
    pub fn total_input(&self) -> u64 {
        self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
    }
}

impl ModelInfo {
    fn batch_factor(&self) -> f64 {
        1.0 - self.batch_discount
    }

    /// Batch price per million input tokens.
    pub fn batch_input_price(&self) -> f64 {
        self.input_price * self.batch_factor()
    }

    /// Batch price per million output tokens.
    pub fn batch_output_price(&self) -> f64 {
        self.output_price * self.batch_factor()
    }

    /// Cost in USD of `usage` at batch prices. Cache reads and writes are
    /// priced at their own rates with the batch discount applied; where the
    /// catalog has no cache price, the input price is used.
    pub fn batch_cost(&self, usage: &Usage) -> f64 {
        let f = self.batch_factor() / 1_000_000.0;
        let read = self.cache_read_price.unwrap_or(self.input_price);
        let write = self.cache_write_price.unwrap_or(self.input_price);
        f * (usage.input_tokens as f64 * self.input_price
            + usage.output_tokens as f64 * self.output_price
            + usage.cache_read_tokens as f64 * read
            + usage.cache_write_tokens as f64 * write)
    }

    /// Whether the model takes files with this extension (lowercase, no dot):
    /// the extension must be listed, and the model must take images (for
    /// image types) or documents (for everything else).
    pub fn accepts_file_type(&self, ext: &str) -> bool {
        let kind_ok = if crate::files::is_image_extension(ext) {
            self.capabilities.images
        } else {
            self.capabilities.files
        };
        kind_ok && self.capabilities.file_types.iter().any(|t| t == ext)
    }
}

#[derive(Deserialize)]
struct CatalogFile {
    models: Vec<ModelInfo>,
}

/// A set of models, looked up by name or alias.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<Arc<ModelInfo>>,
    /// Looked up several times per job: hashed with ahash.
    by_name: ahash::AHashMap<String, usize>,
}

impl Catalog {
    /// The catalog built into this release.
    pub fn builtin() -> &'static Catalog {
        static BUILTIN_CATALOG: OnceLock<Catalog> = OnceLock::new();
        BUILTIN_CATALOG.get_or_init(|| {
            // The embedded file is checked by the test suite; an error here is a build defect.
            Catalog::from_json(BUILTIN)
                .unwrap_or_else(|e| panic!("built-in models.json is invalid: {e}"))
        })
    }

    /// The built-in catalog plus the file named by `BATCHATA_MODELS_FILE`, if set.
    pub fn load_default() -> Result<Catalog> {
        let mut catalog = Catalog::builtin().clone();
        if let Some(path) = std::env::var_os(MODELS_FILE_ENV) {
            catalog.merge_file(Path::new(&path))?;
        }
        Ok(catalog)
    }

    /// Parses a catalog from JSON text of the form `{"models":[...]}`.
    pub fn from_json(text: &str) -> Result<Catalog> {
        let file: CatalogFile =
            serde_json::from_str(text).map_err(|e| Error::Parse(format!("model catalog: {e}")))?;
        let mut catalog = Catalog {
            models: Vec::new(),
            by_name: ahash::AHashMap::new(),
        };
        for m in file.models {
            catalog.insert(m);
        }
        Ok(catalog)
    }

    /// Adds or replaces the models of a user file.
    pub fn merge_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("read the models file", path, e))?;
        let extra = Catalog::from_json(&text).map_err(|e| {
            Error::Parse(format!(
                "{}: {e}; the file must look like {{\"models\":[{{\"name\":...,\"provider\":...}}]}} with the fields of `batchata models --json`",
                path.display()
            ))
        })?;
        for m in extra.models {
            self.insert((*m).clone());
        }
        Ok(())
    }

    /// Adds a model, replacing any model of the same name or alias.
    pub fn insert(&mut self, model: ModelInfo) {
        let idx = match self.by_name.get(&model.name) {
            Some(&i) => {
                self.models[i] = Arc::new(model.clone());
                i
            }
            None => {
                self.models.push(Arc::new(model.clone()));
                self.models.len() - 1
            }
        };
        self.by_name.insert(model.name.clone(), idx);
        for a in &model.aliases {
            self.by_name.insert(a.clone(), idx);
        }
    }

    /// Every model, in catalog order.
    pub fn models(&self) -> impl Iterator<Item = &ModelInfo> {
        self.models.iter().map(|m| m.as_ref())
    }

    /// Looks a model up by name or alias.
    pub fn get(&self, name: &str) -> Option<Arc<ModelInfo>> {
        self.by_name.get(name).map(|&i| self.models[i].clone())
    }

    /// Looks a model up, or explains which names come close.
    pub fn lookup(&self, name: &str) -> Result<Arc<ModelInfo>> {
        self.get(name).ok_or_else(|| {
            let close = self.closest(name, 3);
            let hint = if close.is_empty() {
                "run `batchata models` to list the known models, or add it with a models file (BATCHATA_MODELS_FILE)".to_string()
            } else {
                format!(
                    "did you mean {}? (`batchata models` lists them all; unknown models can be added with BATCHATA_MODELS_FILE)",
                    close.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ")
                )
            };
            Error::ModelNotSupported(format!("unknown model '{name}': {hint}"))
        })
    }

    /// The `n` known names closest to `name`.
    pub fn closest(&self, name: &str, n: usize) -> Vec<String> {
        let lower = name.to_ascii_lowercase();
        let mut scored: Vec<(f64, &str)> = self
            .by_name
            .keys()
            .map(|k| {
                let mut s = strsim::jaro_winkler(&lower, k);
                if k.contains(lower.as_str()) || lower.contains(k.as_str()) {
                    s += 0.2;
                }
                (s, k.as_str())
            })
            .filter(|(s, _)| *s > 0.7)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        let mut out: Vec<String> = Vec::new();
        for (_, k) in scored {
            // Prefer the canonical name over its aliases.
            let canonical = self
                .get(k)
                .map(|m| m.name.clone())
                .unwrap_or_else(|| k.to_string());
            if !out.contains(&canonical) {
                out.push(canonical);
            }
            if out.len() == n {
                break;
            }
        }
        out
    }
}
