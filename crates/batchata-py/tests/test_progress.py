"""The progress callback's ``batch_data`` in batchata 0.4.7's shape."""

import datetime

import batchata_rs
from batchata_rs import Batch, Job

MODEL = "claude-sonnet-4-20250514"

# batchata 0.4.7, core/batch_run.py: every entry of `batch_tracking` (the
# callback's batch_data) is made with these keys, first as `pending_N`
# (start_time None) and again under the provider's batch id once created
# (start_time a datetime); `provider` is the provider's class name and
# `jobs` the batch's Job objects.
ENTRY = {
    "start_time": (type(None), datetime.datetime),
    "status": str,
    "total": int,
    "completed": int,
    "cost": float,
    "estimated_cost": float,
    "provider": str,
    "jobs": list,
}
# ... and when the batch ends, `failed` and `completion_time` are added,
# and `error` when it did not complete.
ENDED = {"failed": int, "completion_time": datetime.datetime}
STATUSES = {"pending", "running", "complete", "failed", "cancelled"}


def check_entry(key, info, jobs_by_id):
    assert set(ENTRY) <= set(info), (key, info)
    for name, kind in {**ENTRY, **(ENDED if "completion_time" in info else {})}.items():
        assert isinstance(info[name], kind), (key, name, info[name])
    assert info["status"] in STATUSES, info["status"]
    assert info["provider"] == "AnthropicProvider"
    assert all(isinstance(j, Job) and jobs_by_id[j.id] is j for j in info["jobs"])
    assert len(info["jobs"]) == info["total"]
    extra = set(info) - set(ENTRY) - set(ENDED) - {"error"}
    assert not extra, extra
    if info["status"] == "pending":
        assert key.startswith("pending_") and info["start_time"] is None
    else:
        assert not key.startswith("pending_") and info["start_time"] is not None
    if info["status"] in ("complete", "failed", "cancelled"):
        assert set(ENDED) <= set(info)
        assert ("error" in info) == (info["status"] != "complete")


def test_batch_data_has_0_4_7s_keys_and_types(workdir):
    slow = batchata_rs.emulator.start(processing_delay=0.4)
    try:
        batch = Batch("./out", items_per_batch=1, max_parallel_batches=1).set_default_params(model=MODEL)
        for i in range(3):
            batch.add_job(messages=[{"role": "user", "content": f"question {i}"}])
        seen = []
        run = batch.run(on_progress=lambda s, t, d: seen.append(d), progress_interval=0.05)
    finally:
        slow.stop()
    jobs_by_id = {j.id: j for j in batch.jobs}
    statuses = set()
    for data in seen:
        assert isinstance(data, dict)
        for key, info in data.items():
            check_entry(key, info, jobs_by_id)
            statuses.add(info["status"])
    assert {"pending", "running", "complete"} <= statuses, statuses
    final = seen[-1]
    assert len(final) == 3 and all(i["status"] == "complete" for i in final.values())
    assert sorted(j.id for i in final.values() for j in i["jobs"]) == sorted(jobs_by_id)
    for info in final.values():
        assert info["completed"] == 1 and info["failed"] == 0
        assert info["estimated_cost"] > 0 and info["cost"] > 0
        assert info["completion_time"] >= info["start_time"]
    assert run.status()["completed"] == 3


def test_a_batch_that_failed_says_why(workdir):
    bad = batchata_rs.emulator.start(error_rate=1.0)
    try:
        seen = []
        (Batch("./out").set_default_params(model=MODEL)
         .add_job(messages=[{"role": "user", "content": "q"}])
         .run(on_progress=lambda s, t, d: seen.append(d), progress_interval=0.05))
    finally:
        bad.stop()
    (info,) = seen[-1].values()
    assert info["status"] == "failed" and info["failed"] == 1 and info["completed"] == 0
    assert isinstance(info["error"], str) and info["error"]
