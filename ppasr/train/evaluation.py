"""One evaluation loop shared by training (per epoch), eval.py and tools/tune.py.

``forward_batches`` runs the model over a loader (skipping batches none of whose audio loaded);
``EvalResult.add`` is the one place that counts character errors.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import paddle
from tqdm import tqdm

from ppasr.data.dataset import ManifestDataset, SortaGradBatchSampler, build_loader, is_placeholder
from ppasr.data.features import FeatureNormalizer
from ppasr.decode.beam_search import BeamSearchDecoder
from ppasr.decode.language_model import load_language_model
from ppasr.decode.text_decoder import build_decoder
from ppasr.errors import UserError
from ppasr.model.config import load_trained_model
from ppasr.train.metrics import char_errors
from ppasr.utils import loader_workers, read_vocabulary, require_file, select_device, set_paddle_threads

Decode = Callable[[np.ndarray, np.ndarray], list[str]]
logger = logging.getLogger("ppasr")


@dataclass
class EvalResult:
    loss_sum: float = 0.0
    utterances: int = 0
    errors: int = 0
    chars: int = 0
    per_utterance_cer_sum: float = 0.0
    pairs: list[tuple[str, str, int]] = field(default_factory=list)  # (reference, hypothesis, distance)

    def add(self, reference: str, hypothesis: str) -> None:
        """Count one utterance's character errors."""
        errors, chars = char_errors(reference, hypothesis)
        self.errors += errors
        self.chars += chars
        self.utterances += 1
        self.per_utterance_cer_sum += errors / max(chars, 1)
        self.pairs.append((reference, hypothesis, errors))

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


@dataclass
class BatchOutput:
    """The model's output for one batch: probabilities [B, T, V], valid frames, utterance indices."""

    probs: np.ndarray
    lengths: np.ndarray
    indices: np.ndarray
    batch_id: int
    loss_sum: float = 0.0  # Σ finite per-utterance CTC losses (when asked for)


def ctc_loss_per_utterance(ctc: paddle.nn.CTCLoss, logits, out_len, labels, label_lens) -> paddle.Tensor:
    """CTC loss [B] (paddle's CTC applies log-softmax itself); logits are [B, T, V]."""
    return ctc(logits.transpose([1, 0, 2]), labels, out_len, label_lens, norm_by_times=True)


def forward_batches(model: paddle.nn.Layer, loader, ctc: paddle.nn.CTCLoss | None = None,
                    progress: bool = True) -> Iterator[BatchOutput]:
    """The model (in eval mode) over ``loader``; batches whose audio all failed to load are skipped."""
    was_training = model.training
    model.eval()
    try:
        for i, (features, feature_lens, labels, label_lens, indices) in enumerate(
                tqdm(loader, desc="eval", disable=not progress, leave=False)):
            if is_placeholder(indices.numpy()):
                continue
            with paddle.no_grad():
                logits, out_len, _ = model(features, feature_lens)
                output = BatchOutput(paddle.nn.functional.softmax(logits, axis=-1).numpy(), out_len.numpy(),
                                     indices.numpy(), i)
                if ctc is not None:
                    losses = ctc_loss_per_utterance(ctc, logits, out_len, labels, label_lens).numpy()
                    output.loss_sum = float(np.sum(losses[np.isfinite(losses)]))
            yield output
    finally:
        if was_training:
            model.train()


def score(result: EvalResult, output: BatchOutput, dataset: ManifestDataset, decode: Decode) -> None:
    """Decode one batch (each utterance over its own valid frames) and count its errors."""
    result.loss_sum += output.loss_sum
    for index, hypothesis in zip(output.indices, decode(output.probs, output.lengths)):
        result.add(dataset.text(int(index)), hypothesis)


def evaluate(model: paddle.nn.Layer, loader, dataset: ManifestDataset, decode: Decode,
             ctc: paddle.nn.CTCLoss | None = None, progress: bool = True, log_every: int = 0) -> EvalResult:
    """Loss (with ``ctc``) and character errors of ``model`` over ``loader``.

    ``log_every`` > 0 prints PPASR's ``Test batch`` line every that many batches (batch 0 included):
    the batch's mean loss and the running mean per-utterance CER, as a3c1911's training log did.
    """
    result = EvalResult()
    for output in forward_batches(model, loader, ctc, progress=progress):
        before = result.utterances
        score(result, output, dataset, decode)
        if log_every and output.batch_id % log_every == 0:
            logger.info("Test batch: [%d/%d], loss: %.5f, cer: %.5f", output.batch_id, len(loader),
                        output.loss_sum / max(result.utterances - before, 1), result.mean_utterance_cer)
    return result


def load_for_eval(args):
    """Vocabulary, test set, loader and model (built from its checkpoint's config), as the flags say."""
    for path in (args.test_manifest, args.dataset_vocab, args.mean_std_path):
        require_file(path, "python3 create_data.py")
    select_device()
    set_paddle_threads()
    vocabulary = read_vocabulary(args.dataset_vocab)
    normalizer = FeatureNormalizer(args.mean_std_path)
    normalizer.check_method(args.feature_method, args.mean_std_path)
    _, model = load_trained_model(args, vocabulary, normalizer.feature_config)
    dataset = ManifestDataset(args.test_manifest, vocabulary, normalizer, None, train=False)
    if len(dataset) == 0:
        raise UserError(f"{args.test_manifest} has no utterances to evaluate; rerun `python3 create_data.py`")
    sampler = SortaGradBatchSampler(dataset, args.batch_size, shuffle=False, even_shards=False)
    loader = build_loader(dataset, sampler, loader_workers(args.num_workers, 1))
    return vocabulary, dataset, loader, model


def report_unreadable(dataset: ManifestDataset, evaluated: int) -> None:
    """Say how many utterances were left out because their audio could not be loaded."""
    if len(dataset) > evaluated:
        print(f"skipped {len(dataset) - evaluated} utterances whose audio could not be loaded (reasons above)")


def run_eval(args) -> EvalResult:
    """The whole eval.py job: print the time taken and the corpus CER."""
    vocabulary, dataset, loader, model = load_for_eval(args)
    decoder = build_decoder(args, vocabulary)
    start = time.time()
    try:
        result = evaluate(model, loader, dataset, decoder.batch)
    finally:
        decoder.close()
    report_unreadable(dataset, result.utterances)
    if args.result_path:
        with open(args.result_path, "w", encoding="utf-8") as f:
            for reference, hypothesis, distance in result.pairs:
                f.write(json.dumps({"reference": reference, "hypothesis": hypothesis, "distance": distance},
                                   ensure_ascii=False) + "\n")
        print(f"识别结果已写入 {args.result_path}")
    print(f"mean per-utterance cer: {result.mean_utterance_cer:.5f}")
    print(f"字错率 cer: {result.cer:.5f} ({result.errors} errors / {result.chars} characters, "
          f"{result.utterances} utterances)")
    print("评估消耗时间：%ds，字错率：%f" % (time.time() - start, result.cer))  # a3c1911's last line
    return result


def run_tune(args) -> tuple[float, float, float]:
    """Grid-search alpha/beta of LM beam search with a3c1911's tools/tune.py lines; return the best
    (cer, alpha, beta). The CER is the corpus CER (a3c1911: the mean of per-utterance CERs)."""
    vocabulary, dataset, loader, model = load_for_eval(args)
    try:
        load_language_model(args.lang_model_path)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    print("开始识别数据...")
    outputs = first_utterances(forward_batches(model, loader), args.num_data)
    evaluated = sum(len(output.indices) for output in outputs)
    if args.num_data == -1:
        report_unreadable(dataset, evaluated)
    if not evaluated:
        raise UserError(f"no utterance of {args.test_manifest} could be loaded (reasons above)")
    grid = [(round(float(alpha), 2), round(float(beta), 2))
            for alpha in np.linspace(args.alpha_from, args.alpha_to, args.num_alphas)
            for beta in np.linspace(args.beta_from, args.beta_to, args.num_betas)]
    print("开始使用识别结果解码...")
    print("解码alpha和beta的排列：%s" % grid)
    best = (np.inf, 0.0, 0.0)
    for i, (alpha, beta) in enumerate(grid):
        print("正在解码[%d/%d]: (%.2f, %.2f)" % (i, len(grid), alpha, beta), flush=True)
        result = EvalResult()
        with BeamSearchDecoder(vocabulary, alpha=alpha, beta=beta, beam_size=args.beam_size,
                               cutoff_prob=args.cutoff_prob, cutoff_top_n=args.cutoff_top_n,
                               lang_model_path=args.lang_model_path,
                               num_processes=args.num_proc_bsearch) as decoder:
            for output in outputs:
                score(result, output, dataset, decoder.decode_batch)
        print("当alpha为：%f, beta为：%f，字错率为：%f" % (alpha, beta, result.cer), flush=True)
        if result.cer < best[0]:
            best = (result.cer, alpha, beta)
    print("【最后结果】当alpha为：%f, beta为：%f，字错率最低，为：%f" % (best[1], best[2], best[0]))
    return best


def first_utterances(outputs: Iterator[BatchOutput], count: int) -> list[BatchOutput]:
    """The batches holding the first ``count`` utterances (-1: all), the last one cut to fit."""
    kept, total = [], 0
    for output in outputs:
        if count != -1 and total + len(output.indices) >= count:
            keep = count - total
            kept.append(BatchOutput(output.probs[:keep], output.lengths[:keep], output.indices[:keep],
                                    output.batch_id))
            break
        kept.append(output)
        total += len(output.indices)
    return kept
