//! Small documents made in memory — PDFs with real text per page and DOCX
//! files — for tests, examples, benchmarks and users who want to exercise a
//! pipeline offline without hunting for sample files.
//!
//! Test support, not part of a run: the cargo feature `fixtures` (off by
//! default) builds it.

use std::io::Write;

use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Document, Object, Stream};

use crate::error::{Error, Result};

/// A PDF with one page per entry of `pages`; each page's text is split on
/// `\n` into lines. Content streams are left uncompressed.
pub fn pdf(pages: &[&str]) -> Result<Vec<u8>> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids: Vec<Object> = Vec::new();
    for text in pages {
        let mut ops = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 11.into()]),
            Operation::new("TL", vec![14.into()]),
            Operation::new("Td", vec![50.into(), 800.into()]),
        ];
        for line in text.split('\n') {
            ops.push(Operation::new("Tj", vec![Object::string_literal(line)]));
            ops.push(Operation::new("T*", vec![]));
        }
        ops.push(Operation::new("ET", vec![]));
        let content = Content { operations: ops }
            .encode()
            .map_err(|e| Error::Parse(format!("cannot encode PDF page: {e}")))?;
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out)
        .map_err(|e| Error::Parse(format!("cannot write PDF: {e}")))?;
    Ok(out)
}

/// A minimal DOCX whose body has one paragraph per entry.
pub fn docx(paragraphs: &[&str]) -> Result<Vec<u8>> {
    let mut body = String::new();
    for p in paragraphs {
        let escaped = p
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        body.push_str(&format!(
            "<w:p><w:r><w:t xml:space=\"preserve\">{escaped}</w:t></w:r></w:p>"
        ));
    }
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
    );
    let files: [(&str, String); 3] = [
        ("[Content_Types].xml", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/><Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>".to_string()),
        ("_rels/.rels", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"word/document.xml\"/></Relationships>".to_string()),
        ("word/document.xml", document),
    ];
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in files {
        zip.start_file(name, opts)
            .map_err(|e| Error::Parse(format!("cannot write DOCX: {e}")))?;
        zip.write_all(text.as_bytes())
            .map_err(|e| Error::Parse(format!("cannot write DOCX: {e}")))?;
    }
    let cursor = zip
        .finish()
        .map_err(|e| Error::Parse(format!("cannot write DOCX: {e}")))?;
    Ok(cursor.into_inner())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pdf_and_docx_read_back() {
        let bytes = super::pdf(&["Invoice INV-7\nTotal: $1,234.50", "Page two text"]).unwrap();
        let info = crate::files::pdf_info(&bytes).unwrap();
        assert_eq!(info.pages, 2);
        assert!(info.page_text[0].contains("INV-7"), "{:?}", info.page_text);
        assert!(info.page_text[1].contains("Page two"));
        let d = super::docx(&["Hello & welcome", "Second <para>"]).unwrap();
        assert_eq!(
            crate::files::docx_text(&d).unwrap(),
            "Hello & welcome\nSecond <para>"
        );
    }
}
