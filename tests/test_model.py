"""DeepSpeech2: PPASR-compatible parameters, shapes, lengths and streaming states."""
import numpy as np
import paddle

from helpers import REFERENCE
from ppasr.model.deepspeech2 import DeepSpeech2Model, conv_output_length


def test_state_dict_matches_ppasr_reference():
    model = DeepSpeech2Model(feat_size=161, vocab_size=4000)
    ours = [(name, list(t.shape), str(t.dtype)) for name, t in model.state_dict().items()]
    reference = []
    for line in (REFERENCE / "deepspeech2_state_dict.txt").read_text().splitlines():
        name, shape, dtype = line.split("\t")
        reference.append((name, [int(x) for x in shape.strip("[]").split(",")], dtype))
    assert ours == reference


def test_forward_shapes_and_output_lengths():
    paddle.seed(0)
    model = DeepSpeech2Model(feat_size=80, vocab_size=50, cnn_size=8, num_rnn_layers=2, rnn_size=32)
    audio = paddle.randn([3, 80, 301])
    lengths = paddle.to_tensor([301, 200, 57], dtype="int64")
    logits, out_len, states = model(audio, lengths)
    assert logits.shape == [3, conv_output_length(301), 50]
    assert out_len.numpy().tolist() == [conv_output_length(n) for n in (301, 200, 57)]
    assert states.shape == [2, 3, 32]


def test_rnn_state_carries_across_chunks():
    paddle.seed(0)
    model = DeepSpeech2Model(feat_size=80, vocab_size=20, cnn_size=8, num_rnn_layers=2, rnn_size=16)
    model.eval()
    x = paddle.randn([1, 40, 8 * 19])
    full, _ = model.rnn(x, paddle.to_tensor([40], dtype="int64"))
    first, state = model.rnn(x[:, :25], paddle.to_tensor([25], dtype="int64"))
    second, _ = model.rnn(x[:, 25:], paddle.to_tensor([15], dtype="int64"), state)
    np.testing.assert_allclose(np.concatenate([first.numpy(), second.numpy()], axis=1), full.numpy(), atol=1e-5)
