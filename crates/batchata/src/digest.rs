//! A compact table keyed by 64-bit digests: how a run tells a million job
//! ids apart without holding a million strings.
//!
//! A `HashSet<String>` of job ids costs about 60 bytes a job; this table
//! keeps only a 64-bit digest of each key (and a small value) in two flat
//! arrays, about 14 bytes a job. Two different ids can share a digest (at a
//! million ids, about once in 40 million runs), so a hit is only a
//! candidate: whoever owns the table checks it against the real id where
//! a wrong answer would matter (see `state::ids` and `Batch::add_job`).

use std::hash::Hasher;

/// The 64-bit digest of a key: SipHash with fixed keys, so a digest is the
/// same in every process (never written to disk, but easy to reason about).
pub(crate) fn digest(key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(key.as_bytes());
    h.finish()
}

/// The most a table fills before it grows, in 1/100ths.
const MAX_LOAD_PCT: usize = 85;

/// An open-addressing map from 64-bit digests to small values (linear
/// probing). Digest 0 marks an empty slot, so a key whose digest is 0 is
/// stored as 1 (one more candidate collision, checked like any other).
#[derive(Debug, Clone, Default)]
pub(crate) struct DigestMap<V> {
    keys: Vec<u64>,
    vals: Vec<V>,
    len: usize,
}

impl<V: Copy + Default> DigestMap<V> {
    /// Keys held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn slot_of(&self, d: u64) -> usize {
        // Lemire's multiply-shift: any table size, no modulo.
        ((u128::from(d) * self.keys.len() as u128) >> 64) as usize
    }

    fn resize(&mut self, slots: usize) {
        let keys = std::mem::replace(&mut self.keys, vec![0; slots]);
        let vals = std::mem::replace(&mut self.vals, vec![V::default(); slots]);
        for (k, v) in keys.into_iter().zip(vals) {
            if k != 0 {
                let i = self.find_slot(k);
                self.keys[i] = k;
                self.vals[i] = v;
            }
        }
    }

    /// Room for `additional` more keys without growing: a table grown a
    /// step at a time holds its old and its new slots at once at each step.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let slots = (self.len + additional).saturating_mul(100) / MAX_LOAD_PCT + 1;
        if slots > self.keys.len() {
            self.resize(slots);
        }
    }

    /// The slot holding `d`, or the empty slot where it would go.
    fn find_slot(&self, d: u64) -> usize {
        let n = self.keys.len();
        let mut i = self.slot_of(d);
        loop {
            let k = self.keys[i];
            if k == d || k == 0 {
                return i;
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    fn key(d: u64) -> u64 {
        d.max(1)
    }

    /// The value under digest `d`, if any.
    pub(crate) fn get(&self, d: u64) -> Option<V> {
        if self.keys.is_empty() {
            return None;
        }
        let d = Self::key(d);
        let i = self.find_slot(d);
        (self.keys[i] == d).then(|| self.vals[i])
    }

    /// The value under `d`, inserted as `V::default()` first when absent;
    /// `true` with it when it was inserted.
    pub(crate) fn entry(&mut self, d: u64) -> (&mut V, bool) {
        if (self.len + 1) * 100 > self.keys.len() * MAX_LOAD_PCT {
            let grown = (self.keys.len() * 3 / 2).max(16);
            self.resize(grown);
        }
        let d = Self::key(d);
        let i = self.find_slot(d);
        let new = self.keys[i] == 0;
        if new {
            self.keys[i] = d;
            self.len += 1;
        }
        (&mut self.vals[i], new)
    }

    /// Bytes the table holds (what a million-job run pays for it).
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.keys.capacity() * 8 + self.vals.capacity() * std::mem::size_of::<V>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_after_growth_and_absent_ones_are_not() {
        let mut m: DigestMap<u32> = DigestMap::default();
        for i in 0..100_000u32 {
            let (v, new) = m.entry(digest(&format!("job-{i}")));
            assert!(new, "job-{i} seen twice");
            *v = i;
        }
        assert_eq!(m.len(), 100_000);
        for i in (0..100_000u32).step_by(997) {
            assert_eq!(m.get(digest(&format!("job-{i}"))), Some(i));
        }
        assert_eq!(m.get(digest("job-100000")), None);
        let (v, new) = m.entry(digest("job-5"));
        assert!(!new);
        assert_eq!(*v, 5);
    }

    #[test]
    fn a_reserved_table_takes_what_was_announced_without_growing() {
        let mut m: DigestMap<u32> = DigestMap::default();
        *m.entry(digest("first")).0 = 7;
        m.reserve(50_000);
        let slots = m.keys.len();
        for i in 0..50_000u32 {
            *m.entry(digest(&format!("id-{i}"))).0 = i;
        }
        assert_eq!(m.keys.len(), slots, "no growth");
        assert_eq!(m.get(digest("first")), Some(7));
        assert_eq!(m.get(digest("id-49999")), Some(49_999));
        // More than announced still fits: the table grows as before.
        *m.entry(digest("one more")).0 = 1;
        m.reserve(0);
        assert_eq!(m.len(), 50_002);
    }

    #[test]
    fn a_zero_digest_is_a_key_like_any_other() {
        let mut m: DigestMap<u32> = DigestMap::default();
        *m.entry(0).0 = 7;
        assert_eq!(m.get(0), Some(7));
        assert_eq!(
            m.get(1),
            Some(7),
            "0 is stored as 1: a candidate, checked by the owner"
        );
        assert_eq!(m.get(2), None);
    }

    #[test]
    fn the_table_stays_near_twelve_bytes_a_key() {
        let mut m: DigestMap<u32> = DigestMap::default();
        for i in 0..1_000_000u64 {
            m.entry(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        }
        let per_key = m.heap_bytes() as f64 / 1e6;
        assert!(per_key < 24.0, "{per_key} bytes a key");
    }
}
