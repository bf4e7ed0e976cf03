//! Foundation tests of token and cost estimates: exact `o200k_base` counts
//! for OpenAI models, the conservative estimate for the others, page counts
//! of PDFs written to disk, and worst-case batch cost estimates checked
//! against dollars computed by hand.
//!
//! The expected token ids and counts below come from OpenAI's own `tiktoken`
//! (Python, 0.14.0) run on the same `o200k_base.tiktoken` file that
//! `tiktoken-rs` bundles — an independent implementation of the tokenizer.

use std::path::{Path, PathBuf};

use crate::catalog::{Catalog, ModelInfo};
use crate::providers::estimate_jobs_cost;
use crate::tokens::{self, IMAGE_TOKENS, PDF_PAGE_TOKENS};
use crate::{Batch, DefaultParams, Job, Message, ResponseSchema};
use serde_json::json;

fn model(name: &str) -> std::sync::Arc<ModelInfo> {
    Catalog::builtin().lookup(name).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12_f64.max(1e-9 * b.abs())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// (text, o200k_base token ids) from the reference tokenizer.
const O200K: &[(&str, &[u32])] = &[
    ("hello world", &[24912, 2375]),
    ("Hello, world!", &[13225, 11, 2375, 0]),
    (
        "The quick brown fox jumps over the lazy dog.",
        &[976, 4853, 19705, 68347, 65613, 1072, 290, 29082, 6446, 13],
    ),
    (
        "Résumé: naïve café — 東京 🚀",
        &[198128, 25, 153475, 737, 30469, 2733, 185244, 169883, 222],
    ),
    (
        "  leading spaces\n\nand\ttabs",
        &[220, 8117, 18608, 279, 427, 6264, 6071],
    ),
    (
        "1234567890 3.14159",
        &[7633, 19354, 29338, 15, 220, 18, 13, 16926, 4621],
    ),
    (
        r#"{"invoice": 42, "total": 12.5}"#,
        &[
            10848, 48401, 1243, 220, 4689, 11, 392, 9577, 1243, 220, 899, 13, 20, 92,
        ],
    ),
    (
        "Summarise the French revolution in one line.",
        &[64614, 277, 1096, 290, 12911, 25284, 306, 1001, 2543, 13],
    ),
    (
        "antidisestablishmentarianism",
        &[493, 129901, 376, 160388, 21203, 2367],
    ),
    ("hello world\n", &[24912, 2375, 198]),
    ("\n\n\n", &[2499]),
    (" ", &[220]),
    ("", &[]),
];

#[test]
fn openai_counts_are_exact_o200k_base() {
    let bpe = tiktoken_rs::o200k_base_singleton();
    for &(text, ids) in O200K {
        let got: Vec<u32> = bpe.encode_ordinary(text).into_iter().collect();
        assert_eq!(got, ids, "{text:?}");
        assert_eq!(
            bpe.decode(got.clone()).unwrap(),
            text,
            "round trip of {text:?}"
        );
        for name in ["gpt-4o-mini", "gpt-5", "gpt-5.4-nano", "o3", "gpt-4.1"] {
            assert_eq!(
                tokens::count_text(&model(name), text),
                ids.len() as u64,
                "{name}: {text:?}"
            );
        }
    }
    // The vocabulary file itself: "hello" and " world" are single tokens with these ranks.
    assert_eq!(bpe.decode(vec![24912]).unwrap(), "hello");
    assert_eq!(bpe.decode(vec![2375]).unwrap(), " world");
    // Special-token text is counted as ordinary text, never as a control token.
    let n = tokens::count_text(&model("gpt-4o-mini"), "<|endoftext|>");
    assert!(n > 1, "{n}");
}

#[test]
fn round_trips_and_additivity_over_varied_text() {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let mini = model("gpt-4o-mini");
    let samples = [
        "Invoice INV-2024-001\nTotal: $1,234.50\n",
        "fn main() { println!(\"{}\", 1 + 2); }",
        "Ελληνικά, русский, العربية, हिन्दी, 日本語, 한국어",
        "a\u{0301} e\u{0308} zero\u{200b}width",
        "🚀🚀🚀 🧪 👩‍💻",
    ];
    for s in samples {
        let ids = bpe.encode_ordinary(s);
        assert_eq!(bpe.decode(ids.clone()).unwrap(), s);
        assert!(!ids.is_empty());
        // Text split where the tokenizer's pre-splitter splits (at a newline
        // followed by a letter) counts the same as the two halves.
        let doubled = format!("{s}\n{s}");
        let half = format!("{s}\n");
        assert_eq!(
            tokens::count_text(&mini, &doubled),
            tokens::count_text(&mini, &half) + tokens::count_text(&mini, s),
            "{s:?}"
        );
    }
    // Counts grow with the text.
    let sentence = "The quick brown fox jumps over the lazy dog. ";
    let mut last = 0;
    for n in 1..20 {
        let c = tokens::count_text(&mini, &sentence.repeat(n));
        assert!(c > last, "{n}: {c} <= {last}");
        last = c;
    }
}

#[test]
fn other_models_get_a_conservative_estimate() {
    // No offline tokenizer for Claude or Gemini: the larger of one token per
    // 3 bytes (rounded up) and the o200k_base count plus a third (rounded up).
    let expected = |text: &str, o200k: u64| {
        (text.len() as u64)
            .div_ceil(3)
            .max(o200k + o200k.div_ceil(3))
    };
    for name in ["claude-haiku-4-5", "claude-opus-5", "gemini-2.5-flash"] {
        let m = model(name);
        for &(text, ids) in O200K {
            let n = ids.len() as u64;
            let got = tokens::count_text(&m, text);
            assert_eq!(got, expected(text, n), "{name}: {text:?}");
            assert!(got >= n, "{name}: {text:?} below an exact modern tokenizer");
        }
    }
    // Prose: the byte rule decides ("hello world" is 11 bytes -> 4 > 2 + 1).
    assert_eq!(tokens::estimate_text("hello world"), 4);
    assert_eq!(tokens::estimate_text(""), 0);
    // Numbers: the tokenizer bound decides (18 bytes -> 6 < 9 + 3).
    assert_eq!(tokens::estimate_text("1234567890 3.14159"), 12);
    let claude = model("claude-haiku-4-5");
    let gpt = model("gpt-4o-mini");
    let prose = "Batch processing lets you send many requests at once and collect the answers later at half the price. ".repeat(50);
    assert_eq!(
        tokens::count_text(&claude, &prose),
        (prose.len() as u64).div_ceil(3)
    );
    assert!(tokens::count_text(&claude, &prose) > tokens::count_text(&gpt, &prose));
    let table = "id,amount,date\n".to_string() + &"10293,1234.50,2024-03-01\n".repeat(100);
    assert!(tokens::count_text(&claude, &table) > tokens::count_text(&gpt, &table));
}

/// A PDF written by hand with a nested page tree (2 pages under an inner
/// node, one under the root) and no page content: 3 pages, no text.
fn nested_pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R 6 0 R] /Count 3 >>",
        "<< /Type /Pages /Parent 2 0 R /Kids [4 0 R 5 0 R] /Count 2 >>",
        "<< /Type /Page /Parent 3 0 R /MediaBox [0 0 200 200] >>",
        "<< /Type /Page /Parent 3 0 R /MediaBox [0 0 200 200] >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[test]
fn pdf_pages_are_counted_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for n in [1usize, 2, 5, 12] {
        let texts: Vec<String> = (1..=n).map(|i| format!("This is page {i}")).collect();
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let path = write(
            dir.path(),
            &format!("p{n}.pdf"),
            &crate::fixtures::pdf(&refs).unwrap(),
        );
        let info = crate::files::pdf_info(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(info.pages, n);
        assert_eq!(info.page_text.len(), n);
        for (i, t) in info.page_text.iter().enumerate() {
            assert!(
                t.contains(&format!("page {}", i + 1)),
                "pages in order: {t:?}"
            );
        }
    }
    let nested = write(dir.path(), "nested.pdf", &nested_pdf());
    let info = crate::files::pdf_info(&std::fs::read(&nested).unwrap()).unwrap();
    assert_eq!(info.pages, 3);
    assert_eq!(info.text_chars(), 0);
    // No text: the page images alone.
    for name in ["gpt-4o-mini", "claude-haiku-4-5"] {
        assert_eq!(
            tokens::count_file(&model(name), &nested).unwrap(),
            3 * PDF_PAGE_TOKENS
        );
    }
}

#[test]
fn file_tokens_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let mini = model("gpt-4o-mini");
    let haiku = model("claude-haiku-4-5");
    // Each page's text ("hello world\n" = 3 tokens, "Hello, world!\n" = 4) plus a page image each.
    let pdf = write(
        dir.path(),
        "two.pdf",
        &crate::fixtures::pdf(&["hello world", "Hello, world!"]).unwrap(),
    );
    assert_eq!(
        tokens::count_file(&mini, &pdf).unwrap(),
        3 + 4 + 2 * PDF_PAGE_TOKENS
    );
    // Estimated: 12 bytes -> 4 (3 o200k -> 4); 14 bytes -> 5, but 4 o200k -> 6.
    assert_eq!(
        tokens::count_file(&haiku, &pdf).unwrap(),
        4 + 6 + 2 * PDF_PAGE_TOKENS
    );

    let txt = write(dir.path(), "a.txt", b"hello world\nSecond para");
    assert_eq!(tokens::count_file(&mini, &txt).unwrap(), 5);
    let docx = write(
        dir.path(),
        "a.docx",
        &crate::fixtures::docx(&["hello world", "Second para"]).unwrap(),
    );
    assert_eq!(
        tokens::count_file(&mini, &docx).unwrap(),
        5,
        "the extracted text is counted, not the zip"
    );
    let png = write(dir.path(), "a.png", b"\x89PNG\r\n\x1a\n");
    assert_eq!(tokens::count_file(&mini, &png).unwrap(), IMAGE_TOKENS);

    // Unreadable files: errors that name the file.
    let fake = write(dir.path(), "fake.pdf", b"this is not a pdf");
    let e = tokens::count_file(&mini, &fake).unwrap_err().to_string();
    assert!(e.contains("fake.pdf") && e.contains("PDF"), "{e}");
    let e = tokens::count_file(&mini, &dir.path().join("gone.txt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("gone.txt"), "{e}");
}

#[test]
fn job_input_estimates_add_prompt_messages_file_and_schema() {
    let mini = model("gpt-4o-mini");
    // Each message or prompt adds 4 tokens of role markers.
    let j = Job::prompt("hello world");
    assert_eq!(tokens::estimate_job_input(&mini, &j).unwrap(), 2 + 4);
    let j = Job::messages(vec![
        Message::system("Be brief."),
        Message::user("Hello, world!"),
    ]);
    assert_eq!(
        tokens::estimate_job_input(&mini, &j).unwrap(),
        (3 + 4) + (4 + 4)
    );
    let j = Job::prompt("hello world")
        .response_schema(ResponseSchema::from_value(json!({"type": "object"})).unwrap());
    // The schema travels as JSON text: {"type":"object"} is 5 tokens.
    assert_eq!(tokens::estimate_job_input(&mini, &j).unwrap(), 2 + 4 + 5);
}

fn merged(jobs: Vec<Job>) -> Vec<Job> {
    let mut b = Batch::new("unused").default_params(DefaultParams::new().model("gpt-4o-mini"));
    for j in jobs {
        b.add_job(j).unwrap();
    }
    b.jobs().to_vec()
}

#[test]
fn cost_estimate_is_input_plus_full_max_tokens_at_batch_prices() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = write(
        dir.path(),
        "two.pdf",
        &crate::fixtures::pdf(&["hello world", "Hello, world!"]).unwrap(),
    );
    let catalog = Catalog::builtin();

    // gpt-4o-mini at batch prices: $0.075 in, $0.30 out per million.
    // 6 input tokens, 1,000 output: 6 × 0.075e-6 + 1000 × 0.30e-6.
    let a = merged(vec![Job::prompt("hello world").max_tokens(1_000)]);
    let e = estimate_jobs_cost(catalog, &a).unwrap();
    assert_eq!(e.input_tokens, 6);
    assert_eq!(e.max_output_tokens, 1_000);
    assert!(close(e.worst_case_usd, 0.00000045 + 0.0003), "{e:?}");
    assert!(close(e.output_usd_at_max, 0.0003), "{e:?}");
    assert!(close(e.expected_usd(0.25), 0.00000045 + 0.000075), "{e:?}");
    assert!(close(e.expected_usd(1.0), e.worst_case_usd));

    // claude-haiku-4-5 at batch prices: $0.50 in, $2.50 out per million.
    // "hello world" estimates 4 tokens + 4 = 8; 500 output: 8 × 0.5e-6 + 500 × 2.5e-6.
    let b = merged(vec![Job::prompt("hello world")
        .model("claude-haiku-4-5")
        .max_tokens(500)]);
    let e = estimate_jobs_cost(catalog, &b).unwrap();
    assert_eq!(e.input_tokens, 8);
    assert!(close(e.worst_case_usd, 0.000004 + 0.00125), "{e:?}");

    // A two-page PDF with gpt-4o-mini: 3 + 4 text + 3,000 page tokens + the
    // prompt "Extract the total." (4 + 4) = 3,015 input; 200 output.
    let c = merged(vec![Job::file(&pdf, "Extract the total.").max_tokens(200)]);
    let e = estimate_jobs_cost(catalog, &c).unwrap();
    assert_eq!(e.input_tokens, 3_015);
    assert!(
        close(e.worst_case_usd, 3_015.0 * 0.075e-6 + 200.0 * 0.30e-6),
        "{e:?}"
    );

    // The same PDF with claude-haiku-4-5: (4 + 6) + 3,000 + (6 + 4) = 3,020 input; 300 output.
    let d = merged(vec![Job::file(&pdf, "Extract the total.")
        .model("claude-haiku-4-5")
        .max_tokens(300)]);
    let e = estimate_jobs_cost(catalog, &d).unwrap();
    assert_eq!(e.input_tokens, 3_020);
    assert!(close(e.worst_case_usd, 0.00151 + 0.00075), "{e:?}");

    // A reasoning model's price: gpt-5 at $0.625 in, $5.00 out; defaults max_tokens 1,024.
    let f = merged(vec![Job::prompt("hello world").model("gpt-5")]);
    let e = estimate_jobs_cost(catalog, &f).unwrap();
    assert_eq!(e.max_output_tokens, 1_024);
    assert!(
        close(e.worst_case_usd, 6.0 * 0.625e-6 + 1_024.0 * 5e-6),
        "{e:?}"
    );

    // Together: the sums.
    let all: Vec<Job> = [a, b, c, d, f].concat();
    let e = estimate_jobs_cost(catalog, &all).unwrap();
    assert_eq!(e.input_tokens, 6 + 8 + 3_015 + 3_020 + 6);
    assert_eq!(e.max_output_tokens, 1_000 + 500 + 200 + 300 + 1_024);
    let worst = (0.00000045 + 0.0003)
        + (0.000004 + 0.00125)
        + (3_015.0 * 0.075e-6 + 200.0 * 0.30e-6)
        + (0.00151 + 0.00075)
        + (6.0 * 0.625e-6 + 1_024.0 * 5e-6);
    assert!(
        close(e.worst_case_usd, worst),
        "{} vs {worst}",
        e.worst_case_usd
    );
    let out = 0.0003 + 0.00125 + 200.0 * 0.30e-6 + 0.00075 + 1_024.0 * 5e-6;
    assert!(close(e.output_usd_at_max, out), "{e:?}");
    assert!(close(e.expected_usd(0.0), worst - out));

    // No jobs, no cost.
    let e = estimate_jobs_cost(catalog, &[]).unwrap();
    assert_eq!((e.input_tokens, e.worst_case_usd), (0, 0.0));
}

#[test]
fn cost_estimate_errors_name_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = write(
        dir.path(),
        "later-gone.pdf",
        &crate::fixtures::pdf(&["x"]).unwrap(),
    );
    let jobs = merged(vec![Job::file(&pdf, "Read").id("vanish")]);
    std::fs::remove_file(&pdf).unwrap();
    let e = estimate_jobs_cost(Catalog::builtin(), &jobs)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'vanish'") && e.contains("later-gone.pdf"),
        "{e}"
    );

    let unknown = vec![Job::prompt("Hi").id("u1").model("no-such-model")];
    let e = estimate_jobs_cost(Catalog::builtin(), &unknown)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no-such-model"), "{e}");
}
