"""The prefix tree of a beam search: label sequences sharing prefixes, each with its fused LM score.

A child's score adds ``alpha * log10 P_lm + beta`` per LM token (PPASR's units); in word mode an
unfinished word is scored when a space completes it, at the end of the utterance, or early (as
the OOV word it must become) once no LM word starts with it.
"""
from __future__ import annotations

import bisect
from typing import Any

from ppasr.decode.hotwords import ROOT, HotwordGraph, HotwordState
from ppasr.decode.options import SearchConfig


class PrefixTrie:
    """Prefix tree of label sequences; each node caches its KenLM state and fused LM score.

    Per node: ``score`` is the fused LM score used for ranking, ``base`` the part of it no
    later token can change (they differ in word mode while a provisionally scored word is
    unfinished), ``state`` the KenLM state after the final-scored tokens and, in word mode,
    ``partial`` the unfinished word with ``partial_state`` the state after it, if scored.
    KenLM queries are memoised per ``(state, word)``, which many prefixes share.
    """

    def __init__(self, vocabulary: tuple[str, ...], model: Any, config: SearchConfig,
                 lm_words: list[str] | None, hotwords: HotwordGraph | None = None) -> None:
        self._vocabulary = vocabulary
        self.hotwords = hotwords
        self.hot: list[HotwordState] = [ROOT]  # each node's place in the hotword graph
        self._stride = len(vocabulary) + 1
        self._model = model
        self._lm_words = lm_words
        self._word_mode = config.lm_token == "word"
        self._space = vocabulary.index(" ") if " " in vocabulary else -1
        self._alpha = config.alpha
        self._beta = config.beta
        self._oov_log10 = config.oov_log10
        self._children: dict[int, int] = {}
        self._queries: dict[tuple[Any, str], tuple[float, Any]] = {}
        self._known_prefixes: dict[str, bool] = {}
        self.parent = [-1]
        self.token = [len(vocabulary)]  # the root's sentinel "last token"
        self.score = [0.0]
        self.base = [0.0]
        self.state: list[Any] = [None]
        self.partial = [""]
        self.partial_state: list[Any] = [None]
        if model is not None:
            import kenlm

            self._new_state = kenlm.State
            self.state[0] = kenlm.State()
            model.BeginSentenceWrite(self.state[0])

    def _lm(self, state: Any, word: str) -> tuple[float, Any]:
        """``alpha * log10 P(word | state) + beta`` and the state after ``word``."""
        key = (state, word)
        found = self._queries.get(key)
        if found is None:
            after = self._new_state()
            log10 = self._model.BaseScore(state, word, after)
            if self._oov_log10 is not None and word not in self._model:
                log10 = self._oov_log10
            found = self._queries[key] = (self._alpha * log10 + self._beta, after)
        return found

    def _starts_known_word(self, text: str) -> bool:
        """Whether some LM word starts with ``text`` (always true if the words are unknown)."""
        known = self._known_prefixes.get(text)
        if known is None:
            words = self._lm_words
            index = bisect.bisect_left(words, text) if words is not None else 0
            known = words is None or (index < len(words) and words[index].startswith(text))
            self._known_prefixes[text] = known
        return known

    def _child_values(self, node: int, token: int) -> tuple[float, float, Any, str, Any]:
        """``(score, base, state, partial, partial_state)`` of ``prefix(node) + token``."""
        score, base, state = self.score[node], self.base[node], self.state[node]
        if self._model is None or (token == self._space and not self._word_mode):
            return score, base, state, "", None
        if not self._word_mode:
            delta, after = self._lm(state, self._vocabulary[token])
            return base + delta, base + delta, after, "", None
        partial = self.partial[node]
        if token == self._space:  # the unfinished word, if any, is scored for good
            if not partial:
                return score, base, state, "", None
            if self.partial_state[node] is not None:
                return score, score, self.partial_state[node], "", None
            delta, after = self._lm(state, partial)
            return base + delta, base + delta, after, "", None
        word = partial + self._vocabulary[token]
        if self._starts_known_word(word):
            return base, base, state, word, None
        delta, after = self._lm(state, word)
        return base + delta, base, state, word, after

    def child_scores(self, nodes: list[int], tokens: list[int]) -> list[float]:
        """Fused LM scores of ``prefix(node) + token`` without adding nodes to the tree.

        The search's hot loop: it inlines the score part of :meth:`_child_values`.
        """
        score, base, state, partial = self.score, self.base, self.state, self.partial
        query, lm, vocabulary, space = self._queries.get, self._lm, self._vocabulary, self._space
        out = []
        if self._model is None:
            return [score[node] for node in nodes]
        if not self._word_mode:
            for node, token in zip(nodes, tokens):
                if token == space:
                    out.append(score[node])
                    continue
                key = (state[node], vocabulary[token])
                out.append(base[node] + (query(key) or lm(*key))[0])
            return out
        known, starts_known = self._known_prefixes.get, self._starts_known_word
        for node, token in zip(nodes, tokens):
            if token == space:
                word = partial[node]
                if not word or self.partial_state[node] is not None:
                    out.append(score[node])
                    continue
            else:
                word = partial[node] + vocabulary[token]
                is_prefix = known(word)
                if is_prefix or (is_prefix is None and starts_known(word)):
                    out.append(base[node])
                    continue
            key = (state[node], word)
            out.append(base[node] + (query(key) or lm(*key))[0])
        return out

    def extend(self, nodes: list[int], tokens: list[int]) -> list[int]:
        """Nodes of ``prefix(node) + token``, created on first use."""
        children, stride = self._children, self._stride
        out = []
        for node, token in zip(nodes, tokens):
            key = node * stride + token
            child = children.get(key)
            if child is None:
                child = children[key] = len(self.parent)
                score, base, state, partial, partial_state = self._child_values(node, token)
                self.parent.append(node)
                self.token.append(token)
                self.score.append(score)
                self.base.append(base)
                self.state.append(state)
                self.partial.append(partial)
                self.partial_state.append(partial_state)
                self.hot.append(self.hotwords.step(self.hot[node], token) if self.hotwords else ROOT)
            out.append(child)
        return out

    def final_score(self, node: int) -> float:
        """Fused LM score of the prefix as a finished utterance (its last word scored)."""
        if self.partial[node] and self.partial_state[node] is None:
            return self.base[node] + self._lm(self.state[node], self.partial[node])[0]
        return self.score[node]

    def labels(self, node: int) -> list[int]:
        """Label sequence of the prefix ending at ``node``."""
        out = []
        while node > 0:
            out.append(self.token[node])
            node = self.parent[node]
        return out[::-1]
