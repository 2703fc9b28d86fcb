"""Transcript cleaning: traditional → simplified Chinese and character filtering."""
from __future__ import annotations

import re

TEXT_MODES = ("zh", "en", "mixed")
_SPACES = re.compile(r"\s+")


def is_cjk(ch: str) -> bool:
    """A Chinese character in PPASR's range (U+4E00–U+9FA5): what ``zh`` mode keeps."""
    return "\u4e00" <= ch <= "\u9fa5"


def _is_word_char(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("0" <= ch <= "9") or ch == "'"


def clean_text(text: str, mode: str = "zh") -> str:
    """Normalise a transcript.

    ``zh`` keeps only CJK characters (PPASR's behaviour); ``en`` keeps lower-case letters,
    digits, apostrophes and single spaces; ``mixed`` keeps both. Traditional characters are
    converted to simplified ones in every mode.
    """
    if mode not in TEXT_MODES:
        raise ValueError(f"unknown text mode {mode!r}; choose one of {TEXT_MODES}")
    import zhconv

    text = zhconv.convert(text, "zh-cn")
    if mode == "zh":
        return "".join(ch for ch in text if is_cjk(ch))
    text = text.lower()
    kept = []
    for ch in text:
        if _is_word_char(ch) or (mode == "mixed" and is_cjk(ch)):
            kept.append(ch)
        else:
            kept.append(" ")
    return _SPACES.sub(" ", "".join(kept)).strip()
