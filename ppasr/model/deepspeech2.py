"""DeepSpeech2: conv front end, unidirectional GRU stack with LayerNorm, linear CTC head.

Parameter names and shapes equal PPASR's, so PPASR-trained weights load unchanged.
"""
from __future__ import annotations

import paddle
from paddle import nn

from ppasr.model.registry import ModelSpec


def conv_output_length(length: paddle.Tensor | int):
    """Frames left after two 3x3 stride-2 convolutions without padding."""
    return ((length - 1) // 2 - 1) // 2


class ConvStack(nn.Layer):
    """Two Conv2D(3x3, stride 2) + ReLU over [B, 1, T, D]; flattens to [B, T', C*D']."""

    def __init__(self, feat_size: int, cnn_size: int = 32):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2D(1, cnn_size, kernel_size=3, stride=2),
            nn.ReLU(),
            nn.Conv2D(cnn_size, cnn_size, kernel_size=3, stride=2),
            nn.ReLU(),
        )
        self.output_dim = cnn_size * conv_output_length(feat_size)

    def forward(self, x: paddle.Tensor, x_len: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        x = self.conv(x.transpose([0, 2, 1]).unsqueeze(1))  # [B, C, T', D']
        b, c, t, d = x.shape
        x = x.transpose([0, 2, 1, 3]).reshape([b, t, c * d])
        return x, conv_output_length(x_len)


class RNNStack(nn.Layer):
    """Unidirectional GRU layers, each followed by LayerNorm; carries states for streaming."""

    def __init__(self, input_size: int, rnn_size: int = 1024, num_rnn_layers: int = 3):
        super().__init__()
        self.num_rnn_layers = num_rnn_layers
        self.rnn = nn.LayerList()
        self.norm_list = nn.LayerList()
        for i in range(num_rnn_layers):
            self.rnn.append(nn.GRU(input_size if i == 0 else rnn_size, rnn_size, direction="forward"))
            self.norm_list.append(nn.LayerNorm(rnn_size))

    def forward(self, x: paddle.Tensor, x_len: paddle.Tensor, init_state_h_box: paddle.Tensor | None = None):
        if init_state_h_box is not None:
            init_states = paddle.split(init_state_h_box, self.num_rnn_layers, axis=0)
        else:
            init_states = [None] * self.num_rnn_layers
        final_states = []
        for rnn, norm, state in zip(self.rnn, self.norm_list, init_states):
            x, final = rnn(x, state, x_len)
            final_states.append(final)
            x = norm(x)
        return x, paddle.concat(final_states, axis=0)


class DeepSpeech2Model(nn.Layer):
    """``forward(audio [B, D, T], audio_len [B])`` → (logits [B, T', V], out_len [B], states)."""

    def __init__(self, feat_size: int, vocab_size: int, cnn_size: int = 32, num_rnn_layers: int = 3,
                 rnn_size: int = 1024):
        super().__init__()
        self.conv = ConvStack(feat_size, cnn_size)
        self.rnn = RNNStack(self.conv.output_dim, rnn_size, num_rnn_layers)
        self.fc = nn.Linear(rnn_size, vocab_size)

    def forward(self, audio: paddle.Tensor, audio_len: paddle.Tensor,
                init_state_h_box: paddle.Tensor | None = None):
        x, x_len = self.conv(audio, audio_len)
        x, final_states = self.rnn(x, x_len, init_state_h_box)
        return self.fc(x), x_len, final_states


SPEC = ModelSpec(
    name="deepspeech2", build=DeepSpeech2Model,
    defaults={"cnn_size": 32, "num_rnn_layers": 3, "rnn_size": 1024},  # PPASR's sizes
    subsampling=4, context=7,  # the two 3x3 stride-2 convolutions: output k reads input frames [4k, 4k + 7)
    state_shape=lambda params: (params["num_rnn_layers"], 1, params["rnn_size"]),  # the GRUs' hidden states
)
