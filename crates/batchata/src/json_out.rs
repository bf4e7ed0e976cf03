//! JSON written by hand where a run writes it once per job: the spooled
//! job, its fingerprint and its provider request. serde_json escapes a
//! string a byte at a time, and a prompt is most of a job's bytes; here a
//! string is scanned eight bytes at a time and copied in runs. The bytes
//! are exactly serde_json's, which the tests check, so what is written by
//! hand reads back, and hashes, as what serde would have written.

use serde::Serialize;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each of the eight bytes of `w` that is a control
/// character, `"` or `\` (exactly: a byte of 0x80 or above never counts,
/// and a zero mask means no byte does).
fn word_mask(w: u64) -> u64 {
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (below_space | quote | backslash) & HIGHS
}

/// The eight bytes at `at` as a word.
fn word(bytes: &[u8], at: usize) -> Option<u64> {
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes.get(at..at + 8)?);
    Some(u64::from_le_bytes(w))
}

/// The escape serde_json writes for `b`, if it needs one.
fn escape_of(b: u8) -> Option<&'static [u8]> {
    Some(match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        0x08 => b"\\b",
        0x09 => b"\\t",
        0x0A => b"\\n",
        0x0C => b"\\f",
        0x0D => b"\\r",
        0x00..=0x1F => return Some(&[]),
        _ => return None,
    })
}

/// Appends `s` as a quoted JSON string, escaped as serde_json escapes it.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Sixteen bytes at a time while none needs escaping.
        if let (Some(a), Some(b)) = (word(bytes, i), word(bytes, i + 8)) {
            if word_mask(a) | word_mask(b) == 0 {
                i += 16;
                continue;
            }
        }
        if let Some(a) = word(bytes, i) {
            if word_mask(a) == 0 {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        if let Some(esc) = escape_of(b) {
            out.extend_from_slice(&bytes[run..i]);
            if esc.is_empty() {
                let (hi, lo) = (HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]);
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hi, lo]);
            } else {
                out.extend_from_slice(esc);
            }
            run = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// Appends a `"key":` pair's key, with a comma unless it is the first.
pub(crate) fn key(out: &mut Vec<u8>, first: &mut bool, name: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    write_str(out, name);
    out.push(b':');
}

/// Appends anything else through serde_json (numbers, schemas, paths).
pub(crate) fn write_value(out: &mut Vec<u8>, v: &impl Serialize) -> serde_json::Result<()> {
    serde_json::to_writer(out, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_ascii_byte_is_escaped_as_serde_json_escapes_it() {
        for b in 0u8..=0x7F {
            let s = (b as char).to_string();
            assert_eq!(
                ours(&s),
                serde_json::to_string(&s).unwrap(),
                "byte {b:#04x}"
            );
        }
    }

    #[test]
    fn random_strings_at_every_alignment_match_serde_json() {
        let pieces = [
            "a",
            "é",
            "\u{1F600}",
            "\"",
            "\\",
            "\n",
            "\t",
            "\u{1}",
            "\u{1f}",
            " ",
            "~",
            "\u{7f}",
            "plain text ",
            "/",
        ];
        let mut rng = fastrand::Rng::with_seed(21);
        for _ in 0..5_000 {
            let n = rng.usize(0..40);
            let s: String = (0..n).map(|_| pieces[rng.usize(..pieces.len())]).collect();
            assert_eq!(ours(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
        }
        let long = "x".repeat(1000) + "\"" + &"y".repeat(13) + "\n";
        assert_eq!(ours(&long), serde_json::to_string(&long).unwrap());
    }

    #[test]
    fn keys_are_separated_by_commas() {
        let mut out = Vec::new();
        let mut first = true;
        out.push(b'{');
        key(&mut out, &mut first, "a");
        write_value(&mut out, &1.5f64).unwrap();
        key(&mut out, &mut first, "b\"");
        write_value(&mut out, &f64::NAN).unwrap();
        out.push(b'}');
        assert_eq!(out, br#"{"a":1.5,"b\"":null}"#);
    }
}
