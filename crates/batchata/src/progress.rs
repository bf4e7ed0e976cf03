//! The live progress display (cargo feature `progress`): what a person sees
//! while a run goes on. The `batchata` CLI uses it; library users get the
//! same view with [`crate::Batch::live_progress`], or build a
//! [`LiveDisplay`] and pass its [`LiveDisplay::update`] to
//! [`crate::Batch::on_progress`].
//!
//! On a terminal: a view redrawn in place (indicatif) — a job bar with
//! elapsed time, rate and ETA; one line per active provider batch (provider,
//! batch id, status with a spinner, done/total, cost), at most
//! [`MAX_BATCH_LINES`] of them; a line counting the batches finished, queued
//! and not shown; cost against the limit. Elsewhere (a pipe, a CI log):
//! plain lines, one per batch state change plus a periodic summary, with no
//! escape codes. Either way the run ends with [`summary`], a small table of
//! what happened and where the results are.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::run::{BatchPhase, BatchProgress, RunStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How many batch lines the live view shows at once; the others are counted.
pub const MAX_BATCH_LINES: usize = 8;
/// How often the plain view prints a summary line.
const PLAIN_SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// How a [`LiveDisplay`] draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayMode {
    /// Redrawn in place on a terminal.
    Live,
    /// Plain lines, for pipes and logs.
    Plain,
    /// Nothing.
    Quiet,
}

impl DisplayMode {
    /// `Live` when stderr is a terminal, `Plain` otherwise.
    pub fn detect() -> DisplayMode {
        if std::io::stderr().is_terminal() {
            DisplayMode::Live
        } else {
            DisplayMode::Plain
        }
    }

    /// How often the run should report progress to a display of this mode:
    /// often enough for a smooth live view, sparingly for plain lines.
    pub fn progress_interval(self) -> Duration {
        match self {
            DisplayMode::Live => Duration::from_millis(100),
            DisplayMode::Plain | DisplayMode::Quiet => Duration::from_millis(500),
        }
    }
}

/// The progress view of one run. Cheap to share (`Arc`); [`update`] may be
/// called from any thread, and calls after the run's final status are
/// ignored, so the engine's last report and an explicit [`finish`] can both
/// arrive without drawing twice.
///
/// [`update`]: LiveDisplay::update
/// [`finish`]: LiveDisplay::finish
pub struct LiveDisplay {
    mode: DisplayMode,
    state: Mutex<View>,
}

enum View {
    Quiet,
    Live(Box<Live>),
    Plain(Plain),
    /// The final status was shown; later updates change nothing.
    Done,
}

struct Live {
    multi: MultiProgress,
    jobs: ProgressBar,
    /// Bars of the batches on screen, by batch index (ordered).
    rows: BTreeMap<usize, ProgressBar>,
    /// Finished / queued / hidden batches.
    footer: ProgressBar,
    /// The folded warnings, added above the cost line at the first one.
    warn: Option<ProgressBar>,
    cost: ProgressBar,
    row_style: ProgressStyle,
    rate: Rate,
    /// The terminal's width when the view started: lines printed above it
    /// are wrapped to it, since the view is redrawn by counting lines.
    width: Option<u16>,
}

struct Plain {
    out: Box<dyn Write + Send>,
    seen: HashMap<usize, String>,
    last_summary: Option<Duration>,
    rate: Rate,
}

/// Dollars with enough digits to see small costs: `$12.35`, `$0.0123`, `$0.000046`.
pub fn usd(v: f64) -> String {
    if v == 0.0 {
        "$0.00".to_string()
    } else if v.abs() >= 1.0 {
        format!("${v:.2}")
    } else if v.abs() >= 0.01 {
        format!("${v:.4}")
    } else {
        format!("${v:.6}")
    }
}

/// One batch's jobs as far as anyone knows: the results recorded, or the
/// provider's live request counts when they say more (a batch's results are
/// downloaded only when it ends, but the provider counts its requests as they
/// finish). `(ended, failed, cancelled)`; failed includes expired.
pub fn batch_counts(b: &BatchProgress) -> (usize, usize, usize) {
    let c = &b.counts;
    let failed = (c.errored + c.expired) as usize;
    let cancelled = c.cancelled as usize;
    let at_provider = c.succeeded as usize + failed + cancelled;
    (b.done.max(at_provider).min(b.total), failed, cancelled)
}

/// One batch: its number (the one log lines and messages use), what matters
/// first, the long id last (a narrow terminal cuts it).
fn batch_line(b: &BatchProgress) -> String {
    let (ended, failed, cancelled) = batch_counts(b);
    let mut extra = Vec::new();
    if failed > 0 {
        extra.push(format!("{failed} failed"));
    }
    if cancelled > 0 {
        extra.push(format!("{cancelled} cancelled"));
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("{} · ", extra.join(", "))
    };
    format!(
        "#{:<3} {:<9} {:<12} {:>6}/{:<6} {:>10}  {extra}{}",
        b.index,
        b.provider.as_str(),
        b.status,
        ended,
        b.total,
        usd(b.cost_usd),
        b.batch_id.as_deref().unwrap_or("(not created yet)")
    )
}

/// The run's jobs as far as anyone knows: the results recorded, plus what
/// the provider reports finished in batches still open but not recorded yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Jobs with an answer.
    pub completed: usize,
    /// Jobs that failed (errored or expired at the provider).
    pub failed: usize,
    /// Jobs cancelled.
    pub cancelled: usize,
    /// All jobs.
    pub total: usize,
}

impl Tally {
    /// Adds up a status snapshot.
    pub fn of(s: &RunStatus) -> Tally {
        let mut t = Tally {
            completed: s.completed,
            failed: s.failed,
            cancelled: s.cancelled,
            total: s.total,
        };
        if s.is_complete {
            return t;
        }
        for b in s.batches.iter().filter(|b| !b.finished) {
            let c = &b.counts;
            let at_provider = (c.succeeded + c.errored + c.expired + c.cancelled) as usize;
            // Finished at the provider but not recorded yet: failures and
            // cancellations first (they are few and recorded like the rest).
            let mut extra = at_provider.min(b.total).saturating_sub(b.done);
            let f = extra.min((c.errored + c.expired) as usize);
            extra -= f;
            let k = extra.min(c.cancelled as usize);
            extra -= k;
            t.failed += f;
            t.cancelled += k;
            t.completed += extra;
        }
        // Never more than all the jobs, whatever a provider says.
        let over = (t.completed + t.failed + t.cancelled).saturating_sub(t.total);
        t.completed = t.completed.saturating_sub(over);
        t
    }

    /// Jobs the providers worked on: answered or failed, not cancelled.
    pub fn processed(&self) -> usize {
        self.completed + self.failed
    }

    /// Jobs not ended yet.
    pub fn remaining(&self) -> usize {
        self.total
            .saturating_sub(self.completed + self.failed + self.cancelled)
    }
}

fn cost_line(s: &RunStatus) -> String {
    let t = Tally::of(s);
    let limit = match s.cost_limit_usd {
        Some(l) => format!(" of {} limit", usd(l)),
        None => String::new(),
    };
    let reserved = if s.cost_reserved_usd > 0.0 {
        format!(" (+{} reserved in flight)", usd(s.cost_reserved_usd))
    } else {
        String::new()
    };
    // The counts first: a narrow terminal cuts the end of the line.
    format!(
        "{} completed, {} failed, {} cancelled · cost {}{limit}{reserved}",
        t.completed,
        t.failed,
        t.cancelled,
        usd(s.cost_used_usd),
    )
}

/// The recoverable warnings folded into one line, or `None` when there are
/// none: `3 polls rate-limited, retrying · latest: batch 2: ...`.
pub fn warning_line(s: &RunStatus) -> Option<String> {
    let mut parts = Vec::new();
    let polls = |n: usize| if n == 1 { "poll" } else { "polls" };
    if s.polls_rate_limited > 0 {
        let n = s.polls_rate_limited;
        parts.push(format!("{n} {} rate-limited", polls(n)));
    }
    let other = s.poll_failures.saturating_sub(s.polls_rate_limited);
    if other > 0 {
        parts.push(format!("{other} {} failed", polls(other)));
    }
    if s.download_retries > 0 {
        parts.push(format!("{} downloads/cancels failed", s.download_retries));
    }
    if parts.is_empty() {
        return None;
    }
    let latest = s
        .last_warning
        .as_deref()
        .map(|w| format!(" · latest: {w}"))
        .unwrap_or_default();
    Some(format!("! {}, retrying{latest}", parts.join(", ")))
}

/// How long progress must be watched, and how many jobs must end in that
/// time, before a rate means something.
const MIN_SAMPLE: Duration = Duration::from_secs(5);
const MIN_SAMPLE_JOBS: usize = 3;
/// Time constant of the rate's smoothing: older samples fade over about this long.
const RATE_SMOOTHING: Duration = Duration::from_secs(30);

/// The jobs-per-second rate, measured from what this display saw happen
/// (a resumed run's earlier results are not part of it; cancelled jobs are
/// not work done) and smoothed, so the ETA does not jump with each batch.
#[derive(Debug, Default)]
pub struct Rate {
    /// When the display first saw the run, and the jobs processed then.
    start: Option<(Duration, usize)>,
    /// The last sample folded in.
    last: Option<(Duration, usize)>,
    /// The smoothed rate, once the sample is meaningful.
    smoothed: Option<f64>,
}

impl Rate {
    /// Folds in the jobs processed so far at `elapsed`.
    pub fn observe(&mut self, elapsed: Duration, processed: usize) {
        let (t0, n0) = *self.start.get_or_insert((elapsed, processed));
        match self.smoothed {
            None => {
                let dt = elapsed.saturating_sub(t0);
                let dn = processed.saturating_sub(n0);
                if dt >= MIN_SAMPLE && dn >= MIN_SAMPLE_JOBS {
                    self.smoothed = Some(dn as f64 / dt.as_secs_f64());
                    self.last = Some((elapsed, processed));
                }
            }
            Some(rate) => {
                let (t1, n1) = self.last.unwrap_or((t0, n0));
                let dt = elapsed.saturating_sub(t1);
                if dt < Duration::from_secs(1) {
                    return;
                }
                let now = processed.saturating_sub(n1) as f64 / dt.as_secs_f64();
                let alpha = 1.0 - (-dt.as_secs_f64() / RATE_SMOOTHING.as_secs_f64()).exp();
                self.smoothed = Some(rate + alpha * (now - rate));
                self.last = Some((elapsed, processed));
            }
        }
    }

    /// `12.5 jobs/s · ETA 2m 05s` once the sample means something.
    pub fn text(&self, processed: usize, remaining: usize) -> String {
        match self.smoothed {
            _ if remaining == 0 => "all jobs ended".to_string(),
            Some(rate) if rate > 0.0 => format!(
                "{rate:.1} jobs/s · ETA {}",
                short_duration(remaining as f64 / rate)
            ),
            Some(_) => "no job ended lately · ETA unknown".to_string(),
            None if processed == 0 => "waiting for the first results".to_string(),
            None => "measuring the rate".to_string(),
        }
    }
}

/// `45s`, `2m 05s`, `3h 20m`.
fn short_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// Batches on screen (active ones, by index, at most [`MAX_BATCH_LINES`]) and
/// the footer counting the rest.
fn split_batches(s: &RunStatus) -> (Vec<&BatchProgress>, String) {
    let active: Vec<&BatchProgress> = s
        .batches
        .iter()
        .filter(|b| !b.finished && b.phase != BatchPhase::Queued)
        .collect();
    let finished = s.batches.iter().filter(|b| b.finished).count();
    let queued = s
        .batches
        .iter()
        .filter(|b| !b.finished && b.phase == BatchPhase::Queued)
        .count();
    let hidden = active.len().saturating_sub(MAX_BATCH_LINES);
    let mut parts = vec![format!(
        "batches: {} active, {finished} finished, {queued} queued",
        active.len()
    )];
    if hidden > 0 {
        parts.push(format!("{hidden} active not shown"));
    }
    let shown = active.into_iter().take(MAX_BATCH_LINES).collect();
    (shown, parts.join(" · "))
}

impl LiveDisplay {
    /// A display for a run of `total` jobs: live when stderr is a terminal,
    /// plain lines on stderr otherwise.
    pub fn new(total: usize) -> LiveDisplay {
        LiveDisplay::with_mode(total, DisplayMode::detect())
    }

    /// A display in the given mode, drawing on stderr.
    pub fn with_mode(total: usize, mode: DisplayMode) -> LiveDisplay {
        let view = match mode {
            DisplayMode::Quiet => View::Quiet,
            DisplayMode::Plain => View::Plain(Plain {
                out: Box::new(std::io::stderr()),
                seen: HashMap::new(),
                last_summary: None,
                rate: Rate::default(),
            }),
            DisplayMode::Live => View::Live(Box::new(Live::new(
                total,
                ProgressDrawTarget::stderr_with_hz(10),
                console::Term::stderr().size_checked().map(|(_, cols)| cols),
            ))),
        };
        LiveDisplay {
            mode,
            state: Mutex::new(view),
        }
    }

    /// A plain-lines display writing to `out` (a log file, a buffer).
    pub fn plain_to(out: Box<dyn Write + Send>) -> LiveDisplay {
        LiveDisplay {
            mode: DisplayMode::Plain,
            state: Mutex::new(View::Plain(Plain {
                out,
                seen: HashMap::new(),
                last_summary: None,
                rate: Rate::default(),
            })),
        }
    }

    /// A live display drawing on `target` — e.g. an
    /// `indicatif::InMemoryTerm` to look at what a terminal would show.
    pub fn live_to(total: usize, target: ProgressDrawTarget) -> LiveDisplay {
        LiveDisplay {
            mode: DisplayMode::Live,
            state: Mutex::new(View::Live(Box::new(Live::new(total, target, None)))),
        }
    }

    /// The mode this display draws in.
    pub fn mode(&self) -> DisplayMode {
        self.mode
    }

    /// Shows a status snapshot; pass this to [`crate::Batch::on_progress`].
    pub fn update(&self, s: &RunStatus, elapsed: Duration) {
        let mut view = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *view {
            View::Quiet | View::Done => {}
            View::Live(live) => live.update(s, elapsed),
            View::Plain(plain) => plain.update(s, elapsed),
        }
        if s.is_complete {
            if let View::Live(live) = &*view {
                live.finish();
            }
            *view = View::Done;
        }
    }

    /// Runs `f` (which writes to stderr: a log line, a notice) with the live
    /// view lifted off the screen, then draws the view again below what `f`
    /// wrote — so other output never tears the view.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        let view = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &*view {
            View::Live(live) => live.multi.suspend(f),
            _ => f(),
        }
    }

    /// Prints a line above the live view (or among the plain lines; on
    /// stderr when quiet).
    pub fn println(&self, line: &str) {
        let mut view = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *view {
            View::Live(live) => {
                // A line the terminal wraps would take a row the redraw does
                // not know about, leaving a stale copy of the view above it.
                // One println per row: the redraw counts one row per call.
                let wrapped = match live.width {
                    Some(w) => wrap_to(line, usize::from(w).saturating_sub(1).max(20)),
                    None => line.to_string(),
                };
                for row in wrapped.lines() {
                    let _ = live.multi.println(row);
                }
            }
            View::Plain(plain) => {
                let _ = writeln!(plain.out, "{line}");
                let _ = plain.out.flush();
            }
            View::Quiet | View::Done => eprintln!("{line}"),
        }
    }

    /// Shows the final status (if the run's own last report has not already)
    /// and leaves the screen ready for the summary.
    pub fn finish(&self, s: &RunStatus, elapsed: Duration) {
        let mut last = s.clone();
        last.is_complete = true;
        self.update(&last, elapsed);
    }
}

/// `line` broken at spaces into lines of at most `width` characters (a word
/// longer than that stands on a line of its own).
fn wrap_to(line: &str, width: usize) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    for (i, para) in line.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut col = 0;
        for word in para.split(' ') {
            let n = word.chars().count();
            if col > 0 && col + 1 + n > width {
                out.push('\n');
                col = 0;
            } else if col > 0 {
                out.push(' ');
                col += 1;
            }
            out.push_str(word);
            col += n;
        }
    }
    out
}

impl Live {
    fn new(total: usize, target: ProgressDrawTarget, width: Option<u16>) -> Live {
        let multi = MultiProgress::with_draw_target(target);
        let jobs = multi.add(ProgressBar::new(total as u64));
        jobs.set_style(
            ProgressStyle::with_template(
                "{spinner:.green} {elapsed_precise} [{wide_bar:.cyan/blue}] {pos}/{len} jobs · {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let plain = ProgressStyle::with_template("  {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let footer = multi.add(ProgressBar::new_spinner());
        footer.set_style(plain.clone());
        let cost = multi.add(ProgressBar::new_spinner());
        cost.set_style(plain);
        let row_style = ProgressStyle::with_template("  {spinner:.green} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Live {
            multi,
            jobs,
            rows: BTreeMap::new(),
            footer,
            warn: None,
            cost,
            row_style,
            rate: Rate::default(),
            width,
        }
    }

    fn update(&mut self, s: &RunStatus, elapsed: Duration) {
        // The bar counts the jobs the providers worked on; cancelled ones
        // are counted apart (cost line), never as done.
        let t = Tally::of(s);
        self.rate.observe(elapsed, t.processed());
        self.jobs.set_length(s.total as u64);
        self.jobs.set_position(t.processed() as u64);
        self.jobs
            .set_message(self.rate.text(t.processed(), t.remaining()));
        self.jobs.tick();
        let (shown, footer) = split_batches(s);
        // Rows of batches no longer shown go; new ones come in index order,
        // each placed before the first shown batch with a higher index.
        let keep: Vec<usize> = shown.iter().map(|b| b.index).collect();
        let gone: Vec<usize> = self
            .rows
            .keys()
            .filter(|i| !keep.contains(i))
            .copied()
            .collect();
        for i in gone {
            if let Some(bar) = self.rows.remove(&i) {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }
        for b in shown {
            let bar = match self.rows.get(&b.index) {
                Some(bar) => bar.clone(),
                None => {
                    let next = self.rows.range(b.index + 1..).next().map(|(_, bar)| bar);
                    let bar = ProgressBar::new_spinner().with_style(self.row_style.clone());
                    let bar = match next {
                        Some(n) => self.multi.insert_before(n, bar),
                        None => self.multi.insert_before(&self.footer, bar),
                    };
                    self.rows.insert(b.index, bar.clone());
                    bar
                }
            };
            bar.set_message(batch_line(b));
            bar.tick();
        }
        self.footer.set_message(footer);
        if let Some(w) = warning_line(s) {
            let bar = self.warn.get_or_insert_with(|| {
                let bar = ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("  {wide_msg:.yellow}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                self.multi.insert_before(&self.cost, bar)
            });
            bar.set_message(w);
        }
        self.cost.set_message(cost_line(s));
    }

    fn finish(&self) {
        for bar in self.rows.values() {
            bar.finish_and_clear();
            self.multi.remove(bar);
        }
        // `abandon`, not `finish`: finish would fill the bar, and a run
        // stopped early has jobs that were cancelled, never worked on.
        self.jobs.abandon();
        self.footer.finish();
        if let Some(w) = &self.warn {
            w.finish();
        }
        self.cost.finish();
    }
}

impl Plain {
    fn update(&mut self, s: &RunStatus, elapsed: Duration) {
        let at = elapsed.as_secs_f64();
        for b in &s.batches {
            if b.phase == BatchPhase::Queued {
                continue;
            }
            let key = format!("{}|{}", b.status, b.batch_id.as_deref().unwrap_or(""));
            if self.seen.get(&b.index) != Some(&key) {
                let _ = writeln!(self.out, "[{at:>7.1}s] batch {}", batch_line(b));
                self.seen.insert(b.index, key);
            }
        }
        let t = Tally::of(s);
        self.rate.observe(elapsed, t.processed());
        let due = self
            .last_summary
            .is_none_or(|last| elapsed >= last + PLAIN_SUMMARY_EVERY);
        if due || s.is_complete {
            self.last_summary = Some(elapsed);
            let (_, batches) = split_batches(s);
            let _ = writeln!(
                self.out,
                "[{at:>7.1}s] {}/{} jobs · {} · {} · {batches}",
                t.processed(),
                s.total,
                self.rate.text(t.processed(), t.remaining()),
                cost_line(s)
            );
        }
        let _ = self.out.flush();
    }
}

/// The table a run ends with: completed, failed, cancelled, cost, time, and
/// where the results are.
pub fn summary(s: &RunStatus, elapsed: Duration, results_dir: &Path) -> String {
    let mut out = String::new();
    let mut row = |k: &str, v: String| {
        out.push_str(&format!("  {k:<10} {v}\n"));
    };
    row("completed", s.completed.to_string());
    row("failed", s.failed.to_string());
    row("cancelled", s.cancelled.to_string());
    let limit = s
        .cost_limit_usd
        .map(|l| format!(" (limit {})", usd(l)))
        .unwrap_or_default();
    row("cost", format!("{}{limit}", usd(s.cost_used_usd)));
    row("time", format!("{:.1}s", elapsed.as_secs_f64()));
    row("results", results_dir.display().to_string());
    if let Some(reason) = s.stop_reason {
        let why = match reason {
            crate::StopReason::Interrupted => "interrupted; active batches were cancelled",
            crate::StopReason::Drain => "stopped submitting; active batches were let finish",
            crate::StopReason::TimeLimit => "time limit reached; active batches were cancelled",
            crate::StopReason::AuthFailed => {
                "the provider refused the API key; batches in flight continue at the provider"
            }
            crate::StopReason::Failed => {
                "stopped after an error on our side; nothing more was submitted"
            }
        };
        row("stopped", why.to_string());
    }
    out
}

impl crate::Batch {
    /// Shows the live display while the run goes on (plain lines when
    /// stderr is not a terminal), and the [`summary`] on stderr at the end.
    pub fn live_progress(self) -> Self {
        let display = Arc::new(LiveDisplay::new(self.jobs.len()));
        let results_dir: PathBuf = self.params().results_dir.clone();
        let interval = display.mode().progress_interval();
        self.progress_interval(interval).on_progress(move |s, e| {
            let last = s.is_complete && display.mode() != DisplayMode::Quiet;
            display.update(s, e);
            if last {
                eprint!("\n{}", summary(s, e, &results_dir));
            }
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn lines_printed_above_the_view_are_wrapped_to_the_terminal() {
        let msg = "Interrupted: submitting nothing new and cancelling the active batches; what they finished is kept (Ctrl+C again exits at once, the state is saved).";
        let w = wrap_to(msg, 79);
        assert!(w.lines().count() >= 2, "{w}");
        assert!(w.lines().all(|l| l.chars().count() <= 79), "{w}");
        assert_eq!(w.replace('\n', " "), msg);
        assert_eq!(wrap_to("a\nb c", 3), "a\nb c");
    }

    use super::*;

    #[test]
    fn the_rate_waits_for_a_meaningful_sample_then_smooths() {
        let mut r = Rate::default();
        // A resumed run starts with 500 jobs done: they are not this run's rate.
        assert_eq!(r.text(0, 100), "waiting for the first results");
        r.observe(Duration::from_millis(100), 500);
        assert_eq!(r.text(500, 100), "measuring the rate");
        r.observe(Duration::from_secs(2), 510);
        assert_eq!(r.text(510, 90), "measuring the rate");
        r.observe(Duration::from_secs(10), 550);
        // 50 jobs in ~9.9 s.
        assert_eq!(r.text(550, 50), "5.1 jobs/s · ETA 10s");
        // A burst of a whole batch moves the rate, not by the whole burst.
        r.observe(Duration::from_secs(11), 590);
        let burst = r.smoothed.unwrap();
        assert!(burst > 5.0 && burst < 7.0, "{burst}");
        assert_eq!(r.text(600, 0), "all jobs ended");
        assert_eq!(short_duration(2.0 * 3600.0 + 61.0), "2h 01m");
    }

    #[test]
    fn provider_counts_show_inside_a_batch_and_apart_by_outcome() {
        let mut b = BatchProgress {
            index: 3,
            provider: crate::ProviderKind::OpenAi,
            batch_id: Some("batch_1".into()),
            phase: BatchPhase::Running,
            status: "in_progress".into(),
            total: 10,
            done: 0,
            cost_usd: 0.0,
            finished: false,
            ..Default::default()
        };
        b.counts.succeeded = 4;
        b.counts.errored = 1;
        b.counts.cancelled = 2;
        b.counts.processing = 3;
        assert_eq!(batch_counts(&b), (7, 1, 2));
        let line = batch_line(&b);
        assert!(line.starts_with("#3 "), "{line}");
        assert!(line.contains("     7/10"), "{line}");
        assert!(line.contains("1 failed, 2 cancelled"), "{line}");
        let s = RunStatus {
            total: 30,
            completed: 5,
            failed: 1,
            batches: vec![b],
            ..Default::default()
        };
        let t = Tally::of(&s);
        assert_eq!((t.completed, t.failed, t.cancelled), (9, 2, 2));
        assert_eq!(t.processed(), 11);
        assert_eq!(t.remaining(), 17);
        assert!(cost_line(&s).starts_with("9 completed, 2 failed, 2 cancelled · cost"));
    }

    #[test]
    fn warnings_fold_into_one_line() {
        let mut s = RunStatus::default();
        assert_eq!(warning_line(&s), None);
        s.poll_failures = 4;
        s.polls_rate_limited = 3;
        s.last_warning = Some("batch 2: 429 rate limited".into());
        assert_eq!(
            warning_line(&s).unwrap(),
            "! 3 polls rate-limited, 1 poll failed, retrying · latest: batch 2: 429 rate limited"
        );
    }

    #[test]
    fn costs_keep_their_small_digits() {
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(12.345), "$12.35");
        assert_eq!(usd(0.0123), "$0.0123");
        assert_eq!(usd(0.000046), "$0.000046");
    }
}
