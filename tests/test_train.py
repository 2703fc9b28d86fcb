"""train.py end to end on a tiny synthesised corpus: logs, checkpoints, resume, pretrained, errors."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

from helpers import REPO, TINY_MODEL, run_cli

FAST = TINY_MODEL + ["--batch_size=8", "--num_workers=0", "--augment_conf_path=None", "--log_interval=1"]
LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\] Train epoch: \[(\d+)/(\d+)\], batch: \[(\d+)/(\d+)\], "
                      r"loss: [\d.]+, learning rate: [\d.]+, eta: \d+:\d\d:\d\d$")
# PPASR a3c1911's line exactly, nothing appended (tools parse it); PPASR's mean per-utterance CER follows
TEST_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\] Test epoch: (\d+), "
                       r"time/epoch: \d+:\d\d:\d\d(?:\.\d{6})?, loss: [\d.]+, cer: ([\d.]+)$")
MEAN_CER_LINE = re.compile(r"^\[.+\] mean per-utterance cer: [\d.]+$")
TEST_BATCH_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\] Test batch: \[0/1\], loss: [\d.]+, cer: [\d.]+$")


def load_params(path) -> dict:
    return {k: v.numpy() for k, v in paddle.load(str(path / "model.pdparams")).items()}


def test_train_logs_checkpoints_and_visualdl(workdir):
    proc = run_cli("train.py", *FAST, "--num_epoch=2", "--augment_conf_path=conf/augmentation.json", cwd=workdir)
    out = proc.stdout
    assert "-----------  Configuration Arguments -----------" in out and "learning_rate: 0.001" in out
    assert "ccache" not in proc.stderr, "paddle's import-time ccache warning is not about the user's run"
    train_lines = [LOG_LINE.match(l) for l in out.splitlines() if "Train epoch" in l]
    assert train_lines and all(train_lines), out
    assert {m.group(1) for m in train_lines} == {"1", "2"}
    lines = out.splitlines()
    tests = [i for i, l in enumerate(lines) if "Test epoch" in l]
    assert [TEST_LINE.match(lines[i]).group(1) for i in tests] == ["1", "2"], out
    assert all(MEAN_CER_LINE.match(lines[i + 1]) for i in tests), out
    for i in tests:  # a3c1911's test block: print('\n', '=' * 70), Test batch lines, Test epoch, print('=' * 70, '\n')
        assert lines[i - 3:i - 1] == ["", " " + "=" * 70] and TEST_BATCH_LINE.match(lines[i - 1]), lines[i - 4:i + 4]
        assert lines[i + 2:i + 4] == ["=" * 70 + " ", ""], lines[i - 4:i + 4]
    root = workdir / "models" / "deepspeech2"
    for epoch in (1, 2):
        folder = root / f"epoch_{epoch}"
        assert (folder / "model.pdparams").exists() and (folder / "optimizer.pdopt").exists()
        state = json.loads((folder / "state.json").read_text())
        assert state["epoch"] == epoch and state["batch_in_epoch"] == 0 and state["step"] > 0
        config = state["model_config"]
        assert config["feature_config"]["method"] == "fbank" and config["vocab_size"] > 100
        assert (config["cnn_size"], config["num_rnn_layers"], config["rnn_size"]) == (8, 1, 32)
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "no temporary folders left behind"
    runs = list((workdir / "log").iterdir())
    assert len(runs) == 1 and list(runs[0].glob("vdlrecords.*"))


def test_keeps_last_three_checkpoints_and_saves_mid_epoch(workdir):
    run_cli("train.py", *FAST, "--num_epoch=3", "--save_interval=2", cwd=workdir)
    names = sorted(p.name for p in (workdir / "models/deepspeech2").iterdir())
    # 48 utterances, batch 8: epoch 3 (shuffled, shifted) has 7 batches, saved after 2, 4 and 6; the
    # run keeps its newest three, plus best_model and last_model
    assert names == ["best_model", "epoch_3", "epoch_3_batch_4", "epoch_3_batch_6", "last_model"], names


def add_noise_clips(workdir) -> None:
    """A noise manifest, so that the default augmentation config's noise augmentor runs too."""
    import soundfile

    noise_dir = workdir / "dataset/audio/noise"
    noise_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        soundfile.write(noise_dir / f"noise_{i}.wav", (0.1 * rng.standard_normal(8000 * (i + 1))).astype(np.float32),
                        16000)
    (workdir / "dataset/manifest.noise").write_text("".join(
        json.dumps({"audio_filepath": f"dataset/audio/noise/noise_{i}.wav", "duration": 0.5 * (i + 1)}) + "\n"
        for i in range(2)))


@pytest.mark.parametrize("setting", ["plain", "augmented"])
def test_resume_after_kill_matches_uninterrupted_run(workdir, tmp_path, setting):
    """Killed after a mid-epoch checkpoint and resumed from it, a run ends with the weights of an
    uninterrupted one: plain (no augmentation, no loader workers, inside epoch 1) and augmented
    (conf/augmentation.json with noise, 2 loader workers, inside shuffled epoch 2)."""
    import shutil

    if setting == "plain":
        args, epoch = FAST + ["--num_epoch=2"], 1
    else:
        add_noise_clips(workdir)
        args = FAST + ["--num_epoch=2", "--num_workers=2", "--augment_conf_path=conf/augmentation.json"]
        epoch = 2
    # reference: an uninterrupted run
    reference_dir = tmp_path / "reference"
    shutil.copytree(workdir, reference_dir, symlinks=True)
    out = run_cli("train.py", *args, cwd=reference_dir)
    assert f"loader workers: {2 if setting == 'augmented' else 0}" in out.stdout
    assert "augmentation" not in out.stderr, "every augmentor of the default config runs"
    reference = load_params(reference_dir / "models/deepspeech2/epoch_2")

    # the same run, killed after a mid-epoch checkpoint, then resumed from it
    env = dict(__import__("os").environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args, "--save_interval=2"],
                            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = workdir / f"models/deepspeech2/epoch_{epoch}_batch_2"
    deadline = time.time() + 300
    while not (checkpoint / "state.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (checkpoint / "state.json").exists()
    resumed = run_cli("train.py", *args, f"--resume_model={checkpoint}", cwd=workdir)
    assert "resumed from" in resumed.stdout and f"epoch {epoch}, batch 2" in resumed.stdout
    first = next(LOG_LINE.match(l) for l in resumed.stdout.splitlines() if LOG_LINE.match(l))
    assert (first.group(1), first.group(3)) == (str(epoch), "2"), "continues inside the epoch at batch 2"
    state = json.loads((workdir / "models/deepspeech2/epoch_2/state.json").read_text())
    reference_state = json.loads((reference_dir / "models/deepspeech2/epoch_2/state.json").read_text())
    assert state["step"] == reference_state["step"]
    assert state["learning_rate"] == pytest.approx(reference_state["learning_rate"])
    resumed_params = load_params(workdir / "models/deepspeech2/epoch_2")
    for name, value in reference.items():
        np.testing.assert_array_equal(resumed_params[name], value, err_msg=name)


def test_pretrained_loads_matching_tensors_and_lists_skipped(workdir):
    run_cli("train.py", *FAST, "--num_epoch=1", cwd=workdir)
    source = workdir / "models/deepspeech2/epoch_1"
    vocab = workdir / "dataset/vocabulary.txt"
    vocab.write_text(vocab.read_text(encoding="utf-8") + "新\t1\n", encoding="utf-8")
    proc = run_cli("train.py", *FAST, "--num_epoch=1", f"--pretrained_model={source}",
                   "--save_model_path=models2/", cwd=workdir)
    assert "skipped tensors: ['fc.bias', 'fc.weight']" in proc.stdout


def test_resume_with_other_vocabulary_is_a_clear_error(workdir):
    run_cli("train.py", *FAST, "--num_epoch=1", cwd=workdir)
    vocab = workdir / "dataset/vocabulary.txt"
    lines = vocab.read_text(encoding="utf-8").splitlines()
    vocab.write_text("\n".join([lines[0], lines[2], lines[1]] + lines[3:]) + "\n", encoding="utf-8")
    proc = run_cli("train.py", *FAST, "--num_epoch=2", "--resume_model=models/deepspeech2/epoch_1",
                   cwd=workdir, check=False)
    assert proc.returncode != 0 and "different vocabulary" in proc.stderr


def test_feature_method_mismatch_is_a_clear_error(workdir):
    proc = run_cli("train.py", *FAST, "--feature_method=linear", cwd=workdir, check=False)
    assert proc.returncode != 0 and "computed for 'fbank' features" in proc.stderr


def test_missing_files_name_the_command_that_makes_them(tmp_path):
    proc = run_cli("train.py", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "python3 create_data.py" in proc.stderr


def test_unreadable_audio_and_infeasible_labels_do_not_kill_training(workdir):
    manifest = workdir / "dataset/manifest.train"
    items = [json.loads(l) for l in manifest.read_text(encoding="utf-8").splitlines()]
    broken = workdir / items[0]["audio_filepath"]
    broken.write_bytes(b"RIFF garbage")  # decode fails at train time
    items.append(dict(items[1], text=items[1]["text"] * 40))  # far more labels than output frames
    manifest.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    proc = run_cli("train.py", *FAST, "--num_epoch=1", cwd=workdir)
    assert "dropped 1 utterances: label longer than the model's output frames" in proc.stdout
    assert f"skip: {items[0]['audio_filepath']}" in proc.stdout
    assert (workdir / "models/deepspeech2/epoch_1/model.pdparams").exists()
