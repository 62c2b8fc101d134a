"""Logging for ``relay serve``: plain lines, or one JSON object per line (``--json-log``)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailprov.relay.options import RelayOptions


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, pid, message."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        return json.dumps(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(),
                "logger": record.name,
                "pid": record.process,
                "message": record.getMessage(),
            },
            ensure_ascii=False,
        )


def setup_logging(options: RelayOptions) -> None:
    """Send the relay's (and aiosmtpd's) log to stderr at the chosen level."""
    handler = logging.StreamHandler(sys.stderr)
    if options.json_log:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    level = getattr(logging, options.log_level.upper(), logging.INFO)
    for name in ("mailprov.relay", "mail.log"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level if name == "mailprov.relay" else max(level, logging.WARNING))
        logger.propagate = False
