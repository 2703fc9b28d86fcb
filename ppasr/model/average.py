"""Checkpoint averaging: one model whose weights are the mean of several checkpoints of a run.

The last epochs of a run sit at different points of a noisy valley; their mean usually lies lower than
any of them, so it recognises better at no training cost (WeNet averages its last checkpoints the same
way). The average is a model folder like any other (``model.pdparams`` + ``state.json``) for eval.py,
export_model.py and ``--pretrained_model``; it has no optimizer state, so training cannot resume from it.
"""
from __future__ import annotations

import os

import numpy as np
import paddle

from ppasr.errors import UserError
from ppasr.model.checkpoint import check_model_dir, list_checkpoints, read_state, read_weights, save_weights

AVERAGED_FROM = "averaged_from"  # state.json key of an average: the checkpoints it is the mean of
_OF_ONE_MODEL = ("test_cer", "test_loss", "best_cer")  # figures of the newest checkpoint, not of the mean


def newest_epochs(model_dir: str, num: int) -> list[str]:
    """The newest ``num`` end-of-epoch checkpoints (``epoch_N``) in ``model_dir``, oldest first."""
    finished = [path for path in list_checkpoints(model_dir) if "_batch_" not in os.path.basename(path)]
    if len(finished) < num:
        names = ", ".join(os.path.basename(path) for path in finished) or "none"
        raise UserError(f"{model_dir} holds {len(finished)} end-of-epoch checkpoints ({names}), fewer than "
                        f"--num={num}; pass a smaller --num or the folders themselves with --checkpoints")
    return finished[-num:]


def average_checkpoints(checkpoints: list[str], output: str) -> str:
    """Write the mean of ``checkpoints``' weights to the folder ``output``; return its path.

    All checkpoints must be the same model (same tensors and shapes, same recorded model config).
    ``output`` may replace an earlier average, never a checkpoint: nothing a run saved is overwritten.
    """
    if len(set(map(os.path.realpath, checkpoints))) != len(checkpoints):
        raise UserError(f"a checkpoint is named twice in {checkpoints}; name each folder once")
    states = []
    for path in checkpoints:
        check_model_dir(path)
        states.append(read_state(path))
    _check_same_model(checkpoints, states)
    _check_output(output)
    mean = _mean_weights(checkpoints)
    state = {key: value for key, value in states[-1].items() if key not in _OF_ONE_MODEL + ("saved_at",)}
    state[AVERAGED_FROM] = [{"path": os.path.abspath(path), "epoch": saved.get("epoch"),
                             "batch_in_epoch": saved.get("batch_in_epoch", 0), "run_id": saved.get("run_id"),
                             "test_cer": saved.get("test_cer")} for path, saved in zip(checkpoints, states)]
    root, name = os.path.split(os.path.abspath(output))
    return save_weights(root, name, mean, state)


def _check_same_model(checkpoints: list[str], states: list[dict]) -> None:
    first = states[0].get("model_config")
    for path, state in zip(checkpoints[1:], states[1:]):
        config = state.get("model_config")
        if first is not None and config is not None and config != first:
            differ = sorted(key for key in set(first) | set(config) if first.get(key) != config.get(key))
            raise UserError(f"{path} is another model than {checkpoints[0]} (model_config differs in "
                            f"{', '.join(differ)}); average checkpoints of one model")


def _check_output(output: str) -> None:
    if not os.path.exists(output):
        return
    if not os.path.isdir(output) or AVERAGED_FROM not in read_state(output):
        raise UserError(f"--output {output} exists and is not an average this tool wrote; pass a new folder "
                        f"(it would replace that folder)")


def _mean_weights(checkpoints: list[str]) -> dict[str, paddle.Tensor]:
    """Float tensors averaged in float64; any other tensor (a counter) taken from the newest checkpoint."""
    sums: dict[str, np.ndarray] = {}
    for i, path in enumerate(checkpoints):
        weights = {key: np.asarray(value) for key, value in read_weights(path).items()}
        if i == 0:
            sums = {key: value.astype(np.float64) for key, value in weights.items()}
            continue
        wrong = sorted(sums.keys() ^ weights.keys()) + [
            f"{key} {list(weights[key].shape)} vs {list(sums[key].shape)}"
            for key in sorted(sums.keys() & weights.keys()) if weights[key].shape != sums[key].shape]
        if wrong:
            raise UserError(f"{path} does not fit {checkpoints[0]} ({'; '.join(wrong[:3])}); "
                            f"average checkpoints of one model")
        for key in sums:
            sums[key] += weights[key]
    mean = {}
    for key, total in sums.items():
        newest = weights[key]
        floating = np.issubdtype(newest.dtype, np.floating)
        mean[key] = paddle.to_tensor((total / len(checkpoints)).astype(newest.dtype) if floating else newest)
    return mean
