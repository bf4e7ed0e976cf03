//! The live progress display (cargo feature `progress`): what a person sees
//! while a run goes on. The `batchata` CLI uses it; library users get the
//! same view with [`crate::Batch::live_progress`].
//!
//! On a terminal: a live view redrawn in place (indicatif) — a job bar with
//! rate and ETA, one line per active provider batch with a spinner, cost
//! against the limit, elapsed time. Elsewhere (a pipe, a CI log): plain
//! lines, one per batch state change plus a periodic summary, no escape codes.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use crate::run::{BatchProgress, RunStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How many batch lines the live view shows at once.
const MAX_BATCH_LINES: usize = 8;
/// How often the plain view prints a summary line.
const PLAIN_SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// The progress view of one run.
pub enum Display {
    /// Nothing (quiet).
    Quiet,
    /// Redrawn in place on a terminal.
    Live(Box<Live>),
    /// Plain lines.
    Plain(Mutex<Plain>),
}

/// State of the live view.
pub struct Live {
    _multi: MultiProgress,
    jobs: ProgressBar,
    cost: ProgressBar,
    batches: Vec<ProgressBar>,
    spinning: ProgressStyle,
    blank: ProgressStyle,
}

/// State of the plain view.
#[derive(Default)]
pub struct Plain {
    seen: HashMap<usize, String>,
    last_summary: Duration,
}

fn batch_line(b: &BatchProgress) -> String {
    format!(
        "{:<9} {:<34} {:<12} {:>5}/{:<5} ${:.4}",
        b.provider.as_str(),
        b.batch_id.as_deref().unwrap_or("(not created yet)"),
        b.status,
        b.done,
        b.total,
        b.cost_usd
    )
}

fn cost_line(s: &RunStatus) -> String {
    let limit = match s.cost_limit_usd {
        Some(l) => format!(" of ${l:.2} limit"),
        None => String::new(),
    };
    format!(
        "cost ${:.4}{limit} (reserved ${:.4}) · batches {}/{} done · {} ok, {} failed, {} cancelled",
        s.cost_used_usd,
        s.cost_reserved_usd,
        s.batches_completed,
        s.batches_total,
        s.completed,
        s.failed,
        s.cancelled
    )
}

impl Display {
    /// The right view for stderr: live on a terminal, plain otherwise;
    /// nothing when `quiet`. `total` is the number of jobs.
    pub fn new(quiet: bool, total: usize) -> Display {
        if quiet {
            return Display::Quiet;
        }
        if !std::io::stderr().is_terminal() {
            return Display::Plain(Mutex::new(Plain::default()));
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let jobs = multi.add(ProgressBar::new(total as u64));
        jobs.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise:.dim} [{bar:40.cyan/blue}] {pos}/{len} jobs · {per_sec} · ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let cost = multi.add(ProgressBar::new_spinner());
        cost.set_style(
            ProgressStyle::with_template("  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let style = ProgressStyle::with_template("  {spinner:.green} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let batches = (0..MAX_BATCH_LINES)
            .map(|_| {
                let b = multi.add(ProgressBar::new_spinner());
                b.set_style(style.clone());
                b
            })
            .collect();
        let blank = ProgressStyle::with_template("  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Display::Live(Box::new(Live {
            _multi: multi,
            jobs,
            cost,
            batches,
            spinning: style,
            blank,
        }))
    }

    /// Shows a status snapshot.
    pub fn update(&self, s: &RunStatus, elapsed: Duration) {
        match self {
            Display::Quiet => {}
            Display::Live(live) => {
                let done = s.completed + s.failed + s.cancelled;
                live.jobs.set_length(s.total as u64);
                live.jobs.set_position(done as u64);
                live.cost.set_message(cost_line(s));
                let active: Vec<&BatchProgress> = s
                    .batches
                    .iter()
                    .filter(|b| !b.finished && b.status != "queued")
                    .collect();
                let queued = s.batches.iter().filter(|b| b.status == "queued").count();
                for (i, bar) in live.batches.iter().enumerate() {
                    match active.get(i) {
                        Some(b) => {
                            bar.set_style(live.spinning.clone());
                            bar.set_message(batch_line(b));
                            bar.tick();
                        }
                        None if i == active.len()
                            && (queued > 0 || active.len() > MAX_BATCH_LINES) =>
                        {
                            let more = active.len().saturating_sub(MAX_BATCH_LINES);
                            bar.set_message(format!(
                                "… {queued} batches queued{}",
                                if more > 0 {
                                    format!(", {more} more active")
                                } else {
                                    String::new()
                                }
                            ));
                        }
                        None => {
                            bar.set_style(live.blank.clone());
                            bar.set_message("");
                        }
                    }
                }
                if s.is_complete {
                    live.jobs.finish();
                    for b in &live.batches {
                        b.finish_and_clear();
                    }
                    live.cost.finish();
                }
            }
            Display::Plain(plain) => {
                let mut p = plain.lock().unwrap_or_else(|e| e.into_inner());
                for b in &s.batches {
                    let key = format!("{}|{}", b.status, b.batch_id.as_deref().unwrap_or(""));
                    if p.seen.get(&b.index) != Some(&key) && b.status != "queued" {
                        eprintln!(
                            "[{:>7.1}s] batch {:>3} {}",
                            elapsed.as_secs_f64(),
                            b.index,
                            batch_line(b)
                        );
                        p.seen.insert(b.index, key);
                    }
                }
                if elapsed >= p.last_summary + PLAIN_SUMMARY_EVERY || s.is_complete {
                    p.last_summary = elapsed;
                    let done = s.completed + s.failed + s.cancelled;
                    eprintln!(
                        "[{:>7.1}s] {done}/{} jobs · {}",
                        elapsed.as_secs_f64(),
                        s.total,
                        cost_line(s)
                    );
                }
            }
        }
    }
}

impl crate::Batch {
    /// Shows the live display (plain lines when stderr is not a terminal)
    /// while the run goes on.
    pub fn live_progress(self) -> Self {
        let display = std::sync::Arc::new(Display::new(false, self.jobs.len()));
        let interval = if matches!(*display, Display::Live(_)) {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(500)
        };
        self.progress_interval(interval)
            .on_progress(move |s, e| display.update(s, e))
    }
}
