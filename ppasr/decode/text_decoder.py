"""The decoder the flags ask for (``--decoder``, LM, beam): greedy or beam search behind one interface."""
from __future__ import annotations

import os

import numpy as np

from ppasr.decode.beam_search import BeamSearchDecoder
from ppasr.decode.greedy import greedy_decode, greedy_score
from ppasr.errors import UserError
from ppasr.logger import logger


class TextDecoder:
    """Greedy or beam-search decoding behind one interface."""

    def __init__(self, vocabulary: list[str], beam_search=None):
        self.vocabulary = vocabulary
        self.beam_search = beam_search

    def batch(self, probs: np.ndarray, lengths: np.ndarray) -> list[str]:
        """Texts of a [B, T, V] batch, each decoded over its own valid frames only."""
        if self.beam_search is None:
            return greedy_decode(probs, lengths, self.vocabulary)
        return self.beam_search.decode_batch(probs, lengths)

    def __call__(self, probs: np.ndarray) -> tuple[str, float]:
        """Text and PPASR's score of one utterance's [T, V] probabilities.

        Greedy: confidence 0-100 (:func:`greedy_score`); beam search: minus the result's CTC
        log-probability (PPASR's ``-approx_ctc``, smaller is more confident).
        """
        if self.beam_search is None:
            text = greedy_decode(probs[None], np.array([probs.shape[0]]), self.vocabulary)[0]
            return text, greedy_score(probs)
        text, _, ctc_log_prob = self.beam_search.decode_hypothesis(probs)
        return text, -ctc_log_prob

    def close(self) -> None:
        if self.beam_search is not None:
            self.beam_search.close()


def build_decoder(args, vocabulary: list[str], num_processes: int | None = None) -> TextDecoder:
    """The decoder the flags ask for; a missing LM file falls back to beam search without LM."""
    if args.decoder == "ctc_greedy":
        return TextDecoder(vocabulary)
    lm_path = args.lang_model_path
    if lm_path and not os.path.exists(lm_path):
        logger.warning(f"warning: language model {lm_path} not found: decoding with beam search WITHOUT a "
                       f"language model. Build one with `python3 tools/build_lm.py --manifest dataset/manifest.train "
                       f"--output {lm_path}`, or pass --lang_model_path=None to silence this.")
        lm_path = None
    try:
        beam = BeamSearchDecoder(vocabulary, alpha=args.alpha, beta=args.beta, beam_size=args.beam_size,
                                 cutoff_prob=args.cutoff_prob, cutoff_top_n=args.cutoff_top_n,
                                 lang_model_path=lm_path,
                                 num_processes=num_processes if num_processes is not None else args.num_proc_bsearch)
    except ValueError as e:
        raise UserError(str(e)) from None
    return TextDecoder(vocabulary, beam)
