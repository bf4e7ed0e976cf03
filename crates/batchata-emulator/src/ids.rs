//! Deterministic hashing and identifier generation.
//!
//! Everything the emulator decides "at random" (which requests error, which
//! calls fail, in which order results come back, what the ids look like) is a
//! pure function of the configured seed and of stable inputs such as a
//! `custom_id` or a call counter. That keeps tests stable from run to run.
//! The standard library's hasher is not guaranteed to be stable across
//! releases, so we carry our own small one (FNV-1a plus a splitmix finalizer).

use std::sync::atomic::{AtomicU64, Ordering};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a over `bytes`, continuing from `state`.
fn fnv1a_from(mut state: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        state ^= u64::from(*b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// The splitmix64 finalizer: spreads the bits of a weak hash evenly.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hashes a seed and a list of byte strings into one well-mixed `u64`.
///
/// Parts are length-prefixed, so `["ab", "c"]` and `["a", "bc"]` differ.
pub(crate) fn hash_parts(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut state = fnv1a_from(FNV_OFFSET, &seed.to_le_bytes());
    for part in parts {
        state = fnv1a_from(state, &(part.len() as u64).to_le_bytes());
        state = fnv1a_from(state, part);
    }
    mix(state)
}

/// Maps a hash to a number in `[0, 1)`.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";
const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `len` characters drawn from `alphabet`, derived from `h`.
fn encode(mut h: u64, len: usize, alphabet: &[u8]) -> String {
    let mut out = String::with_capacity(len);
    let mut round = 0u64;
    let base = alphabet.len() as u64;
    let mut left = 0;
    for _ in 0..len {
        if left == 0 {
            h = mix(h ^ round);
            round += 1;
            left = 10;
        }
        out.push(alphabet[(h % base) as usize] as char);
        h /= base;
        left -= 1;
    }
    out
}

/// `len` base-62 characters derived from `h`.
pub(crate) fn base62(h: u64, len: usize) -> String {
    encode(h, len, BASE62)
}

/// `len` lowercase hex characters derived from `h`.
pub(crate) fn hex(h: u64, len: usize) -> String {
    encode(h, len, HEX)
}

/// `len` lowercase base-36 characters derived from `h` (Google resource ids).
pub(crate) fn base36(h: u64, len: usize) -> String {
    encode(h, len, BASE36)
}

/// Hands out fresh, deterministic identifiers: the n-th id of a kind depends
/// only on the seed and n.
#[derive(Debug)]
pub(crate) struct IdGen {
    seed: u64,
    counter: AtomicU64,
}

impl IdGen {
    /// A generator for `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    fn next_hash(&self, tag: &str) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        hash_parts(self.seed, &[tag.as_bytes(), &n.to_le_bytes()])
    }

    /// An Anthropic batch id, `msgbatch_01` + 22 base-62 characters.
    pub(crate) fn anthropic_batch(&self) -> String {
        format!("msgbatch_01{}", base62(self.next_hash("msgbatch"), 22))
    }

    /// An Anthropic `request-id` header value.
    pub(crate) fn anthropic_request(&self) -> String {
        format!("req_01{}", base62(self.next_hash("req"), 22))
    }

    /// An OpenAI batch id, `batch_` + 32 hex characters.
    pub(crate) fn openai_batch(&self) -> String {
        format!("batch_{}", hex(self.next_hash("batch"), 32))
    }

    /// An OpenAI file id, `file-` + 22 base-62 characters.
    pub(crate) fn openai_file(&self) -> String {
        format!("file-{}", base62(self.next_hash("file"), 22))
    }

    /// A Gemini batch id, the part after `batches/`: 36 lowercase base-36 characters.
    pub(crate) fn gemini_batch(&self) -> String {
        base36(self.next_hash("gbatch"), 36)
    }

    /// A Gemini file id, the part after `files/`: 12 lowercase base-36 characters.
    pub(crate) fn gemini_file(&self) -> String {
        base36(self.next_hash("gfile"), 12)
    }

    /// A resumable upload session id.
    pub(crate) fn gemini_upload(&self) -> String {
        format!("AB{}", base62(self.next_hash("gupload"), 40))
    }

    /// An OpenAI `x-request-id` header value.
    pub(crate) fn openai_request(&self) -> String {
        format!("req_{}", hex(self.next_hash("oreq"), 32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_length_prefixed() {
        assert_eq!(hash_parts(1, &[b"ab", b"c"]), hash_parts(1, &[b"ab", b"c"]));
        assert_ne!(hash_parts(1, &[b"ab", b"c"]), hash_parts(1, &[b"a", b"bc"]));
        assert_ne!(hash_parts(1, &[b"x"]), hash_parts(2, &[b"x"]));
    }

    #[test]
    fn unit_is_in_range() {
        for i in 0..1000u64 {
            let u = unit(mix(i));
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn ids_have_the_provider_shapes() {
        let ids = IdGen::new(7);
        let a = ids.anthropic_batch();
        assert!(a.starts_with("msgbatch_01") && a.len() == 33, "{a}");
        let o = ids.openai_batch();
        assert!(o.starts_with("batch_") && o.len() == 38, "{o}");
        assert!(ids.openai_file().starts_with("file-"));
        let again = IdGen::new(7);
        assert_eq!(again.anthropic_batch(), a);
    }
}
