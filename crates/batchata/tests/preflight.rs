//! Preflight: what is checked before anything is sent — file types by
//! content and encodings.

use std::path::{Path, PathBuf};

use batchata::files::{self, Content, FileKind};
use batchata::{Batch, DefaultParams, Job};
use serde_json::Value;

const CLAUDE: &str = "claude-haiku-4-5";

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
    let pdf = batchata::fixtures::pdf(&["Hello"]).unwrap();
    let docx = batchata::fixtures::docx(&["Hello"]).unwrap();
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

/// The create body the Anthropic provider would send for `jobs`.
fn anthropic_body(jobs: &[Job]) -> Value {
    let catalog = batchata::Catalog::builtin();
    let body = batchata::providers::anthropic::request::build_body(jobs, |j| {
        catalog.lookup(j.model_name())
    })
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
    let catalog = batchata::Catalog::builtin();
    let e = batchata::providers::anthropic::request::build_body(&[job], |j| {
        catalog.lookup(j.model_name())
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("menu.txt") && e.contains("not UTF-8"), "{e}");
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
