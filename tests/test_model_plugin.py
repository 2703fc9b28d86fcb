"""A model of one's own plugs in through the registry alone: the test-only conv model in
tests/models/tiny_conv_model.py trains, evaluates, exports and streams through the same code as
DeepSpeech2."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from helpers import REPO, TEST_WAV, run_cli
from ppasr.data.audio import normalize_gain, read_audio
from ppasr.serve.infer import Predictor

PLUGIN = {"PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests" / "models")]),
          "PPASR_MODELS": "tiny_conv_model"}
TRAIN = ["--use_model=tinyconv", "--batch_size=8", "--num_workers=0", "--augment_conf_path=None",
         "--num_epoch=1", "--log_interval=1"]


@pytest.fixture(scope="module")
def plugin_run(prepared_corpus, tmp_path_factory):
    """One epoch of the tiny conv model, evaluated and exported, each by its script."""
    root = tmp_path_factory.mktemp("plugin") / "work"
    shutil.copytree(prepared_corpus, root, symlinks=True)
    train = run_cli("train.py", *TRAIN, cwd=root, env=PLUGIN)
    evaluation = run_cli("eval.py", "--use_model=tinyconv", "--resume_model=models/tinyconv/epoch_1",
                         "--num_workers=0", cwd=root, env=PLUGIN)
    export = run_cli("export_model.py", "--use_model=tinyconv", "--resume_model=models/tinyconv/epoch_1",
                     cwd=root, env=PLUGIN)
    return root, train.stdout, evaluation.stdout, export.stdout


def test_a_plugin_model_trains_and_evaluates(plugin_run):
    root, train, evaluation, _ = plugin_run
    assert "Train epoch: [1/1]" in train and "Test epoch: 1" in train
    state = json.loads((root / "models/tinyconv/epoch_1/state.json").read_text())
    assert state["model_config"]["use_model"] == "tinyconv" and state["model_config"]["channels"] == 32
    assert "评估消耗时间" in evaluation.strip().splitlines()[-1]


def test_an_unknown_model_is_one_error_line(prepared_corpus):
    proc = run_cli("train.py", "--use_model=tinyconv", cwd=prepared_corpus, check=False)  # no PPASR_MODELS
    assert proc.returncode == 2 and "invalid choice: 'tinyconv'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_deepspeech2_size_flag_is_refused_for_another_model(plugin_run):
    proc = run_cli("export_model.py", "--use_model=tinyconv", "--rnn_size=8",
                   "--resume_model=models/tinyconv/epoch_1", cwd=plugin_run[0], env=PLUGIN, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: --rnn_size is not a size of tinyconv (its sizes: channels)"


@pytest.mark.parametrize("backend", ["paddle", "onnxruntime"])
def test_the_exported_plugin_model_streams_without_its_code(plugin_run, backend):
    """The exported folder carries the model's streaming facts: this process never imports the plugin."""
    root = plugin_run[0]
    predictor = Predictor(str(root / "models/tinyconv/infer"), backend=backend)
    assert (predictor.exported.context, predictor.exported.subsampling) == (9, 4)
    samples, sr = read_audio(str(TEST_WAV), 16000)
    gain = normalize_gain(samples)
    whole = predictor.probabilities(samples, sr)
    assert whole.shape[0] == (predictor.featurizer.num_frames(len(samples)) - 9) // 4 + 1
    for chunk in (480, 4000):
        stream = predictor.new_stream(gain=gain)
        parts = [stream.accept(samples[i:i + chunk]) for i in range(0, len(samples), chunk)]
        np.testing.assert_allclose(np.concatenate(parts + [stream.finish()]), whole, atol=1e-4)


def test_infer_path_runs_the_exported_plugin_model(plugin_run):
    root = plugin_run[0]
    proc = run_cli("infer_path.py", "--model_dir=models/tinyconv/infer", f"--wav_path={TEST_WAV}", cwd=root)
    assert "识别结果" in proc.stdout


def test_a_folder_exported_by_an_earlier_version_still_loads(prepared_corpus, tmp_path):
    """Before the model interface, model_config.json held DeepSpeech2's sizes and no streaming facts."""
    from helpers import export_random_model

    root = tmp_path / "work"
    shutil.copytree(prepared_corpus, root, symlinks=True)
    infer = export_random_model(root, seed=1, cnn_size=4, num_rnn_layers=2, rnn_size=24)
    new = Predictor(str(infer), backend="onnxruntime")
    saved = json.loads((infer / "model_config.json").read_text())
    old = {key: saved[key] for key in ("use_model", "feature_config", "vocab_size", "cnn_size", "num_rnn_layers",
                                       "rnn_size", "source")}
    (infer / "model_config.json").write_text(json.dumps(old))
    predictor = Predictor(str(infer), backend="onnxruntime")
    assert predictor.exported == new.exported and predictor.initial_state().shape == (2, 1, 24)
