"""KenLM access for decoding: loading a model, reading an ARPA model's words, and the LM token rule.

Scores are in PPASR's units: KenLM's log10 probabilities, and a token outside the LM's
vocabulary scores PPASR's ``OOV_SCORE`` (log10 -1000) instead of KenLM's ``<unk>`` estimate.
The LM token unit (characters or words) follows one rule, :func:`detect_lm_token`, shared by
the decoder and the LM builder.
"""
from __future__ import annotations

import functools
import gzip
import os
import re
from collections.abc import Iterable
from typing import Any

from ppasr.data.text import is_cjk

LM_TOKEN_MODES = ("char", "word")
OOV_LOG10 = -1000.0  # PPASR's OOV_SCORE (scorer.h), in log10 units like every LM score here
_KENLM_BINARY_MAGIC = b"mmap lm "


def detect_lm_token(symbols: Iterable[str], lang_model_path: str | None = None) -> str:
    """The LM token unit, ``"char"`` or ``"word"``: the one rule the decoder and the LM builder share.

    An ARPA model's own words decide as in PPASR (character-based when every word is one
    character). Otherwise (KenLM binary, or an LM still to be built) the text decides:
    ``symbols`` (a vocabulary or transcripts) containing any Chinese character means
    characters (spaces are then not LM tokens, so mixed Chinese/English text is modelled per
    character), else words.
    """
    words = read_arpa_words(lang_model_path) if lang_model_path and os.path.isfile(lang_model_path) else None
    if words:
        return "char" if all(len(word) == 1 for word in words) else "word"
    return "char" if any(is_cjk(ch) for text in symbols for ch in text) else "word"


@functools.lru_cache(maxsize=4)
def load_language_model(path: str) -> Any:
    """Load a KenLM model (ARPA or binary) with clear, one-line errors; once per process (tune.py
    builds a decoder per alpha/beta pair, forked workers inherit it).

    Raises ``FileNotFoundError`` when ``path`` does not exist and ``ValueError`` when it is
    not a model KenLM can read.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"language model not found: {path!r}. Build one from your transcripts with "
            f"`python tools/build_lm.py --manifest dataset/manifest.train --output {path}`, "
            "or decode without a language model (--lang_model_path=None).")
    try:
        import kenlm
    except ImportError as exc:
        raise ImportError("decoding with a language model needs the kenlm package "
                          "(pip install kenlm)") from exc
    try:
        return kenlm.Model(path)
    except (OSError, RuntimeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = re.search(r"threw \w+\.\s*(.+?)\)?$", first_line)
        detail = reason.group(1) if reason else first_line
        raise ValueError(f"{path!r} is not a valid KenLM language model (ARPA or KenLM "
                         f"binary): {detail[:200]}") from None


def read_arpa_words(path: str) -> list[str] | None:
    """Sorted words of an ARPA model's unigram section (``None`` for a KenLM binary).

    ``<s>``, ``</s>`` and ``<unk>`` are left out.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as raw:
        if raw.read(len(_KENLM_BINARY_MAGIC)) == _KENLM_BINARY_MAGIC:
            return None
    words = []
    in_unigrams = False
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if line.startswith("\\"):
                if in_unigrams:
                    break
                in_unigrams = line == "\\1-grams:"
            elif in_unigrams and line:
                fields = line.split()
                if len(fields) >= 2 and fields[1] not in ("<s>", "</s>", "<unk>"):
                    words.append(fields[1])
    return sorted(words)
