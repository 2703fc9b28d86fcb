"""One evaluation loop shared by training (per epoch), eval.py and tools/tune.py (whose jobs are in
:mod:`ppasr.jobs`).

``forward_batches`` runs the model over a loader (skipping batches none of whose audio loaded);
``EvalResult.add`` is the one place that counts character errors.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import paddle
from tqdm import tqdm

from ppasr.data.dataset import ManifestDataset, is_placeholder
from ppasr.decode.hypothesis import Hypothesis
from ppasr.train.metrics import char_errors

Decode = Callable[[np.ndarray, np.ndarray], list[Hypothesis]]
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
        result.add(dataset.text(int(index)), hypothesis.text)


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
