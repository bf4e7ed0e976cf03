"""JobResult: one job's outcome, with batchata 0.4.7's fields and methods.

``parsed_response`` holds an instance of the job's Pydantic ``response_model``
when the answer validates against it, else the answer's JSON as a dict (as
0.4.7 does), else None. Pydantic is imported only when a model is in play.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from .types import Citation


class CitationList(list):
    """A list of :class:`Citation` that also answers ``.page``, ``.text``,
    ``.source``... with its first citation's, so code written against
    batchata's README (``citation_mappings.get("field").page``) runs."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in Citation.__dataclass_fields__:
            raise AttributeError(name)
        return getattr(self[0], name) if self else None


@dataclass
class JobResult:
    """Result of one job."""

    job_id: str
    raw_response: Optional[str] = None
    parsed_response: Optional[Any] = None
    citations: Optional[List[Citation]] = None
    citation_mappings: Optional[Dict[str, List[Citation]]] = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    error: Optional[str] = None
    batch_id: Optional[str] = None

    @property
    def is_success(self) -> bool:
        """Whether the job completed without an error."""
        return self.error is None

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> Dict[str, Any]:
        """The result as plain JSON-able data."""
        parsed = self.parsed_response
        if parsed is not None and not isinstance(parsed, dict):
            dump = getattr(parsed, "model_dump", None)
            parsed = dump(mode="json") if dump is not None else str(parsed)
        return {
            "job_id": self.job_id,
            "raw_response": self.raw_response,
            "parsed_response": parsed,
            "citations": [c._to_dict() for c in self.citations] if self.citations else None,
            "citation_mappings": {
                field: [c._to_dict() for c in cs] for field, cs in self.citation_mappings.items()
            }
            if self.citation_mappings
            else None,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "error": self.error,
            "batch_id": self.batch_id,
        }

    def save_to_json(self, filepath: str, indent: int = 2) -> None:
        """Writes :meth:`to_dict` to ``filepath``, creating its folder."""
        path = Path(filepath)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=indent)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "JobResult":
        """The inverse of :meth:`to_dict`; unknown keys are ignored."""
        citations = None
        if data.get("citations"):
            citations = [Citation._from_dict(c) for c in data["citations"]]
        mappings = None
        if data.get("citation_mappings"):
            mappings = {
                field: CitationList(Citation._from_dict(c) for c in cs)
                for field, cs in data["citation_mappings"].items()
            }
        return cls(
            job_id=data["job_id"],
            raw_response=data.get("raw_response"),
            parsed_response=data.get("parsed_response"),
            citations=citations,
            citation_mappings=mappings,
            input_tokens=data.get("input_tokens", 0),
            output_tokens=data.get("output_tokens", 0),
            cost_usd=data.get("cost_usd", 0.0),
            error=data.get("error"),
            batch_id=data.get("batch_id"),
        )


def _typed(result: JobResult, response_model: Any) -> JobResult:
    """Validates a dict ``parsed_response`` with the user's model, so its
    validators run; keeps the dict when it does not validate."""
    if response_model is None or not isinstance(result.parsed_response, dict):
        return result
    try:
        result.parsed_response = response_model.model_validate(result.parsed_response)
    except Exception:  # pydantic.ValidationError or a validator's own error
        pass
    return result
