"""The learning rate decays once per epoch (× lr_gamma), also across a resume; lr_gamma 1 keeps it."""
from __future__ import annotations

import pytest

from conftest import TINY_MODEL, epoch_learning_rates, run_cli

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
