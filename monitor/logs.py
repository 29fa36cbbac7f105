"""Log formatting and the redaction safety net: one JSON object per line for log shippers, and
the set-up of a sweep worker process's logging (which starts with nothing configured)."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monitor.redact import install_log_filter, redact_text, remember_secrets

if TYPE_CHECKING:
    from monitor.settings import Settings

# Attributes every LogRecord has; anything else came from `extra=` and is worth shipping.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_worker_logging(level: int, settings: Settings) -> None:
    """Logging in a spawned sweep worker: stderr, the parent's level, and the same redaction
    (the worker learns the secrets from its own copy of the settings)."""
    from monitor.settings import configured_secrets

    remember_secrets(configured_secrets(settings, os.environ))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"))
    install_log_filter(handler)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
