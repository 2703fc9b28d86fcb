"""export_model.py's work: a static inference model with normalisation and softmax inside."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import paddle

from ppasr.data.features import FeatureNormalizer
from ppasr.model.config import load_trained_model
from ppasr.model.deepspeech2 import DeepSpeech2Model, InferenceModel
from ppasr.serve.backend import convert_to_onnx
from ppasr.utils import read_vocabulary, require_file

MODEL_PREFIX = "inference"
CONFIG_FILE = "model_config.json"
VOCAB_FILE = "vocabulary.txt"


def export_model(args) -> str:
    """Load ``resume_model`` and write ``<save_model>/<use_model>/infer/`` for infer_path.py."""
    require_file(args.dataset_vocab, "python3 create_data.py")
    require_file(args.mean_std_path, "python3 create_data.py")
    paddle.set_device("cpu")
    vocabulary = read_vocabulary(args.dataset_vocab)
    normalizer = FeatureNormalizer(args.mean_std_path)
    config = normalizer.feature_config
    model_config, model = load_trained_model(args, vocabulary, config)
    out_dir = os.path.join(args.save_model, args.use_model, "infer")
    save_inference_model(model, normalizer.mean, normalizer.std, out_dir)
    shutil.copyfile(args.dataset_vocab, os.path.join(out_dir, VOCAB_FILE))
    with open(os.path.join(out_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump({"use_model": args.use_model, "feature_config": json.loads(config.to_json()),
                   "vocab_size": len(vocabulary), "cnn_size": model_config.cnn_size,
                   "num_rnn_layers": model_config.num_rnn_layers, "rnn_size": model_config.rnn_size,
                   "source": os.path.abspath(args.resume_model)}, f, ensure_ascii=False, indent=2)
    return out_dir


def save_inference_model(model: DeepSpeech2Model, mean: np.ndarray, std: np.ndarray, out_dir: str) -> None:
    """The static program with normalisation and softmax inside, and its ONNX conversion beside it."""
    wrapped = InferenceModel(model, mean, std)
    wrapped.eval()
    dim, layers, hidden = mean.shape[0], model.rnn.num_rnn_layers, model.rnn.rnn[0].hidden_size
    # PPASR's streaming signature: the GRU state goes in and comes out, so a stream can carry it.
    specs = [paddle.static.InputSpec([None, dim, None], "float32", "audio"),
             paddle.static.InputSpec([None], "int64", "audio_len"),
             paddle.static.InputSpec([layers, None, hidden], "float32", "init_state_h_box")]
    static = paddle.jit.to_static(wrapped, input_spec=specs, full_graph=True)
    os.makedirs(out_dir, exist_ok=True)
    paddle.jit.save(static, os.path.join(out_dir, MODEL_PREFIX))
    convert_to_onnx(out_dir, MODEL_PREFIX, sample_inputs(mean, std, (layers, 1, hidden)))


def sample_inputs(mean: np.ndarray, std: np.ndarray, state_shape: tuple[int, int, int],
                  frames: int = 200) -> list[np.ndarray]:
    """Random features at the data's scale and a random GRU state: the check that the .onnx
    computes what paddle computes, the carried state included."""
    rng = np.random.default_rng(0)
    dim = mean.shape[0]
    audio = mean.reshape(1, dim, 1) + std.reshape(1, dim, 1) * rng.standard_normal((1, dim, frames))
    state = np.tanh(rng.standard_normal(state_shape))
    return [audio.astype(np.float32), np.array([frames], dtype=np.int64), state.astype(np.float32)]
