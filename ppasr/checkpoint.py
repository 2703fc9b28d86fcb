"""Checkpoints: ``models/<model>/epoch_N/{model.pdparams, optimizer.pdopt, state.json}``.

Saves are atomic: everything is written into a temporary folder that is renamed into place, so a
kill during a save never leaves a half checkpoint that resume could pick.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import time

import paddle

from ppasr.errors import UserError

STATE_FILE = "state.json"
MODEL_FILE = "model.pdparams"
OPTIMIZER_FILE = "optimizer.pdopt"
_CHECKPOINT_NAME = re.compile(r"^epoch_(\d+)(?:_batch_(\d+))?$")


def checkpoint_name(epoch: int, batch_in_epoch: int = 0) -> str:
    """``epoch_N`` for a finished epoch, ``epoch_N_batch_B`` for a save inside epoch N."""
    return f"epoch_{epoch}" if batch_in_epoch == 0 else f"epoch_{epoch}_batch_{batch_in_epoch}"


def save_checkpoint(root: str, name: str, model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer,
                    state: dict, keep: int = 3) -> str:
    """Write a checkpoint atomically into ``root/name`` and keep only the newest ``keep``."""
    os.makedirs(root, exist_ok=True)
    target = os.path.join(root, name)
    tmp = os.path.join(root, f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    paddle.save(model.state_dict(), os.path.join(tmp, MODEL_FILE))
    paddle.save(optimizer.state_dict(), os.path.join(tmp, OPTIMIZER_FILE))
    with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
        json.dump(dict(state, saved_at=time.strftime("%Y-%m-%d %H:%M:%S")), f, ensure_ascii=False, indent=2)
    if os.path.exists(target):  # a rerun writing over an old run's folder
        trash = os.path.join(root, f".{name}.old-{os.getpid()}")
        os.replace(target, trash)
        os.replace(tmp, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, target)
    if keep > 0:
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(root: str) -> list[str]:
    """Complete checkpoint folders under ``root``, oldest first (by epoch, then batch)."""
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


def check_compatible(state: dict, vocab_hash: str, feature_config_json: str, path: str) -> None:
    """Refuse to continue from a checkpoint made with another vocabulary or feature config."""
    if state.get("vocab_hash") and state["vocab_hash"] != vocab_hash:
        raise UserError(f"{path} was trained with a different vocabulary (hash {state['vocab_hash']}, "
                        f"now {vocab_hash}); use the vocabulary.txt it was trained with")
    if state.get("feature_config") and state["feature_config"] != feature_config_json:
        raise UserError(f"{path} was trained with features {state['feature_config']}, but "
                        f"mean_std.npz now records {feature_config_json}")


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


def load_pretrained(path: str, model: paddle.nn.Layer) -> list[str]:
    """Load the tensors whose names and shapes match; return the names that were skipped."""
    check_model_dir(path)
    weights = _read_state_dict(os.path.join(path, MODEL_FILE))
    own = model.state_dict()
    usable = {k: v for k, v in weights.items() if k in own and list(v.shape) == list(own[k].shape)}
    skipped = sorted(set(own) - set(usable)) + sorted(k for k in weights if k not in own)
    model.set_state_dict(usable)
    return skipped


def load_optimizer(path: str, optimizer: paddle.optimizer.Optimizer) -> None:
    """Restore the optimiser of a checkpoint that training resumes from."""
    file = os.path.join(path, OPTIMIZER_FILE)
    if not os.path.isfile(file):
        raise UserError(f"{path} has no {OPTIMIZER_FILE}, so training cannot resume from it; to start a new run "
                        f"from its weights pass --pretrained_model={path} instead of --resume_model")
    optimizer.set_state_dict(_read_state_dict(file))
