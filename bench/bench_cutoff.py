"""PPASR's vocabulary pruning rule against ours, on a trained model: speed and CER of LM beam search.

a3c1911's C++ decoder scores *every* class of a frame when ``cutoff_prob`` is 1.0 (its default) and
ignores ``cutoff_top_n`` then; ours always keeps at most the ``cutoff_top_n`` (40) most probable classes.
PPASR's rule is ours with ``cutoff_top_n`` = the vocabulary size, so both run through the same search.
Model outputs are computed once; each decoder then decodes the same probabilities in one process.

    python bench/bench_cutoff.py --model demo_run/models/deepspeech2/epoch_4 \\
        --manifest demo_run/dataset/manifest.unseen --lang_model_path demo_run/lm/demo.arpa \\
        --vocab demo_run/dataset/vocabulary.txt --mean_std demo_run/dataset/mean_std.npz
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppasr.cli import eval_parser  # noqa: E402
from ppasr.decode.beam_search import BeamSearchDecoder  # noqa: E402
from ppasr.jobs import load_for_eval  # noqa: E402
from ppasr.train.evaluation import EvalResult, first_utterances, forward_batches, score  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a checkpoint folder (epoch_N)")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--lang_model_path", required=True)
    parser.add_argument("--vocab", default="dataset/vocabulary.txt")
    parser.add_argument("--mean_std", default="dataset/mean_std.npz")
    parser.add_argument("--beams", type=int, nargs="+", default=[10, 300])
    parser.add_argument("--alpha", type=float, default=1.2)
    parser.add_argument("--beta", type=float, default=0.35)
    parser.add_argument("--num_data", type=int, default=100, help="utterances (-1: all)")
    args = parser.parse_args()

    eval_args = eval_parser().parse_args([f"--resume_model={args.model}", f"--test_manifest={args.manifest}",
                                          f"--dataset_vocab={args.vocab}", f"--mean_std_path={args.mean_std}",
                                          "--batch_size=16", "--num_workers=0"])
    vocabulary, dataset, loader, model = load_for_eval(eval_args)
    outputs = first_utterances(forward_batches(model, loader, progress=False), args.num_data)
    utterances = sum(len(o.indices) for o in outputs)
    audio_s = sum(dataset.durations[int(i)] for o in outputs for i in o.indices)
    rows = []
    for beam in args.beams:
        for rule, top_n in (("ours: top 40", 40), ("PPASR: all classes", len(vocabulary))):
            result = EvalResult()
            with BeamSearchDecoder(vocabulary, alpha=args.alpha, beta=args.beta, beam_size=beam, cutoff_prob=1.0,
                                   cutoff_top_n=top_n, lang_model_path=args.lang_model_path,
                                   num_processes=1) as decoder:
                start = time.perf_counter()
                for output in outputs:
                    score(result, output, dataset, decoder.decode)
                seconds = time.perf_counter() - start
            rows.append((beam, rule, seconds, result.cer))
    print(f"\n{utterances} utterances of {args.manifest}, vocabulary {len(vocabulary)}, alpha {args.alpha}, "
          f"beta {args.beta}, LM {args.lang_model_path}, one process, {audio_s:.0f} s of audio\n")
    print("| beam | pruning | decode s | ms/utterance | CER |")
    print("|---|---|---|---|---|")
    for beam, rule, seconds, cer in rows:
        print(f"| {beam} | {rule} | {seconds:.2f} | {1000 * seconds / max(utterances, 1):.1f} | {cer:.4f} |")


if __name__ == "__main__":
    main()
