"""One evaluation loop shared by training (per epoch) and eval.py."""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import paddle
from tqdm import tqdm

from ppasr.checkpoint import check_compatible, check_model_dir, load_weights, read_state
from ppasr.dataset import ManifestDataset, SortaGradBatchSampler, collate, is_placeholder
from ppasr.decoder import BeamSearchDecoder, greedy_decode, greedy_score, load_language_model
from ppasr.features import FeatureNormalizer
from ppasr.model import DeepSpeech2Model
from ppasr.metrics import char_errors
from ppasr.utils import (loader_workers, read_vocabulary, require_file, select_device, set_paddle_threads,
                         single_threaded_worker, vocabulary_hash)


@dataclass
class EvalResult:
    loss_sum: float = 0.0
    utterances: int = 0
    errors: int = 0
    chars: int = 0
    per_utterance_cer_sum: float = 0.0
    pairs: list[tuple[str, str, int]] = field(default_factory=list)  # (reference, hypothesis, distance)

    @property
    def cer(self) -> float:
        """Corpus CER: Σ edit distance / Σ reference characters."""
        return self.errors / max(self.chars, 1)

    @property
    def mean_utterance_cer(self) -> float:
        """PPASR's figure: the mean of per-utterance CERs."""
        return self.per_utterance_cer_sum / max(self.utterances, 1)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.utterances, 1)


def ctc_loss_per_utterance(ctc: paddle.nn.CTCLoss, logits, out_len, labels, label_lens) -> paddle.Tensor:
    """CTC loss [B] (paddle's CTC applies log-softmax itself); logits are [B, T, V]."""
    return ctc(logits.transpose([1, 0, 2]), labels, out_len, label_lens, norm_by_times=True)


@paddle.no_grad()
def evaluate(model: paddle.nn.Layer, loader, dataset, decode: Callable[[np.ndarray, np.ndarray], list[str]],
             ctc: paddle.nn.CTCLoss | None = None, progress: bool = True) -> EvalResult:
    """Run the model over ``loader``; decode only each utterance's valid frames."""
    model.eval()
    result = EvalResult()
    for batch in tqdm(loader, desc="eval", disable=not progress, leave=False):
        features, feature_lens, labels, label_lens, indices = batch
        indices = indices.numpy()
        if is_placeholder(indices):
            continue
        logits, out_len, _ = model(features, feature_lens)
        if ctc is not None:
            losses = ctc_loss_per_utterance(ctc, logits, out_len, labels, label_lens).numpy()
            result.loss_sum += float(np.sum(losses[np.isfinite(losses)]))
        probs = paddle.nn.functional.softmax(logits, axis=-1).numpy()
        hypotheses = decode(probs, out_len.numpy())
        for index, hypothesis in zip(indices, hypotheses):
            reference = dataset.text(int(index))
            errors, chars = char_errors(reference, hypothesis)
            result.errors += errors
            result.chars += chars
            result.utterances += 1
            result.per_utterance_cer_sum += errors / max(chars, 1)
            result.pairs.append((reference, hypothesis, errors))
    model.train()
    return result


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
        print(f"warning: language model {lm_path} not found: decoding with beam search WITHOUT a language "
              f"model. Build one with `python3 tools/build_lm.py --manifest dataset/manifest.train "
              f"--output {lm_path}`, or pass --lang_model_path=None to silence this.", flush=True)
        lm_path = None
    try:
        beam = BeamSearchDecoder(vocabulary, alpha=args.alpha, beta=args.beta, beam_size=args.beam_size,
                                 cutoff_prob=args.cutoff_prob, cutoff_top_n=args.cutoff_top_n,
                                 lang_model_path=lm_path,
                                 num_processes=num_processes if num_processes is not None else args.num_proc_bsearch)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    return TextDecoder(vocabulary, beam)


def load_for_eval(args):
    """Vocabulary, normaliser, test set, loader and model with weights, as the flags say."""
    for path in (args.test_manifest, args.dataset_vocab, args.mean_std_path):
        require_file(path, "python3 create_data.py")
    check_model_dir(args.resume_model)
    select_device()
    set_paddle_threads()
    vocabulary = read_vocabulary(args.dataset_vocab)
    normalizer = FeatureNormalizer(args.mean_std_path)
    normalizer.check_method(args.feature_method, args.mean_std_path)
    check_compatible(read_state(args.resume_model), vocabulary_hash(vocabulary),
                     normalizer.feature_config.to_json(), args.resume_model)
    dataset = ManifestDataset(args.test_manifest, vocabulary, normalizer, None, train=False)
    if len(dataset) == 0:
        raise SystemExit(f"error: {args.test_manifest} has no utterances to evaluate")
    sampler = SortaGradBatchSampler(dataset, args.batch_size, shuffle=False, even_shards=False)
    loader = paddle.io.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                  num_workers=loader_workers(args.num_workers, 1),
                                  worker_init_fn=single_threaded_worker)
    model = DeepSpeech2Model(normalizer.feature_config.dim, len(vocabulary), args.cnn_size, args.num_rnn_layers,
                             args.rnn_size)
    load_weights(args.resume_model, model)
    model.eval()
    return vocabulary, dataset, loader, model


def run_eval(args) -> EvalResult:
    """The whole eval.py job: print the time taken and the corpus CER."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    vocabulary, dataset, loader, model = load_for_eval(args)
    decoder = build_decoder(args, vocabulary)
    start = time.time()
    try:
        result = evaluate(model, loader, dataset, decoder.batch)
    finally:
        decoder.close()
    unreadable = len(dataset) - result.utterances
    if unreadable:
        print(f"skipped {unreadable} utterances whose audio could not be loaded (reasons above)")
    if args.result_path:
        with open(args.result_path, "w", encoding="utf-8") as f:
            for reference, hypothesis, distance in result.pairs:
                f.write(json.dumps({"reference": reference, "hypothesis": hypothesis, "distance": distance},
                                   ensure_ascii=False) + "\n")
        print(f"识别结果已写入 {args.result_path}")
    print(f"消耗时间：{int(round((time.time() - start) * 1000))}ms, 字错率 cer: {result.cer:.5f} "
          f"({result.errors} errors / {result.chars} characters, {result.utterances} utterances; "
          f"mean per-utterance cer {result.mean_utterance_cer:.5f})")
    return result


def run_tune(args) -> tuple[float, float, float]:
    """Grid-search alpha/beta of LM beam search (PPASR tools/tune.py); print the best pair."""
    vocabulary, dataset, loader, model = load_for_eval(args)
    try:
        load_language_model(args.lang_model_path)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    probs_list, lengths_list, references = [], [], []
    with paddle.no_grad():
        for i, (features, feature_lens, _, _, indices) in enumerate(loader):
            if args.num_batches != -1 and i >= args.num_batches:
                break
            logits, out_len, _ = model(features, feature_lens)
            probs = paddle.nn.functional.softmax(logits, axis=-1).numpy()
            probs_list.append(probs)
            lengths_list.append(out_len.numpy())
            references.append([dataset.text(int(j)) for j in indices.numpy()])
    alphas = np.linspace(args.alpha_from, args.alpha_to, args.num_alphas)
    betas = np.linspace(args.beta_from, args.beta_to, args.num_betas)
    best = (np.inf, 0.0, 0.0)
    for alpha in alphas:
        for beta in betas:
            with BeamSearchDecoder(vocabulary, alpha=alpha, beta=beta, beam_size=args.beam_size,
                                   cutoff_prob=args.cutoff_prob, cutoff_top_n=args.cutoff_top_n,
                                   lang_model_path=args.lang_model_path,
                                   num_processes=args.num_proc_bsearch) as decoder:
                errors = chars = 0
                for probs, lengths, refs in zip(probs_list, lengths_list, references):
                    for ref, hyp in zip(refs, decoder.decode_batch(probs, lengths)):
                        e, n = char_errors(ref, hyp)
                        errors, chars = errors + e, chars + n
            cer = errors / max(chars, 1)
            print(f"alpha: {alpha:.3f}, beta: {beta:.3f}, cer: {cer:.5f}", flush=True)
            if cer < best[0]:
                best = (cer, float(alpha), float(beta))
    print(f"最优参数 best: alpha={best[1]:.3f}, beta={best[2]:.3f}, cer={best[0]:.5f}")
    return best
