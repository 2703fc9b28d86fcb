"""Checkpoints: ``models/<model>/epoch_N/{model.pdparams, optimizer.pdopt, state.json}``, plus
``best_model/`` (lowest test CER of the run so far) and ``last_model/`` (the newest save), as PPASR 2.x.

Three rules keep every checkpoint a user has whole:

- A folder is written beside its place and swapped in atomically, so a kill at any moment leaves the
  old or the new folder, never half of one.
- A run owns the checkpoints whose state.json carries its run id (a resumed run keeps its id).
  Retention removes only its own, oldest first, never the one it has just written.
- A run never overwrites a folder of another run: when a name it saves is taken (say a fine-tuning run
  reaching ``epoch_48`` in a folder that holds the original run's ``epoch_48``), the other run's folder
  is kept as ``<name>.before-<run id>`` (``-2``, ``-3``, … appended when that name is taken too, so any
  number of runs and resumes can take turns in one folder).

A run holds ``.train.lock`` in its folder while it trains, so a second run in the same folder refuses
to start instead of both writing; a lock whose process is gone does not block.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import pickle
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from datetime import datetime
from typing import Iterator

import numpy as np
import paddle

from ppasr.errors import UserError

logger = logging.getLogger("ppasr")

STATE_FILE = "state.json"
MODEL_FILE = "model.pdparams"
OPTIMIZER_FILE = "optimizer.pdopt"
BEST_MODEL = "best_model"
LAST_MODEL = "last_model"
_CHECKPOINT_NAME = re.compile(r"^epoch_(\d+)(?:_batch_(\d+))?$")
_TEMPORARY_NAME = re.compile(r"^\.(.+)\.(tmp|old)-(\d+)$")
_RENAME_EXCHANGE = 2  # renameat2 flag (Linux 3.15+): swap two paths in one step
_AT_FDCWD = -100
LOCK_FILE = ".train.lock"
AMP_STATE = "amp_scaler"  # state.json key of the AMP loss scaler (--use_amp)
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)


def new_run_id() -> str:
    """A fresh training run's id: start time plus a random suffix."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def checkpoint_name(epoch: int, batch_in_epoch: int = 0) -> str:
    """``epoch_N`` for a finished epoch, ``epoch_N_batch_B`` for a save inside epoch N."""
    return f"epoch_{epoch}" if batch_in_epoch == 0 else f"epoch_{epoch}_batch_{batch_in_epoch}"


def save_checkpoint(root: str, name: str, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer,
                    state: dict) -> str:
    """Write model, optimizer and ``state`` (with its ``run_id``) atomically to ``root/name``."""
    model_state, optimizer_state = model.state_dict(), optimizer.state_dict()
    with _temporary(root, name, _tensor_bytes(model_state) + _tensor_bytes(optimizer_state)) as tmp:
        paddle.save(model_state, os.path.join(tmp, MODEL_FILE))
        paddle.save(optimizer_state, os.path.join(tmp, OPTIMIZER_FILE))
        with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
            json.dump(dict(state, saved_at=time.strftime("%Y-%m-%d %H:%M:%S")), f, ensure_ascii=False, indent=2)
        return _install(root, name, tmp, state["run_id"])


def save_weights(root: str, name: str, weights: dict, state: dict) -> str:
    """Write a model folder with weights and ``state`` but no optimizer (an average) atomically to ``root/name``."""
    with _temporary(root, name, _tensor_bytes(weights)) as tmp:
        paddle.save(weights, os.path.join(tmp, MODEL_FILE))
        with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
            json.dump(dict(state, saved_at=time.strftime("%Y-%m-%d %H:%M:%S")), f, ensure_ascii=False, indent=2)
        return _install(root, name, tmp, state.get("run_id"))


def scaler_state(scaler: paddle.amp.GradScaler) -> dict:
    """The AMP loss scaler's state for state.json, so a resumed run keeps its loss scale (not 1024 again)."""
    return {key: float(np.asarray(value).reshape(-1)[0]) if key == "scale" else value
            for key, value in scaler.state_dict().items()}


def load_scaler_state(scaler: paddle.amp.GradScaler, saved, path: str) -> None:
    """Restore what ``scaler_state`` wrote into the checkpoint ``path``."""
    try:
        scaler.load_state_dict(dict(saved, scale=np.array([float(saved["scale"])], dtype=np.float32)))
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{os.path.join(path, STATE_FILE)}: unreadable {AMP_STATE!r} ({e!r}); "
                        f"pick another checkpoint folder") from None


def publish(root: str, source: str, alias: str) -> str:
    """Make ``root/alias`` (best_model, last_model) an atomic copy of the checkpoint ``source``."""
    files = os.listdir(source)
    with _temporary(root, alias, sum(os.path.getsize(os.path.join(source, f)) for f in files)) as tmp:
        for file in files:
            shutil.copy2(os.path.join(source, file), os.path.join(tmp, file))
        return _install(root, alias, tmp, read_state(source)["run_id"])


def check_writable(folder: str, flag: str) -> None:
    """Fail before the first step, not after an epoch, when ``folder`` cannot take files."""
    path = os.path.abspath(folder)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise UserError(f"{flag}: {path} is a file, not a folder; pass a folder")
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f"cannot write to {flag} {folder}: {e.strerror}; pass a folder you can write to") from None


class RunLock:
    """``<root>/.train.lock``: one training run at a time in a checkpoint folder.

    The file names the run (pid, host, run id, start time). A lock left by a run that died is taken
    over when its pid no longer runs this host's process of that start time; a lock from another host
    (a shared file system) cannot be checked, so the message says how to remove it.
    """

    def __init__(self, root: str, run_id: str) -> None:
        self.path = os.path.join(root, LOCK_FILE)
        self.owner = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id,
                      "started": _process_start(os.getpid()), "since": time.strftime("%Y-%m-%d %H:%M:%S")}

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self._read()
                if other is None or self._is_stale(other):
                    self._remove_stale(other)
                    continue
                where = "" if other.get("host") == self.owner["host"] else f" on host {other.get('host')}"
                raise UserError(
                    f"another training run (run {other.get('run_id')}, pid {other.get('pid')}{where}, since "
                    f"{other.get('since')}) is using {os.path.dirname(self.path)}; wait for it to finish or pass "
                    f"another --save_model_path (if that run is gone, delete {self.path})") from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.owner, f)
            return

    def release(self) -> None:
        if self._read() == self.owner:
            os.remove(self.path)

    def _read(self) -> dict | None:
        try:
            with open(self.path, "r", encoding="utf-8") as f:
                owner = json.load(f)
        except FileNotFoundError:
            return {}  # released between our open and read: try again
        except (OSError, ValueError):
            return None  # half-written by a run killed while taking it
        return owner if isinstance(owner, dict) else None

    def _is_stale(self, other: dict) -> bool:
        if not other:
            return True
        if other.get("host") != self.owner["host"] or not isinstance(other.get("pid"), int):
            return False
        return _process_start(other["pid"]) != other.get("started")

    def _remove_stale(self, other: dict | None) -> None:
        if other:
            logger.info("removing the lock of run %s (pid %s no longer runs)", other.get("run_id"), other.get("pid"))
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)


def prune_checkpoints(root: str, run_id: str, keep: int, newest: str) -> list[str]:
    """Remove this run's checkpoints beyond the newest ``keep`` (0 keeps all); return what went.

    Only folders whose state.json names ``run_id`` are candidates, and ``newest`` (the one just
    written) never is: other runs' checkpoints, PPASR-made folders and the aliases stay untouched.
    """
    if keep <= 0:
        return []
    own = [path for path in list_checkpoints(root) if path != newest and _owner(path) == run_id]
    removed = own[:max(0, len(own) - (keep - 1))]
    for path in removed:
        shutil.rmtree(path)
    return removed


def list_checkpoints(root: str) -> list[str]:
    """Complete ``epoch_N[_batch_B]`` folders under ``root``, oldest first (by epoch, then batch)."""
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        match = _CHECKPOINT_NAME.match(name)
        path = os.path.join(root, name)
        if match and os.path.exists(os.path.join(path, MODEL_FILE)):
            epoch, batch = int(match.group(1)), int(match.group(2) or 0)
            # a mid-epoch save of epoch N comes before the end of epoch N
            found.append(((epoch, batch == 0, batch), path))
    return [path for _, path in sorted(found)]


def remove_stale_temporaries(root: str) -> None:
    """Clean up after runs killed while saving (their process no longer exists).

    Half-written ``.<name>.tmp-<pid>`` folders go; an ``.<name>.old-<pid>`` folder (the previous
    version during a non-atomic swap) goes back to ``<name>`` if the kill came before the new one was in.
    """
    if not os.path.isdir(root):
        return
    for entry in os.listdir(root):
        match = _TEMPORARY_NAME.match(entry)
        if not match or _process_alive(int(match.group(3))):
            continue
        path, target = os.path.join(root, entry), os.path.join(root, match.group(1))
        if match.group(2) == "old" and not os.path.exists(target):
            os.rename(path, target)
        else:
            shutil.rmtree(path, ignore_errors=True)


def read_state(path: str) -> dict:
    """The checkpoint's state.json; a PPASR-made folder without one gets its epoch from the name."""
    state_path = os.path.join(path, STATE_FILE)
    if os.path.exists(state_path):
        try:
            with open(state_path, "r", encoding="utf-8") as f:
                state = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{state_path} is damaged ({e}); pick another checkpoint folder") from None
        if not isinstance(state, dict):
            raise UserError(f"{state_path} is not a JSON object; pick another checkpoint folder")
        return state
    match = _CHECKPOINT_NAME.match(os.path.basename(os.path.normpath(path)))
    return {"epoch": int(match.group(1)) if match else 0, "batch_in_epoch": 0, "step": 0}


def check_model_dir(path: str) -> None:
    """Fail fast when ``path`` holds no model weights."""
    if not os.path.isdir(path) or not os.path.exists(os.path.join(path, MODEL_FILE)):
        raise UserError(f"no model found at {path} (expected {os.path.join(path, MODEL_FILE)}); train one "
                        f"with `python3 train.py` or pass the right folder")


def _read_state_dict(file: str) -> dict:
    """``paddle.load`` of a checkpoint file; a truncated or foreign file is a ``UserError`` naming it."""
    try:
        data = paddle.load(file)
    except (ValueError, EOFError, OSError, pickle.UnpicklingError) as e:
        raise UserError(f"cannot read {file}: truncated or not written by paddle.save ({e}); pick another "
                        f"checkpoint folder or train again with `python3 train.py`") from None
    if not isinstance(data, dict):
        raise UserError(f"{file} holds a {type(data).__name__}, not a state dict; pick another checkpoint folder")
    return data


def read_weights(path: str) -> dict:
    """The tensors of the model folder ``path`` (its model.pdparams), by name."""
    check_model_dir(path)
    return _read_state_dict(os.path.join(path, MODEL_FILE))


def load_weights(path: str, model: paddle.nn.Layer) -> None:
    """Load all weights strictly (shapes must match)."""
    check_model_dir(path)
    weights = _read_state_dict(os.path.join(path, MODEL_FILE))
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    wrong = [f"{k}: {list(weights[k].shape)} vs {list(v.shape)}" for k, v in own.items()
             if k in weights and list(weights[k].shape) != list(v.shape)]
    if missing or wrong:
        raise UserError(f"{path} does not fit this model (vocabulary size or model flags differ): "
                        + "; ".join(wrong[:3] + [f"missing {k}" for k in missing[:3]]))
    model.set_state_dict(weights)


def load_optimizer(path: str, optimizer: paddle.optimizer.Optimizer) -> None:
    """Restore the optimizer (Adam moments, learning-rate schedule) of a checkpoint training resumes from."""
    file = os.path.join(path, OPTIMIZER_FILE)
    if not os.path.isfile(file):
        raise UserError(f"{path} has no {OPTIMIZER_FILE}, so training cannot resume from it; to start a new run "
                        f"from its weights pass --pretrained_model={path} instead of --resume_model")
    optimizer.set_state_dict(_read_state_dict(file))


def load_pretrained(path: str, model: paddle.nn.Layer) -> list[str]:
    """Load the tensors whose names and shapes match; return the names that were skipped."""
    check_model_dir(path)
    weights = _read_state_dict(os.path.join(path, MODEL_FILE))
    own = model.state_dict()
    usable = {k: v for k, v in weights.items() if k in own and list(v.shape) == list(own[k].shape)}
    skipped = sorted(set(own) - set(usable)) + sorted(k for k in weights if k not in own)
    model.set_state_dict(usable)
    return skipped


@contextlib.contextmanager
def _temporary(root: str, name: str, needed: int) -> Iterator[str]:
    """An empty hidden folder beside ``root/name`` to write ``needed`` bytes into before swapping it in.

    Whatever stops the write (a full disk, a signal, a bug) removes the folder again; a full or
    read-only disk becomes one error line that says how much space the save needed.
    """
    tmp = os.path.join(root, f".{name}.tmp-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        yield tmp
    except OSError as e:
        if e.errno not in _DISK_ERRORS:
            raise
        free = shutil.disk_usage(root).free if os.path.isdir(root) else 0
        raise UserError(f"cannot write checkpoint {os.path.join(root, name)}: {e.strerror}; the save needs about "
                        f"{_megabytes(needed)}, {_megabytes(free)} free on that disk; every earlier checkpoint in "
                        f"{root} is intact: free space (or pass another --save_model_path) and resume from "
                        f"{os.path.join(root, LAST_MODEL)}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install(root: str, name: str, tmp: str, run_id: str | None) -> str:
    """Put the finished folder ``tmp`` at ``root/name`` without ever losing another run's folder."""
    target = os.path.join(root, name)
    if os.path.exists(target) and _owner(target) != run_id:
        kept, n = f"{target}.before-{run_id}", 1
        while os.path.lexists(kept):
            n += 1
            kept = f"{target}.before-{run_id}-{n}"
        os.rename(target, kept)
        logger.info("%s belongs to another training run: kept it as %s", target, kept)
    if not os.path.exists(target):
        os.replace(tmp, target)
    elif _exchange(tmp, target):
        shutil.rmtree(tmp)  # now holds the replaced folder
    else:  # no atomic swap here: two renames, the old folder kept until the new one is in place
        old = os.path.join(root, f".{name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old)
    return target


def _exchange(a: str, b: str) -> bool:
    """Swap two folders in one atomic step (Linux renameat2); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # old kernel or a file system without it
        return False
    raise OSError(code, os.strerror(code), b)


def _owner(path: str) -> str | None:
    """The run id in ``path``'s state.json; None for a PPASR-made folder or a damaged state.json."""
    try:
        return read_state(path).get("run_id")
    except UserError:
        return None


def _tensor_bytes(state: dict) -> int:
    return sum(int(v.numel()) * v.element_size() for v in state.values() if isinstance(v, paddle.Tensor))


def _megabytes(size: int) -> str:
    return f"{size / 2 ** 20:.1f} MB"


def _process_start(pid: int) -> int | None:
    """The start time (clock ticks since boot) of process ``pid``, None when it does not exist.

    A pid alone can be reused by an unrelated process after a crash; pid and start time cannot.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:  # no /proc (not Linux): fall back to whether the pid exists
        return 0 if _process_alive(pid) else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
