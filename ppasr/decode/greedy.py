"""CTC greedy (best-path) decoding: a batch at once, a stream chunk by chunk, and PPASR's confidence.

Conventions shared with the model: ``probs`` are per-frame softmax outputs ``[B, T, V]``,
``lengths[i]`` frames of utterance ``i`` are valid (the rest is padding and is never
decoded) and vocabulary index 0 is the CTC blank.
"""
from __future__ import annotations

import numpy as np

BLANK_INDEX = 0


def check_batch(probs: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``probs`` and ``lengths`` as arrays, checked against the conventions above."""
    probs = np.asarray(probs)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if probs.ndim != 3:
        raise ValueError(f"probs must be [batch, time, vocab], got shape {probs.shape}")
    if lengths.shape[0] != probs.shape[0]:
        raise ValueError(f"{lengths.shape[0]} lengths for a batch of {probs.shape[0]}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > probs.shape[1]):
        raise ValueError(f"lengths must lie in [0, {probs.shape[1]}], got {lengths.tolist()}")
    return probs, lengths


def greedy_decode(probs: np.ndarray, lengths: np.ndarray, vocabulary: list[str]) -> list[str]:
    """Best-path CTC decoding of a batch: argmax, drop padding, collapse repeats, drop blanks."""
    probs, lengths = check_batch(probs, lengths)
    if probs.shape[2] != len(vocabulary):
        raise ValueError(f"probs have {probs.shape[2]} classes, vocabulary {len(vocabulary)}")
    best = probs.argmax(axis=2)
    batch, frames = best.shape
    valid = np.arange(frames)[None, :] < lengths[:, None]
    previous = np.concatenate([np.full((batch, 1), -1, dtype=best.dtype), best[:, :-1]], axis=1)
    keep = valid & (best != previous) & (best != BLANK_INDEX)
    tokens = np.asarray(vocabulary, dtype=object)
    return ["".join(tokens[best[i][keep[i]]]) for i in range(batch)]


class IncrementalGreedyDecoder:
    """Best-path text of a stream of probability frames, extended chunk by chunk.

    A server's partial results: each chunk costs only its own frames, and after any split of the
    frames the text equals :func:`greedy_decode` of them all (repeats collapse across chunks).
    """

    def __init__(self, vocabulary: list[str]) -> None:
        self._tokens = np.asarray(vocabulary, dtype=object)
        self._previous = -1
        self._pieces: list[str] = []

    def extend(self, probs: np.ndarray) -> str:
        """Add ``[t, V]`` frames; return the text so far."""
        if probs.shape[0]:
            best = probs.argmax(axis=1)
            previous = np.concatenate([[self._previous], best[:-1]])
            keep = (best != previous) & (best != BLANK_INDEX)
            self._pieces.append("".join(self._tokens[best[keep]]))
            self._previous = int(best[-1])
        return self.text

    @property
    def text(self) -> str:
        return "".join(self._pieces)


def greedy_score(probs: np.ndarray) -> float:
    """PPASR's confidence of a greedy result (0-100): mean probability of the best path's
    non-blank frames x 100."""
    best = probs.max(axis=1)[probs.argmax(axis=1) != BLANK_INDEX]
    return float(best.mean() * 100.0) if best.shape[0] else 0.0
