//! Input files: what kind a file is, and what can be read out of it locally.
//!
//! A file's kind comes from its bytes, never from its name alone: a text file
//! named `x.pdf` sent as a PDF makes the provider reject the whole batch it
//! is in. The name says what the user meant ([`file_kind`]); the content
//! ([`detect`]) says what the file is; [`load`] reads a file and refuses it
//! when the two disagree. Text must be UTF-8 (a byte-order mark is dropped);
//! anything else is refused with the offset of the first bad byte, never
//! patched with replacement characters.
//!
//! Providers send PDFs and images as bytes, text-like files as text, and DOCX
//! as the text we extract here (no provider takes DOCX bytes). PDFs are also
//! opened locally to count pages (for token estimates and page limits) and to
//! check that a document asked to be cited has text to cite.

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

/// Reads a text-like file: UTF-8, with a leading byte-order mark dropped.
/// Any other encoding is refused with the offset of the first bad byte.
#[cfg(test)]
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read(path)?;
    utf8_text(&bytes)
        .map(str::to_string)
        .map_err(|p| Error::Validation(not_utf8_message(path, &p)))
}

// ---------------------------------------------------------------------------
// Kinds by content
// ---------------------------------------------------------------------------

/// The UTF-8 byte-order mark, dropped from the front of text.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why some bytes are not UTF-8 text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotUtf8 {
    /// Offset in the file of the first byte that is not valid UTF-8 text.
    pub offset: usize,
    /// That byte.
    pub byte: u8,
    /// What the bytes probably are.
    pub guess: &'static str,
}

impl std::fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.byte == 0 {
            write!(f, "byte offset {} is a NUL byte (0x00)", self.offset)?;
        } else {
            write!(
                f,
                "byte offset {} (0x{:02X}) is not valid UTF-8",
                self.offset, self.byte
            )?;
        }
        write!(f, "; the file looks like {}", self.guess)
    }
}

/// The text of `bytes` when they are UTF-8 (a leading byte-order mark is
/// dropped). NUL bytes are refused too: valid UTF-8, but in practice the
/// sign of UTF-16 or binary data.
pub fn utf8_text(bytes: &[u8]) -> std::result::Result<&str, NotUtf8> {
    let (skip, body) = match bytes.strip_prefix(UTF8_BOM) {
        Some(rest) => (UTF8_BOM.len(), rest),
        None => (0, bytes),
    };
    let bad = |at: usize| {
        let byte = body[at];
        let guess = if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
            "UTF-16 text (it starts with a UTF-16 byte-order mark)"
        } else if byte == 0 {
            "UTF-16 text or binary data"
        } else {
            "text in another encoding (Latin-1 or Windows-1252?)"
        };
        NotUtf8 {
            offset: skip + at,
            byte,
            guess,
        }
    };
    let text = std::str::from_utf8(body).map_err(|e| bad(e.valid_up_to()))?;
    // `contains` on bytes is a fast scan; the position only when needed.
    if body.contains(&0) {
        return Err(bad(body.iter().position(|&b| b == 0).unwrap_or(0)));
    }
    Ok(text)
}

fn not_utf8_message(path: &Path, p: &NotUtf8) -> String {
    format!(
        "'{}' is not UTF-8 text: {p}; convert it to UTF-8 (e.g. `iconv -f WINDOWS-1252 -t UTF-8`)",
        path.display()
    )
}

/// What a file's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// One of the kinds a job can send.
    Supported(FileKind),
    /// A format recognised but not sent (a ZIP archive, a video, ...),
    /// described for an error message.
    Other(String),
    /// No known format, and not UTF-8 text either.
    Unknown(NotUtf8),
}

/// Recognises a file's kind from its bytes: PDF, PNG, JPEG, GIF and WebP by
/// their signatures, DOCX as a ZIP archive holding `word/document.xml`, and
/// text as UTF-8 (see [`utf8_text`]). Other formats are named, from the
/// `infer` crate's table of signatures, so an error can say what a file
/// really is.
///
/// The signatures are checked strictly (`%PDF-` at the start, `RIFF….WEBP`,
/// `GIF87a`/`GIF89a`), since a looser match (`infer`'s own PDF, WebP and GIF
/// matchers) would take text that merely mentions one for the format itself.
pub fn detect(bytes: &[u8]) -> Content {
    if bytes.starts_with(b"%PDF-") {
        return Content::Supported(FileKind::Pdf);
    }
    // PNG (0x89 "PNG") and JPEG (FF D8 FF) open with bytes no UTF-8 text
    // can start with, so `infer`'s matchers are exact enough.
    if infer::image::is_png(bytes) {
        return Content::Supported(FileKind::Image("image/png"));
    }
    if infer::image::is_jpeg(bytes) {
        return Content::Supported(FileKind::Image("image/jpeg"));
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Content::Supported(FileKind::Image("image/gif"));
    }
    if bytes.starts_with(b"RIFF") && infer::image::is_webp(bytes) {
        return Content::Supported(FileKind::Image("image/webp"));
    }
    if infer::archive::is_zip(bytes) {
        return if zip_has(bytes, "word/document.xml") {
            Content::Supported(FileKind::Docx)
        } else {
            Content::Other(describe_other(bytes).unwrap_or_else(|| {
                "a ZIP archive without word/document.xml (not a Word document)".into()
            }))
        };
    }
    match utf8_text(bytes) {
        Ok(_) => Content::Supported(FileKind::Text),
        Err(e) => match describe_other(bytes) {
            Some(what) => Content::Other(what),
            None => Content::Unknown(e),
        },
    }
}

fn zip_has(bytes: &[u8], name: &str) -> bool {
    zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .is_ok_and(|z| z.index_for_name(name).is_some())
}

/// A binary format `infer` knows, as "a <ext> file (<media type>)".
fn describe_other(bytes: &[u8]) -> Option<String> {
    let t = infer::get(bytes).filter(|t| t.matcher_type() != infer::MatcherType::Text)?;
    Some(match t.mime_type() {
        "application/zip" => "a ZIP archive (application/zip)".to_string(),
        "application/msword" => {
            "an old Word .doc file (application/msword); save it as .docx".to_string()
        }
        m => format!("a .{} file ({m})", t.extension()),
    })
}

/// What a kind is called in messages: "a PDF document", "a PNG image", ...
pub fn describe(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Pdf => "a PDF document",
        FileKind::Text => "UTF-8 text",
        FileKind::Docx => "a Word document",
        FileKind::Image("image/png") => "a PNG image",
        FileKind::Image("image/jpeg") => "a JPEG image",
        FileKind::Image("image/gif") => "a GIF image",
        FileKind::Image("image/webp") => "a WebP image",
        FileKind::Image(_) => "an image",
    }
}

/// The kind of `bytes`, which must agree with the kind `path`'s name gives;
/// the error names the file and what it really is.
pub fn kind_of(path: &Path, bytes: &[u8]) -> Result<FileKind> {
    let named = file_kind(path)?;
    let is = match detect(bytes) {
        Content::Supported(k) if k == named => return Ok(k),
        Content::Unknown(e) if named == FileKind::Text => {
            return Err(Error::Validation(not_utf8_message(path, &e)))
        }
        Content::Supported(k) => describe(k).to_string(),
        Content::Other(what) => what,
        Content::Unknown(e) => format!("neither a known format nor UTF-8 text ({e})"),
    };
    let ext = extension(path);
    Err(Error::Validation(format!(
        "'{}' is named as {} (.{ext}) but it is {is}; give the file its right extension, or the file that was meant",
        path.display(),
        describe(named),
    )))
}

/// A file's bytes and its kind, as its content shows.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The kind, from the bytes (and agreeing with the name).
    pub kind: FileKind,
    /// The whole file.
    pub bytes: Vec<u8>,
}

/// Reads a file and recognises it by its content ([`kind_of`]).
pub fn load(path: &Path) -> Result<Loaded> {
    file_kind(path)?;
    let bytes = read(path)?;
    let kind = kind_of(path, &bytes)?;
    Ok(Loaded { kind, bytes })
}

impl Loaded {
    /// The text a text or DOCX file sends (UTF-8, byte-order mark dropped).
    pub fn text(&self, path: &Path) -> Result<String> {
        match self.kind {
            FileKind::Docx => docx_text(&self.bytes)
                .map_err(|e| Error::Parse(format!("file '{}': {e}", path.display()))),
            _ => utf8_text(&self.bytes)
                .map(str::to_string)
                .map_err(|p| Error::Validation(not_utf8_message(path, &p))),
        }
    }
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
    Loaded {
        kind,
        bytes: read(path)?,
    }
    .text(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_type_the_catalog_lists_is_one_the_library_can_send() {
        for m in crate::Catalog::builtin().models() {
            for t in &m.capabilities.file_types {
                let probe = std::path::PathBuf::from(format!("x.{t}"));
                file_kind(&probe).unwrap_or_else(|e| {
                    panic!(
                        "{}: file type {t} is not one the library can send: {e}",
                        m.name
                    )
                });
            }
        }
    }
}
