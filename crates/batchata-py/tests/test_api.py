"""The batchata 0.4.7 API surface, end to end against the emulator."""

import json
import os
import signal
import threading
import time

import pytest
from pydantic import BaseModel, field_validator

import batchata_rs
from batchata_rs import Batch, BatchRun, Citation, JobResult

MODEL = "claude-sonnet-4-20250514"


class Review(BaseModel):
    title: str
    score: int

    @field_validator("title")
    @classmethod
    def shout(cls, v: str) -> str:  # proves the user's own validators run
        return v.upper()


def test_exceptions_and_names():
    assert issubclass(batchata_rs.ProviderNotFoundError, batchata_rs.ProviderError)
    assert issubclass(batchata_rs.ValidationError, batchata_rs.BatchataError)
    assert issubclass(batchata_rs.CostLimitExceededError, batchata_rs.BatchataError)
    for name in ("Batch", "BatchRun", "Job", "JobResult", "Citation"):
        assert hasattr(batchata_rs, name)


def test_builder_defaults_and_chaining(workdir):
    b = Batch("./out")
    assert b.config.max_parallel_batches == 10 and b.config.items_per_batch == 10
    assert b.config.raw_files is True
    assert Batch("").config.raw_files is False
    assert b.set_default_params(model=MODEL) is b
    b.set_default_params(temperature=0.3)
    assert b.config.default_params == {"model": MODEL, "temperature": 0.3}
    assert b.set_state(file="./s.json", reuse_state=False) is b
    assert b.add_cost_limit(usd=1.0) is b
    assert b.add_time_limit(minutes=1) is b
    assert b.config.time_limit_seconds == 60
    assert b.set_verbosity("ERROR") is b and b.config.verbosity == "error"
    assert b.add_job(messages=[{"role": "user", "content": "hi"}]) is b
    assert len(b) == 1 and b.jobs[0].temperature == 0.3
    with pytest.raises(ValueError):
        b.add_cost_limit(usd=0)
    with pytest.raises(ValueError):
        b.add_time_limit()
    with pytest.raises(ValueError):
        b.set_verbosity("loud")
    with pytest.raises(ValueError):
        Batch("./o2").add_job(messages=[{"role": "user", "content": "x"}])  # no model
    with pytest.raises(ValueError):
        Batch("./o3").run()  # no jobs
    with pytest.raises(batchata_rs.BatchataError):
        Batch("./o4").set_default_params(model="no-such-model-9")
    # A setting the native batch refuses leaves the config as it was.
    with pytest.raises(batchata_rs.ValidationError):
        b.add_time_limit(seconds=-5)
    assert b.config.time_limit_seconds == 60
    assert b.config.state_file == "./s.json" and b.config.reuse_state is False
    assert b.set_state() is b and b.config.state_file is None


def test_messages_content_lists_typed_answers_and_progress(workdir):
    seen = []
    batch = (
        Batch("./out", items_per_batch=2)
        .set_default_params(model=MODEL)
        .add_job(messages=[{"role": "user", "content": [{"type": "text", "text": "Review it"}]}],
                 response_model=Review)
        .add_job(messages=[{"role": "system", "content": "Be brief"},
                           {"role": "user", "content": "hello"}], max_tokens=50)
        .add_job(prompt="say hi", model="gpt-4.1-2025-04-14")
    )
    run = batch.run(on_progress=lambda s, t, d: seen.append((s, t, d)), progress_interval=0.1)
    assert isinstance(run, BatchRun) and run.is_complete
    res = run.results()
    assert [len(res[k]) for k in ("completed", "failed", "cancelled")] == [3, 0, 0]
    typed = [r for r in res["completed"] if r.parsed_response is not None]
    assert len(typed) == 1 and isinstance(typed[0].parsed_response, Review)
    assert typed[0].parsed_response.title.isupper()
    assert run.get_failed_jobs() == {}

    stats, elapsed, batch_data = seen[0]
    assert elapsed == 0.0
    assert set(stats) >= {"total", "pending", "active", "completed", "failed", "cancelled",
                          "cost_usd", "cost_limit_usd", "is_complete", "batches_total",
                          "batches_completed", "batches_pending", "items_per_batch"}
    assert seen[-1][0]["completed"] == 3 and isinstance(seen[-1][2], dict)
    st = run.status()
    assert st["total"] == 3 and st["completed"] == 3 and st["is_complete"] is True
    js = run.to_json()
    assert len(js["completed_results"]) == 3 and js["config"]["items_per_batch"] == 2
    json.dumps(js)


def test_job_result_round_trip(tmp_path):
    r = JobResult(job_id="j1", raw_response="x", parsed_response=Review(title="a", score=1),
                  citations=[Citation(text="t", source="s", page=2)],
                  citation_mappings={"title": [Citation(text="t", source="s", page=2)]},
                  input_tokens=3, output_tokens=4, cost_usd=0.5)
    assert r.is_success and r.total_tokens == 7
    d = r.to_dict()
    assert d["parsed_response"] == {"title": "A", "score": 1}
    back = JobResult.from_dict(d)
    assert back.citations[0].page == 2 and back.citation_mappings["title"][0].page == 2
    r.save_to_json(str(tmp_path / "sub" / "r.json"))
    assert json.loads((tmp_path / "sub" / "r.json").read_text())["job_id"] == "j1"
    assert not JobResult(job_id="x", error="boom").is_success


def test_failed_jobs_carry_errors(workdir, emulator):
    bad = batchata_rs.emulator.start(error_rate=1.0)
    try:
        batch = Batch("./out").set_default_params(model=MODEL)
        for i in range(3):
            batch.add_job(messages=[{"role": "user", "content": f"q{i}"}])
        res = batch.run().results()
    finally:
        bad.stop()
    assert len(res["failed"]) == 3 and not res["completed"]
    for r in res["failed"]:
        assert not r.is_success and r.error
    assert os.environ["ANTHROPIC_BASE_URL"] == emulator.urls["anthropic"]


def test_resume_does_not_resubmit_and_keeps_results_dir(workdir):
    def make():
        b = Batch("./out").set_state(file="./state.json").set_default_params(model=MODEL)
        for i in range(4):
            b.add_job(messages=[{"role": "user", "content": f"question {i}"}])
        return b

    (workdir / "out").mkdir()
    (workdir / "out" / "keep.txt").write_text("mine")
    first = make().run().results()
    assert len(first["completed"]) == 4
    raw = sorted(p.name for p in (workdir / "out" / "raw_files").rglob("*batch*"))
    second = make().run().results()
    assert sorted(r.job_id for r in second["completed"]) == sorted(r.job_id for r in first["completed"])
    # Nothing new was sent: no new provider batch files.
    assert sorted(p.name for p in (workdir / "out" / "raw_files").rglob("*batch*")) == raw
    assert (workdir / "out" / "keep.txt").read_text() == "mine"


def test_dry_run_submits_nothing(workdir, capsys):
    run = (Batch("./out").set_default_params(model=MODEL)
           .add_job(messages=[{"role": "user", "content": "hi"}]).run(dry_run=True))
    assert isinstance(run, BatchRun)
    assert run.results() == {"completed": [], "failed": [], "cancelled": []}
    assert capsys.readouterr().out.strip()
    assert not list((workdir / "out").glob("job-*.json"))


def test_ctrl_c_stops_run_saves_state_and_raises(workdir):
    slow = batchata_rs.emulator.start(processing_delay=30.0)
    try:
        batch = (Batch("./out", items_per_batch=1, max_parallel_batches=1)
                 .set_state(file="./state.json").set_default_params(model=MODEL))
        for i in range(5):
            batch.add_job(messages=[{"role": "user", "content": f"q{i}"}])
        timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            batch.run()
        assert time.monotonic() - t0 < 20
        raw = list((workdir / "out" / "raw_files").rglob("requests/*"))
        assert len(raw) <= 1, "nothing new is submitted after Ctrl+C"
        assert (workdir / "state.json").is_file()
    finally:
        slow.stop()
