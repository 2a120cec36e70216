"""Stdlib logging set up once for the server and the CLI, as text or as JSON lines.

`PADDLES_LOG_FORMAT=json` writes one JSON object per line (time, level, logger, message and,
for the request log, its fields), for log shippers; `text` (the default) is for people.
Every request is logged once, at INFO, on the `paddles.access` logger (`access`).
"""
from __future__ import annotations

import datetime as dt
import logging
import sys

import orjson

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")
ACCESS_LOGGER = "paddles.access"
access_log = logging.getLogger(ACCESS_LOGGER)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC)
                      .isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_paddles", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._paddles = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(FORMAT))
    root.setLevel(level.upper())
    # alembic logs at INFO when it is imported (plugin setup, in every gunicorn worker) and per
    # step of a migration: only its warnings, unless `paddles migrate` asks for the steps
    # (migrations.upgrade) or the level is DEBUG
    logging.getLogger("alembic").setLevel(
        logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)


def access(method: str, route: str, path: str, status: int, duration_ms: float,
           request_id: str, remote: str | None, token: str | None = None) -> None:
    """The one line per request: method, route template, path, status, time, request id,
    and the name of the API token that made it (auth on; never the secret)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    fields = {"method": method, "route": route, "path": path, "status": status,
              "duration_ms": round(duration_ms, 2), "request_id": request_id,
              "remote": remote}
    if token is not None:
        fields["token"] = token
    access_log.info("%s %s %s %.1fms route=%s request_id=%s remote=%s%s", method, path, status,
                    duration_ms, route, request_id, remote,
                    "" if token is None else f" token={token}", extra={"fields": fields})
