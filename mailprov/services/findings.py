"""What ``doctor``'s checks report: one :class:`Finding` each, with a stable ID and severity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass(frozen=True)
class Finding:
    """One thing doctor noticed."""

    id: str
    severity: str
    message: str
    action: str = ""
    subject: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "id": self.id,
            "severity": self.severity,
            "subject": self.subject,
            "message": self.message,
            "action": self.action,
        }
