"""Hotword recall on names the demo model never heard, and what the hotword list costs on ordinary speech.

Names: two characters the model can output but rarely heard (the vocabulary's characters with the fewest
occurrences in the training transcripts), in no training sentence. Sentences: the demo grammar's phone
templates with a new name as the person (给…打电话, 给…发消息 …),
spoken by eSpeak NG with the held-out (``unseen``) voices. Per decoder and hotword weight: the recall (the
name appears exactly in the result) and the CER of the demo's ordinary test set with the whole name list
active, against the same decoder without hotwords.

    python3 bench/bench_hotwords.py --work demo_run        # after `bash tools/demo.sh` and export_model.py
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from dataclasses import replace

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppasr.data.audio import read_audio  # noqa: E402
from ppasr.decode.options import DecodeOptions  # noqa: E402
from ppasr.decode.text_decoder import build_decoder, decode_one  # noqa: E402
from ppasr.demo.espeak import create_engine, open_engine  # noqa: E402
from ppasr.demo.synth import SAMPLE_RATE, plan_utterances, render  # noqa: E402
from ppasr.serve.infer import Predictor  # noqa: E402
from ppasr.train.metrics import char_errors  # noqa: E402

TEMPLATES = ("给{}打电话", "请给{}发消息", "帮我给{}打电话", "给{}发消息")  # the demo grammar's, a new {person}


def rare_names(train_manifest: str, vocabulary: list[str], count: int, seed: int) -> list[str]:
    """``count`` new two-character names made of the characters the training transcripts have least (the model
    can output them but rarely heard them), none of them a word the training sentences contain."""
    heard: collections.Counter = collections.Counter()
    texts = []
    with open(train_manifest, encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            heard.update(texts[-1])
    corpus = "\n".join(texts)
    pool = sorted((ch for ch in vocabulary if len(ch) == 1 and ch.strip()), key=lambda ch: (heard[ch], ch))[:2 * count]
    rng = np.random.default_rng(seed)
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choice(pool, size=2, replace=False))
        if name not in names and name not in corpus:
            names.append(name)
    return names


def probabilities(predictor: Predictor, clips: list[np.ndarray]) -> list[np.ndarray]:
    return [predictor.probabilities(samples, SAMPLE_RATE) for samples in clips]


def cer(decoder, probs: list[np.ndarray], texts: list[str]) -> float:
    pairs = [char_errors(t, decode_one(decoder, p).text) for p, t in zip(probs, texts)]
    return sum(e for e, _ in pairs) / sum(n for _, n in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="demo_run", help="the demo's workspace (PPASR_DEMO_DIR)")
    parser.add_argument("--names", type=int, default=20)
    parser.add_argument("--weights", default="1,2,3,4,6")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    work = args.work
    predictor = Predictor(os.path.join(work, "models/deepspeech2/infer"), use_gpu=False)
    vocabulary = predictor.vocabulary
    names = rare_names(os.path.join(work, "dataset/manifest.train"), vocabulary, args.names, args.seed)
    sentences = [template.format(name) for i, name in enumerate(names) for template in TEMPLATES[i % 2::2]]
    with open_engine() as config:
        engine = create_engine(config)
        plans = plan_utterances(sentences, [""] * len(sentences), args.seed, "zh", "unseen", engine.variants())
        name_clips = [render(plan, engine).astype(np.float32) / 32768.0 for plan in plans]
    name_probs = probabilities(predictor, name_clips)
    with open(os.path.join(work, "dataset/manifest.test"), encoding="utf-8") as f:
        test = [json.loads(line) for line in f]
    test_clips = [read_audio(os.path.join(work, item["audio_filepath"]), SAMPLE_RATE)[0] for item in test]
    test_probs = probabilities(predictor, test_clips)
    test_texts = [item["text"] for item in test]

    lm = os.path.join(work, "lm/demo.arpa")
    decoders = {"beam 10, no LM": DecodeOptions(decoder="ctc_beam_search", lang_model_path=None),
                "beam 10 + demo LM": DecodeOptions(decoder="ctc_beam_search", lang_model_path=lm, alpha=1.1513,
                                                   beta=1.5)}
    greedy = build_decoder(DecodeOptions(), vocabulary)
    greedy_recall = np.mean([name in decode_one(greedy, p).text for p, name in zip(name_probs, names_of(sentences,
                                                                                                       names))])
    print(f"{len(names)} new names ({', '.join(names[:6])}, …), {len(sentences)} sentences spoken by eSpeak's "
          f"held-out voices; ordinary test set: {len(test)} utterances of {work}/dataset/manifest.test")
    print(f"greedy (no hotwords possible): recall {greedy_recall:.3f}")
    print("| decoder | weight | recall without | recall with | test CER without | test CER with | change |")
    print("|---|---|---|---|---|---|---|")
    for label, options in decoders.items():
        plain = build_decoder(options, vocabulary)
        said = names_of(sentences, names)
        recall_without = np.mean([name in decode_one(plain, p).text for p, name in zip(name_probs, said)])
        cer_without = cer(plain, test_probs, test_texts)
        plain.close()
        for weight in [float(w) for w in args.weights.split(",")]:
            biased = build_decoder(replace(options, hotwords=",".join(names), hotword_weight=weight), vocabulary)
            recall_with = np.mean([name in decode_one(biased, p).text for p, name in zip(name_probs, said)])
            cer_with = cer(biased, test_probs, test_texts)
            biased.close()
            print(f"| {label} | {weight:g} | {recall_without:.3f} | {recall_with:.3f} | {cer_without:.4f} | "
                  f"{cer_with:.4f} | {cer_with - cer_without:+.4f} |", flush=True)


def names_of(sentences: list[str], names: list[str]) -> list[str]:
    """The name each sentence contains."""
    return [next(name for name in names if name in sentence) for sentence in sentences]


if __name__ == "__main__":
    main()
