"""Decoding options: what the flags ask of a decoder (``DecodeOptions``) and what a beam searcher needs
(``SearchConfig``). Their own module, so that the searcher and its prefix trie both import down to it."""
from __future__ import annotations

from dataclasses import dataclass

from ppasr.decode.language_model import OOV_LOG10

DECODERS = ("ctc_beam_search", "ctc_greedy")


@dataclass(frozen=True)
class DecodeOptions:
    """PPASR's decoding flags (``--decoder``, ``--alpha`` …); scripts build it with ``cli.options``."""

    decoder: str = "ctc_greedy"
    alpha: float = 1.2
    beta: float = 0.35
    beam_size: int = 10
    cutoff_prob: float = 1.0
    cutoff_top_n: int = 40
    lang_model_path: str | None = None
    num_proc_bsearch: int = 1
    hotwords: str | None = None  # comma-separated
    hotwords_file: str | None = None  # one per line, optional weight
    hotword_weight: float = 4.0


@dataclass(frozen=True)
class SearchConfig:
    """Everything a (possibly remote) searcher needs; picklable for worker processes."""

    vocabulary: tuple[str, ...]
    beam_size: int = 10
    alpha: float = 1.2
    beta: float = 0.35
    lang_model_path: str | None = None
    lm_token: str = "char"
    oov_log10: float | None = OOV_LOG10
