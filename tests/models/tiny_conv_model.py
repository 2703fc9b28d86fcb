"""A second model, for tests only: two 1-D convolutions and a linear CTC head, no recurrence.

It plugs in through ``ppasr.model.registry`` alone (``PPASR_MODELS=tiny_conv_model``, this folder on
the Python path), which is what tests/test_model_plugin.py proves: train, eval, export and streaming run
it through the same code as DeepSpeech2, with no change outside this file.
"""
from __future__ import annotations

import paddle
from paddle import nn

from ppasr.model.registry import ModelSpec


class TinyConv(nn.Layer):
    """Conv1D(k5, s2) → ReLU → Conv1D(k3, s2) → ReLU → Linear: output k reads input frames [4k, 4k + 9)."""

    def __init__(self, feat_size: int, vocab_size: int, channels: int = 32):
        super().__init__()
        self.conv1 = nn.Conv1D(feat_size, channels, kernel_size=5, stride=2)
        self.conv2 = nn.Conv1D(channels, channels, kernel_size=3, stride=2)
        self.fc = nn.Linear(channels, vocab_size)

    def forward(self, audio: paddle.Tensor, audio_len: paddle.Tensor, state: paddle.Tensor | None = None):
        x = nn.functional.relu(self.conv2(nn.functional.relu(self.conv1(audio))))  # [B, C, T']
        # no recurrence: the streaming state is a placeholder, passed through
        return self.fc(x.transpose([0, 2, 1])), SPEC.output_length(audio_len), state


SPEC = ModelSpec(name="tinyconv", build=TinyConv, defaults={"channels": 32}, subsampling=4, context=9,
                 state_shape=lambda params: (1, 1, 1))
