"""Shared test fixtures: the reference clip, a repo-root path and a CLI runner."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "resources"
TEST_WAV = REFERENCE / "test.wav"


def run_cli(script: str, *args: str, cwd: Path, check: bool = True, timeout: int = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run one of the repo's scripts in ``cwd`` as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def reference_audio() -> tuple[np.ndarray, int]:
    samples, sr = soundfile.read(TEST_WAV, dtype="float32")
    return samples, sr


@pytest.fixture(scope="session")
def prepared_corpus(tmp_path_factory) -> Path:
    """A small synthesised Mandarin corpus after create_data.py (fbank features)."""
    root = tmp_path_factory.mktemp("corpus")
    from ppasr.synth import generate_corpus

    cwd = os.getcwd()
    os.chdir(root)
    try:
        generate_corpus(48, seed=7, language="zh", grammar="demo", name="tiny", num_workers=2, progress=False)
    finally:
        os.chdir(cwd)
    run_cli("create_data.py", "--num_workers=2", "--count_threshold=1", "--feature_method=fbank", cwd=root)
    (root / "conf").mkdir()
    (root / "conf" / "augmentation.json").write_text((REPO / "conf" / "augmentation.json").read_text())
    return root


@pytest.fixture
def workdir(prepared_corpus, tmp_path) -> Path:
    """A fresh copy of the prepared corpus (manifests point at relative audio paths)."""
    import shutil

    target = tmp_path / "work"
    shutil.copytree(prepared_corpus, target, symlinks=True)
    return target


TINY_MODEL = ["--rnn_size=32", "--num_rnn_layers=1", "--cnn_size=8"]


@pytest.fixture(scope="session")
def trained_corpus(prepared_corpus, tmp_path_factory) -> Path:
    """The tiny corpus with a tiny model trained for 2 epochs (models/deepspeech2/epoch_2)."""
    import shutil

    root = tmp_path_factory.mktemp("trained") / "work"
    shutil.copytree(prepared_corpus, root, symlinks=True)
    run_cli("train.py", *TINY_MODEL, "--batch_size=8", "--num_workers=0", "--num_epoch=2",
            "--augment_conf_path=None", "--learning_rate=5e-3", cwd=root)
    return root
