//! Just enough PDF reading to cite pages: text per page from uncompressed
//! content streams.
//!
//! Citations on a PDF document need the text of each page, so the emulator can
//! quote a sentence and say which page it is on. A real PDF library would be a
//! heavy dependency for that; the small PDFs tests generate have uncompressed
//! content streams with `Tj`/`TJ`/`'`/`"` text operators, and that is all this
//! module understands. Compressed streams yield no text (the page is still
//! counted). Pages are ordered by walking the page tree from the catalog, or
//! by order of appearance when there is no usable tree.

use std::collections::HashMap;

/// A parsed PDF object (only what text extraction needs).
#[derive(Debug, Clone, PartialEq)]
enum Obj {
    Null,
    Bool(bool),
    Num(f64),
    Str(Vec<u8>),
    Name(String),
    Array(Vec<Obj>),
    Dict(Vec<(String, Obj)>),
    Ref(u32),
    Op(String),
}

impl Obj {
    fn get(&self, key: &str) -> Option<&Obj> {
        match self {
            Obj::Dict(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn is_name(&self, name: &str) -> bool {
        matches!(self, Obj::Name(n) if n == name)
    }
}

/// A tokenizer/parser over PDF syntax.
struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    /// Recognise `n g R` references (object syntax, not content streams).
    refs: bool,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b'\x0c' | b'\0')
}

fn is_delim(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

impl<'a> Parser<'a> {
    fn new(data: &'a [u8], pos: usize, refs: bool) -> Self {
        Self { data, pos, refs }
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            if is_ws(b) {
                self.pos += 1;
            } else if b == b'%' {
                while let Some(c) = self.peek() {
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn regular_run(&mut self) -> &'a [u8] {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if is_ws(b) || is_delim(b) {
                break;
            }
            self.pos += 1;
        }
        &self.data[start..self.pos]
    }

    /// The next object, or `None` at the end of input or on a closing delimiter.
    fn next(&mut self, depth: usize) -> Option<Obj> {
        if depth > 64 {
            return None;
        }
        self.skip_ws();
        let b = self.peek()?;
        match b {
            b'<' if self.data.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                let mut entries = Vec::new();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        None => break,
                        Some(b'>') => {
                            self.pos = (self.pos + 2).min(self.data.len());
                            break;
                        }
                        Some(b'/') => {
                            self.pos += 1;
                            let key = String::from_utf8_lossy(self.regular_run()).into_owned();
                            let value = self.next(depth + 1).unwrap_or(Obj::Null);
                            entries.push((key, value));
                        }
                        Some(_) => {
                            // Malformed: skip one token to make progress.
                            if self.next(depth + 1).is_none() {
                                self.pos += 1;
                            }
                        }
                    }
                }
                Some(Obj::Dict(entries))
            }
            b'<' => {
                self.pos += 1;
                let mut digits = Vec::new();
                while let Some(c) = self.peek() {
                    self.pos += 1;
                    if c == b'>' {
                        break;
                    }
                    if c.is_ascii_hexdigit() {
                        digits.push(c);
                    }
                }
                if digits.len() % 2 == 1 {
                    digits.push(b'0');
                }
                let bytes = digits
                    .chunks(2)
                    .filter_map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
                    .collect();
                Some(Obj::Str(bytes))
            }
            b'(' => Some(Obj::Str(self.literal_string())),
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        None => break,
                        Some(b']') => {
                            self.pos += 1;
                            break;
                        }
                        Some(_) => match self.next(depth + 1) {
                            Some(o) => items.push(o),
                            None => self.pos += 1,
                        },
                    }
                }
                Some(Obj::Array(items))
            }
            b'/' => {
                self.pos += 1;
                Some(Obj::Name(
                    String::from_utf8_lossy(self.regular_run()).into_owned(),
                ))
            }
            b']' | b'>' | b')' | b'}' | b'{' => None,
            _ => {
                let tok = self.regular_run();
                if tok.is_empty() {
                    self.pos += 1;
                    return Some(Obj::Null);
                }
                let text = String::from_utf8_lossy(tok).into_owned();
                if let Ok(n) = text.parse::<f64>() {
                    if self.refs && text.bytes().all(|c| c.is_ascii_digit()) {
                        let save = self.pos;
                        if let Some(r) = self.try_ref(&text) {
                            return Some(r);
                        }
                        self.pos = save;
                    }
                    return Some(Obj::Num(n));
                }
                Some(match text.as_str() {
                    "true" => Obj::Bool(true),
                    "false" => Obj::Bool(false),
                    "null" => Obj::Null,
                    _ => Obj::Op(text),
                })
            }
        }
    }

    /// After an integer, try to read `gen R`.
    fn try_ref(&mut self, num: &str) -> Option<Obj> {
        self.skip_ws();
        let generation = self.regular_run();
        if generation.is_empty() || !generation.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.skip_ws();
        if self.regular_run() != b"R" {
            return None;
        }
        num.parse().ok().map(Obj::Ref)
    }

    fn literal_string(&mut self) -> Vec<u8> {
        // Positioned on '('.
        self.pos += 1;
        let mut out = Vec::new();
        let mut depth = 1usize;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'\\' => {
                    let Some(e) = self.peek() else { break };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'\r' => {
                            if self.peek() == Some(b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push((v & 0xff) as u8);
                        }
                        other => out.push(other),
                    }
                }
                b'(' => {
                    depth += 1;
                    out.push(c);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
        out
    }
}

/// An indirect object: its value and, for streams, the raw stream bytes.
struct Indirect {
    value: Obj,
    stream: Option<(usize, usize)>,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from >= haystack.len() || needle.is_empty() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Finds every `n g obj ... endobj` in the file, in order of appearance.
fn scan_objects(data: &[u8]) -> (HashMap<u32, Indirect>, Vec<u32>) {
    let mut objects = HashMap::new();
    let mut order = Vec::new();
    let mut at = 0;
    while let Some(p) = find(data, b"obj", at) {
        at = p + 3;
        // Must be "<digits> <digits> obj" with a delimiter after.
        if data.get(p + 3).is_some_and(|b| !is_ws(*b) && !is_delim(*b)) {
            continue;
        }
        let Some(num) = header_number(data, p) else {
            continue;
        };
        let mut parser = Parser::new(data, p + 3, true);
        let value = parser.next(0).unwrap_or(Obj::Null);
        let mut stream = None;
        let after = parser.pos;
        parser.skip_ws();
        if data[parser.pos..].starts_with(b"stream") {
            let mut start = parser.pos + 6;
            if data.get(start) == Some(&b'\r') {
                start += 1;
            }
            if data.get(start) == Some(&b'\n') {
                start += 1;
            }
            let declared = match value.get("Length") {
                Some(Obj::Num(n)) if *n >= 0.0 => Some(*n as usize),
                _ => None,
            };
            let end = match declared {
                Some(len)
                    if start + len <= data.len()
                        && find(data, b"endstream", start + len)
                            .is_some_and(|e| e - (start + len) <= 2) =>
                {
                    start + len
                }
                _ => {
                    let e = find(data, b"endstream", start).unwrap_or(data.len());
                    let mut end = e;
                    if end > start && data[end - 1] == b'\n' {
                        end -= 1;
                    }
                    if end > start && data[end - 1] == b'\r' {
                        end -= 1;
                    }
                    end
                }
            };
            stream = Some((start, end));
            at = end;
        } else {
            at = at.max(after);
        }
        if !objects.contains_key(&num) {
            order.push(num);
        }
        objects.insert(num, Indirect { value, stream });
    }
    (objects, order)
}

/// Reads the object number in "`<num> <gen> obj`" ending at `obj_pos`.
fn header_number(data: &[u8], obj_pos: usize) -> Option<u32> {
    let mut i = obj_pos;
    let skip_ws_back = |i: &mut usize| {
        while *i > 0 && is_ws(data[*i - 1]) {
            *i -= 1;
        }
    };
    let digits_back = |i: &mut usize| -> Option<usize> {
        let end = *i;
        while *i > 0 && data[*i - 1].is_ascii_digit() {
            *i -= 1;
        }
        (end > *i).then_some(end)
    };
    skip_ws_back(&mut i);
    if i == obj_pos {
        return None;
    }
    digits_back(&mut i)?;
    let gen_start = i;
    skip_ws_back(&mut i);
    if i == gen_start {
        return None;
    }
    let num_end = digits_back(&mut i)?;
    if i > 0 && !is_ws(data[i - 1]) && !is_delim(data[i - 1]) {
        return None;
    }
    std::str::from_utf8(&data[i..num_end]).ok()?.parse().ok()
}

/// Decodes a PDF text string: UTF-16BE with BOM, else byte-per-char.
fn decode_text(bytes: &[u8]) -> String {
    if bytes.len() >= 2 && bytes[0] == 0xfe && bytes[1] == 0xff {
        let units: Vec<u16> = bytes[2..]
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    bytes.iter().map(|&b| b as char).collect()
}

fn newline(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Extracts the shown text of one content stream into `out`.
fn extract_stream_text(content: &[u8], out: &mut String) {
    let mut parser = Parser::new(content, 0, false);
    let mut operands: Vec<Obj> = Vec::new();
    loop {
        parser.skip_ws();
        if parser.peek().is_none() {
            break;
        }
        let Some(obj) = parser.next(0) else {
            parser.pos += 1;
            continue;
        };
        let Obj::Op(op) = obj else {
            operands.push(obj);
            if operands.len() > 64 {
                operands.remove(0);
            }
            continue;
        };
        match op.as_str() {
            "Tj" => {
                if let Some(Obj::Str(s)) = operands.last() {
                    out.push_str(&decode_text(s));
                }
            }
            "'" => {
                newline(out);
                if let Some(Obj::Str(s)) = operands.last() {
                    out.push_str(&decode_text(s));
                }
            }
            "\"" => {
                newline(out);
                if let Some(Obj::Str(s)) = operands.last() {
                    out.push_str(&decode_text(s));
                }
            }
            "TJ" => {
                if let Some(Obj::Array(items)) = operands.last() {
                    for item in items {
                        match item {
                            Obj::Str(s) => out.push_str(&decode_text(s)),
                            Obj::Num(n) if *n < -250.0 && !out.ends_with(' ') => out.push(' '),
                            _ => {}
                        }
                    }
                }
            }
            "T*" | "ET" => newline(out),
            "Td" | "TD" => {
                if let Some(Obj::Num(ty)) = operands.last() {
                    if *ty != 0.0 {
                        newline(out);
                    }
                }
            }
            "Tm" => newline(out),
            _ => {}
        }
        operands.clear();
    }
}

/// Walks the page tree under `node`, appending page object numbers.
fn walk_pages(objects: &HashMap<u32, Indirect>, node: u32, pages: &mut Vec<u32>, depth: usize) {
    if depth > 32 {
        return;
    }
    let Some(obj) = objects.get(&node) else {
        return;
    };
    if obj.value.get("Type").is_some_and(|t| t.is_name("Page")) {
        pages.push(node);
        return;
    }
    if let Some(Obj::Array(kids)) = obj.value.get("Kids") {
        for kid in kids {
            if let Obj::Ref(k) = kid {
                walk_pages(objects, *k, pages, depth + 1);
            }
        }
    }
}

/// The text of each page, in page order (index 0 = page 1).
///
/// Returns an empty vector when `data` holds no recognisable page.
pub(crate) fn extract_pages(data: &[u8]) -> Vec<String> {
    let (objects, order) = scan_objects(data);
    let mut pages = Vec::new();
    let catalog = order
        .iter()
        .find(|n| {
            objects[*n]
                .value
                .get("Type")
                .is_some_and(|t| t.is_name("Catalog"))
        })
        .copied();
    if let Some(Obj::Ref(root)) = catalog.and_then(|c| objects[&c].value.get("Pages")) {
        walk_pages(&objects, *root, &mut pages, 0);
    }
    if pages.is_empty() {
        pages = order
            .iter()
            .copied()
            .filter(|n| {
                objects[n]
                    .value
                    .get("Type")
                    .is_some_and(|t| t.is_name("Page"))
            })
            .collect();
    }
    pages
        .iter()
        .map(|page| {
            let mut text = String::new();
            let contents: Vec<u32> = match objects[page].value.get("Contents") {
                Some(Obj::Ref(r)) => vec![*r],
                Some(Obj::Array(items)) => items
                    .iter()
                    .filter_map(|i| match i {
                        Obj::Ref(r) => Some(*r),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for c in contents {
                let Some(stream) = objects.get(&c) else {
                    continue;
                };
                if stream.value.get("Filter").is_some() {
                    continue; // compressed: out of scope
                }
                if let Some((start, end)) = stream.stream {
                    extract_stream_text(&data[start..end], &mut text);
                }
            }
            text.trim_end().to_string()
        })
        .collect()
}

/// Builds a minimal uncompressed PDF with one page per entry, each line shown
/// with `Tj` (used by unit tests; the integration tests carry their own).
#[cfg(test)]
pub(crate) fn build_pdf(pages: &[&[&str]]) -> Vec<u8> {
    let mut objs: Vec<String> = Vec::new();
    let n = pages.len();
    // 1 catalog, 2 pages, 3 font, then (page, content) pairs.
    objs.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    objs.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {n} >>",
        kids.join(" ")
    ));
    objs.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into());
    for (i, lines) in pages.iter().enumerate() {
        objs.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        let mut content = String::from("BT /F1 12 Tf 14 TL 72 720 Td\n");
        for line in lines.iter() {
            let escaped = line
                .replace('\\', "\\\\")
                .replace('(', "\\(")
                .replace(')', "\\)");
            content.push_str(&format!("({escaped}) Tj T*\n"));
        }
        content.push_str("ET");
        objs.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
    }
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.push_str(&format!("{} 0 obj\n{o}\nendobj\n", i + 1));
    }
    let xref = out.len();
    out.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objs.len() + 1
    ));
    for off in offsets {
        out.push_str(&format!("{off:010} 00000 n \n"));
    }
    out.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objs.len() + 1
    ));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_text_per_page() {
        let pdf = build_pdf(&[
            &["Invoice number: INV-001", "Total: 42.50 EUR"],
            &["Page two says (hello)."],
        ]);
        let pages = extract_pages(&pdf);
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0], "Invoice number: INV-001\nTotal: 42.50 EUR");
        assert_eq!(pages[1], "Page two says (hello).");
    }

    #[test]
    fn handles_tj_arrays_and_hex_strings() {
        let mut text = String::new();
        extract_stream_text(
            b"BT [(Hel) 10 (lo) -300 (World)] TJ 0 -14 Td <414243> Tj ET",
            &mut text,
        );
        assert_eq!(text, "Hello World\nABC\n");
    }

    #[test]
    fn truncated_files_never_panic() {
        let pdf = build_pdf(&[&["Hello (world)", "<hex> [arr] /Name"], &["Second"]]);
        for end in 0..pdf.len() {
            let _ = extract_pages(&pdf[..end]);
        }
        let _ = extract_pages(b"1 0 obj << /A >");
        let _ = extract_pages(b"1 0 obj <<>>stream");
    }

    #[test]
    fn garbage_yields_no_pages() {
        assert!(extract_pages(b"not a pdf at all").is_empty());
        assert!(extract_pages(b"1 0 obj << /Type /Page").len() <= 1);
    }
}
