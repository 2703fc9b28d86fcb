"""Small shared helpers: CPU threads, data-worker setup, argument printing, vocabulary files."""
from __future__ import annotations

import argparse
import atexit
import ctypes
import importlib.util
import multiprocessing
import os
import signal
import sys
from pathlib import Path
from typing import Sequence

from ppasr.errors import UserError

_PR_SET_PDEATHSIG = 1  # prctl option: the signal this process gets when its parent dies


def cache_root() -> Path:
    """Where downloaded or assembled models and synthesised audio are kept: ``$PPASR_CACHE_DIR`` or
    ``~/.cache/ppasr``."""
    return Path(os.environ.get("PPASR_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "ppasr"))


def package_dir(name: str, install_hint: str) -> Path:
    """The folder of the installed Python package ``name`` (data files inside wheels); one error line
    with ``install_hint`` when it is missing."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the Python package {name} is missing: {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_threads_per_process(processes_per_machine: int = 1) -> int:
    """This process's share of the CPU cores; a user's explicit ``OMP_NUM_THREADS`` wins."""
    from ppasr import USER_OMP_NUM_THREADS

    if USER_OMP_NUM_THREADS and USER_OMP_NUM_THREADS.isdigit():
        return max(1, int(USER_OMP_NUM_THREADS))
    return max(1, available_cores() // max(1, processes_per_machine))


def set_paddle_threads(processes_per_machine: int = 1) -> int:
    """Paddle's CPU kernels use one thread unless told otherwise: give them this process's share."""
    import paddle

    threads = cpu_threads_per_process(processes_per_machine)
    core = getattr(paddle, "base", None) or paddle.fluid
    core.core.set_num_threads(threads)
    return threads


def single_threaded_worker(*_args) -> None:
    """Initializer for data worker processes: one BLAS thread each.

    Many workers each running a multi-threaded BLAS on small matrices oversubscribe the cores
    (measured: fbank 3-7x slower).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def exit_with_parent(parent_pid: int) -> None:
    """Make this worker process get SIGKILL when ``parent_pid`` dies (Linux), so none is orphaned.

    paddle's DataLoader workers only check for their parent while waiting for work: after a kill -9
    of the trainer, workers blocked on a full pipe lived on as orphans (~190 MB each, measured).
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def pool_worker_init(parent_pid: int, *_args) -> None:
    """Initializer of a multiprocessing pool's workers: they die with ``parent_pid`` (a kill -9 of the
    script leaves none behind) and run one BLAS thread each."""
    exit_with_parent(parent_pid)
    single_threaded_worker()


class LoaderWorkerInit:
    """``worker_init_fn`` of every DataLoader: the worker dies with the process that started it and
    runs one BLAS thread. Made in the parent, so it knows the parent's pid before the fork.

    A terminal's Ctrl-C and a scheduler's SIGTERM reach the workers too, but the trainer still needs
    them to finish its current step before it saves and stops, and paddle's loader raises in the
    trainer at once when a worker dies by a signal. So workers ignore SIGINT, and ignore SIGTERM until
    the trainer is exiting: then it is multiprocessing's own shutdown, and they exit cleanly.
    """

    def __init__(self) -> None:
        self.parent_pid = os.getpid()
        self.parent_exiting = multiprocessing.Event()
        atexit.register(self.parent_exiting.set)  # runs before multiprocessing's exit hook (LIFO)

    def __call__(self, worker_id: int) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        pool_worker_init(self.parent_pid)

    def _on_sigterm(self, _signum: int, _frame) -> None:
        if self.parent_exiting.is_set():
            raise SystemExit(0)


def str2bool(value: str) -> bool:
    """Parse PPASR-style booleans ('True', 'false', '1', 'no', ...)."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("y", "yes", "t", "true", "on", "1"):
        return True
    if lowered in ("n", "no", "f", "false", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {value!r}")


def none_or_str(value: str) -> str | None:
    """The string 'None' (PPASR's convention) means no value."""
    return None if value in ("None", "none", "") else value


def print_arguments(args: argparse.Namespace) -> None:
    """Print the configuration block exactly as PPASR does."""
    print("-----------  Configuration Arguments -----------")
    for name, value in sorted(vars(args).items()):
        print(f"{name}: {value}")
    print("------------------------------------------------")


def read_vocabulary(path: str, made_by: str = "python3 create_data.py") -> list[str]:
    """Read ``vocabulary.txt`` (``char<TAB>count`` lines, blank first) into a token list."""
    require_file(path, made_by)
    try:
        with open(path, "r", encoding="utf-8") as f:
            tokens = [line.rstrip("\r\n").split("\t")[0] for line in f if line.rstrip("\r\n")]
    except UnicodeDecodeError:
        raise UserError(f"vocabulary file {path} is not UTF-8 text; rerun `{made_by}`") from None
    if not tokens:
        raise UserError(f"vocabulary file {path} is empty; rerun `{made_by}`")
    return tokens


def require_file(path: str, made_by: str) -> None:
    """Fail fast with a message naming the command that creates ``path``."""
    if not path or not os.path.isfile(path):
        raise UserError(f"required file {path} is missing; create it with `{made_by}`")


def vocabulary_hash(tokens: Sequence[str]) -> str:
    """Stable short fingerprint of a vocabulary, stored in checkpoints."""
    import hashlib

    return hashlib.sha1("\n".join(tokens).encode("utf-8")).hexdigest()[:16]


def select_device() -> str:
    """GPU when paddle has CUDA and a device, else CPU."""
    import paddle

    device = "cpu"
    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        device = f"gpu:{paddle.distributed.ParallelEnv().dev_id}"
    paddle.set_device(device)
    return device


def loader_workers(requested: int, world_size: int) -> int:
    """Cap DataLoader workers at the cores each process has, so they don't oversubscribe the CPU."""
    return max(0, min(requested, available_cores() // max(1, world_size)))
