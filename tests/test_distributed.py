"""Two CPU processes via paddle.distributed.launch (gloo): both ranks train in step, rank 0 saves."""
import os
import re
import subprocess
import sys

from helpers import REPO, TINY_MODEL


def test_two_process_launch_trains_identical_replicas(workdir):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", "launch_log",
           str(REPO / "train.py"), *TINY_MODEL, "--batch_size=4", "--num_workers=0", "--num_epoch=2",
           "--augment_conf_path=conf/augmentation.json", "--log_interval=1"]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    logs = {rank: (workdir / "launch_log" / f"workerlog.{rank}").read_text(encoding="utf-8") for rank in (0, 1)}
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + logs[0][-3000:] + logs[1][-3000:]
    checksums = {}
    for rank, log in logs.items():
        match = re.search(rf"rank {rank}: final parameter checksum (\w+)", log)
        assert match, f"rank {rank} did not finish: {log[-2000:]}"
        checksums[rank] = match.group(1)
    assert checksums[0] == checksums[1], "replicas diverged"
    assert "processes: 2" in logs[0]
    assert "Test epoch: 2" in logs[0] and "Train epoch" not in logs[1], "only rank 0 logs"
    train_lines = [l for l in logs[0].splitlines() if "Train epoch: [1/2]" in l]
    total = int(re.search(r"batch: \[\d+/(\d+)\]", train_lines[0]).group(1))
    single = len((workdir / "dataset/manifest.train").read_text().splitlines())
    assert total == (single + 3) // 4 // 2, "each rank runs half of the batches"
    for epoch in (1, 2):
        assert (workdir / f"models/deepspeech2/epoch_{epoch}/model.pdparams").exists()


def test_accumulated_gradients_sync_once_per_step_and_replicas_stay_identical(workdir):
    """--accum_grad 2 (with duration batches) under 2 processes: batches in between add up locally
    (no_sync), the window's last one all-reduces them; replicas identical, one optimiser step per 2 batches."""
    import json
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", "launch_log",
           str(REPO / "train.py"), *TINY_MODEL, "--batch_size=4", "--num_workers=0", "--num_epoch=1",
           "--augment_conf_path=None", "--log_interval=1", "--accum_grad=2", "--max_batch_duration=12"]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    logs = [(workdir / "launch_log" / f"workerlog.{rank}").read_text(encoding="utf-8") for rank in (0, 1)]
    assert proc.returncode == 0, proc.stderr[-3000:] + logs[0][-3000:] + logs[1][-3000:]
    sums = [re.search(rf"rank {rank}: final parameter checksum (\w+)", log).group(1)
            for rank, log in enumerate(logs)]
    assert sums[0] == sums[1], "replicas diverged: the accumulated gradients were not all-reduced"
    batches = int(re.search(r"batch: \[\d+/(\d+)\]", logs[0]).group(1))
    state = json.loads((workdir / "models/deepspeech2/epoch_1/state.json").read_text())
    assert batches > 2 and state["step"] == (batches + 1) // 2, "one optimiser step per 2 batches"
