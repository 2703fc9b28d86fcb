"""PPASR's manifest format: JSON lines ``{"audio_filepath", "duration", "text"}``; the one reader."""
from __future__ import annotations

import json
import os

from ppasr.errors import UserError


SPEECH_KEYS = ("audio_filepath", "duration", "text")


def read_manifest(path: str, required: tuple[str, ...] = SPEECH_KEYS) -> list[dict]:
    """Read a JSON-lines manifest; a missing file or a malformed line is a ``UserError`` naming it.

    ``required``: the keys every line must have (a noise manifest needs only ``audio_filepath``).
    """
    if not os.path.isfile(path):
        raise UserError(f"manifest {path} not found; create it with `python3 create_data.py`")
    remake = "fix the line or rerun `python3 create_data.py` to write the manifest again"
    items = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise UserError(f"{path}:{number}: not a JSON manifest line ({e}); {remake}") from None
            problem = _manifest_item_problem(item, required)
            if problem:
                raise UserError(f"{path}:{number}: {problem}; {remake}")
            items.append(item)
    return items


def _manifest_item_problem(item, required: tuple[str, ...]) -> str | None:
    """Why ``item`` is not ``{"audio_filepath": str, "duration": number >= 0, "text": str}``, or None."""
    if not isinstance(item, dict):
        return f"expected a JSON object, got {type(item).__name__}"
    missing = [key for key in required if key not in item]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    if not all(isinstance(item[key], str) for key in ("audio_filepath", "text") if key in item):
        return "audio_filepath and text must be strings"
    duration = item.get("duration", 0)
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration < float("inf"):
        return f"duration must be a number of seconds, got {duration!r}"
    return None


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
