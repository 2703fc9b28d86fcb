"""A crash leaves nothing running: after kill -9 of train.py its DataLoader workers exit too."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from helpers import REPO, TINY_MODEL, children, running


def test_killed_trainer_leaves_no_loader_workers(workdir):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *TINY_MODEL, "--batch_size=4",
                             "--num_workers=2", "--num_epoch=50", "--log_interval=1"],
                            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    workers: set[int] = set()
    try:
        deadline = time.time() + 300
        for line in proc.stdout:  # kill in the middle of epoch 3, once both workers of its loader run
            if "Train epoch: [3/50], batch: [5/" in line or time.time() > deadline:
                workers = children(proc.pid)
                break
        assert len(workers) >= 2, f"expected the loader's 2 workers, found {workers}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 5
        while any(running(w) for w in workers) and time.time() < deadline:
            time.sleep(0.1)
        survivors = [w for w in workers if running(w)]
        assert not survivors, f"loader workers {survivors} outlived the killed trainer"
    finally:
        proc.kill()
        for worker in workers:
            if running(worker):
                os.kill(worker, signal.SIGKILL)
