"""export_model.py's work: a static inference model with normalisation and softmax inside, and the one
description of it (``model_config.json``) that inference reads back."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from typing import Callable

import numpy as np
import paddle

from ppasr.data.features import FeatureNormalizer
from ppasr.errors import UserError
from ppasr.model.config import ModelConfig, load_trained_model
from ppasr.model.inference import InferenceModel
from ppasr.model.options import ModelChoice
from ppasr.model.registry import model_spec, strided_output_length
from ppasr.serve.backend import convert_to_onnx
from ppasr.utils import read_vocabulary, require_file, vocabulary_hash

MODEL_PREFIX = "inference"
CONFIG_FILE = "model_config.json"
VOCAB_FILE = "vocabulary.txt"


@dataclass(frozen=True)
class ExportOptions:
    """export_model.py's flags: the checkpoint, the data files it was trained with, where to write."""

    resume_model: str
    save_model: str
    dataset_vocab: str
    mean_std_path: str
    model: ModelChoice


@dataclass(frozen=True)
class ExportedModel:
    """What inference needs to know about an exported model, written beside it by export_model.py.

    The streaming facts come from the model's spec at export time, so an exported folder runs without the
    model's Python code (a model of your own need not be importable where it is served).
    """

    config: ModelConfig
    subsampling: int  # input frames per output frame
    context: int  # input frames the first output frame reads
    state_shape: tuple[int, ...]  # one utterance's streaming state (batch axis 1)
    source: str  # the checkpoint it was exported from

    def to_dict(self) -> dict:
        return {**self.config.to_dict(), "subsampling": self.subsampling, "context": self.context,
                "state_shape": list(self.state_shape), "source": self.source}

    @classmethod
    def from_dict(cls, saved: dict, vocabulary: Callable[[], list[str]]) -> ExportedModel:
        """Also reads folders exported by earlier versions (DeepSpeech2 sizes only, no streaming facts, no
        vocabulary hash: then ``vocabulary()`` gives the exported vocabulary)."""
        saved = dict(saved)
        facts = {key: saved.pop(key, None) for key in ("subsampling", "context", "state_shape", "source")}
        if "vocab_hash" not in saved:
            saved["vocab_hash"] = vocabulary_hash(vocabulary())
        config = ModelConfig.from_dict(saved)
        if facts["state_shape"] is None:
            spec = model_spec(config.use_model)
            facts.update(subsampling=spec.subsampling, context=spec.context,
                         state_shape=spec.state_shape(dict(config.params)))
        return cls(config, facts["subsampling"], facts["context"], tuple(facts["state_shape"]), facts["source"] or "")

    def output_length(self, frames: int) -> int:
        return strided_output_length(frames, self.context, self.subsampling)


def read_exported_model(model_dir: str) -> ExportedModel:
    """``model_dir``'s description, as :func:`export_model` wrote it."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise UserError(f"no exported model in {model_dir}; create it with `python3 export_model.py`")
    with open(path, "r", encoding="utf-8") as f:
        saved = json.load(f)
    return ExportedModel.from_dict(saved, lambda: read_vocabulary(os.path.join(model_dir, VOCAB_FILE),
                                                                  "python3 export_model.py"))


def export_model(options: ExportOptions) -> str:
    """Load ``resume_model`` and write ``<save_model>/<use_model>/infer/`` for infer_path.py."""
    require_file(options.dataset_vocab, "python3 create_data.py")
    require_file(options.mean_std_path, "python3 create_data.py")
    paddle.set_device("cpu")
    vocabulary = read_vocabulary(options.dataset_vocab)
    normalizer = FeatureNormalizer(options.mean_std_path)
    model_config, model = load_trained_model(options.resume_model, options.model, vocabulary,
                                             normalizer.feature_config)
    spec = model_config.spec
    exported = ExportedModel(model_config, spec.subsampling, spec.context, spec.state_shape(dict(model_config.params)),
                             os.path.abspath(options.resume_model))
    out_dir = os.path.join(options.save_model, options.model.use_model, "infer")
    save_inference_model(model, normalizer.mean, normalizer.std, exported.state_shape, out_dir)
    shutil.copyfile(options.dataset_vocab, os.path.join(out_dir, VOCAB_FILE))
    with open(os.path.join(out_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(exported.to_dict(), f, ensure_ascii=False, indent=2)
    return out_dir


def save_inference_model(model: paddle.nn.Layer, mean: np.ndarray, std: np.ndarray,
                         state_shape: tuple[int, ...], out_dir: str) -> None:
    """The static program with normalisation and softmax inside, and its ONNX conversion beside it."""
    wrapped = InferenceModel(model, mean, std)
    wrapped.eval()
    dim = mean.shape[0]
    # PPASR's streaming signature: the state goes in and comes out, so a stream can carry it.
    specs = [paddle.static.InputSpec([None, dim, None], "float32", "audio"),
             paddle.static.InputSpec([None], "int64", "audio_len"),
             paddle.static.InputSpec([size if axis != 1 else None for axis, size in enumerate(state_shape)],
                                     "float32", "init_state_h_box")]
    static = paddle.jit.to_static(wrapped, input_spec=specs, full_graph=True)
    os.makedirs(out_dir, exist_ok=True)
    paddle.jit.save(static, os.path.join(out_dir, MODEL_PREFIX))
    convert_to_onnx(out_dir, MODEL_PREFIX, sample_inputs(mean, std, state_shape))


def sample_inputs(mean: np.ndarray, std: np.ndarray, state_shape: tuple[int, ...],
                  frames: int = 200) -> list[np.ndarray]:
    """Random features at the data's scale and a random state: the check that the .onnx computes what
    paddle computes, the carried state included."""
    rng = np.random.default_rng(0)
    dim = mean.shape[0]
    audio = mean.reshape(1, dim, 1) + std.reshape(1, dim, 1) * rng.standard_normal((1, dim, frames))
    state = np.tanh(rng.standard_normal(state_shape))
    return [audio.astype(np.float32), np.array([frames], dtype=np.int64), state.astype(np.float32)]
