//! Finding a job by its id without every id in memory.
//!
//! The journal names jobs by id; the run knows them by number. While a
//! journal is replayed and the input is matched against it, this index
//! maps ids to numbers through 64-bit digests ([`crate::digest`]): about
//! 14 bytes a job instead of the ~60 of a map of strings, and dropped once
//! the run is open. Two ids that share a digest are found on insert (the
//! candidate's real id is read back from the job table) and from then on
//! kept, with their numbers, in a small exact map, so every answer is exact.

use std::collections::{HashMap, HashSet};

use super::table::{JobNo, JobRecord, JobTable};
use crate::digest::{digest, DigestMap};
use crate::error::Result;

/// Job ids to numbers.
#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    /// Digest to the first job with it.
    map: DigestMap<JobNo>,
    /// Digests two different ids share; their jobs are in `exact`.
    ambiguous: HashSet<u64>,
    exact: HashMap<Box<str>, JobNo>,
}

impl IdIndex {
    /// Adds `id` as job `n`, unless the index already has it: then the
    /// number it has.
    pub(crate) fn insert(&mut self, id: &str, n: JobNo, table: &JobTable) -> Result<Option<JobNo>> {
        self.insert_digest(digest(id), id, n, table)
    }

    fn insert_digest(
        &mut self,
        d: u64,
        id: &str,
        n: JobNo,
        table: &JobTable,
    ) -> Result<Option<JobNo>> {
        if self.ambiguous.contains(&d) {
            if let Some(&e) = self.exact.get(id) {
                return Ok(Some(e));
            }
            self.exact.insert(id.into(), n);
            return Ok(None);
        }
        let (slot, new) = self.map.entry(d);
        if new {
            *slot = n;
            return Ok(None);
        }
        let candidate = *slot;
        let other = table.record(candidate)?.id;
        if other == id {
            return Ok(Some(candidate));
        }
        // Two ids, one digest: both are known exactly from now on.
        self.ambiguous.insert(d);
        self.exact.insert(other.into(), candidate);
        self.exact.insert(id.into(), n);
        Ok(None)
    }

    /// The number and record of `id`, checked against the record.
    pub(crate) fn find(&self, id: &str, table: &JobTable) -> Result<Option<(JobNo, JobRecord)>> {
        self.find_digest(digest(id), id, table)
    }

    fn find_digest(
        &self,
        d: u64,
        id: &str,
        table: &JobTable,
    ) -> Result<Option<(JobNo, JobRecord)>> {
        let n = if self.ambiguous.contains(&d) {
            self.exact.get(id).copied()
        } else {
            self.map.get(d)
        };
        let Some(n) = n else {
            return Ok(None);
        };
        let rec = table.record(n)?;
        Ok((rec.id == id).then_some((n, rec)))
    }

    /// The number of an id known to be in the table (one the journal named
    /// after writing its job line): no record is read back, since no other
    /// job can hold an unshared digest.
    pub(crate) fn find_known(&self, id: &str) -> Option<JobNo> {
        let d = digest(id);
        if self.ambiguous.contains(&d) {
            return self.exact.get(id).copied();
        }
        self.map.get(d)
    }

    /// Ids held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len() + self.exact.len() - self.ambiguous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(t: &mut JobTable, ix: &mut IdIndex, id: &str) -> Option<JobNo> {
        let n = t.len() as JobNo;
        let existing = ix.insert(id, n, t).unwrap();
        if existing.is_none() {
            push_record(t, id);
        }
        existing
    }

    fn push_record(t: &mut JobTable, id: &str) {
        t.push(&JobRecord {
            id: id.into(),
            offset: 0,
            fingerprint: 0,
            approx_bytes: 0,
            model: 0,
            has_file: false,
            light: None,
        })
        .unwrap();
    }

    #[test]
    fn ids_are_found_exactly_and_repeats_are_told() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = JobTable::new(&dir.path().join("s")).unwrap();
        let mut ix = IdIndex::default();
        for i in 0..50_000 {
            assert_eq!(push(&mut t, &mut ix, &format!("j{i}")), None);
        }
        assert_eq!(push(&mut t, &mut ix, "j17"), Some(17));
        assert_eq!(ix.find("j49999", &t).unwrap().map(|f| f.0), Some(49_999));
        assert_eq!(ix.find("j50000", &t).unwrap(), None);
        assert_eq!(ix.find_known("j3"), Some(3));
        assert_eq!(ix.len(), 50_000);
    }

    #[test]
    fn two_ids_with_one_digest_are_both_kept_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = JobTable::new(&dir.path().join("s")).unwrap();
        let mut ix = IdIndex::default();
        // The clash a 64-bit digest makes once in 2^64, forced: "a" and
        // "b" under one digest.
        for id in ["a", "b"] {
            let n = t.len() as JobNo;
            assert_eq!(ix.insert_digest(7, id, n, &t).unwrap(), None);
            push_record(&mut t, id);
        }
        let found = |id| ix.find_digest(7, id, &t).unwrap().map(|f| f.0);
        assert_eq!(found("a"), Some(0));
        assert_eq!(found("b"), Some(1));
        assert_eq!(found("c"), None);
        assert_eq!(ix.insert_digest(7, "b", 2, &t).unwrap(), Some(1));
        assert_eq!(ix.len(), 2);
    }
}
