#!/usr/bin/env python3
"""Benchmark harness: our `batchata` CLI side by side with the Python library
batchata 0.4.7, both against the same local emulator.

    python3 bench/harness.py            # everything; writes bench/RESULTS.md
    python3 bench/harness.py --quick    # N <= 10,000, shorter Python cap
    python3 bench/harness.py --smoke    # our side only, N = 100, checks only
    python3 bench/harness.py --million  # only the million-jobs cases (ours)

What it does, in order (see bench/README.md):
1. builds the release CLI and copies it to bench/work/bin, so other builds of
   target/ cannot change the binary mid-run;
2. finds a Python >= 3.12 (batchata 0.4.7 requires it) and installs
   batchata==0.4.7 from PyPI into bench/.venv;
3. writes deterministic job sets (prompts of about 1 KB; a small response
   schema; small PDF and text files) under bench/work/jobs;
4. starts `batchata emulate` as its own process (batches end at once, no
   faults), so the emulator's memory is not counted against either side;
5. runs every case on each side (cases.py says which): fresh results
   folder, emulator reset, the whole process timed and its peak RSS and
   user / system CPU read by bench/peak-rss (wait4(2) in a small parent, as
   /usr/bin/time does), the emulator's HTTP call counts read from
   GET /_emulator/stats, and every job's result checked;
6. runs the criterion micro-benchmarks and writes bench/RESULTS.md
   (report.py).

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
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from cases import FAST_CASE_S, MILLION, MODELS, SCHEMA, cases
from report import (MILLION_END, MILLION_START, MTARGETS_END, MTARGETS_START, PYAPI_END, PYAPI_START, mb,
                    merge_sections, million_section, million_targets_block, pyapi_section, secs, write_report)

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
WORK = os.path.join(BENCH, "work")
VENV = os.path.join(BENCH, ".venv")
PY_LIB = "batchata==0.4.7"

WORDS = (
    "river mountain ledger invoice harbour copper lantern orchard meadow "
    "signal quarry timber canal beacon vessel granite thicket pasture "
    "archive bridge compass furnace garden hollow island journey kettle "
    "market needle office pillar quartz ribbon saddle tunnel valley window"
).split()


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


def delete_tree(top, threads=16):
    """shutil.rmtree with the unlinks spread over threads. On a disk mounted
    with `discard` each unlink of a written file waits for a discard of its
    blocks (~3 ms here); in parallel they overlap: 20,000 result files took
    3 s instead of 60 s (NOTES.md, section 10)."""
    def unlink_all(paths):
        for p in paths:
            try:
                os.unlink(p)
            except OSError:
                pass

    with ThreadPoolExecutor(threads) as ex:
        for dirpath, _, filenames in os.walk(top):
            paths = [os.path.join(dirpath, f) for f in filenames]
            list(ex.map(unlink_all, (paths[i:i + 256] for i in range(0, len(paths), 256))))
    shutil.rmtree(top, ignore_errors=True)  # the folders, now empty, and anything missed


def background_delete(doomed):
    """`harness.py --delete-folder DIR`, run detached by remove_runs: deletes
    DIR, then notes when it finished and removes DIR.pid."""
    delete_tree(doomed)
    with open(removed_marker(), "w") as f:
        f.write(f"{time.time():.0f}\n")
    try:
        os.remove(doomed + ".pid")
    except OSError:
        pass


def remove_runs(runs, record=True):
    """Deletes a benchmark's result folders and notes when, so the next
    benchmark can wait until the deleted inodes no longer slow it down.
    Only after every case is timed: deleting (and the inodes it frees) would
    slow any run it overlapped.

    More than 20,000 files are deleted in the background: the full
    benchmark writes about 2.7 million, minutes of deleting even in
    parallel (delete_tree). The folder is renamed to runs.removing-<time> at
    once and a detached `harness.py --delete-folder` deletes it; the next
    harness run waits for that (settle_after_removal)."""
    count = sum(len(files) for _, _, files in os.walk(runs))
    many = count > 20000
    if not (record and many):
        delete_tree(runs)
        return
    doomed = f"{runs}.removing-{time.time():.0f}"
    os.rename(runs, doomed)
    start_deleter(doomed)
    print(f"deleting {count:,} result files in the background ({os.path.basename(doomed)}); "
          "the next harness run waits for it", flush=True)


def start_deleter(doomed):
    cmd = [sys.executable, os.path.abspath(__file__), "--work", WORK, "--delete-folder", doomed]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    with open(doomed + ".pid", "w") as f:
        f.write(f"{proc.pid}\n")


def pending_deletes():
    """Result folders a background deleter is still removing. A folder whose
    deleter is gone (the machine restarted, or it was killed) gets a new
    one."""
    for pid_file in glob.glob(os.path.join(WORK, "runs.removing-*.pid")):
        if not os.path.isdir(pid_file[:-4]):
            os.remove(pid_file)
    pending = sorted(p for p in glob.glob(os.path.join(WORK, "runs.removing-*")) if os.path.isdir(p))
    for doomed in pending:
        try:
            with open(doomed + ".pid") as f:
                os.kill(int(f.read().strip()), 0)
        except (OSError, ValueError):
            start_deleter(doomed)
    return pending


def settle_after_removal():
    """Waits out the aftermath of deleting many files (NOTES.md, section 1).
    On ext4 without a journal (this machine's disk), allocating an inode
    skips every inode freed within the last 60 s, or 360 s while the block
    holding it is dirty; right after 400k result files are deleted, each new
    file scans past them and a 100k-job run took 2-4x longer in the kernel.
    Both sides would suffer, but not equally, so no case runs until the last
    mass delete is that old, and none while an earlier run's result files
    are still being deleted in the background (remove_runs)."""
    pending = pending_deletes()
    if pending:
        print(f"an earlier run's result files are still being deleted ({', '.join(map(os.path.basename, pending))}); "
              "waiting for that, since deleting slows file creation and takes the disk ...", flush=True)
        while any(os.path.isdir(p) for p in pending):
            time.sleep(10)
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
    ap.add_argument("--delete-folder", help=argparse.SUPPRESS)  # remove_runs' background deleter
    args = ap.parse_args()
    if args.million_n < 10:
        ap.error("--million-n must be at least 10")

    mode = "smoke" if args.smoke else "quick" if args.quick else "million" if args.million else "full"
    cap = args.python_cap or (180.0 if mode == "quick" else 600.0)
    started = datetime.datetime.now(datetime.timezone.utc)
    global WORK
    if args.work:
        WORK = os.path.abspath(args.work)
    if args.delete_folder:
        background_delete(args.delete_folder)
        return 0
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
