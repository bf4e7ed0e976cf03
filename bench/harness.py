#!/usr/bin/env python3
"""Benchmark harness: our `batchata` CLI side by side with the Python library
batchata 0.4.7, both against the same local emulator.

    python3 bench/harness.py            # everything; writes bench/RESULTS.md
    python3 bench/harness.py --quick    # N <= 10,000, shorter Python cap
    python3 bench/harness.py --smoke    # our side only, N = 100, checks only

What it does, in order (see bench/README.md):
1. builds the release CLI and copies it to bench/work/bin, so other builds of
   target/ cannot change the binary mid-run;
2. finds a Python >= 3.12 (batchata 0.4.7 requires it) and installs
   batchata==0.4.7 from PyPI into bench/.venv;
3. writes deterministic job sets (prompts of about 1 KB; a small response
   schema; small PDF and text files) under bench/work/jobs;
4. starts `batchata emulate` as its own process (batches end at once, no
   faults), so the emulator's memory is not counted against either side;
5. runs every case on each side: fresh results folder, emulator reset, the
   whole process timed and its peak RSS read by bench/peak-rss (wait4(2)
   in a small parent, as /usr/bin/time does), the emulator's HTTP call counts read from
   GET /_emulator/stats, and every job's result file checked;
6. runs the criterion micro-benchmarks and writes bench/RESULTS.md.

Standard library only, so it runs on the machine's Python 3.11.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
WORK = os.path.join(BENCH, "work")
VENV = os.path.join(BENCH, ".venv")
PY_LIB = "batchata==0.4.7"

MODELS = {
    # Names both libraries know: ours resolves them as aliases.
    "anthropic": "claude-3-5-haiku-20241022",
    "openai": "gpt-4.1-nano-2025-04-14",
}
TITLES = {"anthropic": "Anthropic", "openai": "OpenAI"}
SCHEMA = {
    "title": "Answer",
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "confidence": {"type": "number"},
    },
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}
WORDS = (
    "river mountain ledger invoice harbour copper lantern orchard meadow "
    "signal quarry timber canal beacon vessel granite thicket pasture "
    "archive bridge compass furnace garden hollow island journey kettle "
    "market needle office pillar quartz ribbon saddle tunnel valley window"
).split()
FAST_CASE_S = 60.0  # Python cases faster than this are run 3 times


# ---------------------------------------------------------------- job sets


def prompt(i):
    """A deterministic prompt of about 1 KB; it starts with a marker the
    emulator echoes, so each answer can be traced back to its job."""
    x = (i * 2654435761 + 12345) & 0xFFFFFFFF
    words = []
    size = 0
    while size < 960:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        w = WORDS[x % len(WORDS)]
        words.append(w)
        size += len(w) + 1
    return f"Q{i}: Summarise these notes in one sentence. " + " ".join(words)


def pdf_bytes(lines):
    """A minimal valid one-page PDF with the given text lines."""
    def esc(s):
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    text = "BT /F1 11 Tf 14 TL 50 800 Td " + " ".join(f"({esc(l)}) Tj T*" for l in lines) + " ET"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text.encode("latin-1") + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def write_documents(folder, count=16):
    os.makedirs(folder, exist_ok=True)
    for k in range(count):
        lines = [f"Document {k}: quarterly report"] + [
            " ".join(WORDS[(k * 7 + j * 3 + m) % len(WORDS)] for m in range(9)) for j in range(12)
        ]
        with open(os.path.join(folder, f"doc{k:02d}.pdf"), "wb") as f:
            f.write(pdf_bytes(lines))
        with open(os.path.join(folder, f"doc{k:02d}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")


def job_set(provider, n, variant):
    """Path of the JSONL job set, written on first use in a stream and kept
    under bench/work/jobs for later cases and runs (a million jobs is about
    1.1 GB and a minute or two of Python to generate)."""
    folder = os.path.join(WORK, "jobs")
    path = os.path.join(folder, f"{provider}-{variant}-{n}.jsonl")
    if os.path.exists(path):
        return path
    os.makedirs(folder, exist_ok=True)
    plain = os.path.join(folder, f"{provider}-plain-{n}.jsonl")
    if variant == "schema" and os.path.exists(plain):
        # The same lines as the loop below writes, without generating the
        # prompts again: the plain job with the schema appended.
        tmp = path + ".tmp"
        with open(plain) as src, open(tmp, "w") as f:
            for line in src:
                job = json.loads(line)
                job["response_schema"] = SCHEMA
                f.write(json.dumps(job) + "\n")
        os.replace(tmp, path)
        return path
    if variant == "files":
        write_documents(os.path.join(folder, "docs"))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for i in range(n):
            job = {"id": f"j{i:06d}", "model": MODELS[provider], "max_tokens": 256, "temperature": 0.7}
            if variant == "files":
                # Anthropic gets PDFs and text files; the Python library takes
                # only images and PDFs for OpenAI models, so OpenAI gets PDFs.
                ext = "txt" if provider == "anthropic" and i % 2 else "pdf"
                job["file"] = f"docs/doc{i % 16:02d}.{ext}"
                job["prompt"] = f"Q{i}: Summarise this document in one sentence."
            else:
                job["prompt"] = prompt(i)
            if variant == "schema":
                job["response_schema"] = SCHEMA
            f.write(json.dumps(job) + "\n")
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------ cases


class Case:
    """kind "cli": our CLI against py_side.py. kind "pyapi": one script,
    py_api.py, run with `import batchata_rs` (ours) and `import batchata`.

    `fmt` is our results layout: "files" (the default, one file per job) or
    "jsonl" (`--results-format jsonl`). `million` marks the cases of the
    million-jobs section (issue 21); `runs` overrides --runs (the 1M cases
    run once); `skipped` says why a case did not run."""

    def __init__(self, provider, variant, n, ipb, python=True, kind="cli", fmt="files", million=False,
                 runs=None):
        self.provider = provider
        self.variant = variant
        self.n = n
        self.ipb = ipb  # None: each library's default
        self.python = python
        self.kind = kind
        self.fmt = fmt
        self.million = million
        self.runs = runs
        self.skipped = None

    @property
    def key(self):
        return (self.kind, self.provider, self.variant, self.n, self.ipb, self.fmt)

    @property
    def name(self):
        ipb = "defaults" if self.ipb is None else f"{self.ipb:,}/batch"
        if self.kind == "pyapi":
            return f"python api {self.provider} N={self.n:,} {ipb}"
        layout = " jsonl" if self.fmt == "jsonl" else ""
        return f"{self.provider} {self.variant} N={self.n:,} {ipb}{layout}"


MILLION = 1_000_000


def million_cases(n_big):
    """Issue 21's cases, ours only (Python batchata does not finish 100k):
    Anthropic at `n_big` jobs (1,000,000 unless --million-n scales it down),
    and at n_big / 10 beside them, so the 1M / 100k memory ratio comes from
    the same benchmark run. The jsonl cases first: they create a handful of
    files; the files case at n_big, a million inodes, runs last."""
    n_small = n_big // 10

    def c(variant, n, ipb, fmt):
        return Case("anthropic", variant, n, ipb, python=False, fmt=fmt, million=True,
                    runs=1 if n == n_big else None)

    return [
        c("plain", n_small, 10000, "jsonl"),
        c("plain", n_small, 1000, "jsonl"),
        c("schema", n_small, 10000, "jsonl"),
        c("plain", n_big, 10000, "jsonl"),
        c("plain", n_big, 1000, "jsonl"),
        c("schema", n_big, 10000, "jsonl"),
        c("plain", n_small, 10000, "files"),  # dropped when the main table has it
        c("plain", n_big, 10000, "files"),
    ]


def cases(mode, full, only=None, n_big=MILLION):
    out = []
    if mode == "million":
        return million_cases(n_big)
    if mode == "smoke":
        # The Python package's own tests run in the test command; the smoke
        # run (inside `cargo test`) stays offline and quick, so its python
        # api case runs only when asked for: --smoke --only "python api".
        if only and "python api" in only:
            out.append(Case("anthropic", "plain", 100, 50, python=False, kind="pyapi"))
    else:
        out += [Case("anthropic", "plain", 10000, ipb, kind="pyapi") for ipb in (10000, 1000)]
    for p in ("anthropic", "openai"):
        if mode == "smoke":
            out += [Case(p, "plain", 100, 50), Case(p, "schema", 100, 50), Case(p, "files", 100, 50)]
            continue
        out += [
            Case(p, "plain", 1000, 1000),
            Case(p, "plain", 1000, None),
            Case(p, "plain", 10000, 10000),
            Case(p, "plain", 10000, 1000),
            Case(p, "schema", 10000, 10000),
            Case(p, "files", 10000, 10000),
        ]
        if mode == "full":
            out += [
                Case(p, "plain", 100000, 10000),
                # Python needs more than the cap for 100k at 10,000 per
                # batch already; at 1,000 per batch only with --full-python.
                Case(p, "plain", 100000, 1000, python=full),
            ]
    if mode == "full":
        have = {c.key for c in out}
        out += [c for c in million_cases(n_big) if c.key not in have]
    return out


# -------------------------------------------------------------- processes


PROBE = None  # bench/peak-rss, built by build_tools()


def run_process(cmd, env, cwd, log_prefix, cap=None):
    """Runs `cmd` under the peak-rss probe; returns (exit code or None when
    stopped at the cap, wall seconds, peak RSS in bytes or None, (user CPU
    seconds, system CPU seconds) or (None, None)). The probe reads the peak
    and both CPU times from the same wait4(2) call.

    The probe (bench/peak-rss) starts `cmd` and reads its peak RSS with
    wait4(2). Reading it here instead would be wrong: Linux carries a
    process's peak RSS across execve, and a child forked from this Python
    process starts as a copy of it, so every process would look at least as
    big as the harness. At the cap the probe is sent SIGTERM: it kills the
    program and still reports its peak."""
    out = open(log_prefix + ".out", "w")
    err = open(log_prefix + ".err", "w")
    report = log_prefix + ".rss"
    try:
        os.remove(report)
    except FileNotFoundError:
        pass
    t0 = time.monotonic()
    proc = subprocess.Popen([PROBE, report] + cmd, env=env, cwd=cwd, stdout=out, stderr=err,
                            start_new_session=True)
    res = {}

    def reap():
        _, status, _ = os.wait4(proc.pid, 0)
        res["t"] = time.monotonic()
        res["status"] = status

    th = threading.Thread(target=reap)
    th.start()
    th.join(cap)
    stopped = False
    if th.is_alive():
        stopped = True
        os.kill(proc.pid, signal.SIGTERM)
        th.join(30)
        if th.is_alive():
            os.killpg(proc.pid, signal.SIGKILL)
            th.join()
    proc.returncode = os.waitstatus_to_exitcode(res["status"])
    out.close()
    err.close()
    wall = res["t"] - t0
    cpu = (None, None)
    try:
        with open(report) as f:
            fields = f.read().split()
        rss, code = int(fields[0]) * 1024, int(fields[1])
        if len(fields) >= 4:
            cpu = (float(fields[2]), float(fields[3]))
    except (OSError, ValueError, IndexError):
        rss, code = None, proc.returncode
    return (None if stopped else code), wall, rss, cpu


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class EmulatorProc:
    def __init__(self, binary):
        self.port = free_port()
        self.log = open(os.path.join(WORK, "emulator.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "emulate", "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(200):
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"the emulator did not start on port {self.port}; see {self.log.name}")

    def stats(self):
        with urllib.request.urlopen(self.base + "/_emulator/stats", timeout=30) as r:
            return json.load(r)

    def reset(self):
        req = urllib.request.Request(self.base + "/_emulator/reset", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=30).read()

    def env(self):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith(("ANTHROPIC_", "OPENAI_", "BATCHATA_")):
                del env[k]
        env.update(
            ANTHROPIC_BASE_URL=self.base,
            ANTHROPIC_API_KEY="bench-dummy-key",
            OPENAI_BASE_URL=self.base + "/v1",
            OPENAI_API_KEY="bench-dummy-key",
        )
        return env

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ----------------------------------------------------------------- checks

MARKER = re.compile(r"\bQ(\d+)\b")


def answered(r, structured):
    """A successful result with an answer (a parsed one for schema jobs)."""
    if r.get("error") is not None:
        return False
    if structured:
        return r.get("parsed_response") is not None
    return bool(r.get("raw_response"))


def check_ours(results_dir, n, structured):
    """Every job id of the set has a successful result file."""
    missing = failed = 0
    for i in range(n):
        path = os.path.join(results_dir, f"j{i:06d}.json")
        try:
            with open(path) as f:
                r = json.load(f)
        except (OSError, ValueError):
            missing += 1
            continue
        if not answered(r, structured):
            failed += 1
    ok = missing == 0 and failed == 0
    return ok, f"{n - missing - failed:,}/{n:,} ok" + ("" if ok else f" ({missing} missing, {failed} failed)")


def check_ours_jsonl(results_dir, n, structured):
    """The jsonl layout: every job id of the set has exactly one successful
    line in `results.jsonl`. Read in a stream, holding one status byte per
    job, never the parsed results (a million of them would not fit the
    point). A reader takes the last line of a job; a clean run writes each
    job once, so a second line fails the check, as do a line that is not
    whole JSON and a job id not in the set."""
    path = os.path.join(results_dir, "results.jsonl")
    status = bytearray(n)  # 0 missing, 1 answered, 2 failed
    twice = torn = foreign = 0
    try:
        f = open(path, "rb")
    except OSError:
        return False, f"0/{n:,} ok (no results.jsonl in the results folder)"
    with f:
        for line in f:
            try:
                r = json.loads(line)
                jid = r["job_id"]
                i = int(jid[1:]) if jid.startswith("j") else -1
            except (ValueError, KeyError, TypeError, AttributeError):
                torn += 1
                continue
            if not 0 <= i < n or jid != f"j{i:06d}":
                foreign += 1
                continue
            if status[i]:
                twice += 1
            status[i] = 1 if answered(r, structured) else 2
    good, failed = status.count(1), status.count(2)
    missing = n - good - failed
    ok = good == n and twice == 0 and torn == 0 and foreign == 0
    detail = f"{good:,}/{n:,} ok"
    if not ok:
        bits = [f"{missing} missing", f"{failed} failed"]
        bits += [f"{twice} extra line(s) for a job already written"] if twice else []
        bits += [f"{torn} line(s) not a whole JSON result"] if torn else []
        bits += [f"{foreign} line(s) for job ids not in the set"] if foreign else []
        detail += f" ({', '.join(bits)})"
    return ok, detail


_RESULTS_FORMAT = {}


def has_results_format(binary):
    """Whether this `batchata run` takes `--results-format` (issue 21's
    jsonl layout), read from its `--help`."""
    if binary not in _RESULTS_FORMAT:
        try:
            out = subprocess.run([binary, "run", "--help"], capture_output=True, text=True, timeout=60)
            _RESULTS_FORMAT[binary] = "--results-format" in out.stdout + out.stderr
        except (OSError, subprocess.TimeoutExpired):
            _RESULTS_FORMAT[binary] = False
    return _RESULTS_FORMAT[binary]


def check_python(results_dir, n, structured):
    """The Python library names jobs itself (random ids), so the check is:
    N result files, none failed, and — where the answer echoes the prompt's
    marker — every job index present exactly once."""
    files = [f for f in os.listdir(results_dir) if f.endswith(".json")] if os.path.isdir(results_dir) else []
    failed = 0
    seen = set()
    traced = 0
    for name in files:
        try:
            with open(os.path.join(results_dir, name)) as f:
                r = json.load(f)
        except (OSError, ValueError):
            failed += 1
            continue
        if not answered(r, structured):
            failed += 1
            continue
        m = MARKER.search(r.get("raw_response") or "")
        if m:
            traced += 1
            seen.add(int(m.group(1)))
    ok = len(files) == n and failed == 0 and (traced < len(files) or seen == set(range(n)))
    detail = f"{len(files) - failed:,}/{n:,} ok"
    if not ok:
        detail += f" ({len(files)} files, {failed} failed, {len(seen)} distinct jobs traced)"
    return ok, detail


def count_results(results_dir):
    try:
        return sum(1 for f in os.listdir(results_dir) if f.endswith(".json"))
    except OSError:
        return 0


# -------------------------------------------------------------- one side


def calls_summary(stats):
    return {"total": stats.get("total_calls", 0), "by_endpoint": stats.get("calls", {})}


def fresh_dir(side):
    """A new, empty results folder. Folders are only deleted when the whole
    benchmark ends: on ext4, creating 100k files within ~30 s of deleting
    100k others makes inode allocation skip every recently deleted inode,
    which cost either side several seconds of kernel time per run."""
    RUN_SEQ[0] += 1
    return os.path.join(WORK, "runs", f"{RUN_SEQ[0]:03d}-{side}")


RUN_SEQ = [0]

# How long after a mass delete file creation is still slowed down (see
# settle_after_removal): ext4 without a journal skips every inode freed in the
# last 60 s, or the last 360 s while its inode-table block is still dirty.
SETTLE_S = 370


def removed_marker():
    return os.path.join(WORK, ".runs-removed-at")


def remove_runs(runs, record=True):
    """Deletes a benchmark's result folders and notes when, so the next
    benchmark can wait until the deleted inodes no longer slow it down.
    Only after every case is timed: deleting (and the inodes it frees) would
    slow any run it overlapped."""
    count = sum(len(files) for _, _, files in os.walk(runs))
    many = count > 20000
    if count > 500000:
        print(f"removing {count:,} result files (minutes) ...", flush=True)
    shutil.rmtree(runs, ignore_errors=True)
    if record and many:
        with open(removed_marker(), "w") as f:
            f.write(f"{time.time():.0f}\n")


def settle_after_removal():
    """Waits out the aftermath of deleting many files (NOTES.md, section 1).
    On ext4 without a journal (this machine's disk), allocating an inode
    skips every inode freed within the last 60 s, or 360 s while the block
    holding it is dirty; right after 400k result files are deleted, each new
    file scans past them and a 100k-job run took 2-4x longer in the kernel.
    Both sides would suffer, but not equally, so no case runs until the last
    mass delete is that old."""
    try:
        with open(removed_marker()) as f:
            at = float(f.read().strip())
    except (OSError, ValueError):
        return
    wait = at + SETTLE_S - time.time()
    if wait > 0:
        print(f"many result files were deleted {time.time() - at:.0f} s ago; "
              f"waiting {wait:.0f} s so file creation is not slowed by it ...", flush=True)
        os.sync()
        time.sleep(wait)


def run_ours(binary, emu, case, jobs, run_no):
    rdir = fresh_dir("ours")
    emu.reset()
    cmd = [binary, "run", jobs, "--results-dir", rdir, "--no-raw-files"]
    if case.ipb is not None:
        cmd += ["--items-per-batch", str(case.ipb)]
    if case.fmt != "files":
        cmd += ["--results-format", case.fmt]
    logs = os.path.join(WORK, "logs", f"ours-{slug(case)}-{run_no}")
    if case.n >= 100000:
        # An earlier case's dirty pages (100k+ result files) must not be
        # written back during this timed run.
        os.sync()
    code, wall, rss, (user, sys_) = run_process(cmd, emu.env(), ROOT, logs)
    stats = emu.stats()
    check = check_ours_jsonl if case.fmt == "jsonl" else check_ours
    ok, detail = check(rdir, case.n, case.variant == "schema")
    if code != 0:
        ok = False
        detail += f"; exit {code} (see {os.path.relpath(logs, ROOT)}.err)"
    return {"wall": wall, "rss": rss, "user": user, "sys": sys_, "calls": calls_summary(stats), "ok": ok,
            "detail": detail}


def run_python(py, emu, case, jobs, run_no, cap):
    rdir = fresh_dir("python")
    progress = rdir + "-progress.json"
    emu.reset()
    cmd = [py, os.path.join(BENCH, "py_side.py"), "--jobs", jobs, "--results-dir", rdir, "--progress-file", progress]
    if case.ipb is not None:
        cmd += ["--items-per-batch", str(case.ipb)]
    logs = os.path.join(WORK, "logs", f"python-{slug(case)}-{run_no}")
    code, wall, rss, (user, sys_) = run_process(cmd, emu.env(), ROOT, logs, cap=cap)
    stats = emu.stats()
    out = {"wall": wall, "rss": rss, "user": user, "sys": sys_, "calls": calls_summary(stats)}
    if code is None:
        try:
            with open(progress) as f:
                p = json.load(f)
        except (OSError, ValueError):
            p = {}
        created = len(stats.get("batches", []))
        planned = -(-case.n // (case.ipb or 10))
        out.update(
            ok=False,
            capped=True,
            detail=(
                f"not finished at the {cap:.0f} s cap: phase '{p.get('phase', '?')}', "
                f"{p.get('added', 0):,}/{case.n:,} jobs added, {created}/{planned} batches created, "
                f"{count_results(rdir):,} result files written"
            ),
        )
    else:
        ok, detail = check_python(rdir, case.n, case.variant == "schema")
        if code != 0:
            ok = False
            detail += f"; exit {code} (see {os.path.relpath(logs, ROOT)}.err)"
        try:
            with open(logs + ".out") as f:
                out["phases"] = json.loads(f.read().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            pass
        out.update(ok=ok, capped=False, detail=detail)
    return out


def run_pyapi(py, module, emu, case, jobs, run_no, cap):
    """One run of bench/py_api.py with `import <module>`: the same script
    for batchata_rs and batchata. Passes when the script's own check passes
    (exit 0: all completed, every prompt marker answered once) and the
    results folder holds one successful result file per job."""
    rdir = fresh_dir(module)
    emu.reset()
    cmd = [py, os.path.join(BENCH, "py_api.py"), module, "--jobs", jobs, "--results-dir", rdir,
           "--state-file", rdir + "-state.json", "--model", MODELS[case.provider],
           "--items-per-batch", str(case.ipb or 10), "-n", str(case.n)]
    logs = os.path.join(WORK, "logs", f"{module}-{slug(case)}-{run_no}")
    code, wall, rss, (user, sys_) = run_process(cmd, emu.env(), ROOT, logs, cap=cap)
    stats = emu.stats()
    out = {"wall": wall, "rss": rss, "user": user, "sys": sys_, "calls": calls_summary(stats)}
    if code is None:
        out.update(ok=False, capped=True,
                   detail=f"not finished at the {cap:.0f} s cap; {count_results(rdir):,} result files written")
        return out
    ok, detail = check_python(rdir, case.n, False)
    if code != 0:
        ok = False
        detail += f"; exit {code} (see {os.path.relpath(logs, ROOT)}.err)"
    try:
        with open(logs + ".out") as f:
            out["phases"] = json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        pass
    out.update(ok=ok, capped=False, detail=detail)
    return out


def slug(case):
    kind = "pyapi-" if case.kind == "pyapi" else ""
    layout = "" if case.fmt == "files" else f"-{case.fmt}"
    return f"{kind}{case.provider}-{case.variant}-{case.n}-{case.ipb or 'default'}{layout}"


# ------------------------------------------------------------ environment


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout.strip()


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def build_tools(prebuilt=None):
    """The release CLI (or `prebuilt`) and the peak-rss probe, copied under
    bench/work/bin (so a rebuild during a run cannot swap them)."""
    global PROBE
    print("building the release CLI and the peak-rss probe ...", flush=True)
    pkgs = ["-p", "peak-rss"] + ([] if prebuilt else ["-p", "batchata-cli"])
    subprocess.run(["cargo", "build", "--release"] + pkgs, cwd=ROOT, check=True)
    os.makedirs(os.path.join(WORK, "bin"), exist_ok=True)
    PROBE = os.path.join(WORK, "bin", "peak-rss")
    shutil.copy2(os.path.join(target_dir(), "release", "peak-rss"), PROBE)
    if prebuilt:
        return prebuilt
    dst = os.path.join(WORK, "bin", "batchata")
    shutil.copy2(os.path.join(target_dir(), "release", "batchata"), dst)
    return dst


def py_version(exe):
    try:
        out = subprocess.run([exe, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                             capture_output=True, text=True, timeout=30)
        return tuple(int(x) for x in out.stdout.strip().split("."))
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def find_python312():
    """A Python >= 3.12: $BENCH_PYTHON, then python3.13 / python3.12 / python3
    on PATH, then pyenv's installed versions."""
    cands = []
    if os.environ.get("BENCH_PYTHON"):
        cands.append(os.environ["BENCH_PYTHON"])
    for name in ("python3.13", "python3.12", "python3"):
        p = shutil.which(name)
        if p:
            cands.append(p)
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    cands += sorted(glob.glob(os.path.join(root, "versions", "3.1[2-9]*", "bin", "python3")), reverse=True)
    for c in cands:
        v = py_version(c)
        if v and v >= (3, 12):
            return c, v
    return None, None


def setup_python():
    """bench/.venv with batchata==0.4.7 from PyPI. Returns (python, note)."""
    vpy = os.path.join(VENV, "bin", "python")
    marker = os.path.join(VENV, ".batchata-bench")
    if os.path.exists(marker) and os.path.exists(vpy):
        with open(marker) as f:
            return vpy, f.read().strip()
    shutil.rmtree(VENV, ignore_errors=True)
    base, v = find_python312()
    if base:
        note = f"CPython {'.'.join(map(str, v))} ({base}); `pip install {PY_LIB}` from PyPI"
        subprocess.run([base, "-m", "venv", VENV], check=True)
        subprocess.run([vpy, "-m", "pip", "install", "-q", PY_LIB], check=True)
    else:
        # No 3.12 here: 0.4.7 declares Requires-Python >= 3.12, and exactly one
        # line of it (an f-string using PEP 701 quoting in the citation
        # mapper) does not parse on 3.11. Install it regardless and rewrite
        # that line into an equivalent 3.11 form; everything else is as
        # published.
        base = sys.executable
        v = sys.version_info[:3]
        subprocess.run([base, "-m", "venv", VENV], check=True)
        subprocess.run([vpy, "-m", "pip", "install", "-q", "--ignore-requires-python", PY_LIB], check=True)
        site = sh([vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        cm = os.path.join(site, "batchata", "providers", "anthropic", "citation_mapper.py")
        with open(cm) as f:
            src = f.read()
        old = """rf'\\*\\*[^*]*{re.escape(field_name.replace("_", "[\\\\s_]"))}\\*\\*\\s*:'"""
        new = """(r'\\*\\*[^*]*' + re.escape(field_name.replace("_", "[\\\\s_]")) + r'\\*\\*\\s*:')"""
        if old not in src:
            raise SystemExit("no Python >= 3.12 found and the 3.11 fallback patch does not apply; set BENCH_PYTHON")
        with open(cm, "w") as f:
            f.write(src.replace(old, new))
        note = (f"CPython {'.'.join(map(str, v))} (no 3.12 found): `pip install --ignore-requires-python {PY_LIB}` "
                "with its one PEP 701 f-string (citation_mapper.py) rewritten for 3.11")
    with open(marker, "w") as f:
        f.write(note)
    return vpy, note


def crates_fingerprint():
    """Identifies the sources a batchata_rs build comes from: the committed
    tree of crates/ and Cargo.lock, plus any uncommitted change to them."""
    tree = sh(["git", "rev-parse", "HEAD:crates", "HEAD:Cargo.lock"], cwd=ROOT).replace("\n", " ")
    diff = subprocess.run(["git", "diff", "HEAD", "--", "crates", "Cargo.lock"], cwd=ROOT,
                          capture_output=True).stdout
    untracked = sh(["git", "ls-files", "--others", "--exclude-standard", "crates"], cwd=ROOT)
    if diff or untracked:
        import hashlib
        tree += " dirty:" + hashlib.sha256(diff + untracked.encode()).hexdigest()[:16]
    return tree


def setup_rs(vpy):
    """Installs batchata_rs into bench/.venv: `pip install ./crates/batchata-py`,
    which builds it with maturin's default release profile. Reused while
    crates/ and Cargo.lock are unchanged (fingerprint in a marker file)."""
    marker = os.path.join(VENV, ".batchata-rs-build")
    want = crates_fingerprint()
    try:
        with open(marker) as f:
            if f.read().strip() == want:
                print("batchata_rs: reusing the build in bench/.venv", flush=True)
                return
    except OSError:
        pass
    print("installing batchata_rs into bench/.venv (maturin release build; minutes) ...", flush=True)
    subprocess.run([vpy, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps",
                    os.path.join(ROOT, "crates", "batchata-py")], cwd=ROOT, check=True)
    sh([vpy, "-c", "import batchata_rs"], cwd=BENCH)
    with open(marker, "w") as f:
        f.write(want)


def machine_description(py_note, vpy):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} cores; memory {mem}; {platform.system()} {platform.release()}",
        f"- Rust: {sh(['rustc', '-V'])}; batchata CLI built with `cargo build --release` at commit {git_rev()}",
    ]
    if vpy:
        pkgs = sh([vpy, "-m", "pip", "list", "--format=json"])
        want = {"batchata", "batchata-rs", "anthropic", "openai", "pydantic", "httpx", "tokencost"}
        vers = ", ".join(f"{p['name']} {p['version']}" for p in json.loads(pkgs) if p["name"].lower() in want)
        lines.append(f"- Python side: {py_note}; {vers}")
    return lines


def git_rev():
    try:
        rev = sh(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT)
        dirty = sh(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT)
        return rev + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


# ------------------------------------------------------------- criterion


def run_micro():
    print("running the criterion micro-benchmarks ...", flush=True)
    started = time.time()
    log = os.path.join(WORK, "logs", "criterion.log")
    with open(log, "w") as f:
        done = subprocess.run(["cargo", "bench", "-p", "batchata", "--bench", "hot_paths", "--", "--noplot"],
                              cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        print(f"the micro-benchmarks failed; see {log}", flush=True)
        return None
    rows = []
    for bj in glob.glob(os.path.join(target_dir(), "criterion", "**", "new", "benchmark.json"), recursive=True):
        if os.path.getmtime(bj) < started:
            continue
        with open(bj) as f:
            b = json.load(f)
        with open(os.path.join(os.path.dirname(bj), "estimates.json")) as f:
            e = json.load(f)
        thr = b.get("throughput") or {}
        elements = thr.get("Elements")
        rows.append((b["full_id"], e["median"]["point_estimate"], elements))
    rows.sort()
    return rows


def fmt_ns(ns):
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= div:
            return f"{ns / div:.3g} {unit}"
    return f"{ns:.3g} ns"


# ----------------------------------------------------------------- report


def mb(b):
    return "?" if b is None else f"{b / 1e6:.0f} MB"


def secs(t):
    return "?" if t is None else f"{t:.2f} s"


def cpu(o):
    """User / system CPU of a summarized side, for the tables."""
    return f"{secs(o.get('user'))} / {secs(o.get('sys'))}"


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarize(side):
    if not side:
        return None
    done = [r for r in side if not r.get("capped")]
    capped = [r for r in side if r.get("capped")]
    use = done or capped
    return {
        "runs": len(use),
        "wall": med(use, "wall"),
        "rss": med(use, "rss"),
        "user": med(use, "user"),
        "sys": med(use, "sys"),
        "calls": use[0]["calls"]["total"],
        "ok": all(r["ok"] for r in use),
        "detail": use[-1]["detail"],
        "capped": bool(capped) and not done,
        "phases": use[-1].get("phases"),
    }


def write_report(path, results, machine, command, micro, started, finished, mode):
    L = []
    L.append("# Benchmarks: batchata (Rust) vs the Python library batchata 0.4.7")
    L.append("")
    L.append(f"Generated by `{command}` on {finished:%Y-%m-%d %H:%M} UTC "
             f"({(finished - started).total_seconds() / 60:.0f} min; mode: {mode}).")
    L.append("Do not edit by hand: rerun the command.")
    L.append("")
    L.append("## Machine")
    L.append("")
    L += machine
    L.append(f"- Load average at start / end: {results['load_start']} / {results['load_end']}")
    L.append("")
    L.append("## How")
    L.append("")
    L.append("Both sides run as their own process against one `batchata emulate` process "
             "(batches end at once, no faults; its memory is counted against neither side), "
             "with the emulator reset before every run. Wall time is the whole process, "
             "start-up and reading the jobs included; peak RSS is the process's maximum "
             "resident set, read with wait4(2) by the small `bench/peak-rss` parent (as "
             "`/usr/bin/time -v` does; not from the harness itself, whose own size a forked "
             "child would inherit as its starting peak); HTTP calls are "
             "counted by the emulator (`GET /_emulator/stats`); user and system CPU (ours) are "
             "the process's own, from the same wait4(2) call as its peak. Ours: `batchata run JOBS "
             "--results-dir DIR --no-raw-files [--items-per-batch N]` (warn-level logs). "
             "Python: `bench/py_side.py`, which adds each job with `Batch.add_job` and calls "
             "`Batch.run()` with raw files off and verbosity `warn`. Same jobs, models, "
             "`max_tokens` (256), temperature (0.7), items per batch and parallel batches (10, "
             "both libraries' default). 'defaults' uses each library's default items per batch "
             "(10 for both). A result check passes when every job has a successful result file "
             "(ours by job id; Python's ids are random, so by count and by the prompt marker "
             "the emulator echoes). Times are medians of the runs shown; Python cases slower "
             f"than {FAST_CASE_S:.0f} s run once.")
    L.append("")
    for provider in ("anthropic", "openai"):
        if not any(c.provider == provider and c.kind == "cli" and not c.million for c, _, _ in results["cases"]):
            continue
        L.append(f"## {TITLES[provider]} (`{MODELS[provider]}`)")
        L.append("")
        L.append("| case | ours: wall | ours: CPU user / sys | Python: wall | speed-up | ours: peak RSS | Python: peak RSS | memory ratio | HTTP calls ours / Python | results ours / Python |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for c, ours, py in results["cases"]:
            if c.provider != provider or c.kind != "cli" or c.million:
                continue
            o = summarize(ours)
            p = summarize(py)
            ipb = "defaults" if c.ipb is None else f"{c.ipb:,}/batch"
            name = f"{c.variant} {c.n:,} × {ipb}"
            if o is None:
                L.append(f"| {name} | not run | | | | | | | | {'skipped: ' + c.skipped if c.skipped else ''} |")
                continue
            ow = f"{o['wall']:.2f} s ({o['runs']}×) | {cpu(o)}"
            orss = mb(o["rss"])
            if p is None:
                L.append(f"| {name} | {ow} | not run | | {orss} | | | {o['calls']} / – | {'✓' if o['ok'] else '✗ ' + o['detail']} / – |")
                continue
            if p["capped"]:
                pw = f"> {p['wall']:.0f} s (cap)"
                speed = f"> {p['wall'] / o['wall']:.0f}×"
            else:
                pw = f"{p['wall']:.2f} s ({p['runs']}×)"
                speed = f"{p['wall'] / o['wall']:.1f}×"
            prss = mb(p["rss"]) + (" at cap" if p["capped"] else "")
            ratio = f"{o['rss'] / p['rss']:.2f}" if o["rss"] and p["rss"] else "?"
            L.append(
                f"| {name} | {ow} | {pw} | {speed} | {orss} | {prss} | {ratio} | {o['calls']} / {p['calls']} | "
                f"{'✓' if o['ok'] else '✗ ' + o['detail']} / {'✓' if p['ok'] else '✗ ' + p['detail']} |"
            )
        L.append("")
        notes = []
        for c, ours, py in results["cases"]:
            p = summarize(py)
            if c.kind != "cli":
                continue
            if c.provider == provider and p and p.get("phases"):
                ph = p["phases"]
                notes.append(f"{c.variant} {c.n:,} × {c.ipb or 'defaults'}: import {ph['import_s']:.1f} s, "
                             f"add_job {ph['add_s']:.1f} s, run {ph['run_s']:.1f} s")
            if c.provider == provider and p and p["capped"]:
                notes.append(f"{c.variant} {c.n:,} × {c.ipb or 'defaults'}: {p['detail']}")
        if notes:
            L.append("Python phases (last run): " + "; ".join(notes) + ".")
            L.append("")
    L += pyapi_section(results, machine, command, started, finished)
    L += million_section(results, machine, command, started, finished)
    L.append("## Targets")
    L.append("")
    for line in targets(results, micro):
        L.append(f"- {line}")
    L += million_targets_block(results)
    L.append("")
    if micro:
        L.append("## Micro-benchmarks (criterion, `cargo bench -p batchata --bench hot_paths`)")
        L.append("")
        L.append("| benchmark | median | per element |")
        L.append("|---|---|---|")
        for full_id, ns, elements in micro:
            per = fmt_ns(ns / elements) if elements else ""
            L.append(f"| {full_id} | {fmt_ns(ns)} | {per} |")
        L.append("")
    extra = os.path.join(BENCH, "NOTES.md")
    if os.path.exists(extra):
        L.append(f"Profiles and the fixes they led to: see [NOTES.md](NOTES.md).")
        L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


PYAPI_START = "<!-- python-api: written by harness.py; --only \"python api\" rewrites just this section -->"
PYAPI_END = "<!-- /python-api -->"


def pyapi_section(results, machine, command, started, finished):
    """The "Python API" section: py_api.py with `import batchata_rs` against
    the same script with `import batchata`. Its own command, date and machine,
    since `--only "python api"` rewrites only this section."""
    rows = [(c, summarize(o), summarize(p)) for c, o, p in results["cases"] if c.kind == "pyapi"]
    if not rows:
        return []
    L = [PYAPI_START, "## Python API: the same script with `import batchata_rs` and `import batchata`", ""]
    L.append(f"Measured by `{command}` on {finished:%Y-%m-%d %H:%M} UTC "
             f"({(finished - started).total_seconds() / 60:.0f} min).")
    L.append("")
    L += machine
    L.append(f"- Load average at start / end: {results['load_start']} / {results['load_end']}")
    L.append("")
    L.append("`bench/py_api.py MODULE` imports the module named on its command line and runs "
             "the jobs' ~1 KB prompts through batchata 0.4.7's API: "
             "`Batch(results_dir, max_parallel_batches=10, items_per_batch=N, raw_files=False)"
             ".set_state(file=..., reuse_state=False).set_default_params(model=..., max_tokens=256, "
             "temperature=0.7).set_verbosity(\"warn\")`, one `add_job(messages=[...])` per job, "
             "`run()`, `results()`; it exits non-zero unless every job completed and every "
             "prompt's marker came back exactly once. `batchata_rs` is installed into "
             "`bench/.venv` with `pip install ./crates/batchata-py` (maturin, release profile). "
             "Both runs are the whole Python process, interpreter start-up included, under "
             "`bench/peak-rss`, against the same emulator process. Targets: at least 20× faster, "
             "at most 1/5 of the peak memory.")
    L.append("")
    L.append("| case | batchata_rs: wall | batchata_rs: CPU user / sys | batchata: wall | speed-up | batchata_rs: peak RSS | batchata: peak RSS | memory ratio | HTTP calls rs / py | results rs / py |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    tl = []
    phases = []
    for c, o, p in rows:
        name = f"{MODELS[c.provider]}, {c.n:,} × {c.ipb:,}/batch"
        ow = f"{o['wall']:.2f} s ({o['runs']}×) | {cpu(o)}"
        res_o = "✓" if o["ok"] else "✗ " + o["detail"]
        if o.get("phases"):
            ph = o["phases"]
            phases.append(f"batchata_rs {c.n:,} × {c.ipb:,}: {phase_text(ph)}")
        if p is None:
            L.append(f"| {name} | {ow} | not run | | {mb(o['rss'])} | | | {o['calls']} / – | {res_o} / – |")
            continue
        if p.get("phases"):
            ph = p["phases"]
            phases.append(f"batchata {c.n:,} × {c.ipb:,}: {phase_text(ph)}")
        pw = (f"> {p['wall']:.0f} s (cap)" if p["capped"] else f"{p['wall']:.2f} s ({p['runs']}×)")
        speed = p["wall"] / o["wall"]
        memr = o["rss"] / p["rss"] if o["rss"] and p["rss"] else None
        res_p = "✓" if p["ok"] else "✗ " + p["detail"]
        L.append(f"| {name} | {ow} | {pw} | {speed:.1f}× | {mb(o['rss'])} | {mb(p['rss'])} | "
                 f"{'?' if memr is None else f'{memr:.2f}'} | {o['calls']} / {p['calls']} | {res_o} / {res_p} |")
        met = speed >= 20 and memr is not None and memr <= 0.2 and o["ok"] and p["ok"]
        tl.append(f"{'✓' if met else '✗'} python api {c.n:,} jobs × {c.ipb:,}/batch: {speed:.1f}× faster "
                  f"(target ≥ 20×), {'?' if memr is None else f'{memr:.2f}'} of batchata's peak memory "
                  f"(target ≤ 0.20)")
    L.append("")
    if phases:
        L.append("Phases of the last run, timed inside the script, with the peak RSS reached by the end of each: "
                 + " — ".join(phases) + ".")
        L.append("")
    for t in tl:
        L.append(f"- {t}")
    if tl:
        L.append("")
    L.append(PYAPI_END)
    L.append("")
    return L


def phase_text(ph):
    """py_api.py's phase times, and its peak RSS so far after each phase."""
    pk = ph.get("peak_mb_after") or {}
    def one(key, label):
        peak = f", peak {pk[key]:.0f} MB" if key in pk else ""
        return f"{label} {ph[key + '_s']:.2f} s{peak}"
    return "; ".join(one(k, l) for k, l in (("import", "import"), ("add", "add_job"), ("run", "run()"),
                                             ("results", "results()")))


def merge_block(text, start, end, lines, at_targets_end=False):
    """`text` with the block between the markers `start` and `end` replaced
    by `lines` (which carry the markers themselves). Without the markers the
    block goes before "## Targets", or with `at_targets_end` at the end of
    that section's list; the rest of the report is left as it was."""
    block = "\n".join(lines) + "\n"
    if start in text and end in text:
        a = text.index(start)
        b = text.index(end) + len(end)
        return text[:a] + block + text[b:].lstrip("\n")
    if "## Targets" not in text:
        return text.rstrip("\n") + "\n\n" + block
    a = text.index("## Targets")
    if not at_targets_end:
        return text[:a] + block + text[a:]
    nxt = text.find("\n## ", a + 1)
    b = len(text) if nxt < 0 else nxt + 1
    return text[:b].rstrip("\n") + "\n" + block + "\n" + text[b:]


def merge_sections(path, blocks):
    """Rewrites only the given marked blocks of an existing report: `blocks`
    is a list of (start marker, end marker, lines, at_targets_end)."""
    with open(path) as f:
        text = f.read()
    for start, end, lines, at_targets_end in blocks:
        if lines:
            text = merge_block(text, start, end, lines, at_targets_end)
    with open(path, "w") as f:
        f.write(text)


MILLION_START = "<!-- million: written by harness.py; --million rewrites just this section and its targets -->"
MILLION_END = "<!-- /million -->"
MTARGETS_START = "<!-- million-targets -->"
MTARGETS_END = "<!-- /million-targets -->"


def million_rows(results):
    """The cases of the million-jobs table: the million group, and any
    other case that is the 100k counterpart of one of its 1M cases (in full
    mode, the main table's plain 100,000 × 10,000/batch)."""
    if not any(c.million for c, _, _ in results["cases"]):
        return [], None
    big = results.get("million_n", MILLION)
    partners = {(c.variant, big // 10, c.ipb, c.fmt) for c, _, _ in results["cases"] if c.million and c.n == big}
    rows = [(c, ours) for c, ours, _ in results["cases"]
            if c.kind == "cli" and (c.million or (c.variant, c.n, c.ipb, c.fmt) in partners)]
    rows.sort(key=lambda r: (r[0].fmt != "files", r[0].variant, -(r[0].ipb or 0), r[0].n))
    return rows, big


def million_section(results, machine, command, started, finished):
    """Issue 21's cases at a million jobs, ours only, with their 100k
    counterparts. Its own command, date and machine, since `--million`
    rewrites only this section (and its lines of the Targets list)."""
    rows, big = million_rows(results)
    if not rows:
        return []
    L = [MILLION_START, f"## A million jobs (ours only, {TITLES['anthropic']} `{MODELS['anthropic']}`)", ""]
    L.append(f"Measured by `{command}` on {finished:%Y-%m-%d %H:%M} UTC "
             f"({(finished - started).total_seconds() / 60:.0f} min).")
    L.append("")
    L += machine
    L.append(f"- Load average at start / end: {results['load_start']} / {results['load_end']}")
    L.append("")
    if big != MILLION:
        L.append(f"**Scaled down with `--million-n {big}`: N = {big:,} and {big // 10:,} stand for "
                 f"1,000,000 and 100,000. A dry check of the harness, not a measurement.**")
        L.append("")
    L.append("Ours only: Python batchata does not finish 100,000 jobs within its cap. Same jobs "
             "(~1 KB prompts; schema: the same prompts with the small response schema), same "
             "emulator and command as above, plus `--results-format jsonl` for the jsonl layout. "
             "`files` is the default layout, one `{job_id}.json` per job; `jsonl` writes every "
             "result as one line of `results.jsonl`. "
             f"Each {big:,}-job case runs once, not three times (each takes minutes and "
             f"gigabytes of disk); the {big // 10:,}-job cases beside them run in the same "
             "benchmark run and give the memory ratio. User and system CPU are the process's own, "
             "from the same wait4(2) call as its peak RSS. Before each run of 100,000 jobs or more "
             "the harness syncs the disk, so no earlier case's writeback lands in a timed run; the "
             "jsonl cases run first and the files case at the largest N last, and result folders "
             "are deleted only after every case is timed. The result check reads every job's "
             "result: files by job id; `results.jsonl` in a stream, one status byte per job, each "
             "job exactly once.")
    L.append("")
    L.append("| case | layout | wall | user CPU | system CPU | peak RSS | HTTP calls | results |")
    L.append("|---|---|---|---|---|---|---|---|")
    for c, ours in rows:
        name = f"{c.variant} {c.n:,} × {c.ipb:,}/batch"
        o = summarize(ours)
        if o is None:
            L.append(f"| {name} | {c.fmt} | not run | | | | | {'skipped: ' + c.skipped if c.skipped else ''} |")
            continue
        res = "✓ " + o["detail"] if o["ok"] else "✗ " + o["detail"]
        L.append(f"| {name} | {c.fmt} | {o['wall']:.2f} s ({o['runs']}×) | {secs(o['user'])} | "
                 f"{secs(o['sys'])} | {mb(o['rss'])} | {o['calls']} | {res} |")
    L.append("")
    L.append(MILLION_END)
    L.append("")
    return L


RSS_CAP_1M = 64e6  # bytes: issue 21, peak RSS at 1M jobs
RATIO_1M = 1.3  # peak at 1M / peak at 100k, same layout and items per batch
USER_CPU_1M = 12.0  # seconds of user CPU for 1M plain jobs at 10,000/batch


def million_targets(results):
    """Issue 21's targets, one line each; "not run" (never ✓) when a case
    did not run, with the reason."""
    runs = {c.key: (c, summarize(o)) for c, o, _ in results["cases"] if c.kind == "cli"}
    big = results.get("million_n", MILLION)
    small = big // 10
    why_default = "not in this run: the million cases run in full mode or with --million"
    out = []
    if big != MILLION:
        out.append(f"(scaled down with --million-n {big}: {big:,} and {small:,} jobs stand for 1,000,000 "
                   "and 100,000; a dry check, not a measurement)")

    def look(variant, n, ipb, fmt):
        c, o = runs.get(("cli", "anthropic", variant, n, ipb, fmt), (None, None))
        if o is None:
            return None, ("skipped: " + c.skipped if c is not None and c.skipped else why_default)
        return o, None

    for variant, ipb, fmt in (("plain", 10000, "files"), ("plain", 10000, "jsonl"),
                              ("plain", 1000, "jsonl"), ("schema", 10000, "jsonl")):
        label = f"anthropic {variant} {big:,} jobs × {ipb:,}/batch, {fmt}"
        o, why = look(variant, big, ipb, fmt)
        if o is None:
            out.append(f"not run: {label}: peak RSS ≤ {RSS_CAP_1M / 1e6:.0f} MB; ≤ {RATIO_1M}× the "
                       f"{small:,}-job peak" + ("; user CPU ≤ 12 s" if variant == "plain" and ipb == 10000 else "")
                       + f" ({why})")
            continue
        whole = "results all present" if o["ok"] else "results INCOMPLETE"
        ok = o["ok"] and o["rss"] is not None and o["rss"] <= RSS_CAP_1M
        out.append(f"{'✓' if ok else '✗'} {label}: {mb(o['rss'])} peak (target ≤ {RSS_CAP_1M / 1e6:.0f} MB), "
                   f"{whole}")
        o100, why100 = look(variant, small, ipb, fmt)
        if o100 is None:
            out.append(f"not run: {label}: peak ≤ {RATIO_1M}× the peak at {small:,} jobs ({why100})")
        elif o["rss"] and o100["rss"]:
            r = o["rss"] / o100["rss"]
            out.append(f"{'✓' if r <= RATIO_1M else '✗'} {label}: peak {big:,} / {small:,} jobs = "
                       f"{mb(o['rss'])} / {mb(o100['rss'])} = {r:.2f} (target ≤ {RATIO_1M})")
        else:
            out.append(f"✗ {label}: peak {big:,} / {small:,} jobs: a peak was not measured")
        if variant == "plain" and ipb == 10000:
            u = o.get("user")
            ok = o["ok"] and u is not None and u <= USER_CPU_1M
            out.append(f"{'✓' if ok else '✗'} {label}: {secs(u)} user CPU (target ≤ {USER_CPU_1M:.0f} s), "
                       f"{secs(o.get('sys'))} system, {o['wall']:.1f} s wall")
    return out


def million_targets_block(results):
    """The million targets as list lines between markers, so `--million`
    can rewrite them inside an existing Targets list."""
    return [MTARGETS_START] + [f"- {t}" for t in million_targets(results)] + [MTARGETS_END]


def targets(results, micro=None):
    """The targets of the main tables, one line each; "not run" (never ✓)
    where a case or side did not run. The million targets follow them
    (million_targets_block)."""
    out = []
    by = {}
    for c, ours, py in results["cases"]:
        if c.kind == "cli" and c.fmt == "files":
            by[(c.provider, c.variant, c.n, c.ipb)] = (summarize(ours), summarize(py))
    for provider in ("anthropic", "openai"):
        for ipb in (10000, 1000):
            o, p = by.get((provider, "plain", 10000, ipb), (None, None))
            if o and p and o["rss"] and p["rss"]:
                speed = p["wall"] / o["wall"]
                memr = o["rss"] / p["rss"]
                ok = speed >= 30 and memr <= 0.2
                out.append(f"{'✓' if ok else '✗'} {provider} 10,000 jobs × {ipb:,}/batch: {speed:.1f}× faster "
                           f"(target ≥ 30×), {memr:.2f} of Python's peak memory (target ≤ 0.20)")
            else:
                out.append(f"not run: {provider} 10,000 jobs × {ipb:,}/batch against Python "
                           f"(target ≥ 30× faster, ≤ 0.20 of its peak memory)")
        for ipb in (10000, 1000):
            o, _ = by.get((provider, "plain", 100000, ipb), (None, None))
            if not o:
                out.append(f"not run: {provider} 100,000 jobs × {ipb:,}/batch end to end (target < 15 s, "
                           f"< 150 MB peak; ≤ 2× the 10,000-job peak)")
                continue
            ok = o["wall"] < 15 and (o["rss"] or 1e12) < 150e6 and o["ok"]
            out.append(f"{'✓' if ok else '✗'} {provider} 100,000 jobs × {ipb:,}/batch end to end: "
                       f"{o['wall']:.1f} s (target < 15 s), {mb(o['rss'])} peak (target < 150 MB), "
                       f"results {'all present' if o['ok'] else 'INCOMPLETE'}")
            o10, _ = by.get((provider, "plain", 10000, ipb), (None, None))
            if o10 and o["rss"] and o10["rss"]:
                r = o["rss"] / o10["rss"]
                out.append(f"{'✓' if r <= 2 else '✗'} {provider} peak memory 100k / 10k ({ipb:,}/batch): "
                           f"{mb(o['rss'])} / {mb(o10['rss'])} = {r:.2f} (target ≤ 2)")
            else:
                out.append(f"not run: {provider} peak memory 100k / 10k ({ipb:,}/batch) (target ≤ 2)")
    appends = {fid.rsplit("/", 1)[-1]: ns / (el or 1) for fid, ns, el in (micro or []) if fid.startswith("state_append/")}
    small, large = appends.get("done_with_10k_existing"), appends.get("done_with_1000k_existing")
    if small and large:
        r = large / small
        out.append(f"{'✓' if r <= 1.5 else '✗'} state update cost per event: {fmt_ns(small)} with 10k events "
                   f"already recorded, {fmt_ns(large)} with 1M ({r:.2f}×; target: flat, ≤ 1.5×)")
    else:
        out.append("state update cost per event: not measured in this run (the micro-benchmarks were skipped)")
    return out


# ------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="N <= 10,000 only, Python cap 180 s")
    mode.add_argument("--smoke", action="store_true", help="our side only, N = 100; exits 1 if a check fails")
    mode.add_argument("--million", action="store_true",
                      help="only the million-jobs cases (issue 21; ours only, Anthropic) and their 100k "
                           "counterparts; rewrites only their section and targets in RESULTS.md")
    ap.add_argument("--ours-only", action="store_true", help="skip the Python library")
    ap.add_argument("--full-python", action="store_true",
                    help="also run the Python library at 100,000 × 1,000/batch (another cap's worth of time)")
    ap.add_argument("--bin", help="use this batchata binary instead of building one")
    ap.add_argument("--python-cap", type=float, default=None, help="seconds per Python run (default 600)")
    ap.add_argument("--runs", type=int, default=3, help="runs per fast case (default 3)")
    ap.add_argument("--no-micro", action="store_true", help="skip the criterion micro-benchmarks")
    ap.add_argument("--only", help="run only cases whose name contains this text")
    ap.add_argument("--work", help="scratch folder for job sets, results and logs (default bench/work)")
    ap.add_argument("--out", default=None, help="report path (default bench/RESULTS.md; none in --smoke)")
    ap.add_argument("--million-n", type=int, default=MILLION, metavar="N",
                    help="jobs in the million cases (default 1,000,000; their counterparts get N/10): "
                         "scale them down for a dry check of the harness, e.g. 20000")
    args = ap.parse_args()
    if args.million_n < 10:
        ap.error("--million-n must be at least 10")

    mode = "smoke" if args.smoke else "quick" if args.quick else "million" if args.million else "full"
    cap = args.python_cap or (180.0 if mode == "quick" else 600.0)
    started = datetime.datetime.now(datetime.timezone.utc)
    global WORK
    if args.work:
        WORK = os.path.abspath(args.work)
    runs = os.path.join(WORK, "runs")
    if os.path.isdir(runs):
        remove_runs(runs)
    if mode != "smoke":
        settle_after_removal()
    os.makedirs(runs, exist_ok=True)
    os.makedirs(os.path.join(WORK, "logs"), exist_ok=True)
    binary = build_tools(os.path.abspath(args.bin) if args.bin else None)
    with_python = not (args.ours_only or args.smoke)
    todo = [c for c in cases(mode, args.full_python, args.only, args.million_n)
            if not args.only or args.only in c.name]
    pyapi = any(c.kind == "pyapi" for c in todo)
    need_python = with_python and any(c.python for c in todo)
    vpy, note = (setup_python() if need_python or pyapi else (None, None))
    if pyapi:
        setup_rs(vpy)
    load_start = loadavg()
    emu = EmulatorProc(binary)
    results = {"cases": [], "load_start": load_start, "million_n": args.million_n}
    failures = []
    try:
        for c in todo:
            if c.fmt == "jsonl" and not has_results_format(binary):
                c.skipped = ("this batchata's `run --help` has no `--results-format` "
                             "(the jsonl results layout of issue 21); use a build that has it")
                print(f"  skip    {c.name}: {c.skipped}", flush=True)
                results["cases"].append((c, [], []))
                continue
            jobs = job_set(c.provider, c.n, c.variant)
            ours = []
            for r in range(1 if mode == "smoke" else c.runs or args.runs):
                if c.kind == "pyapi":
                    ours.append(run_pyapi(vpy, "batchata_rs", emu, c, jobs, r, cap))
                else:
                    ours.append(run_ours(binary, emu, c, jobs, r))
                print(f"  {'rs' if c.kind == 'pyapi' else 'ours':7} {c.name}: {ours[-1]['wall']:.2f} s, "
                      f"user {secs(ours[-1]['user'])}, sys {secs(ours[-1]['sys'])}, {mb(ours[-1]['rss'])}, "
                      f"{ours[-1]['calls']['total']} calls, {ours[-1]['detail']}", flush=True)
            if not all(o["ok"] for o in ours):
                failures.append(f"ours {c.name}: {ours[-1]['detail']}")
            py = []
            if with_python and c.python:
                for r in range(args.runs):
                    if c.kind == "pyapi":
                        py.append(run_pyapi(vpy, "batchata", emu, c, jobs, r, cap))
                    else:
                        py.append(run_python(vpy, emu, c, jobs, r, cap))
                    print(f"  python  {c.name}: {py[-1]['wall']:.2f} s, user {secs(py[-1]['user'])}, "
                          f"sys {secs(py[-1]['sys'])}, {mb(py[-1]['rss'])}, "
                          f"{py[-1]['calls']['total']} calls, {py[-1]['detail']}", flush=True)
                    if py[-1].get("capped") or py[-1]["wall"] > FAST_CASE_S:
                        break
            results["cases"].append((c, ours, py))
    finally:
        emu.stop()
        results["load_end"] = loadavg()
    if args.smoke:
        for f in failures:
            print("FAILED", f)
        print(f"smoke: {len(todo) - len(failures)} passed, {len(failures)} failed")
        remove_runs(runs, record=False)
        return 1 if failures else 0
    micro = None if args.no_micro or mode == "million" else run_micro()
    finished = datetime.datetime.now(datetime.timezone.utc)
    command = "python3 bench/harness.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    out = args.out or os.path.join(BENCH, "RESULTS.md")
    machine = machine_description(note, vpy)
    if todo and all(c.kind == "pyapi" for c in todo) and os.path.exists(out):
        # Only the Python API case ran: replace its section, keep the rest.
        merge_sections(out, [(PYAPI_START, PYAPI_END, pyapi_section(results, machine, command, started,
                                                                    finished), False)])
    elif mode == "million" and os.path.exists(out):
        # Only the million cases ran: replace their section and targets.
        merge_sections(out, [
            (MILLION_START, MILLION_END, million_section(results, machine, command, started, finished), False),
            (MTARGETS_START, MTARGETS_END, million_targets_block(results), True),
        ])
    else:
        write_report(out, results, machine, command, micro, started, finished, mode)
    print(f"wrote {os.path.relpath(out, os.getcwd())}")
    remove_runs(runs)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
