"""Hotwords (contextual biasing): names and terms the beam search should prefer when it hears them.

A :class:`HotwordGraph` is an Aho–Corasick automaton over vocabulary token ids. A prefix of the beam search
carries a :class:`HotwordState`; each token it adds moves that state, and the prefix's bonus is

    the weights of every hotword it has completed  +  the weights of the tokens of its current partial match.

So a prefix earns ``weight`` per token while it follows a hotword, keeps the bonus when the hotword
completes, and gives back exactly what the partial match earned when it leaves the hotword early (a failure
transition keeps only the credit of the shorter hotword prefix it falls back to). At the end of the
utterance an unfinished match is taken back as well. Partial matches therefore never inflate a final score;
they only keep a prefix that is spelling a hotword alive in the beam until it can complete it.

Weights are in the search's own units (natural-log probability per token, like ``ln P_ctc``), so a weight
of 2 lets each hotword token win against an alternative up to e² ≈ 7 times more probable.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ppasr.errors import UserError
from ppasr.logger import logger

SEPARATORS = re.compile(r"[,，]")


@dataclass(frozen=True)
class HotwordState:
    """Where a prefix stands in the graph: its automaton node, the bonus banked for completed hotwords, and
    the part of the node's score already banked (when a completed hotword continues into a longer one)."""

    node: int = 0
    banked: float = 0.0
    offset: float = 0.0


ROOT = HotwordState()


class HotwordGraph:
    """Aho–Corasick automaton of hotwords (token id sequences, each with a per-token weight)."""

    def __init__(self, hotwords: list[tuple[tuple[int, ...], float]]) -> None:
        self._children: list[dict[int, int]] = [{}]
        self._fail = [0]
        self._score = [0.0]  # accumulated bonus from the root to the node
        self._end = [False]
        self._depth = [0]
        for tokens, weight in hotwords:
            self._insert(tokens, weight)
        self._link()
        self.size = len(hotwords)

    def _insert(self, tokens: tuple[int, ...], weight: float) -> None:
        node = 0
        for token in tokens:
            child = self._children[node].get(token)
            if child is None:
                child = self._children[node][token] = len(self._children)
                self._children.append({})
                self._fail.append(0)
                self._score.append(self._score[node] + weight)
                self._end.append(False)
                self._depth.append(self._depth[node] + 1)
            elif self._score[child] - self._score[node] < weight:  # shared token: the largest weight wins
                self._raise(child, weight - (self._score[child] - self._score[node]))
            node = child
        self._end[node] = True

    def _raise(self, node: int, amount: float) -> None:
        """Add ``amount`` to the score of ``node`` and of everything below it."""
        stack = [node]
        while stack:
            n = stack.pop()
            self._score[n] += amount
            stack.extend(self._children[n].values())

    def _link(self) -> None:
        """Failure links, breadth first: the longest proper suffix of a node's path that is a graph path."""
        queue = list(self._children[0].values())
        for node in queue:
            for token, child in self._children[node].items():
                fallback = self._fail[node]
                while fallback and token not in self._children[fallback]:
                    fallback = self._fail[fallback]
                target = self._children[fallback].get(token, 0)
                self._fail[child] = target if target != child else 0
                queue.append(child)

    @property
    def tokens(self) -> frozenset[int]:
        """Every token some hotword contains: any other token sends a prefix back to the root."""
        return frozenset(token for children in self._children for token in children)

    def bonus(self, state: HotwordState) -> float:
        """The bonus of a prefix in ``state`` while it may still go on."""
        return state.banked + self._score[state.node] - state.offset

    def step(self, state: HotwordState, token: int) -> HotwordState:
        """The state after ``token``."""
        node = state.node
        child = self._children[node].get(token)
        offset = state.offset
        if child is None:
            offset = 0.0  # left the match: only the fallback's own prefix keeps credit
            while node and token not in self._children[node]:
                node = self._fail[node]
            child = self._children[node].get(token, 0)
        banked = state.banked
        if self._end[child]:
            banked += self._score[child] - offset
            offset = self._score[child]
        if child == 0 and banked == state.banked and state.node == 0:
            return state
        return HotwordState(child, banked, offset)

    @staticmethod
    def final(state: HotwordState) -> float:
        """The bonus of a prefix in ``state`` when the utterance ends: unfinished matches are taken back."""
        return state.banked


def parse_hotwords(text: str, weight: float) -> list[tuple[str, float]]:
    """Hotwords separated by commas (``,`` or ``，``), each with ``weight``."""
    return [(word.strip(), weight) for word in SEPARATORS.split(text) if word.strip()]


def read_hotwords_file(path: str, weight: float) -> list[tuple[str, float]]:
    """One hotword per line, optionally followed by whitespace and its own weight; ``#`` starts a comment."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"--hotwords_file={path} does not exist") from None
    except UnicodeDecodeError:
        raise UserError(f"--hotwords_file={path} is not UTF-8 text") from None
    out = []
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        try:
            out.append((parts[0], float(parts[1])) if len(parts) == 2 else (line, weight))
        except ValueError:  # the last field is part of the hotword ("new york")
            out.append((line, weight))
        if not out[-1][1] > 0:
            raise UserError(f"{path}:{number}: the weight of {out[-1][0]!r} must be > 0")
    return out


def compile_hotwords(hotwords: list[tuple[str, float]], vocabulary: list[str] | tuple[str, ...],
                     max_count: int | None = None, max_chars: int | None = None,
                     warn: bool = True) -> HotwordGraph | None:
    """The graph of ``hotwords`` spelt in ``vocabulary``'s tokens (one token per character); None for none.

    A hotword with a character the model cannot output is skipped (with a warning if ``warn``); ``max_count`` /
    ``max_chars`` (the server's caps) raise ``ValueError`` naming the cap.
    """
    if max_count is not None and len(hotwords) > max_count:
        raise ValueError(f"{len(hotwords)} hotwords, at most {max_count} allowed (--max_hotwords)")
    index = {piece: i for i, piece in enumerate(vocabulary)}
    compiled = []
    for word, weight in hotwords:
        if max_chars is not None and len(word) > max_chars:
            raise ValueError(f"hotword {word[:40]!r} has {len(word)} characters, at most {max_chars} allowed "
                             f"(--max_hotword_chars)")
        missing = list(dict.fromkeys(ch for ch in word if ch not in index))  # in the word's order
        if missing:
            if warn:
                logger.warning(f"hotword {word!r} skipped: the model's vocabulary has no {''.join(missing)!r}")
            continue
        compiled.append((tuple(index[ch] for ch in word), weight))
    return HotwordGraph(compiled) if compiled else None
