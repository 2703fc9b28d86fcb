"""The learning rate decays once per epoch (× lr_gamma), also across a resume; lr_gamma 1 keeps it."""
from __future__ import annotations

import pytest

from helpers import TINY_MODEL, TRAIN_LINE, epoch_learning_rates, run_cli

FAST = TINY_MODEL + ["--batch_size=8", "--num_workers=0", "--augment_conf_path=None", "--log_interval=1",
                     "--learning_rate=1e-3", "--lr_gamma=0.5"]


def expected(epoch: int) -> float:
    return 1e-3 * 0.5 ** (epoch - 1)


def assert_rates(stdout: str, epochs: list[int]) -> None:
    rates = epoch_learning_rates(stdout)
    assert sorted(rates) == epochs, stdout[-3000:]
    for epoch in epochs:
        assert len(rates[epoch]) == 1, (epoch, rates[epoch])
        assert rates[epoch].pop() == pytest.approx(expected(epoch), abs=1e-8), epoch


def test_learning_rate_per_epoch_and_after_resume(workdir):
    first = run_cli("train.py", *FAST, "--num_epoch=2", "--save_interval=2", "--keep_checkpoints=10",
                    cwd=workdir).stdout
    assert_rates(first, [1, 2])  # 1e-3, then 5e-4
    # from the end of epoch 2: epochs 3 and 4 continue the decay
    resumed = run_cli("train.py", *FAST, "--num_epoch=4", "--resume_model=models/deepspeech2/epoch_2",
                      "--save_model_path=models_a/", cwd=workdir).stdout
    assert_rates(resumed, [3, 4])
    # from inside epoch 2: the rest of epoch 2 keeps epoch 2's rate
    resumed = run_cli("train.py", *FAST, "--num_epoch=3", "--resume_model=models/deepspeech2/epoch_2_batch_2",
                      "--save_model_path=models_b/", cwd=workdir).stdout
    assert_rates(resumed, [2, 3])


def test_lr_gamma_one_keeps_the_learning_rate(workdir):
    """paddle's ExponentialDecay refuses gamma = 1 with a traceback; ours trains at a constant rate."""
    args = [a for a in FAST if not a.startswith("--lr_gamma")] + ["--lr_gamma=1", "--num_epoch=2"]
    rates = epoch_learning_rates(run_cli("train.py", *args, cwd=workdir).stdout)
    assert sorted(rates) == [1, 2] and rates[1] == rates[2] and rates[1].pop() == pytest.approx(1e-3), rates


def test_warmup_ramps_per_step_then_decays_per_epoch(workdir):
    """--warmup_steps 4: batches 0-3 of the run use 1/4 .. 4/4 of the rate, then the per-epoch decay goes
    on; a run resumed inside the ramp continues it."""
    warm = FAST + ["--warmup_steps=4", "--num_epoch=2"]
    stdout = run_cli("train.py", *warm, "--save_interval=2", "--keep_checkpoints=10", cwd=workdir).stdout
    steps = [(int(e), int(b), float(lr)) for e, b, _, lr in TRAIN_LINE.findall(stdout)]
    ramp = {(1, b): 1e-3 * (b + 1) / 4 for b in range(4)}
    for epoch, batch, lr in steps:
        assert lr == pytest.approx(ramp.get((epoch, batch), expected(epoch)), abs=1e-9), (epoch, batch, lr)
    assert {(e, b) for e, b, _ in steps} >= set(ramp)
    resumed = run_cli("train.py", *warm, "--resume_model=models/deepspeech2/epoch_1_batch_2",
                      "--save_model_path=models_w/", cwd=workdir).stdout
    first = TRAIN_LINE.search(resumed)
    assert (int(first.group(1)), int(first.group(2))) == (1, 2)
    assert float(first.group(4)) == pytest.approx(1e-3 * 3 / 4, abs=1e-9)
