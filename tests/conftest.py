"""Shared test fixtures: the reference clip, a prepared corpus, a tiny trained model, an exported
random-weight model and a model that has really learned something (``learned_run``); helpers.py holds
the rest. Tests that run the toolkit's programs are marked ``e2e`` here (``pytest -m "not e2e"``)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from helpers import (LEARN_EPOCHS, LEARN_MANIFEST, LEARN_MODEL, REPO, TEST_UTTERANCES, TEST_WAV, TINY_MODEL,
                     TRAIN_UTTERANCES, LearnedRun, export_random_model, run_cli)

# A test is end to end when it runs the toolkit's programs (every corpus fixture runs create_data.py, and
# most tests that use one run more), starts a server or a browser, or lives in one of these modules,
# which start programs of their own.
E2E_FIXTURES = {"prepared_corpus"}
E2E_MODULES = {"test_check_gpu", "test_crash", "test_distributed", "test_download", "test_generate_audio",
               "test_gui", "test_multinode", "test_server_soak", "test_kokoro"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_FIXTURES & set(item.fixturenames) or item.module.__name__ in E2E_MODULES:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def reference_audio() -> tuple[np.ndarray, int]:
    samples, sr = soundfile.read(TEST_WAV, dtype="float32")
    return samples, sr


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


@pytest.fixture(scope="session")
def trained_corpus(prepared_corpus, tmp_path_factory) -> Path:
    """The tiny corpus with a tiny model trained for 2 epochs (models/deepspeech2/epoch_2)."""
    root = tmp_path_factory.mktemp("trained") / "work"
    shutil.copytree(prepared_corpus, root, symlinks=True)
    run_cli("train.py", *TINY_MODEL, "--batch_size=8", "--num_workers=0", "--num_epoch=2",
            "--augment_conf_path=None", "--learning_rate=5e-3", cwd=root)
    return root


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
