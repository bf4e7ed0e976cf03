"""A rerun over a results folder that has results but no state file."""

import pytest

import batchata_rs
from batchata_rs import Batch

MODEL = "claude-sonnet-4-20250514"


def make(n=4, changed=None):
    b = Batch("./out").set_default_params(model=MODEL)
    for i in range(n):
        text = changed if (changed is not None and i == n - 1) else f"question {i}"
        b.add_job(messages=[{"role": "user", "content": text}])
    return b


def request_files(workdir):
    return sorted(p.name for p in (workdir / "out" / "raw_files" / "requests").glob("*"))


def test_a_rerun_without_state_is_refused_in_python_words(workdir):
    first = make().run().results()
    assert len(first["completed"]) == 4
    with pytest.raises(batchata_rs.ValidationError) as e:
        make().run()
    msg = str(e.value)
    assert "adopt_results()" in msg and "set_state(file=..., reuse_state=False)" in msg, msg
    assert "CLI" not in msg and "--" not in msg, msg


def test_adopt_results_keeps_unchanged_answers_and_runs_the_rest(workdir):
    first = make().run().results()
    sent = request_files(workdir)
    assert len(sent) == 1
    # Everything unchanged: nothing is sent again.
    again = make().adopt_results().run().results()
    assert sorted(r.job_id for r in again["completed"]) == sorted(r.job_id for r in first["completed"])
    assert request_files(workdir) == sent
    # One job edited: only it runs.
    edited = make(changed="a different question")
    run = edited.adopt_results().run()
    assert len(request_files(workdir)) == 2
    assert run.status()["completed"] == 4


def test_a_rerun_with_reuse_off_runs_everything_again(workdir):
    make().run()
    res = make().set_state(file="./state.json", reuse_state=False).run().results()
    assert len(res["completed"]) == 4
    assert len(request_files(workdir)) == 2
