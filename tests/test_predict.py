"""a3c1911's Python API, ``ppasr.predict.Predictor``, on an exported tiny model: the same results as
infer_path.py, long audio, streaming chunks."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import soundfile

from helpers import REPO, TEST_WAV, run_cli


@pytest.fixture(scope="module")
def exported(trained_corpus, tmp_path_factory):
    work = tmp_path_factory.mktemp("predict") / "work"
    shutil.copytree(trained_corpus, work, symlinks=True)
    run_cli("export_model.py", "--resume_model=models/deepspeech2/epoch_2", cwd=work)
    return work


@pytest.mark.parametrize("decoder", ["ctc_greedy", "ctc_beam_search"])
def test_predict_matches_infer_path(exported, decoder, monkeypatch):
    from ppasr.predict import Predictor

    monkeypatch.chdir(exported)
    # a3c1911's constructor call, keyword for keyword (infer_path.py / infer_server.py)
    predictor = Predictor(model_dir="models/deepspeech2/infer/", vocab_path="dataset/vocabulary.txt",
                          decoder=decoder, alpha=1.2, beta=0.35, lang_model_path=None, beam_size=10,
                          cutoff_prob=1.0, cutoff_top_n=40, use_gpu=False)
    score, text = predictor.predict(audio_path=str(TEST_WAV), to_an=True)
    assert isinstance(score, float) and isinstance(text, str)
    proc = run_cli("infer_path.py", f"--wav_path={TEST_WAV}", "--use_gpu=False", f"--decoder={decoder}",
                   "--lang_model_path=None", cwd=exported)
    line = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"消耗时间：\d+ms, 识别结果: {re.escape(text)}, 得分: {int(score)}", line), (line, text, score)
    predictor.close()


def test_long_audio_and_streaming(exported_corpus, tmp_path, monkeypatch):
    """On the random-weight model, whose greedy output is non-blank text (the trained one decodes to blanks)."""
    from ppasr.predict import Predictor

    monkeypatch.chdir(exported_corpus)
    predictor = Predictor("models/deepspeech2/infer/", "dataset/vocabulary.txt", use_gpu=False)
    samples, sr = soundfile.read(TEST_WAV, dtype="float32")
    long_clip = np.concatenate([samples, np.zeros(sr, dtype=np.float32), samples])
    soundfile.write(tmp_path / "long.wav", long_clip, sr)
    score, text = predictor.predict_long_audio(str(tmp_path / "long.wav"))
    assert text.count("，") == 1 and all(text.split("，")) and 0 <= score <= 100
    proc = run_cli("infer_path.py", f"--wav_path={tmp_path / 'long.wav'}", "--is_long_audio=True", "--use_gpu=False",
                   "--to_an=False", cwd=exported_corpus)
    assert proc.stdout.strip().splitlines()[-1].endswith(f", 得分: {int(score)}, 识别结果: {text}")

    stream = predictor.new_stream()
    frames = [stream.accept(samples[i:i + 4000]) for i in range(0, len(samples), 4000)] + [stream.finish()]
    probs = np.concatenate(frames)
    assert probs.shape == predictor.model.probabilities(samples, sr).shape
    assert isinstance(predictor.decode(probs)[1], str)


def test_wheel_installs_the_package_and_its_entry_points(exported, tmp_path):
    """pip wheel → a fresh venv (paddle etc. from the environment running the tests, the package only from
    the wheel) → ``from ppasr.predict import Predictor`` and ``ppasr-infer-path`` on the exported model."""
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "dataset", "models", "log", "build", "*.egg-info", "demo_run", "__pycache__", ".pytest_cache"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "wheel"),
                    str(source)], check=True, env=env, timeout=300, capture_output=True)
    wheel = next((tmp_path / "wheel").glob("ppasr-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # the test environment's packages (a venv's or the system's) after the new venv's own, where the wheel goes
    own_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                              check=True, text=True, capture_output=True, timeout=60).stdout.strip()
    parents = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(own_site) / "test_environment.pth").write_text("\n".join(sorted(parents)) + "\n", encoding="utf-8")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   env=env, timeout=300, capture_output=True)
    probe = ("import pathlib, ppasr, ppasr.predict; from ppasr.predict import Predictor; "
             "print(pathlib.Path(ppasr.__file__).parent)")
    installed = Path(subprocess.run([str(python), "-c", probe], cwd=tmp_path, env=env, check=True, text=True,
                                    capture_output=True, timeout=120).stdout.strip())
    assert installed.is_relative_to(venv), installed
    assert (installed / "serve" / "static" / "index.html").exists()
    assert (venv / "share" / "ppasr" / "conf" / "augmentation.json").exists()
    proc = subprocess.run([str(venv / "bin" / "ppasr-infer-path"), f"--wav_path={TEST_WAV}", "--use_gpu=False",
                           f"--model_dir={exported / 'models/deepspeech2/infer'}", "--vocab_path=None"],
                          cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.fullmatch(r"消耗时间：\d+ms, 识别结果: .*, 得分: \d+", proc.stdout.strip().splitlines()[-1])
