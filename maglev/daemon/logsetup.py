"""Logging configuration, done once by the CLI: text or JSON lines, to stderr or syslog."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time

TEXT_FORMAT = "%(asctime)s %(levelname)-7s [%(threadName)s] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra attributes given via `extra={"fields": {...}}` are merged."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "thread": record.threadName,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure(level: str = "info", fmt: str = "text", target: str = "stderr") -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if target == "syslog":
        address = "/dev/log" if os.path.exists("/dev/log") else ("localhost", 514)
        handler = logging.handlers.SysLogHandler(address=address)
        handler.ident = "maglevd: "
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    # vpp-papi logs every message at DEBUG; keep it one notch quieter than ours.
    logging.getLogger("vpp_papi").setLevel(max(logging.INFO, root.level))
    # watchdog logs every inotify event at DEBUG: with a log file in the config's directory each
    # of its lines is another event, and the observer thread would spin on its own output.
    logging.getLogger("watchdog").setLevel(max(logging.INFO, root.level))
