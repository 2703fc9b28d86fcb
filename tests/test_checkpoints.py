"""Checkpoints end to end: retention touches only the saving run's folders, best_model/last_model
stay whole under kill -9, last_model resumes exactly, the model config travels with the model."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import paddle

from helpers import REPO, TINY_MODEL, run_cli

FAST = TINY_MODEL + ["--batch_size=8", "--num_workers=0", "--augment_conf_path=None", "--log_interval=1"]
FILES = ("model.pdparams", "optimizer.pdopt", "state.json")


def run_ids(root) -> dict[str, str]:
    """Folder name → run id of every folder with a state.json under ``root``."""
    return {p.name: json.loads((p / "state.json").read_text())["run_id"]
            for p in root.iterdir() if (p / "state.json").exists()}


def load_params(path) -> dict:
    return {k: v.numpy() for k, v in paddle.load(str(path / "model.pdparams")).items()}


def test_fine_tuning_never_deletes_or_overwrites_another_runs_checkpoints(workdir):
    root = workdir / "models/deepspeech2"
    run_cli("train.py", *FAST, "--num_epoch=5", cwd=workdir)  # run A keeps epoch_3..5
    first = run_ids(root)
    assert sorted(first) == ["best_model", "epoch_3", "epoch_4", "epoch_5", "last_model"]
    a = first["epoch_5"]
    a_best = load_params(root / "best_model")

    # run B fine-tunes from A's epoch_5 for 2 epochs in the same folder
    run_cli("train.py", *FAST, "--num_epoch=2", "--pretrained_model=models/deepspeech2/epoch_5", cwd=workdir)
    second = run_ids(root)
    b = second["epoch_1"]
    assert b != a and second["epoch_2"] == b
    for name in ("epoch_3", "epoch_4", "epoch_5"):
        assert second[name] == a, f"{name} of the earlier run must survive"
    assert second["best_model"] == second["last_model"] == b
    # A's aliases were not overwritten: kept beside, whole
    assert second[f"best_model.before-{b}"] == second[f"last_model.before-{b}"] == a
    for name, value in load_params(root / f"best_model.before-{b}").items():
        np.testing.assert_array_equal(value, a_best[name])

    # run C (4 epochs, keep 2) reaches names A and B used: their folders are kept, C prunes only its own
    run_cli("train.py", *FAST, "--num_epoch=4", "--keep_checkpoints=2",
            "--pretrained_model=models/deepspeech2/epoch_2", cwd=workdir)
    third = run_ids(root)
    c = third["epoch_4"]
    assert {name for name, run in third.items() if run == c and name.startswith("epoch")} == {"epoch_3", "epoch_4"}
    assert third[f"epoch_1.before-{c}"] == third[f"epoch_2.before-{c}"] == b
    assert third[f"epoch_3.before-{c}"] == third[f"epoch_4.before-{c}"] == a
    assert third["epoch_5"] == a
    assert third[f"best_model.before-{b}"] == a and third[f"best_model.before-{c}"] == b
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "no temporary folders left behind"


def test_resumed_run_keeps_its_id_and_prunes_only_its_own(workdir):
    root = workdir / "models/deepspeech2"
    run_cli("train.py", *FAST, "--num_epoch=2", "--keep_checkpoints=2", cwd=workdir)
    run_id = run_ids(root)["epoch_2"]
    shutil.copytree(root / "epoch_1", root / "epoch_7")  # a stranger's folder: PPASR-made, no state.json
    (root / "epoch_7" / "state.json").unlink()
    run_cli("train.py", *FAST, "--num_epoch=4", "--keep_checkpoints=2",
            "--resume_model=models/deepspeech2/epoch_2", cwd=workdir)
    ids = run_ids(root)
    assert {name: ids[name] for name in ("epoch_3", "epoch_4", "best_model", "last_model")} == dict.fromkeys(
        ("epoch_3", "epoch_4", "best_model", "last_model"), run_id)
    assert not (root / "epoch_1").exists() and not (root / "epoch_2").exists()
    assert (root / "epoch_7" / "model.pdparams").exists(), "a folder without a run id is never pruned"


def test_best_model_has_the_lowest_test_cer(workdir):
    root = workdir / "models/deepspeech2"
    out = run_cli("train.py", *FAST, "--num_epoch=3", "--learning_rate=5e-3", "--keep_checkpoints=0",
                  cwd=workdir).stdout
    cers = {e: json.loads((root / f"epoch_{e}/state.json").read_text())["test_cer"] for e in (1, 2, 3)}
    best_epoch = min(sorted(cers), key=lambda e: (cers[e], -e))  # ties go to the later epoch
    best = json.loads((root / "best_model/state.json").read_text())
    assert best["epoch"] == best_epoch and best["test_cer"] == best["best_cer"] == min(cers.values())
    for name, value in load_params(root / f"epoch_{best_epoch}").items():
        np.testing.assert_array_equal(value, load_params(root / "best_model")[name])
    assert json.loads((root / "last_model/state.json").read_text())["epoch"] == 3
    assert out.count("(new best_model)") >= 1


def _complete(folder) -> bool | None:
    """Whether the folder at this path has all three files and a readable state.json; None when it was
    swapped for another during the look (a reader that opened the replaced folder may see it emptied
    afterwards, but the path itself never points to an incomplete folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return False
    try:
        inode = os.fstat(fd).st_ino
        names = set(os.listdir(fd))
        with open(os.open("state.json", os.O_RDONLY, dir_fd=fd), encoding="utf-8") as f:
            json.load(f)
        whole = set(FILES) <= names
    except (FileNotFoundError, json.JSONDecodeError):
        whole = False
    finally:
        os.close(fd)
    try:
        return whole if os.stat(folder).st_ino == inode else None
    except FileNotFoundError:
        return False


def test_best_and_last_stay_whole_under_kill_and_last_model_resumes_exactly(workdir, tmp_path):
    args = FAST + ["--batch_size=2", "--num_epoch=2"]
    reference_dir = tmp_path / "reference"
    shutil.copytree(workdir, reference_dir, symlinks=True)
    run_cli("train.py", *args, cwd=reference_dir)
    reference = load_params(reference_dir / "models/deepspeech2/epoch_2")

    # save after every batch; watch best_model and last_model the whole time, kill -9 inside epoch 2
    root = workdir / "models/deepspeech2"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args, "--save_interval=1"], cwd=workdir,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = {"last_model": 0, "best_model": 0}
    torn = []
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            for alias in seen:
                folder = root / alias
                if seen[alias] or folder.exists():
                    whole = _complete(folder)
                    if whole:
                        seen[alias] += 1
                    elif whole is False:
                        torn.append(alias)
            if torn:
                break
            if seen["best_model"]:
                try:
                    state = json.loads((root / "last_model/state.json").read_text())
                except (FileNotFoundError, json.JSONDecodeError):
                    continue
                if state["epoch"] == 2 and state["batch_in_epoch"] >= 5:
                    break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not torn, f"{torn[0]} was seen incomplete"
    assert seen["last_model"] > 100 and seen["best_model"] > 100, seen
    for alias in seen:
        assert _complete(root / alias)
        paddle.load(str(root / alias / "model.pdparams"))
        paddle.load(str(root / alias / "optimizer.pdopt"))

    resumed = run_cli("train.py", *args, "--save_interval=1", "--resume_model=models/deepspeech2/last_model",
                      cwd=workdir).stdout
    assert "resumed from models/deepspeech2/last_model: epoch 2, batch " in resumed
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "the killed run's temporaries are gone"
    resumed_params = load_params(root / "epoch_2")
    for name, value in reference.items():
        np.testing.assert_allclose(resumed_params[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_model_config_comes_from_the_checkpoint(workdir):
    """Train a non-default size; eval, export and resume need no size flags; contradictions are errors."""
    sizes = ["--cnn_size=4", "--num_rnn_layers=2", "--rnn_size=24"]
    flags = [f for f in FAST if f not in TINY_MODEL] + sizes
    run_cli("train.py", *flags, "--num_epoch=1", cwd=workdir)
    model = "--resume_model=models/deepspeech2/epoch_1/"
    proc = run_cli("eval.py", model, "--num_workers=0", cwd=workdir)
    assert "字错率 cer:" in proc.stdout and "ccache" not in proc.stderr
    run_cli("export_model.py", "--resume_model=models/deepspeech2/last_model", cwd=workdir)
    config = json.loads((workdir / "models/deepspeech2/infer/model_config.json").read_text())
    assert (config["cnn_size"], config["num_rnn_layers"], config["rnn_size"]) == (4, 2, 24)

    proc = run_cli("eval.py", model, "--num_rnn_layers=3", cwd=workdir, check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == (
        "error: --num_rnn_layers=3 contradicts models/deepspeech2/epoch_1/, which was trained with "
        "num_rnn_layers=2; leave the flag out (the size comes from the checkpoint)")
    proc = run_cli("train.py", *FAST, "--num_epoch=2", f"{model}", cwd=workdir, check=False)
    assert proc.returncode == 1 and "--cnn_size=8 contradicts" in proc.stderr
    proc = run_cli("train.py", *[f for f in FAST if f not in TINY_MODEL], "--num_epoch=2", model, cwd=workdir)
    assert "rnn_size 24" in proc.stdout and "resumed from" in proc.stdout

    # a PPASR-made folder (no state.json) takes the flags and their defaults
    ppasr_made = workdir / "ppasr_model"
    shutil.copytree(workdir / "models/deepspeech2/epoch_1", ppasr_made)
    (ppasr_made / "state.json").unlink()
    proc = run_cli("eval.py", "--resume_model=ppasr_model", *sizes, "--num_workers=0", cwd=workdir)
    assert "字错率 cer:" in proc.stdout
    proc = run_cli("eval.py", "--resume_model=ppasr_model", cwd=workdir, check=False)
    assert proc.returncode == 1 and "does not fit this model" in proc.stderr


def test_leftovers_of_a_killed_save_are_cleaned_up(tmp_path):
    """A half-written folder goes; the old version of a folder caught between two renames comes back."""
    from ppasr.model.checkpoint import remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    half = tmp_path / f".last_model.tmp-{dead}"
    half.mkdir()
    (half / "model.pdparams").write_bytes(b"partial")
    previous = tmp_path / f".best_model.old-{dead}"
    previous.mkdir()
    (previous / "state.json").write_text("{}")
    alive = tmp_path / f".epoch_3.tmp-{os.getpid()}"  # a save in progress right now: not touched
    alive.mkdir()
    remove_stale_temporaries(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "best_model"])
    assert (tmp_path / "best_model/state.json").read_text() == "{}"


def _gpu_like_scaler(state: dict | None = None) -> paddle.amp.GradScaler:
    """A GradScaler as a GPU run has it: on a CPU paddle disables it (state_dict() is then empty), so
    it is switched on by hand and given a full state through paddle's own load_state_dict."""
    scaler = paddle.amp.GradScaler(init_loss_scaling=1024)
    scaler._enable = True
    scaler.load_state_dict(state or {"scale": np.array([1024.0], dtype=np.float32), "incr_ratio": 2.0,
                                     "decr_ratio": 0.5, "incr_every_n_steps": 1000, "decr_every_n_nan_or_inf": 2,
                                     "incr_count": 0, "decr_count": 0, "use_dynamic_loss_scaling": True})
    return scaler


def test_amp_loss_scale_is_saved_and_restored(tmp_path):
    from ppasr.errors import UserError
    from ppasr.model.checkpoint import AMP_STATE, load_scaler_state, read_state, save_checkpoint, scaler_state
    trained = _gpu_like_scaler()
    trained.load_state_dict(dict(trained.state_dict(), scale=np.array([131072.0], dtype=np.float32),
                                 incr_count=417, decr_count=1))
    model = paddle.nn.Linear(2, 2)
    optimizer = paddle.optimizer.Adam(parameters=model.parameters())
    path = save_checkpoint(str(tmp_path), "epoch_1_batch_5", model, optimizer,
                           {"run_id": "r", AMP_STATE: scaler_state(trained)})
    resumed = _gpu_like_scaler()
    load_scaler_state(resumed, read_state(path)[AMP_STATE], path)
    got, want = resumed.state_dict(), trained.state_dict()
    assert float(got.pop("scale")[0]) == float(want.pop("scale")[0]) == 131072.0, "the loss scale, not 1024 again"
    assert got == want
    with pytest.raises(UserError, match="state.json"):
        load_scaler_state(_gpu_like_scaler(), {"scale": "x"}, path)
