//! `--results-format jsonl` as a user runs it: the `batchata` binary as a
//! process against an emulator on loopback, `results.jsonl` on disk, read
//! back by `batchata results` and `batchata status`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_batchata"))
}

fn run(h: &EmulatorHandle, jobs: &Path, out: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("run")
        .arg(jobs)
        .arg("--results-dir")
        .arg(out)
        .args(["--poll-interval", "20ms", "--items-per-batch", "3", "-q"])
        .args(extra)
        .env("ANTHROPIC_API_KEY", "sk-ant-jsonl-test")
        .env("ANTHROPIC_BASE_URL", h.anthropic_base_url())
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn jobs_file(dir: &Path, n: usize) -> PathBuf {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({"id": format!("p{i:02}"), "model": "claude-haiku-4-5", "prompt": format!("Tell me about {i}"), "max_tokens": 64})
                .to_string()
        })
        .collect();
    let p = dir.join("jobs.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jsonl_run_is_read_by_results_and_status_and_keeps_its_layout() {
    let h = Emulator::start(EmulatorConfig::new().processing_delay(Duration::from_millis(50)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jobs = jobs_file(dir.path(), 8);
    let out = dir.path().join("out");
    // A state outside the folder: `results` finds the layout from the folder.
    let state = dir.path().join("state.jsonl");
    let s = state.to_str().unwrap();
    let o = run(
        &h,
        &jobs,
        &out,
        &["--state", s, "--results-format", "jsonl"],
    );
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let file = out.join("results.jsonl");
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().count(), 8);
    let json_files = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".json")
        })
        .count();
    assert_eq!(json_files, 0, "no result file per job");

    // `results` prints them in every format, and one in full.
    let o = bin().arg("results").arg(&out).output().unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("8 jobs: 8 completed, 0 failed, 0 cancelled"),
        "{stdout}"
    );
    for i in 0..8 {
        assert!(stdout.contains(&format!("p{i:02} ")), "p{i:02} in {stdout}");
    }
    let o = bin()
        .arg("results")
        .arg(&out)
        .args(["--format", "jsonl"])
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r["error"].is_null()));
    let o = bin()
        .arg("results")
        .arg(&out)
        .args(["--job", "p03"])
        .output()
        .unwrap();
    let (stdout, _) = text(&o);
    assert!(
        stdout.contains("job      p03") && stdout.contains("Echo: Tell me about 3"),
        "{stdout}"
    );
    // Told to read files, the folder has none.
    let o = bin()
        .arg("results")
        .arg(&out)
        .args(["--results-format", "files", "--format", "jsonl"])
        .output()
        .unwrap();
    assert_eq!(o.stdout.len(), 0);

    // `status` names the layout.
    let o = bin().args(["status", "--state", s]).output().unwrap();
    let (stdout, _) = text(&o);
    assert!(
        stdout.contains(&format!("results  {} (jsonl)", file.display())),
        "{stdout}"
    );
    let o = bin()
        .args(["status", "--state", s, "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["results_format"], "jsonl");

    // A resume asking for the other layout exits 2, saying what to do.
    let o = run(
        &h,
        &jobs,
        &out,
        &["--state", s, "--results-format", "files"],
    );
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--results-format jsonl") && stderr.contains("--fresh"),
        "{stderr}"
    );

    // A torn last line (a kill mid-write) is cut by the next run, which
    // writes nothing twice.
    std::fs::write(&file, format!("{written}{{\"job_id\":\"p09\",\"raw_resp")).unwrap();
    let o = run(&h, &jobs, &out, &["--state", s]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);

    // --fresh starts over in the layout asked for, and clears the old file.
    let o = run(&h, &jobs, &out, &["--state", s, "--fresh"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(!file.exists());
    assert!(out.join("p00.json").is_file());
}
