//! Job fingerprints: what a job asks, as a hash, so a rerun can tell an
//! unchanged job from an edited one however the jobs file was reordered.
//!
//! The fingerprint is SHA-256 over a canonical JSON of the resolved request:
//! model, messages or prompt, the file's name and the SHA-256 of its bytes,
//! temperature, max_tokens, response schema and citations. It is stored in
//! the state journal and in each result file, so an answer is only ever
//! handed back for the request that produced it. A job without an id gets
//! one derived from it (`job-` and 16 hex digits), so ids survive inserted
//! and reordered lines; identical jobs get `-2`, `-3`, ... after it.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::job::Job;

/// Hex digits of the SHA-256 kept as the fingerprint (128 bits).
const FINGERPRINT_HEX: usize = 32;
/// Hex digits of the fingerprint in a generated id (64 bits).
const ID_HEX: usize = 16;
/// What generated ids start with.
const ID_PREFIX: &str = "job-";

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// SHA-256 of a file's bytes, read in a stream.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// SHA-256 of bytes already in memory, as [`file_sha256`] gives it for a
/// file holding them.
pub fn bytes_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The fingerprint of a merged job (defaults applied, model resolved),
/// reading its file.
#[cfg(test)]
pub fn of_job(job: &Job) -> Result<String> {
    of_job_with(job, None)
}

/// The fingerprint of a merged job (defaults applied, model resolved),
/// given the SHA-256 of its file when it is already known (preflight read
/// the file moments ago); `None` reads the file.
pub fn of_job_with(job: &Job, file_sha256: Option<&str>) -> Result<String> {
    let mut canonical = Vec::with_capacity(512);
    write_canonical(&mut canonical, job, file_sha256).map_err(|e| {
        Error::Validation(format!(
            "job '{}': cannot fingerprint the request: {e}",
            job.id_str()
        ))
    })?;
    let digest = Sha256::digest(&canonical);
    Ok(hex(&digest[..FINGERPRINT_HEX / 2]))
}

/// The canonical request a fingerprint covers, as JSON with a fixed field
/// order (object keys inside schemas are sorted by serde_json): `v`,
/// `model`, `messages`, `prompt`, `file_name`, `file_sha256`,
/// `temperature`, `max_tokens`, `response_schema`, `enable_citations`,
/// absent ones as `null`. Written by hand as serde would write it (tested).
fn write_canonical(out: &mut Vec<u8>, job: &Job, known_sha256: Option<&str>) -> Result<()> {
    use crate::json_out::{key, write_str, write_value};
    let json = |e: serde_json::Error| Error::Validation(e.to_string());
    let opt_str = |out: &mut Vec<u8>, s: Option<&str>| match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    };
    let (file_name, file_sha256) = match &job.file {
        Some(p) => (
            p.file_name().map(|n| n.to_string_lossy().into_owned()),
            Some(match known_sha256 {
                Some(h) => h.to_owned(),
                None => file_sha256(p)?,
            }),
        ),
        None => (None, None),
    };
    let first = &mut true;
    out.push(b'{');
    key(out, first, "v");
    out.push(b'1');
    key(out, first, "model");
    write_str(out, job.model_name());
    key(out, first, "messages");
    match &job.messages {
        Some(messages) => crate::job::write_messages(out, messages),
        None => out.extend_from_slice(b"null"),
    }
    key(out, first, "prompt");
    opt_str(out, job.prompt.as_deref());
    key(out, first, "file_name");
    opt_str(out, file_name.as_deref());
    key(out, first, "file_sha256");
    opt_str(out, file_sha256.as_deref());
    key(out, first, "temperature");
    write_value(out, &job.temperature).map_err(json)?;
    key(out, first, "max_tokens");
    write_value(out, &job.max_tokens_or_default()).map_err(json)?;
    key(out, first, "response_schema");
    write_value(out, &job.response_schema).map_err(json)?;
    key(out, first, "enable_citations");
    out.extend_from_slice(if job.enable_citations {
        b"true"
    } else {
        b"false"
    });
    out.push(b'}');
    Ok(())
}

/// The fingerprint whose first and last 64 bits are `high` and `low`.
pub fn of_halves(high: u64, low: u64) -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&high.to_be_bytes());
    b[8..].copy_from_slice(&low.to_be_bytes());
    hex(&b)
}

/// The first 64 bits of a fingerprint, as kept per job in memory (0 when
/// there is none, as in a state written before fingerprints).
pub fn short(fingerprint: Option<&str>) -> u64 {
    fingerprint
        .and_then(|f| f.get(..16))
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0)
}

/// The id of a job without one: `job-` and the fingerprint's first 16 hex
/// digits, then `-N` for the N-th identical job (N ≥ 2).
pub fn generated_id(fingerprint: &str, ordinal: u32) -> String {
    let base = &fingerprint[..ID_HEX.min(fingerprint.len())];
    if ordinal <= 1 {
        format!("{ID_PREFIX}{base}")
    } else {
        format!("{ID_PREFIX}{base}-{ordinal}")
    }
}

/// Whether a user-given id has the form of a generated one. Such ids are
/// refused, so a generated id can never collide with an explicit one.
pub fn looks_generated(id: &str) -> bool {
    let Some(rest) = id.strip_prefix(ID_PREFIX) else {
        return false;
    };
    let (hexpart, ordinal) = match rest.split_once('-') {
        Some((h, n)) => (h, Some(n)),
        None => (rest, None),
    };
    hexpart.len() == ID_HEX
        && hexpart
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && ordinal.is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(prompt: &str) -> Job {
        Job::prompt(prompt)
            .model("claude-haiku-4-5")
            .max_tokens(100)
    }

    #[test]
    fn same_request_same_fingerprint_whatever_the_id() {
        let a = of_job(&job("hello").id("a")).unwrap();
        let b = of_job(&job("hello").id("b")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), FINGERPRINT_HEX);
        assert_ne!(a, of_job(&job("hello!")).unwrap());
        assert_ne!(a, of_job(&job("hello").max_tokens(101)).unwrap());
        assert_ne!(a, of_job(&job("hello").temperature(0.5)).unwrap());
        assert_ne!(a, of_job(&job("hello").model("claude-sonnet-4-5")).unwrap());
    }

    #[test]
    fn fingerprints_keep_their_values_across_versions() {
        // A resume compares the fingerprints a state recorded with those
        // of the jobs file now: the canonical form and its hex may never
        // change (the expected values are SHA-256 computed outside Rust).
        let j = job("hello \"quoted\"\n");
        assert_eq!(of_job(&j).unwrap(), "155fae27edc045fd464ef926c54ea2ab");
        assert_eq!(
            of_halves(0x155fae27edc045fd, 0x0464ef926c54ea2a),
            "155fae27edc045fd0464ef926c54ea2a"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc.txt");
        std::fs::write(&p, "abc").unwrap();
        assert_eq!(
            file_sha256(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_hand_written_canonical_form_is_serde_s() {
        #[derive(serde::Serialize)]
        struct Canonical<'a> {
            v: u32,
            model: &'a str,
            messages: Option<&'a [crate::job::Message]>,
            prompt: Option<&'a str>,
            file_name: Option<String>,
            file_sha256: Option<String>,
            temperature: Option<f64>,
            max_tokens: u32,
            response_schema: Option<&'a crate::job::ResponseSchema>,
            enable_citations: bool,
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a \"b\".txt");
        std::fs::write(&p, "abc").unwrap();
        let schema = crate::job::ResponseSchema::from_value(serde_json::json!({
            "type": "object", "properties": {"z": {"type": "string"}, "a": {"type": "number"}}
        }))
        .unwrap();
        let jobs = [
            job("hello \"quoted\"\n"),
            Job::messages(vec![
                crate::job::Message::system("s\t"),
                crate::job::Message::user("u é"),
            ])
            .model("m")
            .temperature(0.25),
            Job {
                enable_citations: true,
                response_schema: Some(schema),
                ..Job::file(&p, "summarise").model("m")
            },
        ];
        for j in jobs {
            let (file_name, file_sha256) = match &j.file {
                Some(p) => (
                    p.file_name().map(|n| n.to_string_lossy().into_owned()),
                    Some(file_sha256(p).unwrap()),
                ),
                None => (None, None),
            };
            let serde = serde_json::to_vec(&Canonical {
                v: 1,
                model: j.model_name(),
                messages: j.messages.as_deref(),
                prompt: j.prompt.as_deref(),
                file_name,
                file_sha256,
                temperature: j.temperature,
                max_tokens: j.max_tokens_or_default(),
                response_schema: j.response_schema.as_ref(),
                enable_citations: j.enable_citations,
            })
            .unwrap();
            let mut ours = Vec::new();
            write_canonical(&mut ours, &j, None).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }

    #[test]
    fn a_file_is_known_by_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "one").unwrap();
        let j = Job::file(&p, "summarise").model("claude-haiku-4-5");
        let before = of_job(&j).unwrap();
        std::fs::write(&p, "two").unwrap();
        assert_ne!(before, of_job(&j).unwrap());
        // A hash of the bytes in memory is the file's hash.
        assert_eq!(bytes_sha256(b"two"), file_sha256(&p).unwrap());
        assert_eq!(
            of_job_with(&j, Some(&bytes_sha256(b"two"))).unwrap(),
            of_job(&j).unwrap()
        );
    }

    #[test]
    fn generated_ids_have_a_form_no_explicit_id_may_take() {
        let f = of_job(&job("x")).unwrap();
        let id = generated_id(&f, 1);
        assert!(looks_generated(&id), "{id}");
        assert!(looks_generated(&generated_id(&f, 3)));
        assert!(crate::job::check_id(&generated_id(&f, 1000)).is_ok());
        for explicit in [
            "job-000000",
            "job-1",
            "job-abc",
            "q1",
            "job-0123456789abcdefg",
        ] {
            assert!(!looks_generated(explicit), "{explicit}");
        }
        assert_eq!(short(Some(&f)), u64::from_str_radix(&f[..16], 16).unwrap());
        assert_eq!(short(None), 0);
    }
}
