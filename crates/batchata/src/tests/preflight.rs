//! Preflight: what is checked before anything is sent — file types by
//! content, encodings, size and context limits, model ids carried verbatim,
//! OpenAI strict schemas, and every problem reported at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::files::{self, Content, FileKind};
use crate::ProviderSettings;
use crate::{Batch, DefaultParams, Job, ResponseSchema};
use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use serde_json::{json, Value};

const CLAUDE: &str = "claude-haiku-4-5";
const GPT: &str = "gpt-5-mini";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn batch(dir: &Path, model: &str) -> Batch {
    Batch::new(dir.join("results"))
        .default_params(DefaultParams::new().model(model).max_tokens(500))
        .handle_interrupts(false)
}

fn add_err(dir: &Path, model: &str, job: Job) -> String {
    batch(dir, model).add_job(job).unwrap_err().to_string()
}

/// A PNG whose header says `w` x `h`, followed by `extra` bytes of body.
fn png(w: u32, h: u32, extra: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    b.extend_from_slice(&w.to_be_bytes());
    b.extend_from_slice(&h.to_be_bytes());
    b.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    b.resize(b.len() + extra, 0);
    b
}

/// A baseline JPEG header: 32 x 16.
fn jpeg() -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    b.extend_from_slice(b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    b.extend_from_slice(&[
        0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x10, 0x00, 0x20, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11,
        0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9,
    ]);
    b
}

fn gif() -> Vec<u8> {
    let mut b = b"GIF89a".to_vec();
    b.extend_from_slice(&[4, 0, 2, 0, 0, 0, 0, 0x3B]);
    b
}

fn webp() -> Vec<u8> {
    let mut b = b"RIFF\x16\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00".to_vec();
    // Flags, reserved, then width-1 and height-1 as 24-bit little endian.
    b.extend_from_slice(&[0, 0, 0, 0, 9, 0, 0, 4, 0, 0]);
    b
}

fn zip_with(name: &str) -> Vec<u8> {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut out);
    z.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(b"<x/>").unwrap();
    z.finish().unwrap();
    out.into_inner()
}

// ---------------------------------------------------------------------------
// 1. File types by content
// ---------------------------------------------------------------------------

#[test]
fn every_supported_type_is_recognised_by_its_bytes() {
    let pdf = crate::fixtures::pdf(&["Hello"]).unwrap();
    let docx = crate::fixtures::docx(&["Hello"]).unwrap();
    let cases: Vec<(&str, Vec<u8>, FileKind)> = vec![
        ("pdf", pdf, FileKind::Pdf),
        ("png", png(1, 1, 0), FileKind::Image("image/png")),
        ("jpeg", jpeg(), FileKind::Image("image/jpeg")),
        ("gif", gif(), FileKind::Image("image/gif")),
        ("webp", webp(), FileKind::Image("image/webp")),
        ("docx", docx, FileKind::Docx),
        ("text", "Grüße, world".as_bytes().to_vec(), FileKind::Text),
    ];
    for (what, bytes, kind) in cases {
        assert_eq!(files::detect(&bytes), Content::Supported(kind), "{what}");
    }
    // Text that merely mentions a format is text (a loose signature match
    // would take these for a WebP image and a GIF).
    for t in [
        "Convert WEBP images to PNG",
        "GIFs are fun",
        "see %PDF-1.7 in the spec",
    ] {
        assert_eq!(
            files::detect(t.as_bytes()),
            Content::Supported(FileKind::Text),
            "{t}"
        );
    }
    // A ZIP that is not a Word document, and other formats, are named.
    match files::detect(&zip_with("data/a.xml")) {
        Content::Other(what) => assert!(what.contains("ZIP"), "{what}"),
        other => panic!("{other:?}"),
    }
    let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
    elf.resize(64, 0xAB);
    match files::detect(&elf) {
        Content::Other(what) => assert!(what.contains("elf"), "{what}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_file_whose_name_and_content_disagree_is_refused_naming_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "x.pdf",
            b"just some notes, not a PDF".to_vec(),
            "UTF-8 text",
        ),
        (
            "photo.png",
            b"a text file with a .png name".to_vec(),
            "UTF-8 text",
        ),
        ("photo2.png", jpeg(), "a JPEG image"),
        ("report.pdf", png(10, 10, 0), "a PNG image"),
        (
            "notes.txt",
            crate::fixtures::pdf(&["x"]).unwrap(),
            "a PDF document",
        ),
        ("memo.docx", zip_with("data/a.xml"), "ZIP"),
    ];
    for (name, bytes, really) in cases {
        let p = write(d, name, &bytes);
        for model in [CLAUDE, GPT] {
            let e = add_err(d, model, Job::file(&p, "Summarise.").id("j1"));
            assert!(
                e.contains("job 'j1'")
                    && e.contains("field 'file'")
                    && e.contains(name)
                    && e.contains(really),
                "{name} for {model}: {e}"
            );
        }
    }
}

#[test]
fn a_pdf_that_does_not_parse_is_refused_when_added() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "broken.pdf",
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ngarbage, no xref, no trailer\n",
    );
    for model in [CLAUDE, GPT] {
        let e = add_err(dir.path(), model, Job::file(&p, "Summarise.").id("b"));
        assert!(
            e.contains("broken.pdf") && e.contains("not a readable PDF"),
            "{model}: {e}"
        );
    }
    // A damaged image header likewise.
    let p = write(dir.path(), "cut.png", b"\x89PNG\r\n\x1a\n\x00\x00");
    let e = add_err(dir.path(), CLAUDE, Job::file(&p, "Describe.").id("c"));
    assert!(e.contains("cut.png") && e.contains("damaged"), "{e}");
}

/// The create body the Anthropic provider would send for `jobs`.
fn anthropic_body(jobs: &[Job]) -> Value {
    let catalog = crate::Catalog::builtin();
    let body =
        crate::providers::anthropic::request::build_body(jobs, |j| catalog.lookup(j.model_name()))
            .unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn the_media_type_sent_comes_from_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut b = batch(d, CLAUDE);
    for (name, bytes) in [("a.jpg", jpeg()), ("b.gif", gif()), ("c.webp", webp())] {
        let p = write(d, name, &bytes);
        b.add_job(Job::file(&p, "Describe.").id(name.replace('.', "_")))
            .unwrap();
    }
    let body = anthropic_body(&b.jobs());
    let types: Vec<&str> = body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["params"]["messages"][0]["content"][0]["source"]["media_type"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(types, ["image/jpeg", "image/gif", "image/webp"]);
    // Even handed straight to the request builder, a JPEG named .png is
    // never sent as image/png.
    let p = write(d, "photo.png", &jpeg());
    let job = Job::file(&p, "Describe.").id("photo").model(CLAUDE);
    let catalog = crate::Catalog::builtin();
    let e = crate::providers::anthropic::request::build_body(&[job], |j| {
        catalog.lookup(j.model_name())
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("photo.png") && e.contains("a JPEG image"), "{e}");
    let loaded = files::load(&write(d, "d.jpeg", &jpeg())).unwrap();
    assert_eq!(loaded.kind, FileKind::Image("image/jpeg"));
}

// ---------------------------------------------------------------------------
// 2. Encodings
// ---------------------------------------------------------------------------

#[test]
fn text_that_is_not_utf8_is_refused_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    // "Caf\xe9 au lait" in Latin-1: byte 3 is 0xE9.
    let p = write(dir.path(), "menu.txt", b"Caf\xe9 au lait");
    let e = files::read_text(&p).unwrap_err().to_string();
    assert!(
        e.contains("menu.txt") && e.contains("byte offset 3 (0xE9)"),
        "{e}"
    );
    let job = Job::file(&p, "Translate.").id("m").model(CLAUDE);
    let catalog = crate::Catalog::builtin();
    let e = crate::providers::anthropic::request::build_body(&[job], |j| {
        catalog.lookup(j.model_name())
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("menu.txt") && e.contains("not UTF-8"), "{e}");
}

#[test]
fn latin1_text_is_refused_with_the_offset_of_the_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    // "Caf\xe9 au lait" in Latin-1: byte 3 is 0xE9.
    let p = write(dir.path(), "menu.txt", b"Caf\xe9 au lait");
    for model in [CLAUDE, GPT] {
        let e = add_err(dir.path(), model, Job::file(&p, "Translate.").id("m"));
        assert!(
            e.contains("menu.txt") && e.contains("not UTF-8") && e.contains("byte offset 3 (0xE9)"),
            "{model}: {e}"
        );
    }
    // Never replaced on the way out either.
    let e = files::read_text(&p).unwrap_err().to_string();
    assert!(e.contains("byte offset 3"), "{e}");
    // UTF-16 is named as such.
    let p = write(dir.path(), "u16.txt", b"\xFF\xFEh\x00i\x00");
    let e = add_err(dir.path(), CLAUDE, Job::file(&p, "Read.").id("u"));
    assert!(e.contains("UTF-16") && e.contains("byte offset 0"), "{e}");
    let p = write(dir.path(), "u16le.txt", b"h\x00i\x00");
    let e = add_err(dir.path(), CLAUDE, Job::file(&p, "Read.").id("u"));
    assert!(e.contains("NUL") && e.contains("byte offset 1"), "{e}");
}

#[test]
fn utf8_text_with_a_byte_order_mark_is_sent_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bom.md", "\u{feff}# Grüße\nhello".as_bytes());
    let mut b = batch(dir.path(), CLAUDE);
    b.add_job(Job::file(&p, "Summarise.").id("bom")).unwrap();
    let body = anthropic_body(&b.jobs());
    let data = body["requests"][0]["params"]["messages"][0]["content"][0]["source"]["data"]
        .as_str()
        .unwrap();
    assert_eq!(data, "# Grüße\nhello");
    assert_eq!(files::read_text(&p).unwrap(), "# Grüße\nhello");
}

// ---------------------------------------------------------------------------
// 3. Size and context limits
// ---------------------------------------------------------------------------

#[test]
fn a_100_mb_text_file_is_refused_with_the_numbers_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let line = "The quick brown fox jumps over the lazy dog. ".repeat(20) + "\n";
    let mut text = String::with_capacity(100 << 20);
    while text.len() < 100_000_000 {
        text.push_str(&line);
    }
    let p = write(dir.path(), "huge.txt", text.as_bytes());
    drop(text);
    let started = std::time::Instant::now();
    let e = add_err(dir.path(), CLAUDE, Job::file(&p, "Summarise.").id("big"));
    assert!(
        e.contains("job 'big'")
            && e.contains("huge.txt")
            && e.contains("context window of 200,000 tokens")
            && e.contains("at least 33,3")
            && e.contains("split the file"),
        "{e}"
    );
    // The request size too, in the same report.
    assert!(
        e.contains("more than the 32 MB one Anthropic request may hold"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "refused without tokenizing 100 MB: {:?}",
        started.elapsed()
    );
}

#[cfg(feature = "tokenizers")]
#[test]
fn an_exact_count_is_used_where_a_tokenizer_exists() {
    let dir = tempfile::tempdir().unwrap();
    // ~150k o200k tokens: past gpt-4o's 128k window.
    let text = "word ".repeat(150_000);
    let p = write(dir.path(), "long.txt", text.as_bytes());
    let e = add_err(dir.path(), "gpt-4o", Job::file(&p, "Summarise.").id("l"));
    assert!(
        e.contains("counted with o200k_base")
            && e.contains("context window of 128,000 tokens")
            && e.contains("plus max_tokens 500"),
        "{e}"
    );
    // A window that holds it: accepted.
    batch(dir.path(), "gpt-4.1")
        .add_job(Job::file(&p, "Summarise.").id("l"))
        .unwrap();
    // max_tokens counts against the window.
    let p = write(dir.path(), "mid.txt", "word ".repeat(120_000).as_bytes());
    let e = add_err(
        dir.path(),
        "gpt-4o",
        Job::file(&p, "Summarise.").id("m").max_tokens(16_000),
    );
    assert!(e.contains("plus max_tokens 16,000"), "{e}");
    batch(dir.path(), "gpt-4o")
        .add_job(Job::file(&p, "Summarise.").id("m").max_tokens(100))
        .unwrap();
}

#[test]
fn anthropic_pdf_limits_pages_and_request_size() {
    let dir = tempfile::tempdir().unwrap();
    let pages: Vec<String> = (1..=101).map(|i| format!("Page {i}")).collect();
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    let p = write(
        dir.path(),
        "long.pdf",
        &crate::fixtures::pdf(&pages).unwrap(),
    );
    let e = add_err(dir.path(), CLAUDE, Job::file(&p, "Summarise.").id("p"));
    assert!(
        e.contains("long.pdf") && e.contains("101 pages") && e.contains("at most 100"),
        "{e}"
    );
    // OpenAI documents no page limit (and gpt-5-mini's window holds it).
    batch(dir.path(), GPT)
        .add_job(Job::file(&p, "Summarise.").id("p"))
        .unwrap();

    // 26 MB of PDF is about 35 MB base64-encoded: past Anthropic's 32 MB.
    let big = big_pdf(26 << 20);
    let p = write(dir.path(), "big.pdf", &big);
    let e = add_err(dir.path(), CLAUDE, Job::file(&p, "Summarise.").id("big"));
    assert!(
        e.contains("big.pdf")
            && e.contains("base64")
            && e.contains("more than the 32 MB one Anthropic request may hold"),
        "{e}"
    );
}

/// A one-page PDF carrying `n` bytes in a stream no page draws.
fn big_pdf(n: usize) -> Vec<u8> {
    use lopdf::{dictionary, Document, Object, Stream};
    let mut doc = Document::load_mem(&crate::fixtures::pdf(&["Cover"]).unwrap()).unwrap();
    let blob = doc.add_object(Stream::new(dictionary! {}, vec![b'x'; n]));
    let catalog = doc.catalog_mut().unwrap();
    catalog.set("Blob", Object::Reference(blob));
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

#[test]
fn anthropic_image_limits_size_and_dimensions_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "wide.png", &png(9000, 10, 0));
    let e = add_err(dir.path(), CLAUDE, Job::file(&p, "Describe.").id("w"));
    assert!(
        e.contains("9000 x 10 pixels") && e.contains("8000 x 8000"),
        "{e}"
    );
    // Too heavy and too wide: both problems in one report.
    let p = write(dir.path(), "heavy.png", &png(9000, 10, 4 << 20));
    let e = add_err(dir.path(), CLAUDE, Job::file(&p, "Describe.").id("h"));
    assert!(
        e.contains("images of at most 5 MB") && e.contains("9000 x 10"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 2, "{e}");
    // OpenAI documents neither limit here.
    batch(dir.path(), GPT)
        .add_job(Job::file(&p, "Describe.").id("h"))
        .unwrap();
}

// ---------------------------------------------------------------------------
// 4. Model ids verbatim
// ---------------------------------------------------------------------------

fn settings(h: &EmulatorHandle) -> ProviderSettings {
    ProviderSettings::default()
        .anthropic(|c| {
            c.api_key("sk-ant-test")
                .base_url(h.anthropic_base_url())
                .poll_interval(Duration::from_millis(30))
        })
        .openai(|c| {
            c.api_key("sk-test")
                .base_url(h.openai_base_url())
                .poll_interval(Duration::from_millis(30))
        })
        .gemini(|c| {
            c.api_key("AIza-test")
                .base_url(h.gemini_base_url())
                .poll_interval(Duration::from_millis(30))
        })
}

fn raw_requests(results: &Path) -> Vec<(String, String)> {
    let dir = results.join("raw_files").join("requests");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_carries_the_model_id_as_written() {
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let mut b = Batch::new(&results)
        .providers(settings(&h))
        .handle_interrupts(false)
        .default_params(DefaultParams::new().max_tokens(50));
    let models = [
        "claude-3-5-sonnet-20240620",
        "claude-sonnet-4-20250514",
        "claude-haiku-4-5",
        "gpt-5-2025-08-07",
        "gpt-5",
    ];
    for (i, m) in models.iter().enumerate() {
        b.add_job(Job::prompt("Say hi.").id(format!("j{i}")).model(*m))
            .unwrap();
    }
    let run = b.run().await.unwrap();
    assert_eq!(run.status().completed, models.len());

    let mut sent = Vec::new();
    for (name, body) in raw_requests(&results) {
        if name.starts_with("anthropic") {
            let v: Value = serde_json::from_str(&body).unwrap();
            for r in v["requests"].as_array().unwrap() {
                sent.push((
                    r["custom_id"].as_str().unwrap().to_string(),
                    r["params"]["model"].as_str().unwrap().to_string(),
                ));
            }
        } else {
            // One model per OpenAI batch: the alias and the name it stands
            // for are not mixed in one input file.
            let lines: Vec<Value> = body
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len(), 1, "{name}: {body}");
            for l in lines {
                sent.push((
                    l["custom_id"].as_str().unwrap().to_string(),
                    l["body"]["model"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    sent.sort();
    let want: Vec<(String, String)> = models
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("j{i}"), m.to_string()))
        .collect();
    assert_eq!(sent, want);
    h.shutdown().await;
}

// ---------------------------------------------------------------------------
// 5. OpenAI strict schemas
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_schema_root_is_wrapped_on_the_wire_and_unwrapped_in_the_answer() {
    // Providers want an object at the root: a list (or `{}`) goes out as
    // {"value": <schema>}, and parsed_response is the list again.
    let h = Emulator::start(EmulatorConfig::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = json!({"type": "array", "items": {"$ref": "#/$defs/river"}, "minItems": 1,
        "$defs": {"river": {"type": "string"}}});
    let list_schema = ResponseSchema::from_value(list.clone()).unwrap();
    let any = ResponseSchema::from_value(json!({})).unwrap();
    for model in [GPT, CLAUDE, "claude-3-5-haiku-20241022", "gemini-2.5-flash"] {
        let out = dir.path().join(model);
        let mut b = Batch::new(&out)
            .providers(settings(&h))
            .handle_interrupts(false)
            .default_params(DefaultParams::new().model(model).max_tokens(200));
        b.add_job(
            Job::prompt("List three rivers.")
                .id("list")
                .response_schema(list_schema.clone()),
        )
        .unwrap_or_else(|e| panic!("{model}: {e}"));
        b.add_job(
            Job::prompt("Anything at all.")
                .id("any")
                .response_schema(any.clone()),
        )
        .unwrap_or_else(|e| panic!("{model}: {e}"));
        let run = b.run().await.unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_eq!(run.status().completed, 2, "{model}: {:?}", run.status());
        let r: Value =
            serde_json::from_slice(&std::fs::read(out.join("list.json")).unwrap()).unwrap();
        let parsed = &r["parsed_response"];
        assert!(parsed.is_array(), "{model}: {r}");
        assert!(jsonschema::is_valid(&list, parsed), "{model}: {parsed}");
        assert!(r["validation_errors"].is_null(), "{model}: {r}");
        // The request carried the wrapped schema.
        let sent: String = raw_requests(&out)
            .into_iter()
            .map(|(_, body)| body)
            .collect();
        assert!(
            sent.contains("\"value\""),
            "{model}: the wire schema is wrapped"
        );
    }

    // OpenAI's strict mode still refuses what it cannot express, by path.
    let map = ResponseSchema::from_value(json!({"type": "object",
        "properties": {"counts": {"type": "object", "additionalProperties": {"type": "integer"}}}}))
    .unwrap();
    let e = add_err(dir.path(), GPT, Job::prompt("Count.").response_schema(map));
    assert!(e.contains("#/properties/counts is a map"), "{e}");
}

// ---------------------------------------------------------------------------
// 6. Every problem at once
// ---------------------------------------------------------------------------

#[test]
fn plan_and_run_report_every_job_whose_file_went_bad() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut b = batch(d, CLAUDE);
    let mut paths = Vec::new();
    for i in 0..4 {
        let p = write(
            d,
            &format!("doc{i}.pdf"),
            &crate::fixtures::pdf(&[&format!("Document {i}")]).unwrap(),
        );
        b.add_job(Job::file(&p, "Summarise.").id(format!("d{i}")))
            .unwrap();
        paths.push(p);
    }
    b.add_job(Job::prompt("No file here.").id("plain")).unwrap();
    b.plan().unwrap();
    // Two files replaced by text, one removed.
    std::fs::write(&paths[0], "not a pdf any more").unwrap();
    std::fs::write(&paths[2], b"Caf\xe9").unwrap();
    std::fs::remove_file(&paths[3]).unwrap();
    let e = b.plan().unwrap_err().to_string();
    assert!(e.starts_with("3 problem(s)"), "{e}");
    for want in [
        "job 'd0'", "doc0.pdf", "job 'd2'", "doc2.pdf", "job 'd3'", "doc3.pdf",
    ] {
        assert!(e.contains(want), "{want}: {e}");
    }
    assert!(!e.contains("job 'd1'") && !e.contains("'plain'"), "{e}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt.block_on(b.run()).unwrap_err().to_string();
    assert!(e.starts_with("3 problem(s)"), "{e}");
    assert!(!d.join("results").join("d1.json").exists());
}
