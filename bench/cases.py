"""What the benchmark measures: the models, the response schema, and the
cases each mode runs (bench/README.md lists them). Shared by harness.py,
which runs the cases, and report.py, which writes RESULTS.md."""

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

FAST_CASE_S = 60.0  # Python cases faster than this are run 3 times


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
