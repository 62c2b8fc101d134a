"""The relay's log formats: --json-log writes one JSON object per line."""

from __future__ import annotations

import json
import logging

from mailprov.relay.logs import JsonFormatter


def test_json_log_line_has_time_level_and_message() -> None:
    """A record becomes one JSON line with UTC time, level, logger, pid and the message."""
    record = logging.LogRecord(
        "mailprov.relay", logging.INFO, __file__, 1, "stored %s", ("m1",), None
    )
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert (data["level"], data["logger"], data["message"]) == (
        "info",
        "mailprov.relay",
        "stored m1",
    )
    assert data["time"].endswith("Z")
    assert "\n" not in line
