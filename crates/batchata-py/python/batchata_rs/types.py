"""Value types shared by results: :class:`Citation`."""

from dataclasses import dataclass
from typing import Any, Dict, Optional


@dataclass
class Citation:
    """A passage of the source document that an answer cites."""

    text: str
    source: str
    page: Optional[int] = None
    metadata: Optional[Dict[str, Any]] = None
    confidence: Optional[str] = None
    match_reason: Optional[str] = None

    def _to_dict(self) -> Dict[str, Any]:
        return {
            "text": self.text,
            "source": self.source,
            "page": self.page,
            "metadata": self.metadata,
            "confidence": self.confidence,
            "match_reason": self.match_reason,
        }

    @classmethod
    def _from_dict(cls, d: Dict[str, Any]) -> "Citation":
        return cls(
            text=d.get("text", ""),
            source=d.get("source", ""),
            page=d.get("page"),
            metadata=d.get("metadata"),
            confidence=d.get("confidence"),
            match_reason=d.get("match_reason"),
        )
