"""User errors: problems a user can fix (bad flag, missing or malformed file), reported as one line.

The library raises ``UserError``; the root scripts run their job through ``run_main``, which turns it
into ``error: <message>`` on stderr and exit code 1, with no traceback. Anything else is a bug and keeps
its traceback.
"""
from __future__ import annotations

import sys
from typing import Callable

from ppasr.logger import setup_logging


class UserError(Exception):
    """A failure the user caused and can fix; the message names the file or flag and the fix."""


class Stopped(Exception):
    """A run stopped on purpose (a signal) after saving what it could; the message says how to go on."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_main(job: Callable[[], object]) -> None:
    """Run a root script's job (logging set up); a ``UserError`` ends it with one ``error: …`` line."""
    setup_logging()
    try:
        job()
    except UserError as e:
        sys.stdout.flush()
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Stopped as e:
        sys.stdout.flush()
        print(e, file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
