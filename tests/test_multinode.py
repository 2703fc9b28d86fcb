"""Training on more than one process and more than one machine (CPU, gloo), on this machine.

* 2 processes: evaluation is sharded so that both ranks hold test utterances; the reduced figures
  equal a single-process run's.
* 2 nodes: two ``paddle.distributed.launch --nnodes 2`` launchers with a loopback master, each in its
  own folder as two machines would be; the replicas stay identical and only global rank 0 (node 0)
  writes checkpoints and VisualDL records.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import LEARN_MODEL, REPO, TINY_MODEL, epoch_results, run_cli

CHECKSUM = re.compile(r"rank (\d+): final parameter checksum (\w+)")


def launch(cwd: Path, *launch_args: str, train_args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "paddle.distributed.launch", *launch_args, "--log_dir", "launch_log",
           str(REPO / "train.py"), *train_args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, cwd: Path) -> dict[int, str]:
    """Wait for a launcher; return its worker logs by local rank (failing with them on error)."""
    try:
        out, _ = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    logs = {int(p.name.split(".")[-1]): p.read_text(encoding="utf-8")
            for p in sorted((cwd / "launch_log").glob("workerlog.*"))}
    assert proc.returncode == 0, out[-3000:] + "".join(log[-3000:] for log in logs.values())
    return logs


def test_two_process_eval_reduces_to_the_single_process_figures(learned_run, tmp_path):
    """Both ranks evaluate a share of the 6 test utterances (batch 4: rank 0 holds 4, rank 1 holds 2);
    the loss and CER train.py reports equal those of a single process on the same weights."""
    test_items = (learned_run.root / "dataset/manifest.test").read_text(encoding="utf-8").splitlines()
    assert len(test_items) > 4, "rank 1 must hold test utterances"
    flags = [*LEARN_MODEL, f"--pretrained_model={learned_run.checkpoint}", "--learning_rate=1e-9",
             "--batch_size=4", "--num_workers=0", "--num_epoch=1", "--augment_conf_path=None"]
    single, double = tmp_path / "single", tmp_path / "double"
    for folder in (single, double):
        shutil.copytree(learned_run.root, folder, symlinks=True)
    expected = epoch_results(run_cli("train.py", *flags, cwd=single).stdout)[1]
    logs = finish(launch(double, "--nproc_per_node", "2", train_args=flags), double)
    reduced = epoch_results(logs[0])[1]
    assert reduced[0] == pytest.approx(expected[0], rel=1e-4), (reduced, expected)  # test loss
    assert reduced[1] == pytest.approx(expected[1], abs=1e-5), (reduced, expected)  # test cer
    assert not epoch_results(logs[1]), "only rank 0 reports"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_train_identical_replicas_and_only_global_rank_0_writes(workdir, tmp_path):
    nodes = [workdir, tmp_path / "node1"]
    shutil.copytree(workdir, nodes[1], symlinks=True)
    master = f"127.0.0.1:{free_port()}"
    train_args = [*TINY_MODEL, "--batch_size=4", "--num_workers=0", "--num_epoch=2",
                  "--augment_conf_path=conf/augmentation.json", "--log_interval=1"]
    procs = [launch(node, "--nnodes", "2", "--master", master, "--rank", str(rank), "--nproc_per_node", "1",
                    train_args=train_args) for rank, node in enumerate(nodes)]
    logs = [finish(proc, node)[0] for proc, node in zip(procs, nodes)]

    checksums = [CHECKSUM.search(log) for log in logs]
    assert all(checksums), [log[-2000:] for log in logs]
    assert [int(m.group(1)) for m in checksums] == [0, 1], "node 1's trainer is global rank 1"
    assert checksums[0].group(2) == checksums[1].group(2), "replicas diverged"
    assert "processes: 2" in logs[0] and sorted(epoch_results(logs[0])) == [1, 2]
    single = len((workdir / "dataset/manifest.train").read_text().splitlines())
    batches = re.search(r"Train epoch: \[1/2\], batch: \[\d+/(\d+)\]", logs[0]).group(1)
    assert int(batches) == (single + 3) // 4 // 2, "each node runs half of the batches"
    assert "Train epoch" not in logs[1] and not epoch_results(logs[1]), "only global rank 0 logs"

    for epoch in (1, 2):
        state = json.loads((workdir / f"models/deepspeech2/epoch_{epoch}/state.json").read_text())
        assert state["epoch"] == epoch
    assert list((workdir / "log").glob("*/vdlrecords.*")), "node 0 writes VisualDL records"
    assert not (nodes[1] / "models").exists(), "node 1 must not write checkpoints"
    assert not list(nodes[1].glob("log/**/vdlrecords.*")), "node 1 must not write VisualDL records"
