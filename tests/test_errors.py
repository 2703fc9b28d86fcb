"""Every failure a user can cause ends with one ``error: …`` line and a non-zero exit, never a traceback.

Bad flags exit 2 (argparse's code for usage errors) when parsed; bad files exit 1 when opened, naming the
file, what is wrong and the command that makes a good one. Each case runs the real script.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest

from helpers import TINY_MODEL, run_cli

MODEL = "models/deepspeech2/epoch_2"
TRAIN_FAST = [*TINY_MODEL, "--batch_size=8", "--num_workers=0", "--num_epoch=3"]


def assert_one_error_line(proc, code: int, message: str) -> None:
    """Exit ``code``; stderr is exactly one line, ``error: …`` containing ``message``; no traceback."""
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output[-3000:]
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{output[-3000:]}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line, got:\n{proc.stderr}"
    assert message in lines[0], f"{message!r} not in {lines[0]!r}"


# ---- flags: checked when parsed, before any file is read ----------------------------------------

FLAG_CASES = [
    ("train.py", ["--batch_size", "-4"], "argument --batch_size: must be >= 1, got -4"),
    ("train.py", ["--num_epoch=0"], "argument --num_epoch: must be >= 1, got 0"),
    ("train.py", ["--learning_rate=nan"], "argument --learning_rate: must be a finite number > 0, got nan"),
    ("train.py", ["--lr_gamma=1.5"], "argument --lr_gamma: must be a finite number > 0 and <= 1, got 1.5"),
    ("train.py", ["--log_interval=0"], "argument --log_interval: must be >= 1, got 0"),
    ("train.py", ["--batch_size=eight"], "argument --batch_size: expected an integer >= 1, got 'eight'"),
    ("train.py", ["--min_duration=5", "--max_duration=2"], "--min_duration (5) must be less than --max_duration (2)"),
    ("train.py", ["--rnn_size=0"], "argument --rnn_size: must be >= 1, got 0"),
    ("train.py", ["--use_amp=maybe"], "argument --use_amp: expected a boolean, got 'maybe'"),
    ("train.py", ["--batch-size=8"], "unrecognized arguments: --batch-size=8"),
    ("eval.py", ["--cutoff_prob=1.5"], "argument --cutoff_prob: must be a finite number > 0 and <= 1, got 1.5"),
    ("eval.py", ["--alpha=inf"], "argument --alpha: must be a finite number, got inf"),
    ("eval.py", ["--resume_model=None"], "argument --resume_model: a model folder (e.g. models/deepspeech2/epoch_50/)"),
    ("tools/tune.py", ["--alpha_from=3", "--alpha_to=1"], "--alpha_from (3) must not be greater than --alpha_to (1)"),
    ("tools/tune.py", ["--num_alphas=0"], "argument --num_alphas: must be >= 1, got 0"),
    ("create_data.py", ["--feature_method=mel"], "argument --feature_method: must be one of linear, fbank, mfcc"),
    ("create_data.py", ["--num_samples=0"], "argument --num_samples: must be >= 1 or -1, got 0"),
    ("export_model.py", ["--cnn_size=-1"], "argument --cnn_size: must be >= 1, got -1"),
    ("tools/build_lm.py", ["--manifest=m", "--output=lm.arpa", "--order=0"], "argument --order: must be >= 1, got 0"),
    ("tools/generate_audio.py", ["--num_samples=0"], "argument --num_samples: must be >= 1, got 0"),
    ("infer_path.py", ["--vad=rnnoise"], "argument --vad: invalid choice: 'rnnoise' (choose from 'webrtc', 'silero'"),
    ("infer_gui.py", ["--vad=rnnoise"], "argument --vad: invalid choice: 'rnnoise'"),
]


@pytest.mark.parametrize("script, args, message", FLAG_CASES, ids=[f"{c[0]} {' '.join(c[1])}" for c in FLAG_CASES])
def test_bad_flag_is_one_error_line(tmp_path, script, args, message):
    proc = run_cli(script, *args, cwd=tmp_path, check=False)
    assert_one_error_line(proc, 2, message)
    assert proc.stdout == "", "nothing runs (not even the argument block) when a flag is bad"


# ---- files: checked when opened, naming the file and the fix -----------------------------------

def write(path: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / path).write_text(text, encoding="utf-8")


def truncate(path: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        data = (root / path).read_bytes()
        (root / path).write_bytes(data[:len(data) // 2])
    return damage


def malformed_manifest_line(root: Path) -> None:
    manifest = root / "dataset/manifest.train"
    lines = manifest.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][:-5]  # a line cut short, as by a crashed editor
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")


def manifest_line_without_duration(root: Path) -> None:
    manifest = root / "dataset/manifest.train"
    lines = manifest.read_text(encoding="utf-8").splitlines()
    item = json.loads(lines[0])
    del item["duration"]
    lines[0] = json.dumps(item, ensure_ascii=False)
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")


def unknown_augmentor(root: Path) -> None:
    (root / "conf/augmentation.json").write_text(json.dumps([{"type": "chorus", "params": {}, "prob": 1.0}]))


def remove(path: str) -> Callable[[Path], None]:
    return lambda root: (root / path).unlink()


RESUME = f"--resume_model={MODEL}"
FILE_CASES = [
    ("malformed manifest line", "train.py", TRAIN_FAST, malformed_manifest_line,
     "dataset/manifest.train:3: not a JSON manifest line"),
    ("manifest line without duration", "train.py", TRAIN_FAST, manifest_line_without_duration,
     "dataset/manifest.train:1: missing key(s) duration; fix the line or rerun `python3 create_data.py`"),
    ("mean_std.npz is text", "train.py", TRAIN_FAST, write("dataset/mean_std.npz", "mean 0\nstd 1\n"),
     "dataset/mean_std.npz is not a mean/std file written by create_data.py"),
    ("mean_std.npz truncated", "eval.py", [*TINY_MODEL, RESUME], truncate("dataset/mean_std.npz"),
     "dataset/mean_std.npz is not a mean/std file written by create_data.py"),
    ("feature method differs from mean_std.npz", "train.py", [*TRAIN_FAST, "--feature_method=linear"], None,
     "dataset/mean_std.npz was computed for 'fbank' features but --feature_method=linear"),
    ("augmentation.json malformed", "train.py", TRAIN_FAST, write("conf/augmentation.json", '[{"type": "speed",}]'),
     "invalid JSON in augmentation config file conf/augmentation.json"),
    ("augmentation.json unknown type", "train.py", TRAIN_FAST, unknown_augmentor,
     "augmentation config file conf/augmentation.json: augmentation config entry 0 (type 'chorus'): "
     "unknown augmentor type"),
    ("vocabulary missing", "train.py", TRAIN_FAST, remove("dataset/vocabulary.txt"),
     "required file dataset/vocabulary.txt is missing; create it with `python3 create_data.py`"),
    ("truncated model for --resume_model", "train.py", [*TRAIN_FAST, RESUME], truncate(f"{MODEL}/model.pdparams"),
     f"cannot read {MODEL}/model.pdparams: truncated or not written by paddle.save"),
    ("truncated model for --pretrained_model", "train.py", [*TRAIN_FAST, f"--pretrained_model={MODEL}"],
     truncate(f"{MODEL}/model.pdparams"), f"cannot read {MODEL}/model.pdparams: truncated"),
    ("truncated model for eval.py", "eval.py", [*TINY_MODEL, RESUME], truncate(f"{MODEL}/model.pdparams"),
     f"cannot read {MODEL}/model.pdparams: truncated"),
    ("truncated model for export_model.py", "export_model.py", [*TINY_MODEL, RESUME],
     truncate(f"{MODEL}/model.pdparams"), f"cannot read {MODEL}/model.pdparams: truncated"),
    ("missing optimizer.pdopt on resume", "train.py", [*TRAIN_FAST, RESUME], remove(f"{MODEL}/optimizer.pdopt"),
     f"{MODEL} has no optimizer.pdopt, so training cannot resume from it; to start a new run from its weights "
     f"pass --pretrained_model={MODEL}"),
    ("truncated optimizer.pdopt on resume", "train.py", [*TRAIN_FAST, RESUME], truncate(f"{MODEL}/optimizer.pdopt"),
     f"cannot read {MODEL}/optimizer.pdopt: truncated"),
    ("damaged state.json on resume", "train.py", [*TRAIN_FAST, RESUME], write(f"{MODEL}/state.json", '{"epoch": 2,'),
     f"{MODEL}/state.json is damaged"),
    ("no model folder for eval.py", "eval.py", [*TINY_MODEL, "--resume_model=models/deepspeech2/epoch_9"], None,
     "no model found at models/deepspeech2/epoch_9"),
    ("size flag contradicting the checkpoint", "eval.py", ["--rnn_size=64", "--num_rnn_layers=1", "--cnn_size=8",
                                                           RESUME], None,
     f"--rnn_size=64 contradicts {MODEL}, which was trained with rnn_size=32"),
    ("no exported model for infer_path.py", "infer_path.py", ["--wav_path=dataset/audio/tiny/tiny_000001.wav"], None,
     "no exported model in models/deepspeech2/infer/; create it with `python3 export_model.py`"),
    ("no annotation folder", "create_data.py", ["--annotation_path=nowhere/"], None,
     "annotation folder nowhere/ not found"),
]


@pytest.fixture
def trained_copy(trained_corpus, tmp_path) -> Path:
    """A fresh copy of the trained tiny corpus that a case may damage."""
    target = tmp_path / "work"
    shutil.copytree(trained_corpus, target, symlinks=True)
    return target


@pytest.mark.parametrize("name, script, args, damage, message", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_file_is_one_error_line(trained_copy, name, script, args, damage, message):
    if damage is not None:
        damage(trained_copy)
    proc = run_cli(script, *args, cwd=trained_copy, check=False)
    assert_one_error_line(proc, 1, message)


def test_audio_deleted_after_create_data_is_skipped_with_a_warning(trained_copy):
    manifest = trained_copy / "dataset/manifest.train"
    gone = json.loads(manifest.read_text(encoding="utf-8").splitlines()[0])["audio_filepath"]
    (trained_copy / gone).unlink()
    proc = run_cli("train.py", *TRAIN_FAST, "--num_epoch=1", "--augment_conf_path=None", "--save_model_path=m/",
                   cwd=trained_copy)
    assert "Traceback" not in proc.stdout + proc.stderr
    warnings = [line for line in proc.stdout.splitlines() if gone in line]
    assert warnings and "skip:" in warnings[0] and "audio file not found" in warnings[0], proc.stdout[-3000:]
    assert (trained_copy / "m/deepspeech2/epoch_1/model.pdparams").exists()
