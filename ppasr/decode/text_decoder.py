"""The decoder the options ask for (``--decoder``, LM, beam): greedy or beam search behind one interface.

Every decoder has one entry point, ``decode(probs [B, T, V], lengths [B]) -> list[Hypothesis]``, and
``close()``; :func:`decode_one` decodes a single utterance's ``[T, V]`` frames.
"""
from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from ppasr.decode.beam_search import BeamSearchDecoder
from ppasr.decode.greedy import greedy_decode
from ppasr.decode.hotwords import HotwordGraph, parse_hotwords, read_hotwords_file
from ppasr.decode.hypothesis import Hypothesis
from ppasr.decode.options import DecodeOptions
from ppasr.errors import UserError
from ppasr.logger import logger


class Decoder(Protocol):
    def decode(self, probs: np.ndarray, lengths: np.ndarray) -> list[Hypothesis]: ...

    def close(self) -> None: ...


class GreedyDecoder:
    """Best-path decoding (:func:`greedy_decode`) behind the decoder interface."""

    def __init__(self, vocabulary: list[str]) -> None:
        self.vocabulary = vocabulary

    def decode(self, probs: np.ndarray, lengths: np.ndarray) -> list[Hypothesis]:
        """Hypotheses of a [B, T, V] batch, each decoded over its own valid frames only."""
        return greedy_decode(probs, lengths, self.vocabulary)

    def close(self) -> None:
        """Nothing to stop (the interface's counterpart of the beam search's worker pool)."""


def decode_one(decoder: Decoder, probs: np.ndarray, hotwords: HotwordGraph | None = None) -> Hypothesis:
    """The hypothesis of one utterance's ``[T, V]`` probabilities (all frames valid); ``hotwords`` (beam
    search only) replace the decoder's own for this call."""
    probs = np.asarray(probs)
    if hotwords is not None:
        return decoder.decode(probs[None], np.array([probs.shape[0]]), hotwords)[0]
    return decoder.decode(probs[None], np.array([probs.shape[0]]))[0]


def hotword_list(options: DecodeOptions) -> list[tuple[str, float]]:
    """The hotwords of ``--hotwords`` and ``--hotwords_file``, each with its weight."""
    words = parse_hotwords(options.hotwords or "", options.hotword_weight)
    if options.hotwords_file:
        words += read_hotwords_file(options.hotwords_file, options.hotword_weight)
    return words


def build_decoder(options: DecodeOptions, vocabulary: list[str]) -> Decoder:
    """The decoder ``options`` ask for; a missing LM file falls back to beam search without LM."""
    hotwords = hotword_list(options)
    if options.decoder == "ctc_greedy":
        if hotwords:
            raise UserError("hotwords need --decoder=ctc_beam_search (greedy decoding cannot be biased)")
        return GreedyDecoder(vocabulary)
    lm_path = options.lang_model_path
    if lm_path and not os.path.exists(lm_path):
        logger.warning(f"warning: language model {lm_path} not found: decoding with beam search WITHOUT a "
                       f"language model. Build one with `python3 tools/build_lm.py --manifest dataset/manifest.train "
                       f"--output {lm_path}`, or pass --lang_model_path=None to silence this.")
        lm_path = None
    try:
        return BeamSearchDecoder(vocabulary, alpha=options.alpha, beta=options.beta, beam_size=options.beam_size,
                                 cutoff_prob=options.cutoff_prob, cutoff_top_n=options.cutoff_top_n,
                                 lang_model_path=lm_path, num_processes=options.num_proc_bsearch,
                                 hotwords=hotwords, hotword_weight=options.hotword_weight)
    except ValueError as e:
        raise UserError(str(e)) from None
