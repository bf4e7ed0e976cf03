//! The live display as a person sees it: drawn on an in-memory terminal
//! (indicatif's `InMemoryTerm`, a vt100 screen), fed with status snapshots
//! and with a real run against the emulator; and the plain lines written
//! when the output is not a terminal.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use batchata::progress::{DisplayMode, LiveDisplay, MAX_BATCH_LINES};
use batchata::ProviderSettings;
use batchata::{Batch, BatchPhase, BatchProgress, Job, ProviderKind, RunStatus};
use batchata_emulator::{Emulator, EmulatorConfig};
use indicatif::{InMemoryTerm, ProgressDrawTarget};

fn live(total: usize) -> (LiveDisplay, InMemoryTerm) {
    let term = InMemoryTerm::new(40, 160);
    let d = LiveDisplay::live_to(total, ProgressDrawTarget::term_like(Box::new(term.clone())));
    (d, term)
}

fn batch(index: usize, status: &str, done: usize, finished: bool) -> BatchProgress {
    BatchProgress {
        index,
        provider: if index % 2 == 1 {
            ProviderKind::OpenAi
        } else {
            ProviderKind::Anthropic
        },
        batch_id: (status != "queued").then(|| format!("msgbatch_{index:03}")),
        // The typed phase the engine's reducer would give this status word.
        phase: match status {
            "queued" => BatchPhase::Queued,
            _ if finished => BatchPhase::Collected,
            _ => BatchPhase::Running,
        },
        status: status.into(),
        total: 10,
        done,
        cost_usd: done as f64 * 0.001,
        finished,
        ..Default::default()
    }
}

/// 20 batches of 10 jobs: `finished` ended, the next `active` in progress, the rest queued.
fn snapshot(finished: usize, active: usize) -> RunStatus {
    let batches: Vec<BatchProgress> = (0..20)
        .map(|i| {
            if i < finished {
                batch(i, "ended", 10, true)
            } else if i < finished + active {
                batch(i, "in_progress", 3, false)
            } else {
                batch(i, "queued", 0, false)
            }
        })
        .collect();
    let completed = finished * 10 + active * 3;
    RunStatus {
        total: 200,
        pending: 200 - completed,
        completed,
        cost_used_usd: completed as f64 * 0.001,
        cost_reserved_usd: 0.25,
        cost_limit_usd: Some(5.0),
        batches_total: 20,
        batches_completed: finished,
        batches_pending: 20 - finished,
        batches,
        ..Default::default()
    }
}

fn rows(screen: &str) -> Vec<&str> {
    screen.lines().filter(|l| l.contains("msgbatch_")).collect()
}

#[test]
fn live_view_shows_active_batches_counts_the_rest_and_ends_cleanly() {
    let (d, term) = live(200);
    // No rate from a single look: it needs a few seconds of progress seen.
    d.update(&snapshot(0, 0), Duration::ZERO);
    assert!(
        term.contents().contains("waiting for the first results"),
        "{}",
        term.contents()
    );
    d.update(&snapshot(3, 12), Duration::from_secs(5));
    let screen = term.contents();
    assert!(
        screen.contains("66/200 jobs · 13.2 jobs/s · ETA 10s"),
        "{screen}"
    );
    let shown = rows(&screen);
    assert_eq!(shown.len(), MAX_BATCH_LINES, "{screen}");
    // Active batches in index order, the finished and queued ones not drawn.
    assert!(shown[0].contains("msgbatch_003") && shown[0].contains("in_progress"));
    assert!(shown[0].contains("3/10") && shown[0].contains("$0.003000"));
    assert!(shown[7].contains("msgbatch_010"), "{screen}");
    assert!(
        screen.contains("batches: 12 active, 3 finished, 5 queued · 4 active not shown"),
        "{screen}"
    );
    assert!(
        screen.contains("cost $0.0660 of $5.00 limit (+$0.2500 reserved in flight)"),
        "{screen}"
    );
    assert!(
        !screen.contains("msgbatch_000"),
        "finished batches are not drawn"
    );

    // Batches end: their rows go, and nothing stale is left on screen.
    d.update(&snapshot(17, 2), Duration::from_secs(9));
    let screen = term.contents();
    let shown = rows(&screen);
    assert_eq!(shown.len(), 2, "{screen}");
    assert!(shown[0].contains("msgbatch_017") && shown[1].contains("msgbatch_018"));
    assert!(
        screen.contains("batches: 2 active, 17 finished, 1 queued"),
        "{screen}"
    );
    assert_eq!(
        screen.lines().filter(|l| !l.trim().is_empty()).count(),
        5,
        "job bar, two batch rows, footer, cost: {screen}"
    );

    // The end: batch rows cleared, the full bar and the totals stay.
    let mut end = snapshot(20, 0);
    end.is_complete = true;
    d.update(&end, Duration::from_secs(12));
    let screen = term.contents();
    assert!(screen.contains("200/200 jobs"), "{screen}");
    assert!(rows(&screen).is_empty(), "{screen}");
    assert!(
        screen.contains("batches: 0 active, 20 finished, 0 queued"),
        "{screen}"
    );
    // A late report (the engine's last tick) changes nothing.
    d.update(&snapshot(3, 12), Duration::from_secs(13));
    d.finish(&snapshot(3, 12), Duration::from_secs(13));
    assert_eq!(term.contents(), screen);
}

/// A `Write` the test can read back.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn plain_lines_tell_each_change_once_and_a_periodic_summary() {
    let buf = Buf::default();
    let d = LiveDisplay::plain_to(Box::new(buf.clone()));
    assert_eq!(d.mode(), DisplayMode::Plain);
    d.update(&snapshot(0, 2), Duration::from_millis(500));
    d.update(&snapshot(0, 2), Duration::from_secs(1)); // nothing changed
    d.update(&snapshot(1, 2), Duration::from_secs(2)); // batch 0 ends, batch 2 starts
    d.update(&snapshot(1, 2), Duration::from_secs(8)); // summary due
    let mut end = snapshot(20, 0);
    end.is_complete = true;
    d.update(&end, Duration::from_secs(9));
    d.update(&end, Duration::from_secs(10));
    let text = buf.text();
    assert!(!text.contains('\u{1b}'), "no escape codes: {text}");
    let lines: Vec<&str> = text.lines().collect();
    let about = |id: &str| lines.iter().filter(|l| l.contains(id)).count();
    assert_eq!(about("msgbatch_000"), 2, "in progress, then ended: {text}");
    assert_eq!(about("msgbatch_001"), 2, "{text}");
    assert_eq!(about("msgbatch_002"), 2, "started late, then ended: {text}");
    assert_eq!(
        about("msgbatch_019"),
        1,
        "queued (not told), then ended: {text}"
    );
    assert_eq!(lines.len(), 2 + 1 + 1 + 1 + 20 + 1, "{text}");
    let summaries: Vec<&&str> = lines.iter().filter(|l| l.contains(" jobs · ")).collect();
    assert_eq!(summaries.len(), 3, "first, after 5 s, at the end: {text}");
    assert!(
        summaries[2].contains("200/200 jobs") && summaries[2].contains("20 finished"),
        "{text}"
    );
    assert!(
        lines[0].starts_with("[    0.5s] batch #0   anthropic in_progress")
            && lines[0].ends_with("msgbatch_000"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_run_draws_its_batches_while_they_run() {
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_millis(1500)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (d, term) = live(12);
    let d = Arc::new(d);
    let mut b = Batch::new(dir.path())
        .items_per_batch(4)
        .providers(
            ProviderSettings::default()
                .anthropic(|c| {
                    c.api_key("k")
                        .base_url(h.anthropic_base_url())
                        .poll_interval(Duration::from_millis(50))
                })
                .openai(|c| {
                    c.api_key("k")
                        .base_url(h.openai_base_url())
                        .poll_interval(Duration::from_millis(50))
                }),
        )
        .progress_interval(Duration::from_millis(20));
    for i in 0..12 {
        let model = if i < 8 {
            "claude-haiku-4-5"
        } else {
            "gpt-4o-mini"
        };
        b.add_job(
            Job::prompt(format!("q{i}"))
                .id(format!("j{i:02}"))
                .model(model),
        )
        .unwrap();
    }
    let dd = d.clone();
    // The provider's request counts reach the progress while batches run.
    let counted = Arc::new(Mutex::new(false));
    let cc = counted.clone();
    let run = b
        .on_progress(move |s, e| {
            if s.batches
                .iter()
                .any(|b| !b.finished && b.counts.total as usize == b.total)
            {
                *cc.lock().unwrap() = true;
            }
            dd.update(s, e)
        })
        .start()
        .await
        .unwrap();
    let started = Instant::now();
    let mid = loop {
        let screen = term.contents();
        let openai = screen
            .lines()
            .filter(|l| l.contains("openai") && l.contains(" batch_"))
            .count();
        if rows(&screen).len() == 2 && openai == 1 {
            break screen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never saw the batches running: {screen}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(mid.contains("/12 jobs"), "{mid}");
    assert!(
        mid.contains("anthropic") && mid.contains("batches: 3 active"),
        "{mid}"
    );
    let status = run.wait().await.unwrap();
    d.finish(&status, run.elapsed());
    let end = term.contents();
    assert!(end.contains("12/12 jobs"), "{end}");
    assert!(end.contains("batches: 0 active, 3 finished"), "{end}");
    assert!(end.contains("12 completed, 0 failed"), "{end}");
    assert!(!end.contains("in_progress"), "{end}");
    assert!(*counted.lock().unwrap(), "no provider counts while running");
}

/// The screen at `cols` columns: no line longer than the terminal.
fn assert_fits(screen: &str, cols: usize) {
    for l in screen.lines() {
        assert!(l.chars().count() <= cols, "line over {cols} columns: {l:?}");
    }
}

#[test]
fn provider_counts_show_inside_batches_at_80_and_120_columns() {
    for cols in [80u16, 120] {
        let term = InMemoryTerm::new(30, cols);
        let d = LiveDisplay::live_to(20, ProgressDrawTarget::term_like(Box::new(term.clone())));
        let mut a = batch(0, "in_progress", 0, false);
        let mut b = batch(1, "in_progress", 0, false);
        // Nothing downloaded yet, but the providers count requests as they end.
        a.counts.succeeded = 6;
        a.counts.errored = 1;
        a.counts.processing = 3;
        b.counts.succeeded = 2;
        b.counts.processing = 8;
        let mut s = RunStatus {
            total: 20,
            pending: 20,
            batches: vec![a.clone(), b.clone()],
            polls_rate_limited: 3,
            poll_failures: 3,
            last_warning: Some("batch 1: HTTP 429 too many requests".into()),
            ..Default::default()
        };
        d.update(&s, Duration::from_secs(1));
        let screen = term.contents();
        assert_fits(&screen, cols as usize);
        let shown = rows(&screen);
        assert!(
            shown[0].contains(" #0 ") && shown[0].contains("7/10"),
            "{screen}"
        );
        assert!(shown[0].contains("1 failed"), "{screen}");
        assert!(shown[1].contains("2/10"), "{screen}");
        assert!(screen.contains("9/20 jobs"), "{screen}");
        assert!(
            screen.contains("3 polls rate-limited, retrying"),
            "{screen}"
        );
        assert!(
            screen.contains("8 completed, 1 failed, 0 cancelled"),
            "{screen}"
        );
        // Cancelled: the provider cancels the rest of batch 1; not done work.
        b.counts.processing = 0;
        b.counts.cancelled = 8;
        s.batches = vec![a, b];
        d.update(&s, Duration::from_secs(2));
        let screen = term.contents();
        assert!(screen.contains("9/20 jobs"), "{screen}");
        assert!(shown_contains(&screen, "8 cancelled"), "{screen}");
        // The end: every count on the last line, whatever the width.
        let end = RunStatus {
            total: 20,
            completed: 8,
            failed: 2,
            cancelled: 10,
            cost_used_usd: 0.123456,
            cost_limit_usd: Some(1000.0),
            cost_reserved_usd: 12.5,
            is_complete: true,
            ..Default::default()
        };
        d.finish(&end, Duration::from_secs(3));
        let screen = term.contents();
        assert_fits(&screen, cols as usize);
        assert!(
            screen.contains("8 completed, 2 failed, 10 cancelled"),
            "{screen}"
        );
        // The bar ends at the jobs the providers worked on, not full.
        assert!(screen.contains("10/20 jobs"), "{screen}");
        assert!(!screen.contains("20/20 jobs"), "{screen}");
    }
}

fn shown_contains(screen: &str, what: &str) -> bool {
    screen.lines().any(|l| l.contains(what))
}
