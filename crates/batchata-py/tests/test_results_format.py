"""results_format="jsonl": a batchata_rs keyword of Batch(...), not in batchata."""

import json

import pytest

import batchata_rs
from batchata_rs import Batch

MODEL = "claude-sonnet-4-20250514"


def make(results_format=None, n=5):
    b = Batch("./out", items_per_batch=2, results_format=results_format)
    b.set_default_params(model=MODEL).set_state(file="./state.json")
    for i in range(n):
        b.add_job(messages=[{"role": "user", "content": f"question {i}"}])
    return b


def test_jsonl_results_are_lines_of_one_file_and_results_reads_them(workdir):
    res = make("jsonl").run().results()
    assert len(res["completed"]) == 5
    assert all(r.raw_response.startswith("Echo: question") for r in res["completed"])
    out = workdir / "out"
    assert not list(out.glob("*.json"))
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 5
    by_id = {json.loads(line)["job_id"]: json.loads(line) for line in lines}
    for r in res["completed"]:
        assert by_id[r.job_id]["raw_response"] == r.raw_response
        assert by_id[r.job_id]["cost_usd"] == r.cost_usd
    # A resume follows the state's layout; asking for the other is refused.
    again = make().run().results()
    assert sorted(r.job_id for r in again["completed"]) == sorted(by_id)
    with pytest.raises(batchata_rs.ValidationError) as e:
        make("files").run()
    msg = str(e.value)
    assert 'results_format="jsonl"' in msg and "reuse_state=False" in msg, msg
    assert "CLI" not in msg, msg
    assert len((out / "results.jsonl").read_text().splitlines()) == 5


def test_files_stays_the_default_and_a_bad_format_is_refused(workdir):
    res = make().run().results()
    assert len(res["completed"]) == 5
    assert len(list((workdir / "out").glob("*.json"))) == 5
    assert not (workdir / "out" / "results.jsonl").exists()
    with pytest.raises(ValueError):
        Batch("./out2", results_format="csv")
