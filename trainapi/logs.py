"""Log output: the usual text lines, or with ``TRAINAPI_LOG_FORMAT=json`` one JSON object per line.

Lines about a job carry ``job_id``, ``attempt`` and ``tenant`` as fields, from a
context variable that the code handling a job sets once (:func:`bind`): every
line logged inside, by any module, gets them, without pasting them into messages.

    with logs.bind(job_id=job_id, tenant=tenant):
        log.info("claimed")      # {"time": …, "level": "INFO", "logger": …, "message": "claimed",
                                 #  "job_id": "job_…", "tenant": "default", …}
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
#: The job fields a line may carry, in the order they are written.
JOB_FIELDS = ("job_id", "attempt", "tenant")

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("trainapi_log", default=None)


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (``job_id``, ``attempt``, ``tenant``) to every line logged inside, in this context only."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current() -> dict[str, Any]:
    """The fields :func:`bind` set in this context."""
    return dict(_context.get() or {})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, process, job fields, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        context = _context.get() or {}
        for name in JOB_FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = context.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


def configure(fmt: str, level: int | str = logging.INFO) -> None:
    """Switch every handler configured so far (and the root logger's) to ``fmt``; ``text`` leaves them as they are.

    Called at each process's edge once its framework (uvicorn, Celery, the CLI) has set up logging;
    Python's own warnings become log records too, so nothing else reaches stderr.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if fmt == "text":
        return
    formatter = JsonFormatter()
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    root.setLevel(level)
    loggers = [root, *(obj for obj in logging.root.manager.loggerDict.values() if isinstance(obj, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            handler.setFormatter(formatter)
    logging.captureWarnings(True)
