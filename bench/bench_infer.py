"""Inference speed of the exported model per backend: paddle.jit.load, Paddle Inference, onnxruntime.

For each model size (the demo model and PPASR's default) a randomly initialised DeepSpeech2 is
exported with ``ppasr.serve.export.save_inference_model`` (the paddle program and its ONNX conversion,
exactly as export_model.py writes them) and quantised with onnxruntime's dynamic int8
quantisation. Each backend × thread count then runs in a fresh process over one clip
(tests/resources/test.wav, 8.4 s): warm-up runs, then ``--repeats`` timed runs of the model
alone (features computed once beforehand), the backends taking turns. Prints ms per clip (median and fastest), the real-time
factor (median / clip duration) and the largest difference of the probabilities from the first
backend (paddle.jit.load by default).

``--cer_model_dir`` instead compares a trained exported model fp32 vs int8 on a manifest
(greedy CER and ms per utterance): the accuracy cost of quantisation.

    python bench/bench_infer.py [--configs demo ppasr] [--threads 1 2] [--repeats 10]
    python bench/bench_infer.py --cer_model_dir demo_run/models/deepspeech2/infer \\
        --cer_manifest demo_run/dataset/manifest.test
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ppasr.data.audio import read_audio  # noqa: E402
from ppasr.data.features import AudioFeaturizer, FeatureConfig  # noqa: E402
from ppasr.serve.backend import ONNX_FILE, OnnxBackend, PaddleBackend, paddle_model_files  # noqa: E402
from ppasr.serve.export import MODEL_PREFIX  # noqa: E402

CONFIGS = {
    "demo": {"feature": "fbank", "cnn_size": 16, "num_rnn_layers": 2, "rnn_size": 256, "vocab_size": 137},
    "ppasr": {"feature": "linear", "cnn_size": 32, "num_rnn_layers": 3, "rnn_size": 1024, "vocab_size": 4300},
}
BENCH_BACKENDS = ("paddle", "paddle-inference", "onnxruntime", "onnxruntime-int8")
INT8_FILE = "inference_int8.onnx"


def quantize_int8(onnx_path: str, out_path: str) -> None:
    """onnxruntime's dynamic quantisation: int8 weights, activations quantised at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(onnx_path, out_path, weight_type=QuantType.QInt8)


class PaddleInferenceRunner:
    """Paddle Inference (the C++ predictor) with oneDNN, as PPASR's own predictor ran."""

    def __init__(self, model_dir: str, num_threads: int):
        from paddle import inference

        config = inference.Config(*paddle_model_files(model_dir, MODEL_PREFIX))
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(num_threads)
        config.disable_glog_info()
        self._predictor = inference.create_predictor(config)

    def __call__(self, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        for name, value in zip(self._predictor.get_input_names(), inputs):
            handle = self._predictor.get_input_handle(name)
            handle.reshape(value.shape)
            handle.copy_from_cpu(value)
        self._predictor.run()
        return tuple(self._predictor.get_output_handle(n).copy_to_cpu() for n in self._predictor.get_output_names())


def make_runner(model_dir: str, backend: str, num_threads: int):
    if backend == "paddle":
        return PaddleBackend(model_dir, MODEL_PREFIX, num_threads=num_threads)
    if backend == "paddle-inference":
        return PaddleInferenceRunner(model_dir, num_threads)
    name = ONNX_FILE if backend == "onnxruntime" else INT8_FILE
    return OnnxBackend(os.path.join(model_dir, name), num_threads=num_threads)


def measure(model_dir: str, backends: list[str], num_threads: int, repeats: int, warmup: int) -> None:
    """Child process: time the backends on the saved inputs, save their probabilities, print JSON.

    The backends take turns run by run, so a load change on a shared machine hits them all alike.
    """
    inputs = [np.load(os.path.join(model_dir, f"input_{i}.npy")) for i in range(3)]
    runners = {backend: make_runner(model_dir, backend, num_threads) for backend in backends}
    times: dict[str, list[float]] = {backend: [] for backend in backends}
    for run in range(warmup + repeats):
        for backend, runner in runners.items():
            start = time.perf_counter()
            outputs = runner(*inputs)
            if run >= warmup:
                times[backend].append(time.perf_counter() - start)
            elif run == 0:
                np.save(os.path.join(model_dir, f"probs_{backend}_{num_threads}.npy"), outputs[0])
    print(json.dumps({b: {"median_ms": 1000 * float(np.median(t)), "min_ms": 1000 * min(t)} for b, t in times.items()}))


def export_random(name: str, feature: np.ndarray, out_dir: str) -> None:
    """A seeded random model of one size, exported as export_model.py does, plus its int8 copy."""
    import paddle

    from ppasr.model.deepspeech2 import DeepSpeech2Model
    from ppasr.serve.export import save_inference_model

    c = CONFIGS[name]
    paddle.seed(0)
    model = DeepSpeech2Model(feature.shape[0], c["vocab_size"], c["cnn_size"], c["num_rnn_layers"], c["rnn_size"])
    mean, std = feature.mean(axis=1, keepdims=True), feature.std(axis=1, keepdims=True) + 1e-3
    state = np.zeros((c["num_rnn_layers"], 1, c["rnn_size"]), dtype=np.float32)
    save_inference_model(model, mean, std, state.shape, out_dir)
    quantize_int8(os.path.join(out_dir, ONNX_FILE), os.path.join(out_dir, INT8_FILE))
    for i, x in enumerate([feature[None].astype(np.float32), np.array([feature.shape[1]], dtype=np.int64), state]):
        np.save(os.path.join(out_dir, f"input_{i}.npy"), x)


def run_speed(args: argparse.Namespace) -> None:
    samples, sr = read_audio(args.wav, 16000)
    duration_ms = 1000 * len(samples) / sr
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.configs:
            featurizer = AudioFeaturizer(FeatureConfig(method=CONFIGS[name]["feature"]))
            start = time.perf_counter()
            feature = featurizer.featurize(samples, sr)
            feature_ms = 1000 * (time.perf_counter() - start)
            model_dir = os.path.join(workdir, name)
            export_random(name, feature, model_dir)
            print(f"[{name}] exported; features {feature.shape} in {feature_ms:.1f} ms", file=sys.stderr)
            for threads in args.threads:
                proc = subprocess.run([sys.executable, __file__, "--measure", model_dir, str(threads),
                                       "--backends", *args.backends, f"--repeats={args.repeats}",
                                       f"--warmup={args.warmup}"],
                                      capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
                if proc.returncode != 0:
                    raise SystemExit(f"[{name}] measuring with {threads} threads failed:\n{proc.stderr[-3000:]}")
                results = json.loads(proc.stdout.strip().splitlines()[-1])
                reference = np.load(os.path.join(model_dir, f"probs_{args.backends[0]}_{threads}.npy"))
                for backend, result in results.items():
                    probs = np.load(os.path.join(model_dir, f"probs_{backend}_{threads}.npy"))
                    rows.append({"model": name, "backend": backend, "threads": threads,
                                 "diff": float(np.abs(probs - reference).max()),
                                 "rtf": result["median_ms"] / duration_ms, **result})
    print(f"\nclip {args.wav} ({duration_ms / 1000:.2f} s), median of {args.repeats} runs after {args.warmup} "
          f"warm-up, model only (features computed beforehand)\n")
    print(f"| {'model':<5} | {'backend':<16} | threads | ms/clip (median) | ms (fastest) |    RTF | "
          f"max abs diff vs {args.backends[0]} |")
    print(f"|{'-' * 7}|{'-' * 18}|---------|------------------|--------------|--------|------------------------|")
    for r in rows:
        print(f"| {r['model']:<5} | {r['backend']:<16} | {r['threads']:>7} | {r['median_ms']:>16.1f} | "
              f"{r['min_ms']:>12.1f} | {r['rtf']:>6.4f} | {r['diff']:>22.1e} |")


def run_cer(args: argparse.Namespace) -> None:
    """Greedy CER and speed of a trained exported model, fp32 vs dynamic int8 (onnxruntime)."""
    from ppasr.decode.greedy import greedy_decode
    from ppasr.serve.infer import Predictor
    from ppasr.train.metrics import corpus_cer

    items = [json.loads(line) for line in open(args.cer_manifest, encoding="utf-8") if line.strip()]
    base = os.path.dirname(os.path.dirname(os.path.abspath(args.cer_manifest)))  # manifest paths are relative
    with tempfile.TemporaryDirectory() as workdir:
        int8_path = os.path.join(workdir, INT8_FILE)
        quantize_int8(os.path.join(args.cer_model_dir, ONNX_FILE), int8_path)
        predictor = Predictor(args.cer_model_dir, use_gpu=False, backend="onnxruntime", num_threads=args.threads[-1])
        fp32 = predictor.backend
        int8 = OnnxBackend(int8_path, num_threads=args.threads[-1])
        print(f"| {'model':<24} | utts | greedy CER | ms/utt (features + model) |")
        print(f"|{'-' * 26}|------|------------|---------------------------|")
        for label, backend in (("onnxruntime fp32", fp32), ("onnxruntime dynamic int8", int8)):
            predictor.backend = backend
            pairs, elapsed = [], 0.0
            for item in items:
                path = item["audio_filepath"]
                samples, sr = read_audio(path if os.path.isabs(path) else os.path.join(base, path), 16000)
                start = time.perf_counter()
                probs = predictor.probabilities(samples, sr)
                elapsed += time.perf_counter() - start
                pairs.append((item["text"], greedy_decode(probs[None], np.array([len(probs)]), predictor.vocabulary)[0].text))
            print(f"| {label:<24} | {len(pairs):>4} | {corpus_cer(pairs):>10.4f} | {1000 * elapsed / len(pairs):>25.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--backends", nargs="+", default=list(BENCH_BACKENDS), choices=list(BENCH_BACKENDS))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--wav", default=str(REPO / "tests" / "resources" / "test.wav"))
    parser.add_argument("--cer_model_dir", help="an exported model folder: compare fp32 and int8 CER instead")
    parser.add_argument("--cer_manifest", help="manifest for --cer_model_dir (paths relative to its parent folder)")
    parser.add_argument("--measure", nargs=2, metavar=("MODEL_DIR", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure[0], args.backends, int(args.measure[1]), args.repeats, args.warmup)
    elif args.cer_model_dir:
        run_cer(args)
    else:
        run_speed(args)


if __name__ == "__main__":
    main()
