"""The model config that travels with every checkpoint (nanoGPT's ``model_args``).

``state.json`` of every checkpoint (and of ``best_model``/``last_model``) holds one ``model_config``:
model name, layer sizes, vocabulary size and hash, feature config. eval.py, export_model.py and
tools/tune.py build the model from it, so they need no size flags; an explicit flag that contradicts
it is an error. A PPASR-made folder without state.json falls back to the flags and their defaults.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

import paddle

from ppasr.data.features import FeatureConfig
from ppasr.errors import UserError
from ppasr.model.checkpoint import check_model_dir, load_weights, read_state
from ppasr.model.deepspeech2 import DeepSpeech2Model
from ppasr.utils import vocabulary_hash

# Layer sizes when neither a flag nor the checkpoint says (PPASR's DeepSpeech2).
SIZE_DEFAULTS = {"cnn_size": 32, "num_rnn_layers": 3, "rnn_size": 1024}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a checkpoint's model and to know what its outputs mean."""

    use_model: str
    cnn_size: int
    num_rnn_layers: int
    rnn_size: int
    vocab_size: int
    vocab_hash: str
    feature_config: str  # FeatureConfig.to_json()

    def to_dict(self) -> dict:
        return dict(asdict(self), feature_config=json.loads(self.feature_config))

    @classmethod
    def from_dict(cls, saved: dict) -> "ModelConfig":
        return cls(**dict(saved, feature_config=FeatureConfig(**saved["feature_config"]).to_json()))

    def build(self) -> DeepSpeech2Model:
        """A fresh model of this shape."""
        dim = FeatureConfig.from_json(self.feature_config).dim
        return DeepSpeech2Model(dim, self.vocab_size, self.cnn_size, self.num_rnn_layers, self.rnn_size)

    def describe(self) -> str:
        features = FeatureConfig.from_json(self.feature_config)
        return (f"{self.use_model} (cnn_size {self.cnn_size}, num_rnn_layers {self.num_rnn_layers}, "
                f"rnn_size {self.rnn_size}, vocabulary {self.vocab_size}, {features.method} {features.dim})")


def saved_model_config(path: str | None) -> ModelConfig | None:
    """The model config in ``path``'s state.json; None for a PPASR-made folder without one."""
    saved = read_state(path).get("model_config") if path else None
    return ModelConfig.from_dict(saved) if saved else None


def resolve_model_config(args: argparse.Namespace, vocabulary: list[str], feature_config: FeatureConfig,
                         checkpoint: str | None = None, strict: bool = True) -> ModelConfig:
    """The model to build: sizes from ``checkpoint`` when it records them, else the flags, else defaults.

    ``strict`` (eval, export, tune, resume): the checkpoint must have been made for this vocabulary and
    feature config, and an explicit size flag must agree with it. Not strict (``--pretrained_model``):
    explicit flags win and vocabulary or features may differ (matching tensors are loaded).
    """
    saved = saved_model_config(checkpoint)
    sizes = {}
    for name, default in SIZE_DEFAULTS.items():
        flag = getattr(args, name, None)
        if saved is None:
            sizes[name] = default if flag is None else flag
        elif flag is None or flag == getattr(saved, name):
            sizes[name] = getattr(saved, name)
        elif strict:
            raise UserError(f"--{name}={flag} contradicts {checkpoint}, which was trained with {name}="
                            f"{getattr(saved, name)}; leave the flag out (the size comes from the checkpoint)")
        else:
            sizes[name] = flag
    config = ModelConfig(use_model=args.use_model, vocab_size=len(vocabulary),
                         vocab_hash=vocabulary_hash(vocabulary), feature_config=feature_config.to_json(), **sizes)
    if saved is not None and strict:
        check_same_data(saved, config, checkpoint)
    return config


def check_same_data(saved: ModelConfig, current: ModelConfig, path: str) -> None:
    """Refuse a checkpoint made for another model, vocabulary or feature config."""
    if saved.use_model != current.use_model:
        raise UserError(f"{path} holds a {saved.use_model} model, not {current.use_model}")
    if saved.vocab_hash != current.vocab_hash:
        raise UserError(f"{path} was trained with a different vocabulary ({saved.vocab_size} tokens, hash "
                        f"{saved.vocab_hash}; now {current.vocab_size} tokens, hash {current.vocab_hash}); use "
                        f"the vocabulary.txt it was trained with")
    if saved.feature_config != current.feature_config:
        raise UserError(f"{path} was trained with features {saved.feature_config}, but mean_std.npz now "
                        f"records {current.feature_config}")


def load_trained_model(args: argparse.Namespace, vocabulary: list[str],
                       feature_config: FeatureConfig) -> tuple[ModelConfig, paddle.nn.Layer]:
    """``args.resume_model``'s model in eval mode, built from its recorded config (eval, export, tune)."""
    check_model_dir(args.resume_model)
    config = resolve_model_config(args, vocabulary, feature_config, args.resume_model)
    model = config.build()
    load_weights(args.resume_model, model)
    model.eval()
    return config, model
