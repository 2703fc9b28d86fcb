"""One evaluation loop shared by training (per epoch) and eval.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import paddle
from tqdm import tqdm

from ppasr.dataset import is_placeholder
from ppasr.metrics import char_errors


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
