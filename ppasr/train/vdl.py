"""VisualDL records: one folder per training run; a resumed run appends to its own records."""
from __future__ import annotations

import os
from datetime import datetime


def new_run_dir(log_dir: str) -> str:
    """``log/train_YYYYmmdd-HHMMSS`` (with a suffix if that folder exists already)."""
    base = os.path.join(log_dir, datetime.now().strftime("train_%Y%m%d-%H%M%S"))
    path, n = base, 1
    while os.path.exists(path):
        n += 1
        path = f"{base}_{n}"
    return path


def open_writer(run_dir: str):
    """A LogWriter for ``run_dir``; reopens the newest record file so curves continue.

    VisualDL shows only the newest record file of a run folder, so a resumed run must append
    to the file its first part wrote rather than start a new one.
    """
    from visualdl import LogWriter

    existing = sorted(f for f in os.listdir(run_dir) if f.startswith("vdlrecords")) if os.path.isdir(run_dir) else []
    return LogWriter(logdir=run_dir, file_name=existing[-1] if existing else "")
