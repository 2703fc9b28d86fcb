"""The one logging channel: ``[2026-11-25 08:35:10.123456] message`` on stdout, as PPASR prints.

Library code logs through ``logger``; root scripts call ``setup_logging()`` once. Tools that parse
PPASR's lines (``Train epoch: …``, ``Test epoch: …``) keep working because the prefix is PPASR's
``[datetime.now()]``.
"""
from __future__ import annotations

import logging
import sys
from datetime import datetime

logger = logging.getLogger("ppasr")


class _PPASRFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"[{datetime.fromtimestamp(record.created)}] {record.getMessage()}"


def setup_logging(level: int = logging.INFO) -> None:
    """Send the ``ppasr`` logger to stdout with PPASR's timestamp prefix (idempotent)."""
    if not any(getattr(h, "_ppasr", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(_PPASRFormatter())
        handler._ppasr = True
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
