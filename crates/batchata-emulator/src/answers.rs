//! The emulated model: a deterministic, useful reply to a request.
//!
//! Both providers' request bodies are first reduced to a provider-neutral
//! [`Conversation`] (by `anthropic.rs` / `openai.rs`); [`answer`] turns it into
//! a [`Reply`] that the provider module renders in its own wire shape. The
//! reply is a fixed function of the request content:
//!
//! * plain requests get `Echo: <first 80 chars of the last user text> #<8 hex>`,
//!   the hash covering model, system prompt, user texts and documents;
//! * structured-output requests (a JSON schema in the request, a forced tool,
//!   or a schema embedded in the system prompt) get JSON that validates
//!   against the schema, with values read from the input (see [`crate::schema`]);
//! * documents with citations enabled get text blocks with citations whose
//!   `cited_text` is really in the document at the stated place;
//! * usage is `ceil(bytes / 4)` of the request body for input and of the
//!   reply for output, capped by `max_tokens` (the reply is then truncated
//!   and the stop reason says so).
//!
//! # The content tag
//!
//! The `#<8 hex>` ending a plain answer is [`answer_tag`] of the request: a
//! hash of, in order, the model, the system prompt (Anthropic `system` text
//! blocks joined by `\n`; OpenAI `system` and `developer` messages joined
//! by `\n`), the text of each user message (its text blocks joined by
//! `\n`) and the body of each document (plain text as sent; PDF pages as
//! extracted, joined by `\u{1}`; custom-content blocks joined by `\u{1}`).
//! Assistant turns, document titles, images, tools, the output schema and
//! sampling parameters such as `max_tokens` or `temperature` are not in it.
//! The hash does not depend on the emulator's seed, the batch or the
//! `custom_id`, so the same request gets the same tag in any batch on
//! either provider.
//!
//! A test can use it in two ways:
//!
//! * compare: two plain answers with the same tag came from requests with
//!   the same content (up to a 2^-32 chance); an answer whose tag differs
//!   from the one a request would get was not produced from that request —
//!   e.g. a result served from a stale batch after the job was edited;
//! * recompute: for a text-only request, `batchata_emulator::answer_tag(model,
//!   system, &[user texts], &[])` gives the expected 8 hex digits, and the
//!   answer text ends with `#` followed by them (unless `max_tokens` cut it).
//!
//! Only plain-text answers (and OpenAI `json_object` answers, as
//! `{"answer": "Echo: ... #<tag>"}`) always carry the tag; structured
//! answers carry the echo only in string fields the input could not fill.

use serde_json::Value;

use crate::ids::hash_parts;
use crate::schema;
use crate::text::{char_index, sentence_around, sentences, Corpus, Found, Origin};

/// What the request asked the reply to look like.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReplyFormat {
    /// Free text.
    Text,
    /// Any JSON object (OpenAI `json_object`).
    JsonObject,
    /// JSON validating against this schema, as text.
    JsonSchema(Value),
    /// A forced tool call whose input validates against this schema.
    Tool {
        /// The tool's name.
        name: String,
        /// The tool's `input_schema`.
        schema: Value,
    },
}

/// The body of a document the request provides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DocBody {
    /// Plain text (Anthropic `text` source).
    Text(String),
    /// PDF: text per page.
    Pdf(Vec<String>),
    /// Custom content: text per block.
    Blocks(Vec<String>),
}

/// One document of the request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Document {
    pub(crate) title: Option<String>,
    pub(crate) body: DocBody,
    pub(crate) citations: bool,
}

/// A provider-neutral view of one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Conversation {
    pub(crate) model: String,
    pub(crate) system: String,
    /// Text of each user message (blocks joined by newlines), in order.
    pub(crate) user_texts: Vec<String>,
    pub(crate) documents: Vec<Document>,
    pub(crate) format: Option<ReplyFormat>,
    pub(crate) max_tokens: Option<u64>,
    /// Size of the request body in bytes (for input tokens).
    pub(crate) input_bytes: usize,
}

/// Where a citation points.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Location {
    /// Characters `start..end` (0-based, end exclusive) of a plain-text document.
    Char { start: usize, end: usize },
    /// Pages `start..end` (1-based, end exclusive) of a PDF.
    Page { start: usize, end: usize },
    /// Blocks `start..end` (0-based, end exclusive) of a content document.
    Block { start: usize, end: usize },
}

/// A citation attached to a text block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Citation {
    pub(crate) cited_text: String,
    pub(crate) document_index: usize,
    pub(crate) document_title: Option<String>,
    pub(crate) location: Location,
}

/// One block of the reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Block {
    /// Text, possibly with citations.
    Text {
        text: String,
        citations: Vec<Citation>,
    },
    /// A tool call.
    ToolUse { name: String, input: Value },
}

/// Why the reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Natural end.
    EndTurn,
    /// Cut at `max_tokens`.
    MaxTokens,
    /// Ended with a tool call.
    ToolUse,
}

/// The emulated model's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub(crate) blocks: Vec<Block>,
    pub(crate) stop: Stop,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
}

impl Reply {
    /// All text blocks concatenated (what OpenAI puts in `message.content`).
    pub(crate) fn joined_text(&self) -> String {
        let mut out = String::new();
        for b in &self.blocks {
            if let Block::Text { text, .. } = b {
                out.push_str(text);
            }
        }
        out
    }
}

/// `ceil(bytes / 4)`, at least 1.
pub(crate) fn tokens_for(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4).max(1)
}

/// Looks for a JSON Schema object embedded in free text (a system prompt).
pub(crate) fn embedded_schema(text: &str) -> Option<Value> {
    let mut from = 0;
    while let Some(rel) = text[from..].find('{') {
        let at = from + rel;
        let mut stream = serde_json::Deserializer::from_str(&text[at..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v @ Value::Object(_))) => {
                let looks_like_schema = v.get("properties").is_some()
                    || v.get("$schema").is_some()
                    || v.get("$defs").is_some()
                    || v.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| matches!(t, "object" | "array"));
                if looks_like_schema {
                    return Some(v);
                }
                from = at + stream.byte_offset().max(1);
            }
            _ => from = at + 1,
        }
    }
    None
}

impl Conversation {
    fn last_user_text(&self) -> &str {
        self.user_texts.last().map(String::as_str).unwrap_or("")
    }

    fn corpus(&self) -> Corpus {
        let mut c = Corpus::default();
        for (index, doc) in self.documents.iter().enumerate() {
            match &doc.body {
                DocBody::Text(t) => c.push(t.clone(), Origin::Document { index, part: 0 }),
                DocBody::Pdf(pages) => {
                    for (part, p) in pages.iter().enumerate() {
                        c.push(p.clone(), Origin::Document { index, part });
                    }
                }
                DocBody::Blocks(blocks) => {
                    for (part, b) in blocks.iter().enumerate() {
                        c.push(b.clone(), Origin::Document { index, part });
                    }
                }
            }
        }
        for t in &self.user_texts {
            c.push(t.clone(), Origin::Prompt);
        }
        c
    }

    /// The `Echo: ...` text.
    fn echo(&self) -> String {
        let users: Vec<&str> = self.user_texts.iter().map(String::as_str).collect();
        let doc_texts: Vec<String> = self
            .documents
            .iter()
            .map(|d| match &d.body {
                DocBody::Text(t) => t.clone(),
                DocBody::Pdf(p) | DocBody::Blocks(p) => p.join("\u{1}"),
            })
            .collect();
        let docs: Vec<&str> = doc_texts.iter().map(String::as_str).collect();
        let tag = answer_tag(&self.model, &self.system, &users, &docs);
        let snippet: String = self.last_user_text().trim().chars().take(80).collect();
        format!("Echo: {snippet} #{tag}")
    }
}

/// The content tag of a request: the 8 lowercase hex digits that end the
/// emulator's plain answer to it, after a `#` (`Echo: <question> #1a2b3c4d`).
///
/// `user_texts` holds the text of each user message in order (a message's
/// text blocks joined by `\n`), `documents` the body of each document in
/// order (see the `answers` module notes in the source for PDFs). The tag
/// is the top 32 bits of a 64-bit FNV-1a hash of eight zero bytes followed,
/// for each part, by its length as a little-endian `u64` and its bytes,
/// finished with the splitmix64 mixer. It depends on nothing else: not on
/// the seed, the batch, the `custom_id` or the provider.
///
/// ```
/// use batchata_emulator::answer_tag;
///
/// let tag = answer_tag("claude-haiku-4-5", "Be brief.", &["What is 2+2?"], &[]);
/// assert_eq!(tag.len(), 8);
/// let edited = answer_tag("claude-haiku-4-5", "Be brief.", &["What is 2+3?"], &[]);
/// assert_ne!(tag, edited);
/// ```
pub fn answer_tag(model: &str, system: &str, user_texts: &[&str], documents: &[&str]) -> String {
    let mut parts: Vec<&[u8]> = vec![model.as_bytes(), system.as_bytes()];
    parts.extend(user_texts.iter().map(|t| t.as_bytes()));
    parts.extend(documents.iter().map(|t| t.as_bytes()));
    format!("{:08x}", hash_parts(0, &parts) >> 32)
}

/// Produces the reply for a conversation.
pub(crate) fn answer(conv: &Conversation) -> Reply {
    let echo = conv.echo();
    let format = match &conv.format {
        None | Some(ReplyFormat::Text) | Some(ReplyFormat::JsonObject) => {
            embedded_schema(&conv.system)
                .map(ReplyFormat::JsonSchema)
                .or_else(|| conv.format.clone())
                .unwrap_or(ReplyFormat::Text)
        }
        Some(f) => f.clone(),
    };
    let mut blocks = Vec::new();
    let mut stop = Stop::EndTurn;
    match &format {
        ReplyFormat::Text => {
            blocks.push(Block::Text {
                text: echo,
                citations: Vec::new(),
            });
            blocks.extend(best_chunk_citations(conv));
        }
        ReplyFormat::JsonObject => {
            let value = serde_json::json!({ "answer": echo });
            blocks.push(Block::Text {
                text: value.to_string(),
                citations: Vec::new(),
            });
        }
        ReplyFormat::JsonSchema(schema) => {
            let corpus = conv.corpus();
            let generated = schema::generate(schema, &corpus, &echo);
            blocks.push(Block::Text {
                text: generated.value.to_string(),
                citations: Vec::new(),
            });
            blocks.extend(field_citations(conv, &corpus, &generated.found));
        }
        ReplyFormat::Tool { name, schema } => {
            let corpus = conv.corpus();
            let generated = schema::generate(schema, &corpus, &echo);
            blocks.extend(field_citations(conv, &corpus, &generated.found));
            let input = match generated.value {
                v @ Value::Object(_) => v,
                other => serde_json::json!({ "value": other }),
            };
            blocks.push(Block::ToolUse {
                name: name.clone(),
                input,
            });
            stop = Stop::ToolUse;
        }
    }
    let mut blocks = separate_paragraphs(blocks);
    let mut output_bytes = blocks.iter().map(block_bytes).sum::<usize>();
    if let Some(max) = conv.max_tokens {
        if tokens_for(output_bytes) > max {
            let (kept, bytes) = truncate(blocks, (max as usize).saturating_mul(4));
            blocks = kept;
            output_bytes = bytes;
            stop = Stop::MaxTokens;
        }
    }
    let output_tokens = match conv.max_tokens {
        Some(max) => tokens_for(output_bytes).min(max.max(1)),
        None => tokens_for(output_bytes),
    };
    Reply {
        blocks,
        stop,
        input_tokens: tokens_for(conv.input_bytes),
        output_tokens,
    }
}

/// A real model writes its quotes into sentences: Anthropic returns the
/// connecting words as uncited text blocks between the cited ones ("According
/// to the report, " / "revenue grew" / "."), so the answer reads right when the
/// blocks are concatenated, as clients do. The emulated answer is an echo line
/// followed by quoted chunks; an uncited `"\n"` block between two text blocks
/// keeps it one paragraph per chunk instead of glued words, in the same shape.
fn separate_paragraphs(blocks: Vec<Block>) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::with_capacity(blocks.len() * 2);
    for b in blocks {
        let both_text = matches!(
            (out.last(), &b),
            (Some(Block::Text { .. }), Block::Text { .. })
        );
        if both_text {
            out.push(Block::Text {
                text: "\n".to_string(),
                citations: Vec::new(),
            });
        }
        out.push(b);
    }
    out
}

fn block_bytes(b: &Block) -> usize {
    match b {
        Block::Text { text, .. } => text.len(),
        Block::ToolUse { input, .. } => input.to_string().len(),
    }
}

/// Keeps blocks up to `budget` bytes, cutting the text block that crosses
/// the budget; a tool call that does not fit is dropped.
fn truncate(blocks: Vec<Block>, budget: usize) -> (Vec<Block>, usize) {
    let mut left = budget;
    let mut kept = Vec::new();
    for b in blocks {
        let size = block_bytes(&b);
        if size <= left {
            left -= size;
            kept.push(b);
            continue;
        }
        if let Block::Text { text, citations } = b {
            let mut cut = left;
            while cut > 0 && !text.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut > 0 {
                left -= cut;
                kept.push(Block::Text {
                    text: text[..cut].to_string(),
                    citations,
                });
            }
        }
        break;
    }
    (kept, budget - left)
}

/// A citation for `start..end` (bytes) of source `si`, if that source is a
/// document with citations enabled.
fn cite(
    conv: &Conversation,
    corpus: &Corpus,
    si: usize,
    start: usize,
    end: usize,
) -> Option<Citation> {
    let Origin::Document { index, part } = corpus.sources[si].origin else {
        return None;
    };
    let doc = conv.documents.get(index)?;
    if !doc.citations {
        return None;
    }
    let text = &corpus.sources[si].text;
    let (location, cited_text) = match &doc.body {
        DocBody::Text(_) => {
            let (s, e) = sentence_around(text, start, end);
            (
                Location::Char {
                    start: char_index(text, s),
                    end: char_index(text, e),
                },
                text[s..e].to_string(),
            )
        }
        DocBody::Pdf(_) => {
            let (s, e) = sentence_around(text, start, end);
            (
                Location::Page {
                    start: part + 1,
                    end: part + 2,
                },
                text[s..e].to_string(),
            )
        }
        DocBody::Blocks(_) => (
            Location::Block {
                start: part,
                end: part + 1,
            },
            text.clone(),
        ),
    };
    Some(Citation {
        cited_text,
        document_index: index,
        document_title: doc.title.clone(),
        location,
    })
}

/// One text block per found field value that lies in a citable document.
fn field_citations(conv: &Conversation, corpus: &Corpus, found: &[Found]) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    for f in found {
        let Some(c) = cite(conv, corpus, f.source, f.start, f.end) else {
            continue;
        };
        let text = format!("{}: {}", f.field, corpus.slice((f.source, f.start, f.end)));
        let block = Block::Text {
            text,
            citations: vec![c],
        };
        if !out.contains(&block) {
            out.push(block);
        }
    }
    out
}

/// For plain replies: per citable document, the sentence sharing most words
/// with the last user text (the first sentence on a tie).
fn best_chunk_citations(conv: &Conversation) -> Vec<Block> {
    if !conv.documents.iter().any(|d| d.citations) {
        return Vec::new();
    }
    let corpus = conv.corpus();
    let question: Vec<String> = conv
        .last_user_text()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 4)
        .map(str::to_lowercase)
        .collect();
    let mut out = Vec::new();
    for (index, doc) in conv.documents.iter().enumerate() {
        if !doc.citations {
            continue;
        }
        let mut best: Option<(usize, usize, usize, usize)> = None; // (score, source, start, end)
        for (si, src) in corpus.sources.iter().enumerate() {
            if !matches!(src.origin, Origin::Document { index: i, .. } if i == index) {
                continue;
            }
            let chunks = match doc.body {
                DocBody::Blocks(_) => vec![(0, src.text.len())],
                _ => sentences(&src.text),
            };
            for (s, e) in chunks {
                let chunk = &src.text[s..e];
                if chunk.trim().is_empty() {
                    continue;
                }
                let low = chunk.to_lowercase();
                let score = question.iter().filter(|w| low.contains(w.as_str())).count();
                if best.is_none_or(|b| score > b.0) {
                    best = Some((score, si, s, e));
                }
            }
        }
        if let Some((_, si, s, e)) = best {
            if let Some(c) = cite(conv, &corpus, si, s, e) {
                out.push(Block::Text {
                    text: c.cited_text.trim().to_string(),
                    citations: vec![c],
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(user: &str) -> Conversation {
        Conversation {
            model: "m".into(),
            user_texts: vec![user.into()],
            input_bytes: 100,
            ..Default::default()
        }
    }

    #[test]
    fn echo_is_deterministic() {
        let a = answer(&conv("hello there"));
        let b = answer(&conv("hello there"));
        assert_eq!(a, b);
        assert!(a.joined_text().starts_with("Echo: hello there #"));
        assert_eq!(a.input_tokens, 25);
        assert_ne!(answer(&conv("hello")).joined_text(), a.joined_text());
    }

    #[test]
    fn max_tokens_truncates() {
        let mut c = conv("a fairly long question that will not fit");
        c.max_tokens = Some(2);
        let r = answer(&c);
        assert_eq!(r.stop, Stop::MaxTokens);
        assert_eq!(r.joined_text(), "Echo: a ");
        assert!(r.output_tokens <= 2);
    }

    #[test]
    fn schema_in_system_prompt() {
        let mut c = conv("Invoice number: INV-9");
        c.system = r#"Answer as JSON matching {"type":"object","properties":{"invoice_number":{"type":"string"}},"required":["invoice_number"]}"#.into();
        let r = answer(&c);
        let v: Value = serde_json::from_str(&r.joined_text()).unwrap();
        assert_eq!(v, json!({"invoice_number": "INV-9"}));
    }

    #[test]
    fn citations_point_into_the_document() {
        let mut c = conv("What grew in the third quarter?");
        let doc = "Intro line. Revenue grew 12% in the third quarter. The end.";
        c.documents.push(Document {
            title: Some("Q3".into()),
            body: DocBody::Text(doc.into()),
            citations: true,
        });
        let r = answer(&c);
        // Echo, an uncited separator, then the quote: concatenated, the echo
        // and the quote stay on their own lines.
        let Block::Text { text, citations } = &r.blocks[1] else {
            panic!("expected the separator block")
        };
        assert_eq!((text.as_str(), citations.len()), ("\n", 0));
        let Block::Text { citations, .. } = &r.blocks[2] else {
            panic!("expected a cited text block")
        };
        let joined = r.joined_text();
        let (echo, quote) = joined.split_once('\n').expect("two lines");
        assert!(echo.starts_with("Echo: "), "{joined}");
        assert!(quote.contains("third quarter"), "{joined}");
        let cit = &citations[0];
        let Location::Char { start, end } = cit.location else {
            panic!("expected char location")
        };
        let chars: Vec<char> = doc.chars().collect();
        assert_eq!(chars[start..end].iter().collect::<String>(), cit.cited_text);
        assert!(cit.cited_text.contains("third quarter"));
    }
}
