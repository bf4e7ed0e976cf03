//! The run's job table: four bytes of memory a job, the rest on disk.
//!
//! A run of a million jobs must not hold a million of anything large. Each
//! job is known by its number (its place in the journal's order); memory
//! holds only its status, packed in a `u32`. What else the run needs of a
//! job — its id, where its line sits in the journal, its fingerprint, model
//! and size — is a fixed-size record in a scratch file beside the journal,
//! read back by number or in order. The scratch file is derived data
//! (rebuilt from the journal at every open) and anonymous: the OS removes
//! it when the run ends, however it ends; the page cache, not the process,
//! holds what is read often.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::JobStatus;
use crate::error::{Error, Result};
use crate::result::JobOutcome;

/// A job's number: its place in the journal's order.
pub type JobNo = u32;

/// The longest job id (ids match `^[A-Za-z0-9_-]{1,64}$`).
pub(crate) const MAX_ID_BYTES: usize = 64;

/// Bytes of one record on disk.
const RECORD_BYTES: usize = 96;
/// Records read at a time by a scan.
const SCAN_RECORDS: usize = 2048;
/// Records kept in memory before they are written out.
const TAIL_RECORDS: usize = 4096;

/// What the run knows of a job besides its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// The job's id.
    pub id: String,
    /// Byte offset of the job's line in the journal.
    pub offset: u64,
    /// The first 64 bits of the job's fingerprint (0 when the journal
    /// predates fingerprints): how a rerun tells an edited job.
    pub fingerprint: u64,
    /// Approximate bytes the job adds to a provider request, saturating at
    /// 4 GiB (far past any provider's batch limit).
    pub approx_bytes: u32,
    /// The job's model, as an index into the run's model names.
    pub model: u16,
    /// The job sends a file.
    pub has_file: bool,
    /// For a job whose result needs nothing but its id, model and
    /// fingerprint (no file, no schema, no citations): the last 64 bits of
    /// its 128-bit fingerprint, so its record for parsing results is made
    /// from this one, without reading its journal line back.
    pub light: Option<u64>,
}

impl JobRecord {
    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        out[0..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..16].copy_from_slice(&self.fingerprint.to_le_bytes());
        out[16..20].copy_from_slice(&self.approx_bytes.to_le_bytes());
        out[20..22].copy_from_slice(&self.model.to_le_bytes());
        out[22] = u8::from(self.has_file) | if self.light.is_some() { 2 } else { 0 };
        let id = self.id.as_bytes();
        out[23] = id.len() as u8;
        out[24..24 + id.len()].copy_from_slice(id);
        out[88..96].copy_from_slice(&self.light.unwrap_or(0).to_le_bytes());
    }

    fn decode(b: &[u8]) -> JobRecord {
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let id_len = usize::from(b[23]).min(MAX_ID_BYTES);
        JobRecord {
            offset: u64_at(0),
            fingerprint: u64_at(8),
            approx_bytes: u32::from_le_bytes([b[16], b[17], b[18], b[19]]),
            model: u16::from_le_bytes([b[20], b[21]]),
            has_file: b[22] & 1 == 1,
            light: (b[22] & 2 == 2).then(|| u64_at(88)),
            id: String::from_utf8_lossy(&b[24..24 + id_len]).into_owned(),
        }
    }
}

/// A job's status packed in four bytes: pending, done (with the outcome
/// and whether it runs again on resume), or in batch `n`.
const PENDING: u32 = 0;
const RERUN: u32 = 4;
const IN_BATCH: u32 = 8;

fn pack(status: JobStatus, rerun: bool) -> u32 {
    match status {
        JobStatus::Pending => PENDING,
        JobStatus::Done(o) => {
            let base = match o {
                JobOutcome::Completed => 1,
                JobOutcome::Failed => 2,
                JobOutcome::Cancelled => 3,
            };
            base | if rerun { RERUN } else { 0 }
        }
        JobStatus::InBatch(b) => IN_BATCH.saturating_add(b),
    }
}

fn unpack(s: u32) -> (JobStatus, bool) {
    match s {
        PENDING => (JobStatus::Pending, false),
        s if s >= IN_BATCH => (JobStatus::InBatch(s - IN_BATCH), false),
        s => {
            let o = match s & 3 {
                1 => JobOutcome::Completed,
                2 => JobOutcome::Failed,
                _ => JobOutcome::Cancelled,
            };
            (JobStatus::Done(o), s & RERUN != 0)
        }
    }
}

/// Every job of a run: statuses in memory, records in a scratch file.
#[derive(Debug)]
pub(crate) struct JobTable {
    status: Vec<u32>,
    /// The scratch file of records.
    file: File,
    /// Records not yet written to `file` (the newest).
    tail: Vec<u8>,
    /// Records in `file`.
    flushed: usize,
    /// The journal, for messages.
    journal: PathBuf,
}

fn scratch_err(journal: &Path, e: std::io::Error) -> Error {
    Error::io("use the job table kept beside the state file", journal, e)
}

impl JobTable {
    /// An empty table whose scratch file sits beside `journal` (or in the
    /// temporary folder when that folder cannot be written).
    pub(crate) fn new(journal: &Path) -> Result<JobTable> {
        let dir = journal
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file = tempfile::tempfile_in(dir)
            .or_else(|_| tempfile::tempfile())
            .map_err(|e| scratch_err(journal, e))?;
        Ok(JobTable {
            status: Vec::new(),
            file,
            tail: Vec::new(),
            flushed: 0,
            journal: journal.to_path_buf(),
        })
    }

    /// Jobs in the table.
    pub(crate) fn len(&self) -> usize {
        self.status.len()
    }

    /// Room for `n` more jobs.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.status.reserve(n);
    }

    /// Adds a job, pending; returns its number.
    pub(crate) fn push(&mut self, rec: &JobRecord) -> Result<JobNo> {
        let n = JobNo::try_from(self.status.len()).map_err(|_| {
            Error::Validation(format!(
                "a run holds at most {} jobs; split the jobs into several runs",
                JobNo::MAX
            ))
        })?;
        if rec.id.len() > MAX_ID_BYTES {
            return Err(Error::Validation(format!(
                "job id '{}' is longer than {MAX_ID_BYTES} characters; give it a shorter id",
                rec.id
            )));
        }
        let at = self.tail.len();
        self.tail.resize(at + RECORD_BYTES, 0);
        rec.encode(&mut self.tail[at..]);
        self.status.push(PENDING);
        if self.tail.len() >= TAIL_RECORDS * RECORD_BYTES {
            self.flush()?;
        }
        Ok(n)
    }

    /// Writes the records held in memory to the scratch file.
    fn flush(&mut self) -> Result<()> {
        if self.tail.is_empty() {
            return Ok(());
        }
        write_at(&self.file, &self.tail, (self.flushed * RECORD_BYTES) as u64)
            .map_err(|e| scratch_err(&self.journal, e))?;
        self.flushed += self.tail.len() / RECORD_BYTES;
        self.tail.clear();
        Ok(())
    }

    fn check(&self, n: JobNo) -> Result<usize> {
        let i = n as usize;
        if i < self.status.len() {
            Ok(i)
        } else {
            Err(Error::Internal(format!(
                "job number {n} is not in the run's table of {} jobs",
                self.status.len()
            )))
        }
    }

    /// Job `n`'s record.
    pub(crate) fn record(&self, n: JobNo) -> Result<JobRecord> {
        let i = self.check(n)?;
        if i >= self.flushed {
            let at = (i - self.flushed) * RECORD_BYTES;
            return Ok(JobRecord::decode(&self.tail[at..at + RECORD_BYTES]));
        }
        let mut b = [0u8; RECORD_BYTES];
        read_exact_at(&self.file, &mut b, (i * RECORD_BYTES) as u64)
            .map_err(|e| scratch_err(&self.journal, e))?;
        Ok(JobRecord::decode(&b))
    }

    /// The records of jobs `nos`, in that order: each run of consecutive
    /// numbers is read at once (a batch's jobs are mostly one run), not a
    /// read per record.
    pub(crate) fn records(&self, nos: &[JobNo]) -> Result<Vec<JobRecord>> {
        const RUN: usize = 1024;
        let mut out = Vec::with_capacity(nos.len());
        let mut buf = Vec::new();
        let mut k = 0;
        while k < nos.len() {
            let first = self.check(nos[k])?;
            let mut len = 1;
            while len < RUN
                && k + len < nos.len()
                && nos[k + len] as usize == first + len
                && first + len < self.flushed
            {
                len += 1;
            }
            if len == 1 || first >= self.flushed {
                out.push(self.record(nos[k])?);
            } else {
                buf.resize(len * RECORD_BYTES, 0);
                read_exact_at(&self.file, &mut buf, (first * RECORD_BYTES) as u64)
                    .map_err(|e| scratch_err(&self.journal, e))?;
                out.extend(buf.chunks_exact(RECORD_BYTES).map(JobRecord::decode));
            }
            k += len;
        }
        Ok(out)
    }

    /// Replaces job `n`'s record (a changed job added again).
    pub(crate) fn set_record(&mut self, n: JobNo, rec: &JobRecord) -> Result<()> {
        let i = self.check(n)?;
        let mut b = [0u8; RECORD_BYTES];
        rec.encode(&mut b);
        if i >= self.flushed {
            let at = (i - self.flushed) * RECORD_BYTES;
            self.tail[at..at + RECORD_BYTES].copy_from_slice(&b);
            return Ok(());
        }
        write_at(&self.file, &b, (i * RECORD_BYTES) as u64)
            .map_err(|e| scratch_err(&self.journal, e))
    }

    /// Job `n`'s status (pending for a number past the table).
    pub(crate) fn status(&self, n: JobNo) -> JobStatus {
        self.status
            .get(n as usize)
            .map_or(JobStatus::Pending, |&s| unpack(s).0)
    }

    /// Whether job `n` is done but runs again on resume.
    pub(crate) fn rerun(&self, n: JobNo) -> bool {
        self.status.get(n as usize).is_some_and(|&s| unpack(s).1)
    }

    /// Sets job `n`'s status.
    pub(crate) fn set_status(&mut self, n: JobNo, status: JobStatus, rerun: bool) {
        if let Some(s) = self.status.get_mut(n as usize) {
            *s = pack(status, rerun);
        }
    }

    /// Every job's status, in order.
    pub(crate) fn statuses(&self) -> impl Iterator<Item = (JobNo, JobStatus, bool)> + '_ {
        self.status.iter().enumerate().map(|(i, &s)| {
            let (st, rerun) = unpack(s);
            (i as JobNo, st, rerun)
        })
    }

    /// Every job's record in order, read a block at a time.
    pub(crate) fn scan(&mut self) -> Result<RecordScan<'_>> {
        self.flush()?;
        Ok(RecordScan {
            table: self,
            buf: Vec::new(),
            next: 0,
            buf_first: 0,
        })
    }
}

/// The records of a [`JobTable`], in order ([`JobTable::scan`]).
pub struct RecordScan<'a> {
    table: &'a JobTable,
    buf: Vec<u8>,
    /// The next job to yield.
    next: usize,
    /// The job whose record starts `buf`.
    buf_first: usize,
}

impl Iterator for RecordScan<'_> {
    type Item = Result<(JobNo, JobStatus, JobRecord)>;

    fn next(&mut self) -> Option<Self::Item> {
        let t = self.table;
        if self.next >= t.flushed {
            return None;
        }
        let in_buf = self.next - self.buf_first;
        if in_buf * RECORD_BYTES >= self.buf.len() {
            let count = SCAN_RECORDS.min(t.flushed - self.next);
            self.buf.resize(count * RECORD_BYTES, 0);
            if let Err(e) = read_exact_at(&t.file, &mut self.buf, (self.next * RECORD_BYTES) as u64)
            {
                self.next = t.flushed;
                return Some(Err(scratch_err(&t.journal, e)));
            }
            self.buf_first = self.next;
        }
        let at = (self.next - self.buf_first) * RECORD_BYTES;
        let rec = JobRecord::decode(&self.buf[at..at + RECORD_BYTES]);
        let n = self.next as JobNo;
        self.next += 1;
        Some(Ok((n, t.status(n), rec)))
    }
}

fn write_at(file: &File, buf: &[u8], pos: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, pos)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            done +=
                std::os::windows::fs::FileExt::seek_write(file, &buf[done..], pos + done as u64)?;
        }
        Ok(())
    }
}

fn read_exact_at(file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, pos)
    }
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buf.len() {
            let n = std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buf[done..],
                pos + done as u64,
            )?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}

/// A set of job numbers held as ranges: a planned batch of a fresh run is
/// one range, however many jobs it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobRanges {
    ranges: Vec<(JobNo, JobNo)>,
    len: usize,
}

impl JobRanges {
    /// Adds `n` (after every number already held, for ranges to merge).
    pub fn push(&mut self, n: JobNo) {
        self.len += 1;
        if let Some(last) = self.ranges.last_mut() {
            if last.1 == n {
                last.1 = n + 1;
                return;
            }
        }
        self.ranges.push((n, n + 1));
    }

    /// Numbers held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The numbers, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = JobNo> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..b)
    }
}

impl FromIterator<JobNo> for JobRanges {
    fn from_iter<I: IntoIterator<Item = JobNo>>(it: I) -> Self {
        let mut r = JobRanges::default();
        for n in it {
            r.push(n);
        }
        r
    }
}

/// A set of job numbers, a bit each.
#[derive(Debug, Clone, Default)]
pub struct JobBits {
    words: Vec<u64>,
    len: usize,
}

impl JobBits {
    /// Adds `n`.
    pub(crate) fn insert(&mut self, n: JobNo) {
        let (w, b) = (n as usize / 64, n % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        if self.words[w] & (1 << b) == 0 {
            self.words[w] |= 1 << b;
            self.len += 1;
        }
    }

    /// Whether `n` is in.
    pub(crate) fn contains(&self, n: JobNo) -> bool {
        self.words
            .get(n as usize / 64)
            .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }

    /// Numbers held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether none is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, offset: u64) -> JobRecord {
        JobRecord {
            id: id.into(),
            offset,
            fingerprint: offset * 7,
            approx_bytes: 1000,
            model: 2,
            has_file: offset.is_multiple_of(2),
            light: offset.is_multiple_of(3).then_some(offset * 11),
        }
    }

    #[test]
    fn records_survive_the_scratch_file_and_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = JobTable::new(&dir.path().join("state.jsonl")).unwrap();
        for i in 0..10_000u64 {
            t.push(&rec(&format!("job-{i}"), i)).unwrap();
        }
        assert_eq!(t.record(3).unwrap(), rec("job-3", 3));
        assert_eq!(
            t.record(9_999).unwrap(),
            rec("job-9999", 9_999),
            "still in memory"
        );
        t.set_record(3, &rec("job-3", 42)).unwrap();
        t.set_status(5, JobStatus::Done(JobOutcome::Cancelled), true);
        t.set_status(6, JobStatus::in_batch(70_000), false);
        let all: Vec<_> = t.scan().unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(all.len(), 10_000);
        assert_eq!(all[3].2, rec("job-3", 42));
        assert_eq!(all[5].1, JobStatus::Done(JobOutcome::Cancelled));
        assert!(t.rerun(5));
        assert_eq!(all[6].1, JobStatus::in_batch(70_000));
        assert_eq!(all[9_999].2.id, "job-9999");
        assert!(t.record(10_000).is_err());
        let long = "x".repeat(65);
        assert!(t.push(&rec(&long, 1)).is_err());
    }

    #[test]
    fn records_read_in_runs_are_those_read_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = JobTable::new(&dir.path().join("state.jsonl")).unwrap();
        let n = (TAIL_RECORDS * 2 + 100) as u64;
        for i in 0..n {
            t.push(&rec(&format!("job-{i}"), i)).unwrap();
        }
        // Runs longer than a read, across the flushed part and the tail,
        // out of order, repeated and single.
        let mut nos: Vec<JobNo> = (5..3_000).collect();
        nos.extend([2, 2, 9, (n - 1) as JobNo, 0]);
        nos.extend((n as JobNo - 150)..(n as JobNo));
        let got = t.records(&nos).unwrap();
        let want: Vec<_> = nos.iter().map(|&k| t.record(k).unwrap()).collect();
        assert_eq!(got, want);
        assert!(t.records(&[1, n as JobNo]).is_err());
    }

    #[test]
    fn bits_hold_what_was_put_in() {
        let mut b = JobBits::default();
        assert!(b.is_empty());
        for n in [0, 63, 64, 1_000_000, 63] {
            b.insert(n);
        }
        assert_eq!(b.len(), 4);
        assert!(b.contains(64) && b.contains(1_000_000) && !b.contains(65));
    }

    #[test]
    fn ranges_merge_neighbours_and_keep_order() {
        let r: JobRanges = [1, 2, 3, 7, 8, 4].into_iter().collect();
        assert_eq!(r.len(), 6);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![1, 2, 3, 7, 8, 4]);
        assert_eq!(r.ranges.len(), 3);
    }
}
