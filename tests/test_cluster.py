"""What clusters do to long runs: SIGTERM/SIGINT (save and stop), full and read-only disks, two runs in
one folder (one after another, and at once), and kill -9 of the scripts that run process pools."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paddle
import pytest
import soundfile

from helpers import REPO, TINY_MODEL, children, run_cli, running

ENV = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
FAST = TINY_MODEL + ["--batch_size=8", "--num_workers=0", "--augment_conf_path=None", "--log_interval=1"]


def load_params(path: Path) -> dict:
    return {k: v.numpy() for k, v in paddle.load(str(path / "model.pdparams")).items()}


def run_ids(root: Path) -> dict[str, str]:
    return {p.name: json.loads((p / "state.json").read_text())["run_id"]
            for p in root.iterdir() if (p / "state.json").exists()}


def start(script: str, *args: str, cwd: Path) -> subprocess.Popen:
    """The script in a process group of its own, as a terminal or a scheduler's job step runs it."""
    return subprocess.Popen([sys.executable, str(REPO / script), *args], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    for line in proc.stdout:
        if text in line:
            return
        assert time.time() < deadline, f"no line with {text!r} in {timeout} s"
    raise AssertionError(f"the process ended (code {proc.wait()}) before a line with {text!r}: {proc.stderr.read()}")


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


@contextlib.contextmanager
def tmpfs(path: Path, size: int, read_only: bool = False):
    """A real small file system (root only); the test is skipped where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_mid_epoch_and_resume_equals_an_uninterrupted_run(workdir, tmp_path, signum, code):
    # 2 loader workers and the default augmentation (noise, speed, shift, volume), ~24 batches an epoch
    args = TINY_MODEL + ["--batch_size=2", "--num_workers=2", "--num_epoch=3", "--log_interval=1"]
    reference_dir = tmp_path / "reference"
    shutil.copytree(workdir, reference_dir, symlinks=True)
    run_cli("train.py", *args, cwd=reference_dir)
    reference = load_params(reference_dir / "models/deepspeech2/epoch_3")

    proc = start("train.py", *args, cwd=workdir)
    wait_for_line(proc, "Train epoch: [2/3], batch: [2/")
    workers = children(proc.pid)
    os.killpg(proc.pid, signum)  # Ctrl-C and Slurm signal every process of the job, loader workers too
    returncode, out, err = finish(proc)
    name = signal.Signals(signum).name
    assert returncode == code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"stopped by {name}: saved models/deepspeech2/epoch_2_batch_"), err
    assert last.endswith("continue with: python3 train.py --resume_model=models/deepspeech2/last_model"), last
    assert "Traceback" not in err and "Error" not in err, err
    assert f"{name} received: stopping after the current step" in out
    root = workdir / "models/deepspeech2"
    state = json.loads((root / "last_model/state.json").read_text())
    assert state["epoch"] == 2 and 3 <= state["batch_in_epoch"] < 20
    assert not [w for w in workers if running(w)], "loader workers outlived the stopped run"
    assert not (root / ".train.lock").exists(), "the lock is released"

    run_cli("train.py", *args, "--resume_model=models/deepspeech2/last_model", cwd=workdir)
    resumed = load_params(root / "epoch_3")
    for key, value in reference.items():
        np.testing.assert_allclose(resumed[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_full_disk_mid_run_keeps_earlier_checkpoints_and_says_what_the_save_needed(workdir, tmp_path):
    run_cli("train.py", *FAST, "--num_epoch=1", "--save_model_path=sizing", cwd=workdir)
    one = sum(f.stat().st_size for f in (workdir / "sizing/deepspeech2/epoch_1").iterdir())
    # epoch 1 writes epoch_1, last_model and best_model (3 copies); epoch 2's checkpoint no longer fits
    with tmpfs(tmp_path / "small", int(3.5 * one) + 16384) as small:
        proc = run_cli("train.py", *FAST, "--num_epoch=3", f"--save_model_path={small}", cwd=workdir, check=False)
        assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr
        errors = [line for line in proc.stderr.splitlines() if "error" in line.lower() or "Traceback" in line]
        assert len(errors) == 1 and errors[0].startswith(f"error: cannot write checkpoint {small}/deepspeech2/epoch_2: "
                                                         "No space left on device; the save needs about "), proc.stderr
        assert "every earlier checkpoint" in errors[0]
        root = small / "deepspeech2"
        assert not [p.name for p in root.iterdir() if p.name.startswith(".tmp") or ".tmp-" in p.name]
        for name in ("epoch_1", "last_model", "best_model"):
            load_params(root / name)
            assert json.loads((root / name / "state.json").read_text())["epoch"] >= 1


def test_unwritable_folders_fail_before_the_first_step(workdir, tmp_path):
    (workdir / "a_file").write_text("not a folder")
    for flag, value in (("--save_model_path", "a_file"), ("--log_dir", "a_file/log")):
        proc = run_cli("train.py", *FAST, "--num_epoch=1", f"{flag}={value}", cwd=workdir, check=False)
        assert proc.returncode == 1 and proc.stderr.strip() == (
            f"error: {flag}: {workdir / 'a_file'} is a file, not a folder; pass a folder"), proc.stderr
        assert "Train epoch" not in proc.stdout
    with tmpfs(tmp_path / "ro", 1 << 20, read_only=True) as read_only:
        for flag in ("--save_model_path", "--log_dir"):
            proc = run_cli("train.py", *FAST, "--num_epoch=1", f"{flag}={read_only}", cwd=workdir, check=False)
            assert proc.returncode == 1, proc.stderr
            assert proc.stderr.strip().startswith(f"error: cannot write to {flag} {read_only}"), proc.stderr
            assert "Read-only file system" in proc.stderr and "Train epoch" not in proc.stdout


def test_runs_taking_turns_in_one_folder_never_collide(workdir):
    """Run O, fine-tune F from it, resume O, resume F (the last one crashed with 'Directory not empty')."""
    root = workdir / "models/deepspeech2"
    run_cli("train.py", *FAST, "--num_epoch=1", cwd=workdir)
    o = run_ids(root)["epoch_1"]
    run_cli("train.py", *FAST, "--num_epoch=1", "--pretrained_model=models/deepspeech2/epoch_1", cwd=workdir)
    f = run_ids(root)["epoch_1"]
    assert run_ids(root)[f"epoch_1.before-{f}"] == o
    run_cli("train.py", *FAST, "--num_epoch=2", f"--resume_model=models/deepspeech2/epoch_1.before-{f}", cwd=workdir)
    assert run_ids(root)["epoch_2"] == run_ids(root)["last_model"] == o
    run_cli("train.py", *FAST, "--num_epoch=2", "--resume_model=models/deepspeech2/epoch_1", cwd=workdir)
    ids = run_ids(root)
    assert ids["epoch_2"] == ids["last_model"] == f, "last_model is the newest run's"
    assert ids["epoch_1"] == f and ids[f"epoch_1.before-{f}"] == ids[f"epoch_2.before-{f}"] == o
    # every last_model either run wrote is still there: F's first went aside when O came back, O's first
    # when F took over, O's second when F came back (a second name: the first was taken)
    assert ids[f"last_model.before-{o}"] == f
    assert ids[f"last_model.before-{f}"] == ids[f"last_model.before-{f}-2"] == o
    assert json.loads((root / f"last_model.before-{f}/state.json").read_text())["epoch"] == 1
    assert json.loads((root / f"last_model.before-{f}-2/state.json").read_text())["epoch"] == 2
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_a_second_run_in_the_same_folder_refuses_to_start(workdir):
    first = start("train.py", *FAST, "--num_epoch=50", cwd=workdir)
    try:
        wait_for_line(first, "Train epoch: [1/50]")
        owner = json.loads((workdir / "models/deepspeech2/.train.lock").read_text())
        assert owner["pid"] == first.pid
        second = run_cli("train.py", *FAST, "--num_epoch=1", cwd=workdir, check=False)
        assert second.returncode == 1
        assert second.stderr.strip().startswith(
            f"error: another training run (run {owner['run_id']}, pid {first.pid}, since "), second.stderr
        assert "Train epoch" not in second.stdout
    finally:
        first.kill()
        first.wait()
    # the dead run's lock does not block the next one
    proc = run_cli("train.py", *FAST, "--num_epoch=1", cwd=workdir)
    assert "removing the lock of run" in proc.stdout
    assert not (workdir / "models/deepspeech2/.train.lock").exists()


def wait_for_busy_pool(proc: subprocess.Popen, count: int, settle: float = 0.3, timeout: float = 300) -> set[int]:
    """``count`` children of ``proc`` once the same ones have lived ``settle`` seconds: a pool at work.

    Judged by lifetime, not by order: a fast machine can start and finish a short-lived pool (the header
    probe) between two looks, so "the second pool seen" is not a reliable name for the busy one."""
    deadline = time.time() + timeout
    seen, since = set(), time.time()
    while time.time() < deadline and proc.poll() is None:
        found = children(proc.pid)
        if found != seen:
            seen, since = found, time.time()
        elif len(found) >= count and time.time() - since >= settle:
            return found
        time.sleep(0.02)
    raise AssertionError(f"expected {count} busy pool workers of {proc.args[1]}, it ended with {proc.poll()}")


def kill_and_check_workers_die(proc: subprocess.Popen, workers: set[int]) -> None:
    """kill -9 ``proc`` while its pool workers are busy: they must go at once, not after their task."""
    proc.kill()
    proc.wait()
    deadline = time.time() + 1
    while any(running(p) for p in workers) and time.time() < deadline:
        time.sleep(0.05)
    survivors = [p for p in workers if running(p)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"pool workers {survivors} outlived the killed script"


def test_killed_create_data_leaves_no_pool_workers(workdir, reference_audio):
    samples, sr = reference_audio
    annotation = workdir / "dataset/annotation"
    long_lines = []
    for i in range(4):  # 4 recordings of 15 minutes: each worker is busy featurising one for seconds
        path = workdir / f"dataset/long_{i}.wav"
        soundfile.write(path, np.tile(samples, int(900 * sr / len(samples)) + 1), sr)
        long_lines.append(f"dataset/long_{i}.wav\t天气很好\n")
    (annotation / "long.txt").write_text("".join(long_lines), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(REPO / "create_data.py"), "--num_workers=2",
                             "--count_threshold=1", "--feature_method=fbank"], cwd=workdir, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_and_check_workers_die(proc, wait_for_busy_pool(proc, 2))


def test_killed_beam_search_eval_leaves_no_workers(trained_corpus, tmp_path, reference_audio):
    work = tmp_path / "work"
    shutil.copytree(trained_corpus, work, symlinks=True)
    run_cli("tools/build_lm.py", "--manifest", "dataset/manifest.train", "--output", "lm/tiny.arpa", cwd=work)
    samples, sr = reference_audio
    soundfile.write(work / "long.wav", np.tile(samples, int(30 * sr / len(samples)) + 1), sr)
    line = json.dumps({"audio_filepath": "long.wav", "duration": 30.0, "text": "天气很好"}, ensure_ascii=False)
    (work / "long.manifest").write_text(f"{line}\n" * 16, encoding="utf-8")  # each search takes seconds
    proc = subprocess.Popen([sys.executable, str(REPO / "eval.py"), "--resume_model=models/deepspeech2/epoch_2",
                             "--test_manifest=long.manifest", "--decoder=ctc_beam_search",
                             "--lang_model_path=lm/tiny.arpa", "--num_proc_bsearch=8", "--beam_size=500",
                             "--batch_size=16", "--num_workers=0"], cwd=work, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_and_check_workers_die(proc, wait_for_busy_pool(proc, 8))


def test_sigterm_under_distributed_launch_stops_every_rank_after_the_same_step(workdir):
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", "launch_log",
           str(REPO / "train.py"), *TINY_MODEL, "--batch_size=2", "--num_workers=0", "--num_epoch=200",
           "--augment_conf_path=None", "--log_interval=1"]
    proc = subprocess.Popen(cmd, cwd=workdir, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    log0 = workdir / "launch_log" / "workerlog.0"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log0.exists() and "Train epoch: [2/200], batch: [3/" in log0.read_text(encoding="utf-8"):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    logs = [(workdir / "launch_log" / f"workerlog.{rank}").read_text(encoding="utf-8") for rank in (0, 1)]
    assert proc.returncode != 0, out[-2000:]
    for log in logs:
        assert re.search(r"stopped (by SIGTERM|with the other ranks): saved models/deepspeech2/epoch_2_batch_", log), \
            log[-2000:]
        assert "Traceback" not in log, log[-3000:]
    state = json.loads((workdir / "models/deepspeech2/last_model/state.json").read_text())
    assert state["epoch"] == 2 and state["batch_in_epoch"] >= 4
    saved = [p.name for p in (workdir / "models/deepspeech2").iterdir() if p.name.startswith("epoch_2_batch_")]
    assert saved == [f"epoch_2_batch_{state['batch_in_epoch']}"], "only rank 0 wrote, once"
