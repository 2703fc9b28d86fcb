"""The exported form of a model: what export_model.py saves and infer_path.py / the server run."""
from __future__ import annotations

import paddle
from paddle import nn


class InferenceModel(nn.Layer):
    """Export wrapper: mean/std normalisation in, softmax probabilities out (as PPASR).

    ``forward(audio, audio_len, init_state_h_box)`` → (probabilities, output lengths, final
    state): PPASR's streaming signature, with zeros as the initial state of a fresh clip. Any
    registered model fits (see ppasr.model.registry for the contract).
    """

    def __init__(self, model: nn.Layer, mean, std, eps: float = 1e-20):
        super().__init__()
        self.model = model
        self.register_buffer("mean", paddle.to_tensor(mean, dtype="float32").reshape([1, -1, 1]))
        self.register_buffer("inv_std", paddle.to_tensor(1.0 / (std + eps), dtype="float32").reshape([1, -1, 1]))

    def forward(self, audio: paddle.Tensor, audio_len: paddle.Tensor, init_state_h_box: paddle.Tensor):
        logits, out_len, states = self.model((audio - self.mean) * self.inv_std, audio_len, init_state_h_box)
        return paddle.nn.functional.softmax(logits, axis=-1), out_len, states
