"""The learning-rate schedule: PPASR's per-epoch decay, optionally after a linear warm-up."""
from __future__ import annotations

import paddle


class WarmupEpochDecay(paddle.optimizer.lr.LRScheduler):
    """``learning_rate × gamma^epoch`` (stepped once per epoch, as PPASR's ExponentialDecay), times a
    linear ramp from ``1/warmup_steps`` to 1 over the first ``warmup_steps`` optimiser steps.

    A warm-up lets Adam start at a high rate without the first, noisy gradients (an untrained model's
    CTC loss is large) throwing the weights far off. ``warmup_steps`` 0 is PPASR's schedule. The ramp
    follows the run's optimiser step count (``set_step``), which checkpoints record, so a resumed run
    continues it exactly; the checkpoint's scheduler state keeps paddle's keys.
    """

    def __init__(self, learning_rate: float, gamma: float, warmup_steps: int = 0) -> None:
        self.gamma = gamma
        self.warmup_steps = warmup_steps
        self.steps_done = 0
        super().__init__(learning_rate)

    def get_lr(self) -> float:
        ramp = min(1.0, (self.steps_done + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        return self.base_lr * self.gamma ** self.last_epoch * ramp

    def set_step(self, steps_done: int) -> None:
        """The rate for the next optimiser step, after ``steps_done`` steps of the run."""
        self.steps_done = steps_done
        self.last_lr = self.get_lr()
