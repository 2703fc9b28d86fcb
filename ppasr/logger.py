"""The one logging channel: ``[2026-11-25 08:35:10.123456] message`` on stdout, as PPASR prints.

Library code logs through ``logger`` (never ``print``); root scripts call ``setup_logging()`` once. Tools that parse
PPASR's lines (``Train epoch: …``, ``Test epoch: …``) keep working because the prefix is PPASR's
``[datetime.now()]``.
"""
from __future__ import annotations

import logging
import sys
from datetime import datetime

logger = logging.getLogger("ppasr")
# ``logger.info(message, extra=PLAIN)``: a line exactly as PPASR prints it, without the time prefix
PLAIN = {"plain": True}


class _PPASRFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line = message if getattr(record, "plain", False) else f"[{datetime.fromtimestamp(record.created)}] {message}"
        if record.exc_info:  # logger.exception(): a bug's traceback belongs in the log
            line += "\n" + self.formatException(record.exc_info)
        return line


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (redirections and test capture included)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(_PPASRFormatter())

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Send the ``ppasr`` logger to stdout with PPASR's timestamp prefix (idempotent)."""
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        logger.addHandler(_StdoutHandler())
    logger.setLevel(level)
    logger.propagate = False
