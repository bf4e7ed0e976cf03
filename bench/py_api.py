"""One Python script, two libraries: runs N plain prompt jobs through the
batchata 0.4.7 API with `import batchata` or `import batchata_rs`.

    python bench/py_api.py batchata    --jobs JOBS --results-dir DIR --state-file F
    python bench/py_api.py batchata_rs --jobs JOBS --results-dir DIR --state-file F

Started by bench/harness.py inside bench/.venv (which holds both), with
ANTHROPIC_BASE_URL / OPENAI_BASE_URL pointing at the emulator and dummy keys;
both libraries read them when a Batch is created. The prompts come from the
harness's JSONL job set (the `prompt` field of each line; model, max_tokens
and temperature are the same for every job and go through
set_default_params). The code below is the same for both modules; only the
import differs.

It checks the results: every job completed, none failed or cancelled, and
every prompt's `Q<i>` marker (which the emulator echoes) answered exactly
once. Exit code 0 only then; 1 otherwise. Prints one JSON line with its phase
timings and counts.
"""

import argparse
import importlib
import json
import re
import resource
import sys
import time

MARKER = re.compile(r"\bQ(\d+)\b")


def peak_mb():
    """The process's peak RSS so far (Linux: KiB), to see which phase sets it."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("module", choices=["batchata", "batchata_rs"])
    ap.add_argument("--jobs", required=True, help="JSONL job set; its `prompt` fields are used")
    ap.add_argument("--results-dir", required=True)
    ap.add_argument("--state-file", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--items-per-batch", type=int, default=10)
    ap.add_argument("--max-parallel", type=int, default=10)
    ap.add_argument("-n", type=int, default=None, help="use the first N jobs (default: all)")
    args = ap.parse_args()

    t0 = time.monotonic()
    lib = importlib.import_module(args.module)
    t_import = time.monotonic()
    peaks = {"import": peak_mb()}

    prompts = []
    with open(args.jobs) as f:
        for line in f:
            if args.n is not None and len(prompts) >= args.n:
                break
            prompts.append(json.loads(line)["prompt"])
    n = len(prompts)

    batch = (
        lib.Batch(
            args.results_dir,
            max_parallel_batches=args.max_parallel,
            items_per_batch=args.items_per_batch,
            raw_files=False,
        )
        .set_state(file=args.state_file, reuse_state=False)
        .set_default_params(model=args.model, max_tokens=256, temperature=0.7)
        .set_verbosity("warn")
    )
    for p in prompts:
        batch.add_job(messages=[{"role": "user", "content": p}])
    del prompts
    t_added = time.monotonic()
    peaks["add"] = peak_mb()

    run = batch.run()
    t_run = time.monotonic()
    peaks["run"] = peak_mb()
    results = run.results()
    t_results = time.monotonic()
    peaks["results"] = peak_mb()

    completed = results["completed"]
    failed = results["failed"]
    cancelled = results["cancelled"]
    seen = {}
    for r in completed:
        m = MARKER.search(r.raw_response or "") if r.is_success else None
        if m:
            k = int(m.group(1))
            seen[k] = seen.get(k, 0) + 1
    traced_ok = sorted(seen) == list(range(n)) and all(c == 1 for c in seen.values())
    ok = len(completed) == n and not failed and not cancelled and traced_ok
    print(
        json.dumps(
            {
                "module": args.module,
                "n": n,
                "import_s": round(t_import - t0, 3),
                "add_s": round(t_added - t_import, 3),
                "run_s": round(t_run - t_added, 3),
                "results_s": round(t_results - t_run, 3),
                "completed": len(completed),
                "failed": len(failed),
                "cancelled": len(cancelled),
                "traced": len(seen),
                "ok": ok,
                "peak_mb_after": peaks,
            }
        ),
        flush=True,
    )
    if not ok:
        for r in failed[:5]:
            print(f"failed: {r.job_id}: {r.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
