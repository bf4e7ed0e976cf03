"""Batch and BatchRun: batchata 0.4.7's builder and run, on the Rust core.

Everything about jobs, batches, cost, state and providers is done by the
native module; this file keeps 0.4.7's Python surface (names, keywords,
defaults, return shapes) and the parts that must stay in Python: the
Pydantic models, the progress callback, and Ctrl+C.

What is added is kept off the Python heap: the native batch spools each
job to disk, and the Python side keeps only a count (and the response
model of the jobs that have one). ``Batch.jobs`` is made from the spool
when it is asked for: a small record per job, its messages and prompt read
back only if someone asks for those too.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from . import _native
from ._parts import convert_messages
from .exceptions import BatchataError, ValidationError
from .job_result import CitationList, JobResult, _typed
from .types import Citation

_JOB_PARAMS = ("model", "temperature", "max_tokens")


@dataclass
class BatchParams:
    """The batch's configuration, as 0.4.7's ``Batch.config``."""

    state_file: Optional[str]
    results_dir: str
    max_parallel_batches: int
    items_per_batch: int
    cost_limit_usd: Optional[float] = None
    default_params: Dict[str, Any] = field(default_factory=dict)
    reuse_state: bool = True
    raw_files: bool = True
    verbosity: str = "warn"
    time_limit_seconds: Optional[float] = None
    results_format: Optional[str] = None


class _Spooled:
    """The messages and prompts of a batch's jobs, read back from the native
    batch's spool on first use (all at once: one pass over the spool) and
    kept until the batch gets another job."""

    __slots__ = ("_native", "_by_id", "_count")

    def __init__(self, native):
        self._native = native
        self._by_id = None
        self._count = 0

    def get(self, job_id: str):
        if self._by_id is None or self._count != len(self._native):
            by_id = {}
            for jid, messages, prompt in self._native.job_contents():
                if messages is not None:
                    messages = [{"role": r, "content": c} for r, c in messages]
                by_id[jid] = (messages, prompt)
            self._by_id = by_id
            self._count = len(by_id)
        return self._by_id.get(job_id, (None, None))


class Job:
    """A job as added (0.4.7's ``Job``); ``id`` is the one the run uses.

    The records in :attr:`Batch.jobs` are read back from the batch's spool,
    as the job is sent (defaults merged, the file's absolute path); their
    ``messages`` and ``prompt`` are read back only when first asked for (a
    content list comes back with its text parts joined).
    """

    __slots__ = (
        "id",
        "model",
        "file",
        "temperature",
        "max_tokens",
        "response_model",
        "enable_citations",
        "_contents",
    )

    def __init__(
        self,
        id: str,
        model: str,
        messages: Optional[List[Dict[str, Any]]] = None,
        file: Optional[Path] = None,
        prompt: Optional[str] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        response_model: Optional[Any] = None,
        enable_citations: bool = False,
    ):
        self.id = id
        self.model = model
        self.file = file
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.response_model = response_model
        self.enable_citations = enable_citations
        self._contents = (messages, prompt)

    @classmethod
    def _record(cls, id, model, file, temperature, max_tokens, response_model, enable_citations,
                spooled):
        """A job read back from the spool: its messages and prompt come from
        ``spooled`` when asked for."""
        job = cls(id, model, None, file, None, temperature, max_tokens, response_model,
                  enable_citations)
        job._contents = spooled
        return job

    def _both(self):
        c = self._contents
        return c.get(self.id) if isinstance(c, _Spooled) else c

    @property
    def messages(self) -> Optional[List[Dict[str, Any]]]:
        """The chat messages (None for a file or prompt job)."""
        return self._both()[0]

    @property
    def prompt(self) -> Optional[str]:
        """The prompt (None for a chat job)."""
        return self._both()[1]

    def to_dict(self) -> Dict[str, Any]:
        """The job as plain data, as 0.4.7's ``Job.to_dict``."""
        return {
            "id": self.id,
            "model": self.model,
            "messages": self.messages,
            "file": str(self.file) if self.file else None,
            "prompt": self.prompt,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "response_model": self.response_model.__name__ if self.response_model else None,
            "enable_citations": self.enable_citations,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Job":
        """The inverse of :meth:`to_dict` (without the response model)."""
        return cls(
            id=data["id"],
            model=data["model"],
            messages=data.get("messages"),
            file=Path(data["file"]) if data.get("file") else None,
            prompt=data.get("prompt"),
            temperature=data.get("temperature"),
            max_tokens=data.get("max_tokens"),
            enable_citations=data.get("enable_citations", False),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Job):
            return NotImplemented
        return self.to_dict() == other.to_dict() and self.response_model is other.response_model

    __hash__ = None  # mutable, compared by value: as a dataclass

    def __repr__(self) -> str:
        return (
            f"Job(id={self.id!r}, model={self.model!r}, file={self.file!r}, "
            f"temperature={self.temperature!r}, max_tokens={self.max_tokens!r}, "
            f"response_model={self.response_model!r}, enable_citations={self.enable_citations!r})"
        )


class Batch:
    """Builder for a batch run, with batchata 0.4.7's methods."""

    def __init__(
        self,
        results_dir: str,
        max_parallel_batches: int = 10,
        items_per_batch: int = 10,
        raw_files: Optional[bool] = None,
        results_format: Optional[str] = None,
    ):
        """``results_format`` is not in batchata 0.4.7: ``"files"`` (one
        ``{job_id}.json`` per job, batchata's layout) or ``"jsonl"`` (every
        result as one line of ``results_dir/results.jsonl``, for very large
        runs; a job run again gets a new line, and its last line wins).
        ``None``: the layout of the state being resumed, else files."""
        if raw_files is None:
            raw_files = bool(results_dir and str(results_dir).strip())
        if results_format is not None and results_format not in ("files", "jsonl"):
            raise ValueError(
                f"results_format must be \"files\" or \"jsonl\", got {results_format!r}"
            )
        self.config = BatchParams(
            state_file=None,
            results_dir=str(results_dir),
            max_parallel_batches=max_parallel_batches,
            items_per_batch=items_per_batch,
            raw_files=raw_files,
            results_format=results_format,
        )
        self._native = _native.NativeBatch(str(results_dir))
        if results_format is not None:
            self._native.set_results_format(results_format)
        # Jobs added; their records are made from the spool when asked for.
        self._count = 0
        self._records: Optional[List[Job]] = None
        # Job id -> response model, for the jobs that have one.
        self._typed: Dict[str, Any] = {}
        self._native.set_layout(max_parallel_batches, items_per_batch, raw_files)
        self._spooled = _Spooled(self._native)
        # Keywords in the defaults that no job may carry (raised per job, as before).
        self._bad_defaults: List[str] = []
        # json.dumps(model_json_schema()) per response model, made once.
        self._schemas: Dict[Any, str] = {}
        self._adopt_results = False

    def set_default_params(self, **kwargs) -> "Batch":
        """Defaults for every job, merged into earlier ones."""
        if "model" in kwargs:
            self._native.check_model(kwargs["model"])
        self.config.default_params.update(kwargs)
        self._bad_defaults = sorted(k for k in self.config.default_params if k not in _JOB_PARAMS)
        return self

    def _set(
        self, native_setter: Optional[Callable[..., None]], *args: Any, **config: Any
    ) -> "Batch":
        """Hands a setting to the native batch, which checks it (if it raises,
        nothing has changed), then records it in ``config`` under the given
        names. ``native_setter`` None: there is nothing to hand over."""
        if native_setter is not None:
            native_setter(*args)
        for name, value in config.items():
            setattr(self.config, name, value)
        return self

    def set_state(self, file: Optional[str] = None, reuse_state: bool = True) -> "Batch":
        """Keeps the run's state in ``file``; with ``reuse_state`` a rerun resumes."""
        if file is None:
            return self._set(None, state_file=None, reuse_state=reuse_state)
        return self._set(self._native.set_state, str(file), reuse_state,
                         state_file=file, reuse_state=reuse_state)

    def adopt_results(self, enabled: bool = True) -> "Batch":
        """Not in batchata 0.4.7. Without a state file, a results folder that
        already holds results for these jobs is refused (running would pay
        for them again). With this, the completed results whose job is
        unchanged are kept and only the other jobs run."""
        self._adopt_results = bool(enabled)
        return self

    def add_cost_limit(self, usd: float) -> "Batch":
        """Never spends more than ``usd`` (estimated cost is reserved up front)."""
        if usd <= 0:
            raise ValueError("Cost limit must be positive")
        return self._set(self._native.set_cost_limit, float(usd), cost_limit_usd=usd)

    def raw_files(self, enabled: bool = True) -> "Batch":
        """Whether provider requests and responses are saved under raw_files/."""
        return self._set(self._native.set_raw_files, enabled, raw_files=enabled)

    def set_verbosity(self, level: str) -> "Batch":
        """One of "debug", "info", "warn", "error"."""
        valid = {"debug", "info", "warn", "error"}
        if level.lower() not in valid:
            raise ValueError(f"Invalid verbosity level: {level}. Must be one of {valid}")
        return self._set(self._native.set_verbosity, level.lower(), verbosity=level.lower())

    def add_time_limit(
        self,
        seconds: Optional[float] = None,
        minutes: Optional[float] = None,
        hours: Optional[float] = None,
    ) -> "Batch":
        """Stops the run after this long: active batches are cancelled and
        unfinished jobs fail with a time-limit error; nothing is raised."""
        total = 0.0
        if seconds is not None:
            total += seconds
        if minutes is not None:
            total += minutes * 60
        if hours is not None:
            total += hours * 3600
        if total == 0:
            raise ValueError("Must specify at least one of seconds, minutes, or hours")
        return self._set(self._native.set_time_limit, float(total), time_limit_seconds=total)

    def _schema_json(self, response_model: Any) -> str:
        s = self._schemas.get(response_model)
        if s is None:
            s = json.dumps(response_model.model_json_schema())
            self._schemas[response_model] = s
        return s

    def add_job(
        self,
        messages: Optional[List[Dict[str, Any]]] = None,
        file: Optional[Union[str, Path]] = None,
        prompt: Optional[str] = None,
        model: Optional[str] = None,
        temperature: Optional[float] = None,
        max_tokens: Optional[int] = None,
        response_model: Optional[Any] = None,
        enable_citations: bool = False,
        **kwargs,
    ) -> "Batch":
        """Adds a job: ``messages``, or ``file`` with ``prompt``. Unset
        parameters come from :meth:`set_default_params`."""
        defaults = self.config.default_params
        if model is None:
            model = defaults.get("model")
            if model is None:
                raise ValueError("Model must be provided either in defaults or job parameters")
        if temperature is None:
            temperature = defaults.get("temperature")
        if max_tokens is None:
            max_tokens = defaults.get("max_tokens")
        if kwargs or self._bad_defaults:
            unknown = sorted(set(self._bad_defaults) | set(kwargs))
            raise ValidationError(f"unsupported job parameters: {', '.join(unknown)}")

        schema_json = self._schema_json(response_model) if response_model is not None else None
        flat = None
        if messages is not None:
            # The common case first: one message whose content is a string.
            if type(messages) is list and len(messages) == 1:
                m = messages[0]
                if type(m) is dict and "role" in m:
                    content = m.get("content")
                    if type(content) is str:
                        flat = [(m["role"], content)]
        if flat is None and messages is not None:
            flat, part_file, part_prompt, cite = convert_messages(
                messages, self._count, self.config.results_dir
            )
            if part_file is not None:
                # One image or document part: sent as the job's file.
                if file is not None or prompt is not None:
                    raise ValidationError(
                        f"job {self._count}: give either messages, or a file with a prompt, not both"
                    )
                file, prompt, flat = part_file, part_prompt, None
                enable_citations = enable_citations or cite
        path = Path(file) if file is not None else None

        job_id = self._native.add_job(
            model,
            flat,
            str(path) if path is not None else None,
            prompt,
            temperature,
            max_tokens,
            schema_json,
            bool(enable_citations),
        )
        self._count += 1
        self._records = None
        if response_model is not None:
            self._typed[job_id] = response_model
        return self

    @property
    def jobs(self) -> List[Job]:
        """The jobs added, in order (0.4.7's ``Batch.jobs``): read back from
        the batch's spool the first time they are asked for after a job was
        added."""
        if self._records is None:
            typed = self._typed
            spooled = self._spooled
            self._records = [
                Job._record(jid, model, Path(file) if file is not None else None,
                            temperature, max_tokens, typed.get(jid), cites, spooled)
                for jid, model, file, temperature, max_tokens, cites in self._native.job_records()
            ]
        return self._records

    def run(
        self,
        on_progress: Optional[Callable[[Dict, float, Dict], None]] = None,
        progress_interval: float = 1.0,
        print_status: bool = False,
        dry_run: bool = False,
    ) -> "BatchRun":
        """Runs the batch to the end and returns the finished :class:`BatchRun`.

        Ctrl+C stops it: nothing new is submitted, batches in flight are
        cancelled, state is saved, then ``KeyboardInterrupt`` is raised.
        """
        if not self._count:
            raise ValueError("No jobs added to batch")
        run = BatchRun(self.config, _LazyJobs(self), self._typed)
        if dry_run:
            text, estimated = self._native.plan()
            print(text)
            run._estimated_cost_usd = estimated
            return run
        self._native.set_progress_interval(float(progress_interval))
        # batch_data's estimated_cost: each batch's worst case, counted from
        # its prompts' tokens; only worth its time when someone looks.
        estimate = on_progress is not None and not print_status
        native_run = self._native.start(bool(print_status), estimate, self._adopt_results)
        run._attach(native_run)
        run._drive(None if print_status else on_progress, progress_interval)
        return run

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return (
            f"Batch(jobs={self._count}, "
            f"max_parallel_batches={self.config.max_parallel_batches}, "
            f"cost_limit=${self.config.cost_limit_usd or 'None'})"
        )


class _LazyJobs:
    """The jobs a batch had when a run started, read when iterated (a run's
    ``jobs`` is built from them only if someone asks)."""

    __slots__ = ("_batch", "_count")

    def __init__(self, batch: "Batch"):
        self._batch = batch
        self._count = len(batch)

    def __iter__(self):
        return iter(self._batch.jobs[: self._count])

    def __len__(self) -> int:
        return self._count


class BatchRun:
    """A run: its status, and its results once finished."""

    def __init__(self, config: BatchParams, jobs, typed: Optional[Dict[str, Any]] = None):
        self.config = config
        self._jobs_source = jobs
        self._jobs: Optional[Dict[str, Job]] = None
        # Job id -> response model, for typing results without the records.
        self._typed = typed
        self.results_dir = Path(config.results_dir)
        self._native = None
        self._estimated_cost_usd: Optional[float] = None
        # Batch index -> its Job records, for batch_data's "jobs".
        self._batch_jobs: Dict[int, List[Job]] = {}

    @property
    def jobs(self) -> Dict[str, Job]:
        """``{job_id: Job}`` of the run's jobs (0.4.7's ``BatchRun.jobs``)."""
        if self._jobs is None:
            self._jobs = {job.id: job for job in self._jobs_source}
        return self._jobs

    def _attach(self, native_run) -> None:
        self._native = native_run

    def _progress(self):
        """``(stats, elapsed, batch_data)`` as 0.4.7's callback gets them:
        batch_data maps each provider batch id (``pending_N`` before it has
        one) to 0.4.7's ``batch_tracking`` entry."""
        stats, elapsed, batches = self._native.progress(self.config.items_per_batch)
        stats.pop("stop_reason", None)
        data = {}
        for key, info, index in batches:
            jobs = self._batch_jobs.get(index)
            if jobs is None:
                get = self.jobs.get
                jobs = [j for j in map(get, self._native.batch_job_ids(index)) if j is not None]
                # A queued batch names its jobs once it is submitted.
                if jobs:
                    self._batch_jobs[index] = jobs
            info["jobs"] = jobs
            data[key] = info
        return stats, elapsed, data

    def _drive(self, on_progress, interval: float) -> None:
        native = self._native
        try:
            if on_progress is not None:
                stats, _, batches = self._progress()
                on_progress(stats, 0.0, batches)
            while True:
                done = native.wait(max(float(interval), 0.05) if on_progress else 0.5)
                if on_progress is not None:
                    stats, elapsed, batches = self._progress()
                    on_progress(stats, elapsed, batches)
                if done:
                    return
        except KeyboardInterrupt:
            # As the CLI does: submit nothing more, cancel what is in flight,
            # let the run save its state, then let the interrupt through. A
            # second Ctrl+C stops waiting (state on disk is already safe).
            native.shutdown(False)
            try:
                while not native.wait(0.5):
                    pass
            except (KeyboardInterrupt, BatchataError):
                pass
            raise

    @property
    def is_complete(self) -> bool:
        """Whether every job has finished (completed, failed or cancelled)."""
        if self._native is None:
            return False
        return bool(self._native.status(self.config.items_per_batch)["is_complete"])

    def status(self, print_status: bool = False) -> Dict:
        """Counts of jobs and batches, cost, and whether the run is complete."""
        if self._native is None:
            n = len(self._jobs_source)
            stats = {
                "total": n, "pending": n, "active": 0, "completed": 0, "failed": 0,
                "cancelled": 0, "cost_usd": 0.0, "cost_limit_usd": self.config.cost_limit_usd,
                "is_complete": False, "batches_total": 0, "batches_completed": 0,
                "batches_pending": 0, "current_batch_index": 0, "current_batch_size": 0,
                "items_per_batch": self.config.items_per_batch,
            }
        else:
            stats = self._native.status(self.config.items_per_batch)
            stats.pop("stop_reason", None)
        if print_status:
            print("\nBatch Run Status:")
            for key in ("total", "pending", "active", "completed", "failed", "cancelled"):
                print(f"  {key.capitalize()}: {stats[key]}")
            print(f"  Cost: ${stats['cost_usd']:.6f}")
            if stats["cost_limit_usd"]:
                print(f"  Cost limit: ${stats['cost_limit_usd']:.2f}")
            print(f"  Complete: {stats['is_complete']}")
        return stats

    def results(self) -> Dict[str, List[JobResult]]:
        """``{"completed": [...], "failed": [...], "cancelled": [...]}``, read
        from the result files; ``parsed_response`` typed by each job's model."""
        if self._native is None:
            return {"completed": [], "failed": [], "cancelled": []}
        out = self._native.results(JobResult, Citation, CitationList)
        typed = self._typed
        if typed is None:
            typed = {jid: j.response_model for jid, j in self.jobs.items()
                     if j.response_model is not None}
        if typed:
            for key in out:
                for r in out[key]:
                    model = typed.get(r.job_id)
                    if model is not None:
                        _typed(r, model)
        return out

    def get_failed_jobs(self) -> Dict[str, str]:
        """``{job_id: error}`` of the failed jobs (deprecated in 0.4.7 too)."""
        return {r.job_id: r.error or "" for r in self.results()["failed"]}

    def shutdown(self) -> None:
        """Stops the run: nothing new is submitted and batches in flight are
        cancelled. A no-op once ``run()`` has returned."""
        if self._native is not None and not self._native.is_done:
            self._native.shutdown(False)

    def to_json(self) -> Dict:
        """A JSON-able snapshot of the run, in 0.4.7's shape."""
        from datetime import datetime

        now = datetime.now().isoformat()
        res = self.results()
        done = {r.job_id for k in res for r in res[k]}
        return {
            "created_at": now,
            "pending_jobs": [
                {"id": j.id, "model": j.model} for j in self.jobs.values() if j.id not in done
            ],
            "completed_results": [
                {"job_id": r.job_id, "file_path": str(self.results_dir / f"{r.job_id}.json")}
                for r in res["completed"]
            ],
            "failed_jobs": [
                {"id": r.job_id, "error": r.error, "timestamp": now} for r in res["failed"]
            ],
            "cancelled_jobs": [
                {"id": r.job_id, "reason": r.error, "timestamp": now} for r in res["cancelled"]
            ],
            "total_cost_usd": sum(r.cost_usd for k in res for r in res[k]),
            "config": {
                "state_file": self.config.state_file,
                "results_dir": self.config.results_dir,
                "max_parallel_batches": self.config.max_parallel_batches,
                "items_per_batch": self.config.items_per_batch,
                "cost_limit_usd": self.config.cost_limit_usd,
                "default_params": self.config.default_params,
                "raw_files": self.config.raw_files,
            },
        }
