"""CTC decoders: vectorised greedy decoding and prefix beam search with KenLM shallow fusion.

Conventions shared with the model: ``probs`` are per-frame softmax outputs ``[B, T, V]``,
``lengths[i]`` frames of utterance ``i`` are valid (the rest is padding and is never
decoded) and vocabulary index 0 is the CTC blank.

The beam search ranks prefixes by ``log P_ctc + alpha * ln P_lm + beta * n_lm_tokens`` like
DeepSpeech2/PPASR's ``ctc_beam_search_decoder``. With a character vocabulary (no space
token) every non-space character is an LM token; when the vocabulary contains ``" "`` the
LM is word-level and a word is scored when a space completes it, the trailing partial word
at the end of the utterance. KenLM returns log10 probabilities; they are converted to
natural logs before weighting so ``alpha`` scales the same units as the CTC log-probs.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

BLANK_INDEX = 0
LM_TOKEN_MODES = ("char", "word")
_LN10 = math.log(10.0)
_NEG_INF = -np.inf


def _check_batch(probs: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    probs, lengths = _check_batch(probs, lengths)
    if probs.shape[2] != len(vocabulary):
        raise ValueError(f"probs have {probs.shape[2]} classes, vocabulary {len(vocabulary)}")
    best = probs.argmax(axis=2)
    batch, frames = best.shape
    valid = np.arange(frames)[None, :] < lengths[:, None]
    previous = np.concatenate([np.full((batch, 1), -1, dtype=best.dtype), best[:, :-1]], axis=1)
    keep = valid & (best != previous) & (best != BLANK_INDEX)
    tokens = np.asarray(vocabulary, dtype=object)
    return ["".join(tokens[best[i][keep[i]]]) for i in range(batch)]


def detect_lm_token(vocabulary: list[str]) -> str:
    """``"word"`` when the vocabulary has a space token (English), else ``"char"``."""
    return "word" if " " in vocabulary else "char"


def load_language_model(path: str) -> Any:
    """Load a KenLM model (ARPA or binary) with clear, one-line errors.

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


@dataclass(frozen=True)
class PrunedFrames:
    """One utterance's per-frame candidate tokens, most probable first.

    ``tokens``/``log_probs`` are ``[T, K]``; only the first ``counts[t]`` entries of frame
    ``t`` survived the ``cutoff_prob``/``cutoff_top_n`` pruning.
    """

    tokens: np.ndarray
    log_probs: np.ndarray
    counts: np.ndarray


def prune_frames(probs: np.ndarray, lengths: np.ndarray, cutoff_prob: float = 1.0,
                 cutoff_top_n: int = 40) -> list[PrunedFrames]:
    """Vectorised per-frame pruning of a batch, padding frames dropped.

    A frame keeps its most probable tokens until their cumulative probability reaches
    ``cutoff_prob`` (the token crossing it included), at most ``cutoff_top_n`` of them, and
    never a token of zero probability.
    """
    probs, lengths = _check_batch(probs, lengths)
    vocab_size = probs.shape[2]
    top_n = max(1, min(int(cutoff_top_n), vocab_size))
    if top_n < vocab_size:
        candidates = np.argpartition(-probs, top_n - 1, axis=2)[:, :, :top_n]
    else:
        candidates = np.broadcast_to(np.arange(vocab_size), probs.shape)
    values = np.take_along_axis(probs, candidates, axis=2)
    order = np.argsort(-values, axis=2, kind="stable")
    tokens = np.take_along_axis(candidates, order, axis=2).astype(np.int32)
    values = np.take_along_axis(values, order, axis=2).astype(np.float64)
    counts = (values > 0).sum(axis=2)
    if cutoff_prob < 1.0:
        reached = np.cumsum(values, axis=2) >= cutoff_prob
        counts = np.minimum(counts, np.where(reached.any(axis=2), reached.argmax(axis=2) + 1,
                                             top_n))
    with np.errstate(divide="ignore"):
        log_probs = np.log(values)
    return [PrunedFrames(tokens[i, :n], log_probs[i, :n], counts[i, :n])
            for i, n in enumerate(lengths.tolist())]


@dataclass(frozen=True)
class SearchConfig:
    """Everything a (possibly remote) searcher needs; picklable for worker processes."""

    vocabulary: tuple[str, ...]
    beam_size: int = 10
    alpha: float = 1.2
    beta: float = 0.35
    lang_model_path: str | None = None
    lm_token: str = "char"
    oov_log10: float | None = None


class _Fusion:
    """KenLM shallow fusion: ``alpha * ln P(token | state) + beta`` per LM token."""

    def __init__(self, model: Any, alpha: float, beta: float, oov_log10: float | None) -> None:
        import kenlm

        self._model = model
        self._new_state = kenlm.State
        self._alpha_ln = alpha * _LN10
        self._beta = beta
        self._oov_log10 = oov_log10

    def start(self) -> Any:
        """KenLM state after ``<s>``."""
        state = self._new_state()
        self._model.BeginSentenceWrite(state)
        return state

    def score(self, state: Any, token: str) -> tuple[float, Any]:
        """Weighted score of ``token`` after ``state`` and the state that follows it."""
        out = self._new_state()
        log10 = self._model.BaseScore(state, token, out)
        if self._oov_log10 is not None and token not in self._model:
            log10 = self._oov_log10
        return self._alpha_ln * log10 + self._beta, out


class _PrefixTrie:
    """Prefix tree of label sequences; each node caches its LM state and fused LM score."""

    def __init__(self, vocabulary: tuple[str, ...], fusion: _Fusion | None,
                 word_mode: bool) -> None:
        self._vocabulary = vocabulary
        self._stride = len(vocabulary) + 1
        self._fusion = fusion
        self._word_mode = word_mode
        self._space = vocabulary.index(" ") if " " in vocabulary else -1
        self._children: dict[int, int] = {}
        self.parent = [-1]
        self.token = [len(vocabulary)]  # the root's sentinel "last token"
        self.lm_score = [0.0]
        self.lm_state = [fusion.start() if fusion else None]
        self.partial = [""]

    def child(self, node: int, token: int) -> int:
        """Node for ``prefix(node) + token``, created (and LM-scored) on first use."""
        key = node * self._stride + token
        found = self._children.get(key)
        if found is not None:
            return found
        score, state, partial = self.lm_score[node], self.lm_state[node], self.partial[node]
        if self._fusion is not None:
            if self._word_mode:
                if token == self._space:
                    if partial:
                        delta, state = self._fusion.score(state, partial)
                        score += delta
                    partial = ""
                else:
                    partial += self._vocabulary[token]
            elif token != self._space:
                delta, state = self._fusion.score(state, self._vocabulary[token])
                score += delta
        new = len(self.parent)
        self._children[key] = new
        self.parent.append(node)
        self.token.append(token)
        self.lm_score.append(score)
        self.lm_state.append(state)
        self.partial.append(partial)
        return new

    def final_score(self, node: int) -> float:
        """LM score of the node including its unfinished trailing word (word mode)."""
        score = self.lm_score[node]
        if self._fusion is not None and self._word_mode and self.partial[node]:
            score += self._fusion.score(self.lm_state[node], self.partial[node])[0]
        return score

    def labels(self, node: int) -> list[int]:
        """Label sequence of the prefix ending at ``node``."""
        out = []
        while node > 0:
            out.append(self.token[node])
            node = self.parent[node]
        return out[::-1]


class PrefixBeamSearch:
    """CTC prefix beam search over pruned frames, optionally fused with a KenLM model."""

    def __init__(self, config: SearchConfig, model: Any = None) -> None:
        if config.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {config.beam_size}")
        if config.lm_token not in LM_TOKEN_MODES:
            raise ValueError(f"lm_token must be one of {LM_TOKEN_MODES}, got {config.lm_token!r}")
        self.config = config
        if model is None and config.lang_model_path is not None:
            model = load_language_model(config.lang_model_path)
        self._fusion = None
        if model is not None:
            if config.alpha < 0:
                raise ValueError(f"alpha must be >= 0, got {config.alpha}")
            if config.oov_log10 is not None and config.oov_log10 > 0:
                raise ValueError(f"oov_log10 must be <= 0, got {config.oov_log10}")
            self._fusion = _Fusion(model, config.alpha, config.beta, config.oov_log10)
        vocabulary = config.vocabulary
        self._word_mode = config.lm_token == "word"
        self._space = vocabulary.index(" ") if " " in vocabulary else -1
        # Upper bound of one LM step's contribution (log P <= 0): lets the search skip
        # KenLM queries for candidates that cannot enter the beam.
        self._lm_bonus = max(config.beta, 0.0)

    def search(self, frames: PrunedFrames) -> tuple[str, float]:
        """Best transcript of one utterance and its fused log score (natural log)."""
        vocabulary = self.config.vocabulary
        vocab_size = len(vocabulary)
        trie = _PrefixTrie(vocabulary, self._fusion, self._word_mode)
        nodes = np.zeros(1, dtype=np.int64)
        last = np.full(1, vocab_size, dtype=np.int64)
        log_pb = np.zeros(1)
        log_pnb = np.full(1, _NEG_INF)
        lm = np.zeros(1)
        dense = np.full(vocab_size + 1, _NEG_INF)
        column = np.full(vocab_size + 1, -1, dtype=np.int64)
        for t in range(frames.counts.shape[0]):
            kept = int(frames.counts[t])
            tokens = frames.tokens[t, :kept]
            log_probs = frames.log_probs[t, :kept]
            dense[tokens] = log_probs
            extend = tokens != BLANK_INDEX
            ext_tokens = tokens[extend].astype(np.int64)
            column[ext_tokens] = np.arange(ext_tokens.shape[0])

            log_total = np.logaddexp(log_pb, log_pnb)
            stay_pb = dense[BLANK_INDEX] + log_total
            stay_pnb = dense[last] + log_pnb
            repeat = ext_tokens[None, :] == last[:, None]
            ext = np.where(repeat, log_pb[:, None], log_total[:, None]) + log_probs[extend][None, :]
            self._merge_existing(trie, nodes, column, ext, stay_pnb)

            nodes, last, log_pb, log_pnb, lm = self._select(
                trie, nodes, last, lm, ext_tokens, ext, stay_pb, stay_pnb)
            dense[tokens] = _NEG_INF
            column[ext_tokens] = -1

        finals = np.logaddexp(log_pb, log_pnb) + np.array(
            [trie.final_score(int(node)) for node in nodes])
        best = int(np.argmax(finals))
        text = "".join(vocabulary[label] for label in trie.labels(int(nodes[best])))
        return text, float(finals[best])

    @staticmethod
    def _merge_existing(trie: _PrefixTrie, nodes: np.ndarray, column: np.ndarray,
                        ext: np.ndarray, stay_pnb: np.ndarray) -> None:
        """Fold extensions that recreate a prefix already in the beam into that prefix."""
        position = {node: i for i, node in enumerate(nodes.tolist())}
        parents = np.array([position.get(trie.parent[node], -1) for node in nodes.tolist()])
        cols = column[np.array([trie.token[node] for node in nodes.tolist()])]
        hit = (parents >= 0) & (cols >= 0)
        if hit.any():
            rows, cols = parents[hit], cols[hit]
            stay_pnb[hit] = np.logaddexp(stay_pnb[hit], ext[rows, cols])
            ext[rows, cols] = _NEG_INF

    def _select(self, trie: _PrefixTrie, nodes: np.ndarray, last: np.ndarray, lm: np.ndarray,
                ext_tokens: np.ndarray, ext: np.ndarray, stay_pb: np.ndarray,
                stay_pnb: np.ndarray) -> tuple[np.ndarray, ...]:
        """Keep the ``beam_size`` best of the stay and extension candidates.

        Candidates needing a KenLM query are first ranked by an upper bound (CTC + LM so far
        + ``beta``) and only queried when that bound could still reach the beam.
        """
        beam, width = ext.shape
        scores = np.concatenate([np.logaddexp(stay_pb, stay_pnb) + lm,
                                 (ext + lm[:, None]).ravel()])
        pending = np.zeros(scores.shape[0], dtype=bool)
        if self._fusion is not None and width:
            if self._word_mode:
                partial = np.array([bool(trie.partial[node]) for node in nodes.tolist()])
                needs_lm = partial[:, None] & (ext_tokens == self._space)[None, :]
            else:
                needs_lm = np.broadcast_to(ext_tokens != self._space, ext.shape)
            pending[beam:] = needs_lm.ravel() & np.isfinite(scores[beam:])
            scores[beam:][pending[beam:]] += self._lm_bonus

        def resolve(flat: np.ndarray) -> None:
            for index in flat.tolist():
                row, col = divmod(index - beam, width)
                child = trie.child(int(nodes[row]), int(ext_tokens[col]))
                scores[index] = ext[row, col] + trie.lm_score[child]
            pending[flat] = False

        size = self.config.beam_size
        if pending.any():
            if scores.shape[0] > size:
                top = np.argpartition(-scores, size - 1)[:size]
                resolve(top[pending[top]])
                known = scores[~pending]
                if known.shape[0] >= size:
                    threshold = np.partition(known, known.shape[0] - size)[known.shape[0] - size]
                    resolve(np.flatnonzero(pending & (scores > threshold)))
                else:
                    resolve(np.flatnonzero(pending))
                scores[pending] = _NEG_INF
            else:
                resolve(np.flatnonzero(pending))
        finite = np.flatnonzero(np.isfinite(scores))
        if finite.shape[0] > size:
            finite = finite[np.argpartition(-scores[finite], size - 1)[:size]]
        stays = finite[finite < beam]
        row, col = np.divmod(finite[finite >= beam] - beam, max(width, 1))
        children = [trie.child(int(nodes[r]), int(ext_tokens[c]))
                    for r, c in zip(row.tolist(), col.tolist())]
        return (np.concatenate([nodes[stays], np.array(children, dtype=np.int64)]),
                np.concatenate([last[stays], ext_tokens[col]]),
                np.concatenate([stay_pb[stays], np.full(row.shape[0], _NEG_INF)]),
                np.concatenate([stay_pnb[stays], ext[row, col]]),
                np.concatenate([lm[stays], np.array([trie.lm_score[c] for c in children])]))


_WORKER_SEARCH: PrefixBeamSearch | None = None


def _worker_init(config: SearchConfig) -> None:
    global _WORKER_SEARCH
    _WORKER_SEARCH = PrefixBeamSearch(config)


def _worker_search(frames: PrunedFrames) -> tuple[str, float]:
    assert _WORKER_SEARCH is not None, "worker was not initialised"
    return _WORKER_SEARCH.search(frames)


class BeamSearchDecoder:
    """Batch CTC prefix beam search with optional KenLM fusion, parallel over processes.

    ``lang_model_path=None`` searches without an LM. ``lm_token`` (``"char"``/``"word"``)
    overrides the detection from the vocabulary. ``oov_log10``, when given, replaces KenLM's
    ``<unk>`` estimate for words outside the LM vocabulary. Worker processes are started on
    the first parallel batch and load the LM once; call :meth:`close` (or use ``with``) to
    stop them.
    """

    def __init__(self, vocabulary: list[str], alpha: float = 1.2, beta: float = 0.35,
                 beam_size: int = 10, cutoff_prob: float = 1.0, cutoff_top_n: int = 40,
                 lang_model_path: str | None = None, num_processes: int = 8,
                 lm_token: str | None = None, oov_log10: float | None = None) -> None:
        self._pool: Any = None
        self.config = SearchConfig(
            vocabulary=tuple(vocabulary), beam_size=beam_size, alpha=alpha, beta=beta,
            lang_model_path=lang_model_path, lm_token=lm_token or detect_lm_token(vocabulary),
            oov_log10=oov_log10)
        self.cutoff_prob = cutoff_prob
        self.cutoff_top_n = cutoff_top_n
        self.num_processes = num_processes
        self._search = PrefixBeamSearch(self.config)

    def decode(self, probs: np.ndarray) -> tuple[str, float]:
        """Decode one utterance's ``[T, V]`` probabilities (all frames valid)."""
        probs = np.asarray(probs)
        return self.decode_batch_with_scores(probs[None], np.array([probs.shape[0]]))[0]

    def decode_batch(self, probs: np.ndarray, lengths: np.ndarray) -> list[str]:
        """Best transcript of every utterance of a ``[B, T, V]`` batch."""
        return [text for text, _ in self.decode_batch_with_scores(probs, lengths)]

    def decode_batch_with_scores(self, probs: np.ndarray,
                                 lengths: np.ndarray) -> list[tuple[str, float]]:
        """Best ``(transcript, fused log score)`` of every utterance of a batch."""
        probs, lengths = _check_batch(probs, lengths)
        if probs.shape[2] != len(self.config.vocabulary):
            raise ValueError(f"probs have {probs.shape[2]} classes, "
                             f"vocabulary {len(self.config.vocabulary)}")
        utterances = prune_frames(probs, lengths, self.cutoff_prob, self.cutoff_top_n)
        if self.num_processes <= 1 or len(utterances) <= 1:
            return [self._search.search(frames) for frames in utterances]
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = context.Pool(self.num_processes, initializer=_worker_init,
                                      initargs=(self.config,))
        return self._pool.map(_worker_search, utterances, chunksize=1)

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> BeamSearchDecoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
