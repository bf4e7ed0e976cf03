"""Runs one benchmark case through the Python library batchata 0.4.7.

Started by bench/harness.py inside the benchmark's own virtual environment
(bench/.venv), with ANTHROPIC_BASE_URL / OPENAI_BASE_URL pointing at the
emulator and dummy keys. It reads the same JSONL jobs file our CLI reads,
adds every job to a `batchata.Batch` the way the library's README shows
(raw files off, warn-level logging, the given items_per_batch), runs it, and
prints one JSON line with its own phase timings. While it runs it rewrites a
small progress file, so a case stopped at the time cap can say how far it got.

Only the library's public API is used: Batch(...), set_verbosity,
set_default_params, add_job, run(on_progress=...).
"""

import argparse
import json
import os
import sys
import threading
import time


def pydantic_model(schema):
    """A pydantic model with the (flat) properties of a JSON schema."""
    from pydantic import create_model

    types = {"string": str, "number": float, "integer": int, "boolean": bool}
    fields = {}
    for name, prop in schema.get("properties", {}).items():
        fields[name] = (types.get(prop.get("type"), str), ...)
    return create_model(schema.get("title", "Answer"), **fields)


def write_progress(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", required=True)
    ap.add_argument("--results-dir", required=True)
    ap.add_argument("--items-per-batch", type=int, default=None)
    ap.add_argument("--max-parallel", type=int, default=None)
    ap.add_argument("--progress-file", required=True)
    args = ap.parse_args()

    t0 = time.monotonic()
    progress = {"phase": "import", "added": 0, "completed": 0, "failed": 0, "elapsed_s": 0.0}
    stop = threading.Event()

    def reporter():
        while not stop.wait(1.0):
            progress["elapsed_s"] = round(time.monotonic() - t0, 1)
            write_progress(args.progress_file, progress)

    threading.Thread(target=reporter, daemon=True).start()

    from batchata import Batch

    kwargs = {"raw_files": False}
    if args.items_per_batch is not None:
        kwargs["items_per_batch"] = args.items_per_batch
    if args.max_parallel is not None:
        kwargs["max_parallel_batches"] = args.max_parallel
    batch = Batch(args.results_dir, **kwargs).set_verbosity("warn")

    progress["phase"] = "add"
    t_import = time.monotonic()
    models = {}
    with open(args.jobs) as f:
        for line in f:
            job = json.loads(line)
            extra = {}
            schema = job.get("response_schema")
            if schema is not None:
                key = json.dumps(schema, sort_keys=True)
                if key not in models:
                    models[key] = pydantic_model(schema)
                extra["response_model"] = models[key]
            if job.get("file"):
                base = os.path.dirname(os.path.abspath(args.jobs))
                path = job["file"] if os.path.isabs(job["file"]) else os.path.join(base, job["file"])
                extra["file"] = path
                extra["prompt"] = job["prompt"]
            else:
                extra["messages"] = [{"role": "user", "content": job["prompt"]}]
            batch.add_job(
                model=job["model"],
                max_tokens=job.get("max_tokens"),
                temperature=job.get("temperature"),
                **extra,
            )
            progress["added"] += 1
    t_added = time.monotonic()

    progress["phase"] = "run"

    def on_progress(stats, elapsed, _batches):
        progress["completed"] = stats.get("completed", 0)
        progress["failed"] = stats.get("failed", 0)

    run = batch.run(on_progress=on_progress, progress_interval=1.0)
    t_run = time.monotonic()
    results = run.results()
    stop.set()
    progress.update(
        phase="done",
        completed=len(results["completed"]),
        failed=len(results["failed"]),
        elapsed_s=round(time.monotonic() - t0, 1),
    )
    write_progress(args.progress_file, progress)
    print(
        json.dumps(
            {
                "import_s": round(t_import - t0, 3),
                "add_s": round(t_added - t_import, 3),
                "run_s": round(t_run - t_added, 3),
                "completed": len(results["completed"]),
                "failed": len(results["failed"]),
                "cancelled": len(results["cancelled"]),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
