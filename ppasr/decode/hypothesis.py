"""What every decoder returns: one ``Hypothesis`` per utterance, and the times of its words.

A hypothesis carries the CTC alignment of the path it chose (per token, the output frames it was
emitted on), so any consumer can turn it into times with :func:`timestamps` once it knows how long an
output frame lasts (the feature stride times the model's subsampling).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from ppasr.data.text import is_cjk, to_arabic_numerals


@dataclass(frozen=True)
class Hypothesis:
    """One utterance's decoding.

    ``score`` is PPASR's score as its scripts print it (greedy: confidence 0-100; beam search: minus
    the CTC log-probability, smaller is better); ``log_score`` the search's ranking score (ln P_ctc,
    plus the LM part with an LM); ``lm_score`` that LM part (``alpha * log10 P_lm + beta * n``), None
    without an LM. ``frames[i]`` is the ``[start, end)`` range of output frames on which the chosen
    path emits ``tokens[i]``.
    """

    text: str
    score: float
    tokens: tuple[int, ...] = ()
    frames: tuple[tuple[int, int], ...] = ()
    log_score: float = 0.0
    lm_score: float | None = None


@dataclass(frozen=True)
class Timestamp:
    """One output unit (a Chinese character, an English word, a converted number) and its times."""

    text: str
    start_ms: int
    end_ms: int


def timestamps(hypothesis: Hypothesis, vocabulary: list[str] | tuple[str, ...], frame_ms: float,
               offset_ms: float = 0.0) -> list[Timestamp]:
    """Times of each character (CJK) or word (anything else, split at spaces) of ``hypothesis``.

    A unit spans from the first frame of its first token to the end of its last token's frames,
    shifted by ``offset_ms`` (a segment's start in a longer recording).
    """
    units: list[list] = []
    joinable = False  # whether the next non-CJK token continues the last unit (a word)
    for token, (start, end) in zip(hypothesis.tokens, hypothesis.frames):
        piece = vocabulary[token]
        if not piece.strip():
            joinable = False
            continue
        word = not any(is_cjk(ch) for ch in piece)
        if word and joinable:
            units[-1][0] += piece
            units[-1][2] = end
        else:
            units.append([piece, start, end])
        joinable = word
    return [Timestamp(text, round(offset_ms + start * frame_ms), round(offset_ms + end * frame_ms))
            for text, start, end in units]


def numerals_with_times(units: list[Timestamp]) -> list[Timestamp]:
    """``--to_an`` over timed units: the text :func:`to_arabic_numerals` makes of them, each converted
    number one unit spanning the times of the characters it replaced; other units keep theirs."""
    if not units:
        return []
    owner = []  # the unit of each character of the joined text (spaces belong to none)
    pieces = []
    for i, unit in enumerate(units):
        if i and not (is_cjk(unit.text[0]) and is_cjk(units[i - 1].text[-1])):
            pieces.append(" ")
            owner.append(None)
        pieces.append(unit.text)
        owner.extend([i] * len(unit.text))
    text = "".join(pieces)
    converted = to_arabic_numerals(text)
    if converted == text:
        return list(units)
    out: list[Timestamp] = []
    last = None  # the unit last copied unchanged
    matcher = difflib.SequenceMatcher(None, text, converted, autojunk=False)
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            for a in range(a0, a1):
                unit = owner[a]
                if unit is not None and unit != last:
                    out.append(units[unit])
                    last = unit
        elif tag in ("replace", "insert") and converted[b0:b1].strip():
            covered = [owner[a] for a in range(a0, a1) if owner[a] is not None]
            if not covered:  # text inserted between units: attach to the previous unit's end
                at = out[-1].end_ms if out else units[0].start_ms
                out.append(Timestamp(converted[b0:b1].strip(), at, at))
                continue
            out.append(Timestamp(converted[b0:b1].strip(), units[covered[0]].start_ms, units[covered[-1]].end_ms))
    return out
