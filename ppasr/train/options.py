"""The training options: what train.py's flags mean to the trainer, grouped by concern.

A checkpoint records them (``TrainOptions.to_dict`` in state.json), so a run can be reproduced from
its checkpoint alone (the options a command's flags give, read back with ``TrainOptions.from_dict``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ppasr.data.options import DataOptions
from ppasr.model.options import ModelChoice


@dataclass(frozen=True)
class OptimOptions:
    """Optimisation: epochs, learning-rate schedule, accumulation, precision, seed."""

    num_epoch: int
    learning_rate: float
    lr_gamma: float
    warmup_steps: int
    accum_grad: int
    use_amp: bool
    max_bad_steps: int
    seed: int


@dataclass(frozen=True)
class RunOptions:
    """Where a run reads and writes: checkpoints to save, resume or start from, intervals, logs."""

    save_model_path: str
    resume_model: str | None
    pretrained_model: str | None
    log_interval: int
    save_interval: int
    keep_checkpoints: int
    log_dir: str


@dataclass(frozen=True)
class TrainOptions:
    """Everything train.py's flags tell the trainer."""

    data: DataOptions
    model: ModelChoice
    optim: OptimOptions
    run: RunOptions

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> "TrainOptions":
        return cls(**{name: group(**saved[name]) for name, group in GROUPS.items()})


GROUPS = {"data": DataOptions, "model": ModelChoice, "optim": OptimOptions, "run": RunOptions}
