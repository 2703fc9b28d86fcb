"""PPASR's manifest format: JSON lines ``{"audio_filepath", "duration", "text"}``; the one reader."""
from __future__ import annotations

import json
import os


def read_manifest(path: str) -> list[dict]:
    """Read a JSON-lines manifest, failing fast with the line at fault or the command that makes it."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"manifest {path} not found: run `python3 create_data.py` first")
    items = []
    with open(path, "r", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not a JSON manifest line ({e.msg})") from e
            if not isinstance(item, dict) or not isinstance(item.get("audio_filepath"), str):
                raise ValueError(f"{path}:{number}: manifest line has no \"audio_filepath\"")
            items.append(item)
    return items


def is_manifest(path: str) -> bool:
    """True when the first non-empty line of ``path`` is a manifest entry (a JSON object with a path)."""
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(item, dict) and "audio_filepath" in item
    return False
