"""CTC greedy (best-path) decoding: a batch at once, a stream chunk by chunk, and PPASR's confidence.

Conventions shared with the model: ``probs`` are per-frame softmax outputs ``[B, T, V]``,
``lengths[i]`` frames of utterance ``i`` are valid (the rest is padding and is never
decoded) and vocabulary index 0 is the CTC blank.
"""
from __future__ import annotations

import numpy as np

from ppasr.decode.hypothesis import Hypothesis

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


def greedy_decode(probs: np.ndarray, lengths: np.ndarray, vocabulary: list[str]) -> list[Hypothesis]:
    """Best-path CTC decoding of a batch: argmax, drop padding, collapse repeats, drop blanks.

    Each token's frames are the run of frames on which the best path emits it.
    """
    probs, lengths = check_batch(probs, lengths)
    if probs.shape[2] != len(vocabulary):
        raise ValueError(f"probs have {probs.shape[2]} classes, vocabulary {len(vocabulary)}")
    best = probs.argmax(axis=2)
    batch, frames = best.shape
    valid = np.arange(frames)[None, :] < lengths[:, None]
    previous = np.concatenate([np.full((batch, 1), -1, dtype=best.dtype), best[:, :-1]], axis=1)
    run_start = valid & (best != previous)
    tokens = np.asarray(vocabulary, dtype=object)
    with np.errstate(divide="ignore"):
        log_best = np.log(probs.max(axis=2))
    out = []
    for i, length in enumerate(lengths.tolist()):
        starts = np.flatnonzero(run_start[i])
        ends = np.append(starts[1:], length)
        emitted = best[i, starts] != BLANK_INDEX
        labels = best[i, starts[emitted]]
        out.append(Hypothesis(text="".join(tokens[labels]), score=greedy_score(probs[i, :length]),
                              tokens=tuple(labels.tolist()),
                              frames=tuple(zip(starts[emitted].tolist(), ends[emitted].tolist())),
                              log_score=float(log_best[i, :length].sum())))
    return out


class IncrementalGreedyDecoder:
    """Best-path hypothesis of a stream of probability frames, extended chunk by chunk.

    A server's partial results: each chunk costs only its own frames, and after any split of the
    frames the text and frames equal :func:`greedy_decode` of them all (repeats collapse across chunks).
    """

    def __init__(self, vocabulary: list[str]) -> None:
        self._vocabulary = vocabulary
        self._previous = -1
        self._frames = 0
        self._tokens: list[int] = []
        self._spans: list[list[int]] = []
        self._best_sum = 0.0  # Σ best probability over non-blank frames (greedy_score's numerator)
        self._best_count = 0

    def extend(self, probs: np.ndarray) -> Hypothesis:
        """Add ``[t, V]`` frames; return the hypothesis so far."""
        best = probs.argmax(axis=1)
        peaks = probs.max(axis=1)[best != BLANK_INDEX]
        self._best_sum += float(peaks.sum())
        self._best_count += peaks.shape[0]
        for label in best.tolist():
            if label != BLANK_INDEX:
                if label == self._previous:
                    self._spans[-1][1] = self._frames + 1
                else:
                    self._tokens.append(label)
                    self._spans.append([self._frames, self._frames + 1])
            self._previous = label
            self._frames += 1
        return self.hypothesis

    @property
    def hypothesis(self) -> Hypothesis:
        score = self._best_sum / self._best_count * 100.0 if self._best_count else 0.0
        return Hypothesis(text="".join(self._vocabulary[t] for t in self._tokens), score=score,
                          tokens=tuple(self._tokens), frames=tuple((s, e) for s, e in self._spans))


def greedy_score(probs: np.ndarray) -> float:
    """PPASR's confidence of a greedy result (0-100): mean probability of the best path's
    non-blank frames x 100."""
    best = probs.max(axis=1)[probs.argmax(axis=1) != BLANK_INDEX]
    return float(best.mean() * 100.0) if best.shape[0] else 0.0
