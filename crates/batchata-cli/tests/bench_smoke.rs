//! Keeps the benchmark harness from rotting: runs our side of
//! `bench/harness.py` at N = 100 (both providers; plain prompts, a response
//! schema, PDF and text files) with this build's `batchata` binary against a
//! `batchata emulate` process, and requires every job's result file to be
//! there and successful. The full benchmark (with the Python library) is too
//! slow for CI; this runs the same code paths of the harness. A second
//! test runs its million-jobs cases (`--million`) scaled down to 200 jobs.

use std::path::Path;
use std::process::Command;

#[test]
fn harness_smoke_run_our_side_at_n_100() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let harness = root.join("bench/harness.py");
    assert!(harness.is_file(), "{} is missing", harness.display());
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(&harness)
        .arg("--smoke")
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_batchata"))
        .arg("--work")
        .arg(work.path())
        .current_dir(&root)
        .output()
        .expect("python3 must be installed to run the benchmark harness (bench/README.md)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "harness smoke run failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Six cases: {anthropic, openai} x {plain, schema, files}, each checked
    // job by job.
    assert!(
        stdout.contains("smoke: 6 passed, 0 failed"),
        "unexpected harness output:\n{stdout}\n{stderr}"
    );
    for case in [
        "anthropic plain",
        "anthropic schema",
        "anthropic files",
        "openai plain",
        "openai schema",
        "openai files",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(case) && l.contains("100/100 ok")),
            "case '{case}' did not report 100/100 results:\n{stdout}"
        );
    }
    // Results are removed at the end; job sets stay for reuse.
    assert!(!work.path().join("runs").exists());
    assert!(work.path().join("jobs/anthropic-files-100.jsonl").is_file());
}

/// The million-jobs cases of the harness (`--million`, issue 21), scaled
/// down to 200 jobs with their 20-job counterparts: the files case must
/// pass job by job; the jsonl cases must pass when this binary has
/// `run --results-format`, and be skipped, saying why, when it does not.
/// The report must carry the section and its targets.
#[test]
fn harness_million_cases_scaled_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = env!("CARGO_BIN_EXE_batchata");
    let work = tempfile::tempdir().unwrap();
    let report = work.path().join("RESULTS.md");
    let out = Command::new("python3")
        .arg(root.join("bench/harness.py"))
        .args([
            "--million",
            "--million-n",
            "200",
            "--runs",
            "1",
            "--bin",
            bin,
        ])
        .arg("--work")
        .arg(work.path().join("work"))
        .arg("--out")
        .arg(&report)
        .current_dir(&root)
        .output()
        .expect("python3 must be installed to run the benchmark harness (bench/README.md)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "harness --million failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let help = Command::new(bin).args(["run", "--help"]).output().unwrap();
    let jsonl = String::from_utf8_lossy(&help.stdout).contains("--results-format");
    let line = |case: &str| {
        stdout
            .lines()
            .find(|l| l.contains(&format!("anthropic {case}")))
            .unwrap_or_else(|| panic!("no line for '{case}':\n{stdout}"))
            .to_string()
    };
    // Every job of the case answered, counted against its own N.
    let all_ok = |case: &str| {
        if case.contains("N=200 ") {
            "200/200 ok"
        } else {
            "20/20 ok"
        }
    };
    for case in ["plain N=20 10,000/batch:", "plain N=200 10,000/batch:"] {
        let n = all_ok(case);
        assert!(
            line(case).contains(n),
            "{case} did not report {n}:\n{stdout}"
        );
    }
    for case in [
        "plain N=20 10,000/batch jsonl",
        "plain N=20 1,000/batch jsonl",
        "schema N=20 10,000/batch jsonl",
        "plain N=200 10,000/batch jsonl",
        "plain N=200 1,000/batch jsonl",
        "schema N=200 10,000/batch jsonl",
    ] {
        let l = line(case);
        if jsonl {
            let n = all_ok(case);
            assert!(l.contains(n), "{case} did not report {n}:\n{stdout}");
        } else {
            assert!(
                l.trim_start().starts_with("skip") && l.contains("--results-format"),
                "{case} was not skipped for want of --results-format:\n{stdout}"
            );
        }
    }
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("## A million jobs"), "{text}");
    assert!(
        text.contains("anthropic plain 200 jobs × 10,000/batch, files: ")
            && text.contains("(target ≤ 64 MB), results all present"),
        "{text}"
    );
    assert!(text.contains("user CPU (target ≤ 12 s)"), "{text}");
    // Result folders are removed at the end (under 20,000 files: at once).
    assert!(!work.path().join("work/runs").exists());
}
