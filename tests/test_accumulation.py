"""--accum_grad: two accumulated batches of 8 make the same optimiser step as one batch of 16."""
from __future__ import annotations

import numpy as np
import paddle

from ppasr import cli
from ppasr.model.deepspeech2 import DeepSpeech2Model
from ppasr.scripts import train_options
from ppasr.train.preemption import StopRequest
from ppasr.train.schedule import WarmupEpochDecay
from ppasr.train.state import TrainState
from ppasr.train.trainer import Run, accumulation_window, train_step

DIM, VOCAB, FRAMES = 13, 12, 60


def batches(n: int = 16):
    rng = np.random.default_rng(5)
    features = rng.standard_normal((n, DIM, FRAMES)).astype(np.float32)
    labels = rng.integers(1, VOCAB, (n, 6)).astype(np.int32)
    return [paddle.to_tensor(x) for x in (features, np.full(n, FRAMES, np.int64), labels,
                                          np.full(n, 6, np.int64), np.arange(n, dtype=np.int64))]


def trained(accum_grad: int) -> tuple[dict, int]:
    """Parameters after one epoch of 16 utterances in batches of 16 // accum_grad, and optimiser steps."""
    paddle.seed(3)
    model = DeepSpeech2Model(DIM, VOCAB, cnn_size=4, num_rnn_layers=1, rnn_size=16)
    scheduler = WarmupEpochDecay(0.5, 1.0)
    optimizer = paddle.optimizer.SGD(learning_rate=scheduler, parameters=model.parameters())
    options = train_options(cli.train_parser().parse_args(["--max_bad_steps=5"]))
    run = Run(options, 1, 0, None, None, model, model, optimizer, scheduler, None,
              TrainState(), "", StopRequest())
    whole = batches()
    size = 16 // accum_grad
    for batch_id in range(accum_grad):
        part = [t[batch_id * size:(batch_id + 1) * size] for t in whole]
        train_step(run, part, 1, batch_id, accumulation_window(batch_id, accum_grad, accum_grad))
    return {k: v.numpy() for k, v in model.state_dict().items()}, run.state.step


def test_two_accumulated_batches_of_8_equal_one_of_16():
    one, steps_one = trained(1)
    two, steps_two = trained(2)
    assert steps_one == steps_two == 1, "one optimiser step either way"
    moved = max(float(np.abs(one[k] - two[k]).max()) for k in one)
    assert moved < 1e-5, f"2 x 8 accumulated differs from 16 by {moved}"
    paddle.seed(3)
    fresh = {k: v.numpy() for k, v in DeepSpeech2Model(DIM, VOCAB, 4, 1, 16).state_dict().items()}
    assert max(float(np.abs(one[k] - fresh[k]).max()) for k in one) > 1e-3, "the step changed the weights"


def test_windows_cover_the_epoch_and_end_it():
    assert [accumulation_window(b, 7, 3) for b in range(7)] == [(0, 3)] * 3 + [(3, 6)] * 3 + [(6, 7)]
