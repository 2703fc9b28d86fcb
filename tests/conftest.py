"""Shared test fixtures: the reference clip, a repo-root path, a CLI runner, a prepared corpus, a
tiny trained model, an exported random-weight model and a model that has really learned something
(``learned_run``)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
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


TRAIN_UTTERANCES = 48
TEST_UTTERANCES = 6


@pytest.fixture(scope="session")
def prepared_corpus(tmp_path_factory) -> Path:
    """A small synthesised Mandarin corpus after create_data.py (fbank features).

    48 training utterances (annotation/tiny.txt) and 6 test utterances (annotation/test.txt, which
    create_data.py turns into the whole manifest.test) whose sentences never occur in training.
    """
    root = tmp_path_factory.mktemp("corpus")
    from ppasr.demo.synth import generate_corpus

    cwd = os.getcwd()
    os.chdir(root)
    try:
        annotation = Path(generate_corpus(TRAIN_UTTERANCES + TEST_UTTERANCES, seed=7, language="zh",
                                          grammar="demo", name="tiny", num_workers=2, progress=False))
    finally:
        os.chdir(cwd)
    lines = (root / annotation).read_text(encoding="utf-8").splitlines(keepends=True)  # distinct sentences
    (root / annotation).write_text("".join(lines[:TRAIN_UTTERANCES]), encoding="utf-8")
    (root / annotation.parent / "test.txt").write_text("".join(lines[TRAIN_UTTERANCES:]), encoding="utf-8")
    run_cli("create_data.py", "--num_workers=2", "--count_threshold=1", "--feature_method=fbank", cwd=root)
    (root / "conf").mkdir()
    (root / "conf" / "augmentation.json").write_text((REPO / "conf" / "augmentation.json").read_text())
    return root


@pytest.fixture
def workdir(prepared_corpus, tmp_path) -> Path:
    """A fresh copy of the prepared corpus (manifests point at relative audio paths)."""
    target = tmp_path / "work"
    shutil.copytree(prepared_corpus, target, symlinks=True)
    return target


TINY_MODEL = ["--rnn_size=32", "--num_rnn_layers=1", "--cnn_size=8"]


@pytest.fixture(scope="session")
def trained_corpus(prepared_corpus, tmp_path_factory) -> Path:
    """The tiny corpus with a tiny model trained for 2 epochs (models/deepspeech2/epoch_2)."""
    root = tmp_path_factory.mktemp("trained") / "work"
    shutil.copytree(prepared_corpus, root, symlinks=True)
    run_cli("train.py", *TINY_MODEL, "--batch_size=8", "--num_workers=0", "--num_epoch=2",
            "--augment_conf_path=None", "--learning_rate=5e-3", cwd=root)
    return root


def export_random_model(root: Path, seed: int, cnn_size: int, num_rnn_layers: int, rnn_size: int) -> Path:
    """Export a seeded random-weight model of these sizes with export_model.py from the prepared corpus at
    ``root``; return its folder (models/deepspeech2/infer)."""
    import paddle

    from ppasr.data.features import FeatureNormalizer
    from ppasr.model.deepspeech2 import DeepSpeech2Model
    from ppasr.utils import read_vocabulary

    paddle.seed(seed)
    dim = FeatureNormalizer(str(root / "dataset/mean_std.npz")).feature_config.dim
    vocab_size = len(read_vocabulary(str(root / "dataset/vocabulary.txt")))
    model = DeepSpeech2Model(dim, vocab_size, cnn_size, num_rnn_layers, rnn_size)
    (root / "models/random/epoch_1").mkdir(parents=True)
    paddle.save(model.state_dict(), str(root / "models/random/epoch_1/model.pdparams"))
    run_cli("export_model.py", f"--cnn_size={cnn_size}", f"--num_rnn_layers={num_rnn_layers}", f"--rnn_size={rnn_size}",
            "--resume_model=models/random/epoch_1", cwd=root)
    return root / "models/deepspeech2/infer"


@pytest.fixture(scope="session")
def exported_corpus(prepared_corpus, tmp_path_factory) -> Path:
    """The tiny corpus with a seeded random-weight tiny model exported by export_model.py to
    models/deepspeech2/infer/. Its greedy output is varied non-blank text, which tests of what
    carries text need (2 epochs of training leave the tiny model emitting blanks only)."""
    import shutil

    root = tmp_path_factory.mktemp("exported") / "work"
    shutil.copytree(prepared_corpus, root, symlinks=True)
    export_random_model(root, seed=5, cnn_size=8, num_rnn_layers=1, rnn_size=32)  # TINY_MODEL's sizes
    return root


# ---- a model that has learned: 16 training utterances memorised well enough to transcribe them ----
LEARN_MODEL = ["--rnn_size=256", "--num_rnn_layers=1", "--cnn_size=16"]
LEARN_EPOCHS = 30
LEARN_MANIFEST = "learn.manifest"
TEST_LINE = re.compile(r"Test epoch: (\d+), .*?loss: ([\d.]+|nan|inf), cer: ([\d.]+)")
TRAIN_LINE = re.compile(r"Train epoch: \[(\d+)/\d+\], batch: \[(\d+)/\d+\], loss: ([\d.]+|nan|inf), "
                        r"learning rate: ([\d.]+)")


def epoch_results(stdout: str) -> dict[int, tuple[float, float]]:
    """(test loss, test cer) per epoch from train.py's ``Test epoch`` lines."""
    return {int(e): (float(loss), float(cer)) for e, loss, cer in TEST_LINE.findall(stdout)}


def epoch_learning_rates(stdout: str) -> dict[int, set[float]]:
    """The learning rates train.py printed in each epoch's ``Train epoch`` lines."""
    rates: dict[int, set[float]] = {}
    for epoch, _, _, lr in TRAIN_LINE.findall(stdout):
        rates.setdefault(int(epoch), set()).add(float(lr))
    return rates


@dataclass
class LearnedRun:
    root: Path  # a workdir: the corpus plus learn.manifest and models/deepspeech2/epoch_<LEARN_EPOCHS>
    stdout: str  # train.py's output
    checkpoint: str  # "models/deepspeech2/epoch_<LEARN_EPOCHS>", relative to root


@pytest.fixture(scope="session")
def learned_run(prepared_corpus, tmp_path_factory) -> LearnedRun:
    """A 1-layer 256-unit DeepSpeech2 trained for 30 epochs (120 steps, ~15 s on 2 cores) on the 16 shortest
    training utterances, evaluated every epoch on those same 16: measured loss 57 -> 5.7, CER 0.98 -> 0.31.
    (The 16 longest, spoken by 16 of the generator's 79 voices, need 40 epochs to get below 0.7.)"""
    root = tmp_path_factory.mktemp("learned") / "work"
    shutil.copytree(prepared_corpus, root, symlinks=True)
    train_lines = (root / "dataset/manifest.train").read_text(encoding="utf-8").splitlines(keepends=True)
    (root / LEARN_MANIFEST).write_text("".join(train_lines[-16:]), encoding="utf-8")  # sorted longest first
    proc = run_cli("train.py", *LEARN_MODEL, "--batch_size=4", "--num_workers=0", f"--num_epoch={LEARN_EPOCHS}",
                   "--augment_conf_path=None", "--learning_rate=3e-3", "--lr_gamma=0.999", "--log_interval=1",
                   f"--train_manifest={LEARN_MANIFEST}", f"--test_manifest={LEARN_MANIFEST}", cwd=root)
    return LearnedRun(root, proc.stdout, f"models/deepspeech2/epoch_{LEARN_EPOCHS}")


def children(pid: int) -> set[int]:
    """The pids of ``pid``'s child processes (all its threads')."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except FileNotFoundError:  # a thread that ended during the look
            continue
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
