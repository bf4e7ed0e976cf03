//! Keeps the benchmark harness from rotting: runs our side of
//! `bench/harness.py` at N = 100 (both providers; plain prompts, a response
//! schema, PDF and text files) with this build's `batchata` binary against a
//! `batchata emulate` process, and requires every job's result file to be
//! there and successful. The full benchmark (with the Python library) is too
//! slow for CI; this runs the same code paths of the harness.

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
