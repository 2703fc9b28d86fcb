"""Where a training run is: what each checkpoint's state.json records, typed instead of string keys."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ppasr.errors import UserError

POSITION = ("epoch", "batch_in_epoch", "step")  # counters a resumed run continues from


@dataclass(kw_only=True)
class TrainState:
    """The run's identity and position, its best test CER so far, and what it was started with.

    ``to_dict``/``from_dict`` are state.json's format; files written before a field existed load with
    its default, and fields this version does not know (e.g. ``test_cer``, ``saved_at``) are ignored.
    """

    run_id: str | None = None  # None: a PPASR-made folder (no state.json)
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` done; 0 = the epoch is complete
    step: int = 0  # optimiser steps so far
    seed: int | None = None
    best_cer: float | None = None
    run_log_dir: str | None = None  # the VisualDL folder of this run
    model_config: dict | None = None  # ModelConfig.to_dict()
    train_options: dict | None = None  # TrainOptions.to_dict()
    learning_rate: float | None = None
    amp_scaler: dict | None = None  # the AMP loss scaler (--use_amp on a GPU)

    def to_dict(self) -> dict:
        saved = asdict(self)
        if self.amp_scaler is None:
            del saved["amp_scaler"]
        return saved

    @classmethod
    def from_dict(cls, saved: dict, path: str) -> "TrainState":
        """A state read from ``path`` (a checkpoint folder), whose counters must be whole numbers >= 0."""
        for name in POSITION:
            value = saved.get(name, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UserError(f"{path}/state.json: {name} is {value!r}, not a whole number >= 0; pick "
                                f"another checkpoint folder")
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in saved.items() if name in known})

    def continue_from(self, saved: TrainState) -> None:
        """Take over a checkpoint's run: its id (a PPASR-made folder has none), position, best CER and logs."""
        self.run_id = saved.run_id or self.run_id
        self.epoch, self.batch_in_epoch, self.step = saved.epoch, saved.batch_in_epoch, saved.step
        self.best_cer, self.run_log_dir = saved.best_cer, saved.run_log_dir
