"""The eval.py and tools/tune.py jobs: flags in, PPASR's printed lines out (the script layer; the
evaluation loop they share with training is :mod:`ppasr.train.evaluation`)."""
from __future__ import annotations

import json
import time

import numpy as np

from ppasr import cli
from ppasr.data.dataset import ManifestDataset, SortaGradBatchSampler, build_loader
from ppasr.data.features import FeatureNormalizer
from ppasr.decode.language_model import load_language_model
from ppasr.decode.options import DecodeOptions
from ppasr.decode.text_decoder import build_decoder
from ppasr.errors import UserError
from ppasr.model.config import load_trained_model
from ppasr.model.options import ModelChoice
from ppasr.train.evaluation import EvalResult, evaluate, first_utterances, forward_batches, score
from ppasr.utils import loader_workers, read_vocabulary, require_file, select_device, set_paddle_threads


def load_for_eval(args):
    """Vocabulary, test set, loader and model (built from its checkpoint's config), as the flags say."""
    for path in (args.test_manifest, args.dataset_vocab, args.mean_std_path):
        require_file(path, "python3 create_data.py")
    select_device()
    set_paddle_threads()
    vocabulary = read_vocabulary(args.dataset_vocab)
    normalizer = FeatureNormalizer(args.mean_std_path)
    normalizer.check_method(args.feature_method, args.mean_std_path)
    _, model = load_trained_model(args.resume_model, cli.options(ModelChoice, args), vocabulary,
                                  normalizer.feature_config)
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
    decoder = build_decoder(cli.options(DecodeOptions, args), vocabulary)
    start = time.time()
    try:
        result = evaluate(model, loader, dataset, decoder.decode)
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
        decoder = build_decoder(cli.options(DecodeOptions, args, decoder="ctc_beam_search", alpha=alpha, beta=beta),
                                vocabulary)
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
