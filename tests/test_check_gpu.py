"""tools/check_gpu.py on a machine without CUDA (as CI runs it): the CPU parts pass, the GPU parts are
reported skipped, and a failing check makes the exit status non-zero."""
import os
import subprocess
import sys

from helpers import REPO


def check_gpu(tmp_path, *flags):
    return subprocess.run([sys.executable, str(REPO / "tools/check_gpu.py"), "--quick", *flags,
                           f"--work_dir={tmp_path / 'work'}"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_cpu_machine_runs_the_cpu_parts_and_says_gpu_parts_were_skipped(tmp_path):
    proc = check_gpu(tmp_path, "--steps=8")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in proc.stdout.splitlines()
            if line.startswith("| ") and "check" not in line}
    assert rows == {"paddle build": "ok", "synthesised corpus": "ok", "train fp32 (CPU)": "ok",
                    "export + infer": "ok"}, proc.stdout
    assert "audio s/s" in proc.stdout and "test loss" in proc.stdout
    assert "GPU parts skipped" in proc.stdout


def test_a_failed_check_fails_the_command(tmp_path):
    proc = check_gpu(tmp_path, "--steps=2")  # one batch an epoch: too few steps to judge the training
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    assert "| FAIL" in proc.stdout and "training steps logged" in proc.stdout
