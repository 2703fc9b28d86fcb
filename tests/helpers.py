"""What the tests share besides fixtures: paths, the CLI runner, model sizes, log-line parsers, process
checks (fixtures live in conftest.py, which pytest loads by itself)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "resources"
TEST_WAV = REFERENCE / "test.wav"


def run_cli(script: str, *args: str, cwd: Path, check: bool = True, timeout: int = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run one of the repo's scripts in ``cwd`` as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


TRAIN_UTTERANCES = 48
TEST_UTTERANCES = 6
TINY_MODEL = ["--rnn_size=32", "--num_rnn_layers=1", "--cnn_size=8"]


def export_random_model(root: Path, seed: int, cnn_size: int, num_rnn_layers: int, rnn_size: int) -> Path:
    """Export a seeded random-weight model of these sizes with export_model.py from the prepared corpus at
    ``root``; return its folder (models/deepspeech2/infer)."""
    import paddle

    from ppasr.data.features import FeatureNormalizer
    from ppasr.model.deepspeech2 import DeepSpeech2Model
    from ppasr.utils import read_vocabulary

    paddle.seed(seed)
    dim = FeatureNormalizer(str(root / "dataset/mean_std.npz")).feature_config.dim
    vocab_size = len(read_vocabulary(str(root / "dataset/vocabulary.txt")))
    model = DeepSpeech2Model(dim, vocab_size, cnn_size, num_rnn_layers, rnn_size)
    (root / "models/random/epoch_1").mkdir(parents=True)
    paddle.save(model.state_dict(), str(root / "models/random/epoch_1/model.pdparams"))
    run_cli("export_model.py", f"--cnn_size={cnn_size}", f"--num_rnn_layers={num_rnn_layers}", f"--rnn_size={rnn_size}",
            "--resume_model=models/random/epoch_1", cwd=root)
    return root / "models/deepspeech2/infer"


LEARN_MODEL = ["--rnn_size=256", "--num_rnn_layers=1", "--cnn_size=16"]
LEARN_EPOCHS = 30
LEARN_MANIFEST = "learn.manifest"
TEST_LINE = re.compile(r"Test epoch: (\d+), .*?loss: ([\d.]+|nan|inf), cer: ([\d.]+)")
TRAIN_LINE = re.compile(r"Train epoch: \[(\d+)/\d+\], batch: \[(\d+)/\d+\], loss: ([\d.]+|nan|inf), "
                        r"learning rate: ([\d.]+)")


def epoch_results(stdout: str) -> dict[int, tuple[float, float]]:
    """(test loss, test cer) per epoch from train.py's ``Test epoch`` lines."""
    return {int(e): (float(loss), float(cer)) for e, loss, cer in TEST_LINE.findall(stdout)}


def epoch_learning_rates(stdout: str) -> dict[int, set[float]]:
    """The learning rates train.py printed in each epoch's ``Train epoch`` lines."""
    rates: dict[int, set[float]] = {}
    for epoch, _, _, lr in TRAIN_LINE.findall(stdout):
        rates.setdefault(int(epoch), set()).add(float(lr))
    return rates


@dataclass
class LearnedRun:
    root: Path  # a workdir: the corpus plus learn.manifest and models/deepspeech2/epoch_<LEARN_EPOCHS>
    stdout: str  # train.py's output
    checkpoint: str  # "models/deepspeech2/epoch_<LEARN_EPOCHS>", relative to root


def children(pid: int) -> set[int]:
    """The pids of ``pid``'s child processes (all its threads')."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except FileNotFoundError:  # a thread that ended during the look
            continue
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
