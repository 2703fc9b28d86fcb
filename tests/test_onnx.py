"""ONNX export and the onnxruntime backend: same probabilities and transcripts as paddle, paddle fallback."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from helpers import TEST_WAV, TINY_MODEL, run_cli

MODEL = "--resume_model=models/deepspeech2/epoch_2"
INFER_DIR = "models/deepspeech2/infer"


@pytest.fixture(scope="module")
def exported(trained_corpus, tmp_path_factory):
    """The tiny trained model exported once (paddle files plus inference.onnx)."""
    root = tmp_path_factory.mktemp("onnx") / "work"
    shutil.copytree(trained_corpus, root, symlinks=True)
    proc = run_cli("export_model.py", *TINY_MODEL, MODEL, cwd=root)
    assert "ONNX model saved: models/deepspeech2/infer/inference.onnx" in proc.stdout, proc.stdout
    return root


@pytest.fixture
def exported_copy(exported, tmp_path):
    target = tmp_path / "work"
    shutil.copytree(exported, target, symlinks=True)
    return target


def clips(root, count: int = 4) -> list[str]:
    items = [json.loads(l) for l in (root / "dataset/manifest.test").read_text(encoding="utf-8").splitlines()]
    items += [json.loads(l) for l in (root / "dataset/manifest.train").read_text(encoding="utf-8").splitlines()]
    return [str(root / i["audio_filepath"]) for i in items[:count]] + [str(TEST_WAV)]


def transcript(stdout: str) -> str:
    line = next(l for l in stdout.splitlines() if "识别结果" in l)
    return line.split("识别结果: ")[1].split(", 得分")[0]


def test_onnxruntime_and_paddle_agree_on_real_clips(exported):
    from ppasr.data.audio import read_audio
    from ppasr.decode.greedy import greedy_decode
    from ppasr.serve.infer import Predictor

    assert (exported / INFER_DIR / "inference.onnx").is_file()
    onnx = Predictor(str(exported / INFER_DIR), use_gpu=False, backend="onnxruntime", num_threads=1)
    paddle = Predictor(str(exported / INFER_DIR), use_gpu=False, backend="paddle", num_threads=1)
    assert (onnx.backend.name, paddle.backend.name) == ("onnxruntime", "paddle")
    assert Predictor(str(exported / INFER_DIR), use_gpu=True).backend.name == "onnxruntime", "default without CUDA"
    for path in clips(exported):
        samples, sr = read_audio(path, onnx.feature_config.sample_rate)
        a, b = onnx.probabilities(samples, sr), paddle.probabilities(samples, sr)
        assert a.shape == b.shape and a.shape[0] > 10
        assert np.abs(a - b).max() < 1e-4, path
        lengths = np.array([a.shape[0]])
        assert greedy_decode(a[None], lengths, onnx.vocabulary)[0].text == \
            greedy_decode(b[None], lengths, paddle.vocabulary)[0].text
        # the tiny test model mostly emits blanks: also compare the best non-blank token of every frame
        assert np.array_equal(a[:, 1:].argmax(-1), b[:, 1:].argmax(-1)), path


def test_infer_path_defaults_to_onnxruntime_with_paddle_identical_text(exported):
    wav = clips(exported, 1)[0]
    default = run_cli("infer_path.py", f"--wav_path={wav}", "--decoder=ctc_greedy", "--use_gpu=False", cwd=exported)
    assert "backend: None" in default.stdout and "using the paddle backend" not in default.stdout
    paddle = run_cli("infer_path.py", f"--wav_path={wav}", "--decoder=ctc_greedy", "--backend=paddle",
                     "--num_threads=1", cwd=exported)
    assert transcript(default.stdout) == transcript(paddle.stdout)


def test_missing_onnx_falls_back_to_paddle_with_one_line(exported_copy):
    os.remove(exported_copy / INFER_DIR / "inference.onnx")
    wav = clips(exported_copy, 1)[0]
    proc = run_cli("infer_path.py", f"--wav_path={wav}", "--decoder=ctc_greedy", "--use_gpu=False", cwd=exported_copy)
    notes = [l for l in proc.stdout.splitlines() if "using the paddle backend" in l]
    assert len(notes) == 1 and "inference.onnx not found" in notes[0]
    assert "识别结果" in proc.stdout


def test_export_without_paddle2onnx_is_a_note_not_a_failure(exported_copy, tmp_path):
    """A machine without paddle2onnx still exports the paddle model; inference then uses paddle."""
    blocker = tmp_path / "no_paddle2onnx" / "paddle2onnx"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('paddle2onnx is not installed')\n")
    from helpers import REPO

    proc = run_cli("export_model.py", *TINY_MODEL, MODEL, cwd=exported_copy,
                   env={"PYTHONPATH": f"{blocker.parent}{os.pathsep}{REPO}"})
    notes = [l for l in proc.stdout.splitlines() if "paddle2onnx is unavailable" in l]
    assert len(notes) == 1 and "预测模型已保存" in proc.stdout
    assert not (exported_copy / INFER_DIR / "inference.onnx").exists(), "the stale .onnx is removed"
    assert (exported_copy / INFER_DIR / "inference.pdiparams").exists()


@pytest.mark.parametrize("backend", ["onnxruntime", "paddle"])
def test_one_predictor_serves_concurrent_streams(exported, backend):
    """A server shares one Predictor (one session) across streams: each stream keeps only its own state."""
    from concurrent.futures import ThreadPoolExecutor

    from ppasr.data.audio import normalize_gain, read_audio
    from ppasr.serve.infer import Predictor

    predictor = Predictor(str(exported / INFER_DIR), use_gpu=False, backend=backend, num_threads=1)
    audio = [read_audio(path, 16000)[0] for path in clips(exported, 3)]

    def stream(samples: np.ndarray) -> np.ndarray:
        s = predictor.new_stream(gain=normalize_gain(samples))
        parts = [s.accept(samples[i:i + 1600]) for i in range(0, len(samples), 1600)]
        return np.concatenate(parts + [s.finish()])

    with ThreadPoolExecutor(max_workers=4) as pool:
        streamed = list(pool.map(stream, audio * 2))
    for samples, result in zip(audio * 2, streamed):
        whole = predictor.probabilities(samples, 16000)
        assert result.shape == whole.shape
        np.testing.assert_allclose(result, whole, atol=1e-4)
