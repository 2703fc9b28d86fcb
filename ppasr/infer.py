"""infer_path.py's work: transcribe audio with an exported model."""
from __future__ import annotations

import json
import os
import time

import numpy as np

from ppasr.audio import read_audio
from ppasr.backend import load_backend
from ppasr.export import CONFIG_FILE, MODEL_PREFIX, VOCAB_FILE
from ppasr.features import AudioFeaturizer, FeatureConfig
from ppasr.utils import read_vocabulary
from ppasr.vad import split_on_silence


class Predictor:
    """An exported model (on an inference backend) plus its featurizer and vocabulary."""

    def __init__(self, model_dir: str, use_gpu: bool = False, backend: str | None = None, num_threads: int = 0):
        if not os.path.exists(os.path.join(model_dir, CONFIG_FILE)):
            raise SystemExit(f"error: no exported model in {model_dir}; create it with `python3 export_model.py`")
        with open(os.path.join(model_dir, CONFIG_FILE), "r", encoding="utf-8") as f:
            self.config = json.load(f)
        self.vocabulary = read_vocabulary(os.path.join(model_dir, VOCAB_FILE))
        if len(self.vocabulary) != self.config["vocab_size"]:
            raise SystemExit(f"error: {model_dir}/{VOCAB_FILE} has {len(self.vocabulary)} tokens but the model "
                             f"outputs {self.config['vocab_size']}; export the model again")
        self.feature_config = FeatureConfig(**self.config["feature_config"])
        self.featurizer = AudioFeaturizer(self.feature_config)
        self.backend = load_backend(model_dir, MODEL_PREFIX, backend, use_gpu, num_threads)

    def probabilities(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Per-frame softmax [T', V] for one clip at the model's sample rate."""
        feature = self.featurizer.featurize(samples, sample_rate)
        probs, out_len, _ = self.backend(feature[None].astype(np.float32), np.array([feature.shape[1]], dtype=np.int64))
        return probs[0, :int(out_len[0])]


def transcribe(predictor: Predictor, path: str, decode, long_audio: bool = False) -> tuple[str, float]:
    """Text and score of one file (any soundfile format and rate); long audio split on silence."""
    samples, sample_rate = read_audio(path, predictor.feature_config.sample_rate)
    window = int(predictor.feature_config.sample_rate * predictor.feature_config.window_ms / 1000)
    ranges = split_on_silence(samples, sample_rate) if long_audio else [(0, len(samples))]
    texts, scores = [], []
    for start, end in ranges:
        if end - start < 4 * window:
            continue
        probs = predictor.probabilities(samples[start:end], sample_rate)
        if probs.shape[0] == 0:
            continue
        text, score = decode(probs)
        texts.append(text)
        scores.append(score)
    joiner = " " if " " in predictor.vocabulary else ""
    return joiner.join(t for t in texts if t), float(np.mean(scores)) if scores else 0.0


def infer_path(args) -> None:
    """The whole infer_path.py job."""
    from ppasr.evaluation import build_decoder

    model_dir = args.model_dir.format(args.use_model) if "{}" in args.model_dir else args.model_dir
    predictor = Predictor(model_dir, args.use_gpu, args.backend, args.num_threads)
    if not os.path.exists(args.wav_path):
        raise SystemExit(f"error: audio file {args.wav_path} not found")
    decoder = build_decoder(args, predictor.vocabulary, num_processes=1)
    start = time.time()
    text, score = transcribe(predictor, args.wav_path, decoder, args.is_long_audio)
    elapsed = int(round((time.time() - start) * 1000))
    print(f"消耗时间：{elapsed}ms, 识别结果: {text}, 得分: {score:.3f}")
