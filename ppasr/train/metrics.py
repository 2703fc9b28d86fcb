"""Edit distance and character error rate."""
from __future__ import annotations

from typing import Iterable


def edit_distance(ref: str, hyp: str) -> int:
    """Levenshtein distance between two strings (characters as tokens)."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i]
        for j, h in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def char_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(edit distance, reference length) with spaces ignored, as CER counts them."""
    ref, hyp = ref.replace(" ", ""), hyp.replace(" ", "")
    return edit_distance(ref, hyp), len(ref)


def corpus_cer(pairs: Iterable[tuple[str, str]]) -> float:
    """Σ edit distance / Σ reference characters over (ref, hyp) pairs."""
    errors = chars = 0
    for ref, hyp in pairs:
        e, n = char_errors(ref, hyp)
        errors, chars = errors + e, chars + n
    return errors / max(chars, 1)
