//! Input files: what kind a file is, and what can be read out of it locally.
//!
//! Providers send PDFs and images as bytes, text-like files as text, and DOCX
//! as the text we extract here (no provider takes DOCX bytes). PDFs are also
//! opened locally to count pages (for token estimates) and to check that a
//! document asked to be cited has text to cite.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// What kind of file a job sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A PDF document.
    Pdf,
    /// A text-like file, sent as text.
    Text,
    /// An image with its media type.
    Image(&'static str),
    /// A Word document, sent as its extracted text.
    Docx,
}

/// Text-like extensions sent as plain text.
pub const TEXT_EXTENSIONS: &[&str] = &["txt", "md", "csv", "json", "html", "xml", "yaml", "yml"];

/// Image extensions, sent as image content.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "gif", "webp"];

/// Whether a lowercase extension (no dot) is an image type.
pub fn is_image_extension(ext: &str) -> bool {
    IMAGE_EXTENSIONS.contains(&ext)
}

/// The lowercase extension of a path, without the dot.
pub fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The kind of a file, from its extension.
pub fn file_kind(path: &Path) -> Result<FileKind> {
    let ext = extension(path);
    Ok(match ext.as_str() {
        "pdf" => FileKind::Pdf,
        "docx" => FileKind::Docx,
        "png" => FileKind::Image("image/png"),
        "jpg" | "jpeg" => FileKind::Image("image/jpeg"),
        "gif" => FileKind::Image("image/gif"),
        "webp" => FileKind::Image("image/webp"),
        e if TEXT_EXTENSIONS.contains(&e) => FileKind::Text,
        _ => {
            return Err(Error::Validation(format!(
                "file '{}': unsupported type '.{ext}'; supported are .pdf, .docx, .png, .jpg, .gif, .webp and text files ({})",
                path.display(),
                TEXT_EXTENSIONS.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(", ")
            )))
        }
    })
}

/// The file's name, used as the document title.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Reads a whole file, with an error that names it.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("read the input file", path, e))
}

/// Reads a text-like file; invalid UTF-8 is replaced rather than refused.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read(path)?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// A PDF opened locally: page count and the text of each page.
#[derive(Debug, Clone)]
pub struct PdfInfo {
    /// Number of pages.
    pub pages: usize,
    /// Extracted text per page (empty where a page has none, e.g. scans).
    pub page_text: Vec<String>,
}

impl PdfInfo {
    /// Characters of text across all pages.
    pub fn text_chars(&self) -> usize {
        self.page_text
            .iter()
            .map(|t| t.trim().chars().count())
            .sum()
    }
}

/// Opens a PDF from bytes.
pub fn pdf_info(bytes: &[u8]) -> Result<PdfInfo> {
    let doc = lopdf::Document::load_mem(bytes)
        .map_err(|e| Error::Parse(format!("not a readable PDF: {e}")))?;
    let pages = doc.get_pages();
    let mut page_text = Vec::with_capacity(pages.len());
    for &n in pages.keys() {
        page_text.push(doc.extract_text(&[n]).unwrap_or_default());
    }
    Ok(PdfInfo {
        pages: pages.len(),
        page_text,
    })
}

/// Extracts the text of a DOCX file: paragraphs on their own lines.
pub fn docx_text(bytes: &[u8]) -> Result<String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| Error::Parse(format!("not a readable DOCX (zip) file: {e}")))?;
    let mut xml = String::new();
    zip.by_name("word/document.xml")
        .map_err(|e| Error::Parse(format!("DOCX without word/document.xml: {e}")))?
        .read_to_string(&mut xml)
        .map_err(|e| Error::Parse(format!("DOCX document.xml unreadable: {e}")))?;
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut out = String::new();
    let mut in_text = false;
    loop {
        use quick_xml::events::Event;
        match reader.read_event() {
            Ok(Event::Start(e)) if e.name().as_ref() == b"w:t" => in_text = true,
            Ok(Event::End(e)) if e.name().as_ref() == b"w:t" => in_text = false,
            Ok(Event::End(e)) if e.name().as_ref() == b"w:p" => out.push('\n'),
            Ok(Event::Empty(e)) if e.name().as_ref() == b"w:tab" => out.push('\t'),
            Ok(Event::Empty(e)) if e.name().as_ref() == b"w:br" => out.push('\n'),
            Ok(Event::Text(t)) if in_text => {
                let s = t
                    .decode()
                    .map_err(|e| Error::Parse(format!("DOCX text: {e}")))?;
                out.push_str(
                    &quick_xml::escape::unescape(&s).unwrap_or(std::borrow::Cow::Borrowed(&s)),
                );
            }
            Ok(Event::GeneralRef(r)) if in_text => {
                let name = r.decode().unwrap_or_default();
                out.push_str(match name.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                });
            }
            Ok(Event::Eof) => break,
            Err(e) => return Err(Error::Parse(format!("DOCX XML: {e}"))),
            _ => {}
        }
    }
    Ok(out.trim_end().to_string())
}

/// The text a text-like or DOCX file contributes to a request.
pub fn document_text(path: &Path, kind: FileKind) -> Result<String> {
    match kind {
        FileKind::Docx => docx_text(&read(path)?)
            .map_err(|e| Error::Parse(format!("file '{}': {e}", path.display()))),
        _ => read_text(path),
    }
}
