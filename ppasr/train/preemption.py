"""SIGINT / SIGTERM during training: finish the step, save a resumable checkpoint, exit 130 / 143.

Schedulers (Slurm, Kubernetes) send SIGTERM some seconds before SIGKILL, and Ctrl-C sends SIGINT.
The handler only records the request while a training step runs; the loop then saves the same
``epoch_N_batch_B`` + ``last_model`` that ``--save_interval`` writes and stops. Outside the steps
(loading data, validating) there is no step to finish, so the handler raises ``Interrupted`` at once
and the trainer decides what is worth saving. A second signal while the checkpoint is being written
does not cut the save short (the save is atomic, and a kill -9 in the middle still leaves every
earlier checkpoint whole): it is noted and the run exits as soon as the checkpoint is in place.
"""
from __future__ import annotations

import contextlib
import logging
import signal
from typing import Iterator

from ppasr.errors import Stopped

logger = logging.getLogger("ppasr")

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as shells report them


class Interrupted(Exception):
    """Raised by the handler when a signal arrives outside a training step."""


class StopRequest:
    """The process's SIGINT/SIGTERM handler and what it has received."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._abandon = True  # raise Interrupted at once (outside the training loop)
        self._saving = False

    def install(self) -> StopRequest:
        for signum in EXIT_CODES:
            signal.signal(signum, self._handle)
        return self

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def deferred(self) -> contextlib.AbstractContextManager:
        """Training: a signal is recorded and acted on after the current step."""
        return self._mode(abandon=False, saving=False)

    def saving(self) -> contextlib.AbstractContextManager:
        """Writing a checkpoint: never cut short, whatever arrives."""
        return self._mode(abandon=False, saving=True)

    def abandonable(self) -> contextlib.AbstractContextManager:
        """Work not worth finishing (validation): a signal, or one already recorded, raises ``Interrupted``."""
        if self.requested:
            raise Interrupted()
        return self._mode(abandon=True, saving=False)

    def stopped(self, message: str) -> Stopped:
        """The exception that ends the run with the signal's exit code and ``message``."""
        if self.signum is None:  # another rank received it: the request travels in the step's all-reduce
            return Stopped(f"stopped with the other ranks: {message}", EXIT_CODES[signal.SIGTERM])
        name = signal.Signals(self.signum).name
        return Stopped(f"stopped by {name}: {message}", EXIT_CODES[self.signum])

    @contextlib.contextmanager
    def _mode(self, abandon: bool, saving: bool) -> Iterator[None]:
        outer = self._abandon, self._saving
        self._abandon, self._saving = abandon, saving
        try:
            yield
        finally:
            self._abandon, self._saving = outer

    def _handle(self, signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            if self._saving:
                logger.info("%s again: the checkpoint is still being written; the run stops as soon as it is in "
                            "place (a kill -9 now still leaves every earlier checkpoint whole)", name)
            return
        self.signum = signum
        if self._abandon:
            raise Interrupted()
        logger.info("%s received: stopping after the current step", name)
