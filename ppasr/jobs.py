"""The eval.py and tools/tune.py jobs: flags in, PPASR's printed lines out (the script layer; the
evaluation loop they share with training is :mod:`ppasr.train.evaluation`)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

import numpy as np

from ppasr.data.dataset import ManifestDataset, SortaGradBatchSampler, build_loader
from ppasr.data.features import FeatureNormalizer
from ppasr.data.options import DataOptions
from ppasr.decode.language_model import load_language_model
from ppasr.decode.options import DecodeOptions
from ppasr.decode.text_decoder import build_decoder
from ppasr.errors import UserError
from ppasr.model.config import load_trained_model
from ppasr.model.options import ModelChoice
from ppasr.train.evaluation import EvalResult, evaluate, first_utterances, forward_batches, score
from ppasr.utils import loader_workers, read_vocabulary, require_file, select_device, set_paddle_threads


@dataclass(frozen=True)
class EvalJob:
    """What eval.py and tools/tune.py evaluate: a checkpoint (``resume_model``) on the test side of ``data``."""

    data: DataOptions
    model: ModelChoice
    resume_model: str
    result_path: str | None = None  # eval.py: one JSON line per utterance


@dataclass(frozen=True)
class TuneGrid:
    """tools/tune.py's search: the first ``num_data`` utterances (-1: all), alpha and beta ranges."""

    num_data: int
    num_alphas: int
    num_betas: int
    alpha_from: float
    alpha_to: float
    beta_from: float
    beta_to: float

    def points(self) -> list[tuple[float, float]]:
        """PPASR's grid, rounded to 2 decimals as a3c1911 printed it."""
        return [(round(float(alpha), 2), round(float(beta), 2))
                for alpha in np.linspace(self.alpha_from, self.alpha_to, self.num_alphas)
                for beta in np.linspace(self.beta_from, self.beta_to, self.num_betas)]


def load_for_eval(job: EvalJob):
    """Vocabulary, test set, loader and model (built from its checkpoint's config)."""
    data = job.data
    for path in (data.test_manifest, data.dataset_vocab, data.mean_std_path):
        require_file(path, "python3 create_data.py")
    select_device()
    set_paddle_threads()
    vocabulary = read_vocabulary(data.dataset_vocab)
    normalizer = FeatureNormalizer(data.mean_std_path)
    normalizer.check_method(data.feature_method, data.mean_std_path)
    _, model = load_trained_model(job.resume_model, job.model, vocabulary, normalizer.feature_config)
    dataset = ManifestDataset(data.test_manifest, vocabulary, normalizer, None, train=False)
    if len(dataset) == 0:
        raise UserError(f"{data.test_manifest} has no utterances to evaluate; rerun `python3 create_data.py`")
    sampler = SortaGradBatchSampler(dataset, data.batch_size, shuffle=False, even_shards=False)
    loader = build_loader(dataset, sampler, loader_workers(data.num_workers, 1))
    return vocabulary, dataset, loader, model


def report_unreadable(dataset: ManifestDataset, evaluated: int) -> None:
    """Say how many utterances were left out because their audio could not be loaded."""
    if len(dataset) > evaluated:
        print(f"skipped {len(dataset) - evaluated} utterances whose audio could not be loaded (reasons above)")


def run_eval(job: EvalJob, decoding: DecodeOptions) -> EvalResult:
    """The whole eval.py job: print the time taken and the corpus CER."""
    vocabulary, dataset, loader, model = load_for_eval(job)
    decoder = build_decoder(decoding, vocabulary)
    start = time.time()
    try:
        result = evaluate(model, loader, dataset, decoder.decode)
    finally:
        decoder.close()
    report_unreadable(dataset, result.utterances)
    if job.result_path:
        with open(job.result_path, "w", encoding="utf-8") as f:
            for reference, hypothesis, distance in result.pairs:
                f.write(json.dumps({"reference": reference, "hypothesis": hypothesis, "distance": distance},
                                   ensure_ascii=False) + "\n")
        print(f"识别结果已写入 {job.result_path}")
    print(f"mean per-utterance cer: {result.mean_utterance_cer:.5f}")
    print(f"字错率 cer: {result.cer:.5f} ({result.errors} errors / {result.chars} characters, "
          f"{result.utterances} utterances)")
    print("评估消耗时间：%ds，字错率：%f" % (time.time() - start, result.cer))  # a3c1911's last line
    return result


def run_tune(job: EvalJob, grid: TuneGrid, decoding: DecodeOptions) -> tuple[float, float, float]:
    """Grid-search alpha/beta of LM beam search with a3c1911's tools/tune.py lines; return the best
    (cer, alpha, beta). The CER is the corpus CER (a3c1911: the mean of per-utterance CERs)."""
    vocabulary, dataset, loader, model = load_for_eval(job)
    try:
        load_language_model(decoding.lang_model_path)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    print("开始识别数据...")
    outputs = first_utterances(forward_batches(model, loader), grid.num_data)
    evaluated = sum(len(output.indices) for output in outputs)
    if grid.num_data == -1:
        report_unreadable(dataset, evaluated)
    if not evaluated:
        raise UserError(f"no utterance of {job.data.test_manifest} could be loaded (reasons above)")
    points = grid.points()
    print("开始使用识别结果解码...")
    print("解码alpha和beta的排列：%s" % points)
    best = (np.inf, 0.0, 0.0)
    for i, (alpha, beta) in enumerate(points):
        print("正在解码[%d/%d]: (%.2f, %.2f)" % (i, len(points), alpha, beta), flush=True)
        result = EvalResult()
        decoder = build_decoder(replace(decoding, decoder="ctc_beam_search", alpha=alpha, beta=beta), vocabulary)
        try:
            for output in outputs:
                score(result, output, dataset, decoder.decode)
        finally:
            decoder.close()
        print("当alpha为：%f, beta为：%f，字错率为：%f" % (alpha, beta, result.cer), flush=True)
        if result.cer < best[0]:
            best = (result.cer, alpha, beta)
    print("【最后结果】当alpha为：%f, beta为：%f，字错率最低，为：%f" % (best[1], best[2], best[0]))
    return best
