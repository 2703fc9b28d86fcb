"""CTC prefix beam search with KenLM shallow fusion, batched and parallel over processes.

``probs``/``lengths`` follow the conventions of :mod:`ppasr.decode.greedy` (blank is index 0).
The beam search ranks prefixes by ``ln P_ctc + alpha * log10 P_lm + beta * n_lm_tokens``, in
PPASR's units (its swig ``Scorer`` multiplies KenLM's log10 probabilities by ``alpha``), so a
PPASR-tuned alpha/beta means the same here. A token outside the LM's vocabulary scores
PPASR's ``OOV_SCORE`` (log10 -1000) instead of KenLM's ``<unk>`` estimate. The LM token unit
(characters or words) follows one rule, :func:`detect_lm_token`: with a character vocabulary
every non-space character is an LM token; with a word LM a word is scored when a space
completes it, the trailing partial word at the end of the utterance (with an ARPA model, an
unfinished word that no LM word starts with is charged as soon as it appears, see
:class:`PrefixBeamSearch`).
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from ppasr.decode.greedy import BLANK_INDEX, check_batch
from ppasr.decode.hotwords import HotwordGraph, compile_hotwords
from ppasr.decode.hypothesis import Hypothesis
from ppasr.decode.language_model import (LM_TOKEN_MODES, OOV_LOG10, detect_lm_token, load_language_model,
                                         read_arpa_words)
from ppasr.decode.options import SearchConfig
from ppasr.decode.prefix_trie import PrefixTrie
from ppasr.utils import exit_with_parent

_NEG_INF = -np.inf


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
    probs, lengths = check_batch(probs, lengths)
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


class PrefixBeamSearch:
    """CTC prefix beam search over pruned frames, optionally fused with a KenLM model.

    Word mode with an ARPA model (whose vocabulary can be read) scores an unfinished word
    early, as the OOV word it must become, as soon as it is no prefix of any LM word: a
    hypothesis cannot postpone the LM cost of garbage by never closing its word. Other
    unfinished words are scored when a space completes them or at the end.
    """

    def __init__(self, config: SearchConfig) -> None:
        if config.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {config.beam_size}")
        if config.lm_token not in LM_TOKEN_MODES:
            raise ValueError(f"lm_token must be one of {LM_TOKEN_MODES}, got {config.lm_token!r}")
        if config.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {config.alpha}")
        if config.oov_log10 is not None and config.oov_log10 > 0:
            raise ValueError(f"oov_log10 must be <= 0, got {config.oov_log10}")
        self.config = config
        self._model = None
        self._lm_words = None
        if config.lang_model_path is not None:
            self._model = load_language_model(config.lang_model_path)
            if config.lm_token == "word":
                self._lm_words = read_arpa_words(config.lang_model_path)
        vocabulary = config.vocabulary
        self._space = vocabulary.index(" ") if " " in vocabulary else -1
        self._word_mode = config.lm_token == "word"
        # A KenLM step adds alpha * log10 P + beta <= beta: an upper bound that lets the search
        # skip queries for candidates which cannot enter the beam.
        self._lm_bonus = max(config.beta, 0.0)

    def search(self, frames: PrunedFrames, hotwords: HotwordGraph | None = None) -> Hypothesis:
        """Best hypothesis of one utterance: its fused score (with the hotword bonus, if any), its CTC
        log-probability (the prefix's CTC part, PPASR's ``approx_ctc``; ``score`` is minus it) and the frames
        of its alignment."""
        vocabulary = self.config.vocabulary
        vocab_size = len(vocabulary)
        trie = PrefixTrie(vocabulary, self._model, self.config, self._lm_words, hotwords)
        hot = _HotwordScores(trie) if hotwords is not None else None
        alignment = _Alignment()
        beam = _Beam(nodes=np.zeros(1, dtype=np.int64), last=np.full(1, vocab_size),
                     log_pb=np.zeros(1), log_pnb=np.full(1, _NEG_INF), lm=np.zeros(1),
                     lm_base=np.zeros(1), record=np.full(1, -1), last_end=np.zeros(1, dtype=np.int64))
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

            log_total = np.logaddexp(beam.log_pb, beam.log_pnb)
            stay_pb = dense[BLANK_INDEX] + log_total
            stay_pnb = dense[beam.last] + beam.log_pnb
            repeat = ext_tokens[None, :] == beam.last[:, None]
            ext = (np.where(repeat, beam.log_pb[:, None], log_total[:, None])
                   + log_probs[extend][None, :])
            restarts = _merge_existing(trie, beam.nodes, column, ext, stay_pb, stay_pnb)
            beam = self._select(trie, beam, ext_tokens, ext, stay_pb, stay_pnb, restarts, alignment, t, hot)
            dense[tokens] = _NEG_INF
            column[ext_tokens] = -1

        ctc = np.logaddexp(beam.log_pb, beam.log_pnb)
        lm = np.array([trie.final_score(node) for node in beam.nodes.tolist()])
        bonus = np.array([hotwords.final(trie.hot[node]) for node in beam.nodes.tolist()]) if hot else 0.0
        finals = ctc + lm + bonus
        best = int(np.argmax(finals))
        labels = trie.labels(int(beam.nodes[best]))
        return Hypothesis(text="".join(vocabulary[label] for label in labels), score=-float(ctc[best]),
                          tokens=tuple(labels),
                          frames=alignment.frames(int(beam.record[best]), int(beam.last_end[best])),
                          log_score=float(finals[best]),
                          lm_score=float(lm[best]) if self._model is not None else None)

    def _select(self, trie: PrefixTrie, beam: _Beam, ext_tokens: np.ndarray, ext: np.ndarray,
                stay_pb: np.ndarray, stay_pnb: np.ndarray, restarts: np.ndarray, alignment: _Alignment,
                frame: int, hot: _HotwordScores | None) -> _Beam:
        """Keep the ``beam_size`` best of the stay and extension candidates.

        Times follow each prefix as it is kept: a stay whose mass now ends in its last token
        (not in blank) extends that token's frames to ``frame``; an extension starts a new token at
        ``frame``, recording where its prefix's last token ended, and so does a stay that an extension
        merged into (``restarts``: the beam row it came from, or -1) when that extension outweighs it.

        Candidates needing a KenLM query are ranked by an upper bound (CTC + fixed LM score
        + ``beta``) and queried in that order, only while the bound can still beat the
        current ``beam_size``-th best exact score; the selection is therefore exact. A hotword bonus
        (``hot``) is exact for every candidate and simply added.
        """
        rows, width = ext.shape
        size = self.config.beam_size
        ranked = ext
        stay_bonus = 0.0
        if hot is not None:
            stay_bonus, ext_bonus = hot.bonuses(beam.nodes, ext_tokens)
            ranked = ext + ext_bonus
        scores = np.concatenate([np.logaddexp(stay_pb, stay_pnb) + beam.lm + stay_bonus,
                                 (ranked + beam.lm[:, None]).ravel()])
        pending = np.zeros(scores.shape[0], dtype=bool)
        if self._model is not None and width:
            needs_lm = np.broadcast_to(self._word_mode | (ext_tokens != self._space),
                                       ext.shape).ravel()
            pending[rows:] = needs_lm & np.isfinite(scores[rows:])
            bound = (ranked + beam.lm_base[:, None]).ravel() + self._lm_bonus
            scores[rows:][pending[rows:]] = bound[pending[rows:]]

        if pending.any():
            known = scores[~pending]
            best = known[np.isfinite(known)]
            if best.shape[0] > size:
                best = np.partition(best, best.shape[0] - size)[-size:]
            threshold = best.min() if best.shape[0] >= size else _NEG_INF
            queue = np.flatnonzero(pending & (scores > threshold))
            queue = queue[np.argsort(-scores[queue], kind="stable")]
            step = max(size, 64)
            for start in range(0, queue.shape[0], step):
                chunk = queue[start:start + step]
                chunk = chunk[scores[chunk] > threshold]
                if chunk.shape[0] == 0:
                    break
                row, col = np.divmod(chunk - rows, width)
                lm = trie.child_scores(beam.nodes[row].tolist(), ext_tokens[col].tolist())
                exact = ranked[row, col] + np.array(lm)
                scores[chunk] = exact
                pending[chunk] = False
                best = np.concatenate([best, exact[np.isfinite(exact)]])
                if best.shape[0] >= size:
                    best = np.partition(best, best.shape[0] - size)[-size:]
                    threshold = best.min()
            scores[pending] = _NEG_INF

        chosen = np.flatnonzero(np.isfinite(scores))
        if chosen.shape[0] > size:
            chosen = chosen[np.argpartition(-scores[chosen], size - 1)[:size]]
        stays = chosen[chosen < rows]
        row, col = np.divmod(chosen[chosen >= rows] - rows, max(width, 1))
        children = trie.extend(beam.nodes[row].tolist(), ext_tokens[col].tolist())
        stay_end = np.where(stay_pnb[stays] > stay_pb[stays], frame, beam.last_end[stays])
        stay_record = beam.record[stays]
        sources = restarts[stays]
        if (sources >= 0).any():
            restart = sources >= 0
            stay_record = stay_record.copy()
            stay_record[restart] = alignment.start(frame, beam.record[sources[restart]],
                                                   beam.last_end[sources[restart]])
            stay_end[restart] = frame
        return _Beam(
            nodes=np.concatenate([beam.nodes[stays], np.array(children, dtype=np.int64)]),
            last=np.concatenate([beam.last[stays], ext_tokens[col]]),
            log_pb=np.concatenate([stay_pb[stays], np.full(row.shape[0], _NEG_INF)]),
            log_pnb=np.concatenate([stay_pnb[stays], ext[row, col]]),
            lm=np.concatenate([beam.lm[stays], np.array([trie.score[c] for c in children])]),
            lm_base=np.concatenate([beam.lm_base[stays],
                                    np.array([trie.base[c] for c in children])]),
            record=np.concatenate([stay_record, alignment.start(frame, beam.record[row], beam.last_end[row])]),
            last_end=np.concatenate([stay_end, np.full(row.shape[0], frame)]))


class _HotwordScores:
    """The hotword bonus of the beam's prefixes and of their extensions, memoised per graph state and token."""

    def __init__(self, trie: PrefixTrie) -> None:
        self._trie = trie
        self._graph = trie.hotwords
        self._tokens = np.array(sorted(self._graph.tokens), dtype=np.int64)
        self._after: dict = {}

    def bonuses(self, nodes: np.ndarray, ext_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bonus of each beam prefix ``[rows]`` and of each prefix + extension token ``[rows, width]``."""
        graph, after = self._graph, self._after
        states = [self._trie.hot[node] for node in nodes.tolist()]
        stay = np.array([graph.bonus(state) for state in states])
        # a token no hotword contains sends a prefix back to the root: it keeps only what it banked
        ext = np.repeat(np.array([state.banked for state in states])[:, None], ext_tokens.shape[0], axis=1)
        for col in np.flatnonzero(np.isin(ext_tokens, self._tokens)).tolist():
            token = int(ext_tokens[col])
            for row, state in enumerate(states):
                key = (state, token)
                value = after.get(key)
                if value is None:
                    value = after[key] = graph.bonus(graph.step(state, token))
                ext[row, col] = value
        return stay, ext


@dataclass
class _Beam:
    """The surviving prefixes: trie node, last label, CTC log-probs ending in blank /
    non-blank, fused LM score and its fixed part, the alignment record of the last token and the
    last frame that token was emitted on."""

    nodes: np.ndarray
    last: np.ndarray
    log_pb: np.ndarray
    log_pnb: np.ndarray
    lm: np.ndarray
    lm_base: np.ndarray
    record: np.ndarray
    last_end: np.ndarray


class _Alignment:
    """The tokens' frames of every prefix a search kept, as a tree of records (one per extension):
    the frame a token started on, the record of the token before it and the last frame that one was
    emitted on. Records are never changed, so prefixes sharing a history share its records."""

    def __init__(self) -> None:
        self._start: list[int] = []
        self._parent: list[int] = []
        self._parent_end: list[int] = []

    def start(self, frame: int, parents: np.ndarray, parent_ends: np.ndarray) -> np.ndarray:
        """New records of tokens starting at ``frame`` after ``parents`` (which ended at ``parent_ends``)."""
        first = len(self._start)
        self._start.extend([frame] * parents.shape[0])
        self._parent.extend(parents.tolist())
        self._parent_end.extend(parent_ends.tolist())
        return np.arange(first, len(self._start), dtype=np.int64)

    def frames(self, record: int, last_end: int) -> tuple[tuple[int, int], ...]:
        """``[start, end)`` frames of each token of the prefix whose last record is ``record``."""
        out = []
        end = last_end
        while record >= 0:
            out.append((self._start[record], end + 1))
            end = self._parent_end[record]
            record = self._parent[record]
        return tuple(out[::-1])


def _merge_existing(trie: PrefixTrie, nodes: np.ndarray, column: np.ndarray, ext: np.ndarray,
                    stay_pb: np.ndarray, stay_pnb: np.ndarray) -> np.ndarray:
    """Fold extensions that recreate a prefix already in the beam into that prefix.

    Returns, per beam row, the row whose extension outweighs the prefix's own paths (its last token's
    times then follow that extension), else -1.
    """
    node_list = nodes.tolist()
    position = {node: i for i, node in enumerate(node_list)}
    parents = np.array([position.get(trie.parent[node], -1) for node in node_list])
    cols = column[np.array([trie.token[node] for node in node_list])]
    hit = (parents >= 0) & (cols >= 0)
    restarts = np.full(len(node_list), -1)
    if hit.any():
        rows, cols = parents[hit], cols[hit]
        merged = ext[rows, cols]
        restarts[hit] = np.where(merged > np.logaddexp(stay_pb[hit], stay_pnb[hit]), rows, -1)
        stay_pnb[hit] = np.logaddexp(stay_pnb[hit], merged)
        ext[rows, cols] = _NEG_INF
    return restarts


_WORKER_SEARCH: PrefixBeamSearch | None = None


def _worker_init(parent_pid: int | None, config: SearchConfig | None) -> None:
    """Start a decoding worker: it dies with ``parent_pid`` (when given), default signal handling (not
    Paddle's, whose handler prints a C++ traceback when a worker is stopped) and the searcher, loaded
    only if not inherited."""
    global _WORKER_SEARCH
    if parent_pid is not None:
        exit_with_parent(parent_pid)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if config is not None:
        _WORKER_SEARCH = PrefixBeamSearch(config)


def _death_guard_pid() -> int | None:
    """This process's pid when the pool is made on the main thread, else None: the parent-death signal
    fires when the *thread* that forked a worker ends, which would kill a pool made on a short-lived
    thread (say a server's request thread) in the middle of its work."""
    return os.getpid() if threading.current_thread() is threading.main_thread() else None


def _worker_search(job: tuple[PrunedFrames, HotwordGraph | None]) -> Hypothesis:
    assert _WORKER_SEARCH is not None, "worker was not initialised"
    return _WORKER_SEARCH.search(*job)


class BeamSearchDecoder:
    """Batch CTC prefix beam search with optional KenLM fusion, parallel over processes.

    ``lang_model_path=None`` searches without an LM. ``lm_token`` (``"char"``/``"word"``)
    overrides :func:`detect_lm_token`. A word outside the LM vocabulary scores ``oov_log10``
    (PPASR's -1000 by default; ``None`` keeps KenLM's ``<unk>`` estimate). Worker processes are started on
    the first parallel batch and load the LM once; call :meth:`close` (or use ``with``) to
    stop them. ``hotwords`` (text, weight per token) bias every search; see :mod:`ppasr.decode.hotwords`.
    """

    def __init__(self, vocabulary: list[str], alpha: float = 1.2, beta: float = 0.35,
                 beam_size: int = 10, cutoff_prob: float = 1.0, cutoff_top_n: int = 40,
                 lang_model_path: str | None = None, num_processes: int = 8,
                 lm_token: str | None = None, oov_log10: float | None = OOV_LOG10,
                 hotwords: list[tuple[str, float]] | None = None, hotword_weight: float = 4.0) -> None:
        self._pool: Any = None
        self.hotwords = list(hotwords or [])  # the default list; a call may bring its own graph
        self.hotword_weight = hotword_weight  # for hotwords a caller gives without a weight
        self._graph = compile_hotwords(self.hotwords, vocabulary)
        self.config = SearchConfig(
            vocabulary=tuple(vocabulary), beam_size=beam_size, alpha=alpha, beta=beta,
            lang_model_path=lang_model_path, lm_token=lm_token or detect_lm_token(vocabulary, lang_model_path),
            oov_log10=oov_log10)
        self.cutoff_prob = cutoff_prob
        self.cutoff_top_n = cutoff_top_n
        self.num_processes = num_processes
        self._search = PrefixBeamSearch(self.config)

    def decode(self, probs: np.ndarray, lengths: np.ndarray, hotwords: HotwordGraph | None = None) -> list[Hypothesis]:
        """Best hypothesis of every utterance of a ``[B, T, V]`` batch, each over its own valid frames;
        ``hotwords`` (a graph from :func:`ppasr.decode.hotwords.compile_hotwords`) replaces the decoder's own
        hotwords for this call."""
        hotwords = hotwords if hotwords is not None else self._graph
        probs, lengths = check_batch(probs, lengths)
        if probs.shape[2] != len(self.config.vocabulary):
            raise ValueError(f"probs have {probs.shape[2]} classes, "
                             f"vocabulary {len(self.config.vocabulary)}")
        utterances = prune_frames(probs, lengths, self.cutoff_prob, self.cutoff_top_n)
        if self.num_processes <= 1 or len(utterances) <= 1:
            return [self._search.search(frames, hotwords) for frames in utterances]
        if self._pool is None:
            # fork starts workers at once, without re-importing the caller's script (spawn
            # would, e.g. Paddle for every worker), and they inherit the searcher with its LM
            # already loaded (KenLM reads the file and prints its banner once); workers only run
            # numpy and KenLM code.
            global _WORKER_SEARCH
            fork = "fork" in multiprocessing.get_all_start_methods()
            _WORKER_SEARCH = self._search if fork else None
            context = multiprocessing.get_context("fork" if fork else "spawn")
            self._pool = context.Pool(self.num_processes, initializer=_worker_init,
                                      initargs=(_death_guard_pid(), None if fork else self.config))
        return self._pool.map(_worker_search, [(frames, hotwords) for frames in utterances], chunksize=1)

    def close(self) -> None:
        """Stop the worker processes, if any were started: they finish and exit on their own
        (no termination signal)."""
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
