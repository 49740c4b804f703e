"""Structured JSON logs: one object per line with time, level, logger, message and whitelisted ids.

Only the fields named in `SAFE_FIELDS` are ever written, so a careless `extra=` cannot leak a payload
value; exceptions are written as their type and the innermost frame's location, never their message or a
stack trace (either could quote patient data).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

SAFE_FIELDS = (
    "request_id",
    "correlation_id",
    "sender",
    "recipient",
    "message_id",
    "event",
    "method",
    "path",
    "status",
    "duration_ms",
    "code",
    "caller",
    "data_dir",
    "dsn_host",
    "listen",
    "count",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in SAFE_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"
            entry["exception"] = f"{exc_type.__name__} at {where}"
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: int = logging.INFO, *, file: Path | None = None, also_stderr: bool = False) -> None:
    """Send JSON lines to stderr, or to `file` (appended; and to stderr too with `also_stderr`); call once per
    process. The demo logs to a file so that its narrative is what the terminal shows."""
    handlers: list[logging.Handler] = []
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    if file is None or also_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
