"""The model config that travels with every checkpoint (nanoGPT's ``model_args``).

``state.json`` of every checkpoint (and of ``best_model``/``last_model``) holds one ``model_config``:
model name, layer sizes, vocabulary size and hash, feature config. eval.py, export_model.py and
tools/tune.py build the model from it, so they need no size flags; an explicit flag that contradicts
it is an error. A PPASR-made folder without state.json falls back to the flags and their defaults.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import paddle

from ppasr.data.features import FeatureConfig
from ppasr.errors import UserError
from ppasr.model.checkpoint import check_model_dir, load_weights, read_state
from ppasr.model.options import ModelChoice
from ppasr.model.registry import ModelSpec, model_spec
from ppasr.utils import vocabulary_hash

_DATA_KEYS = ("use_model", "vocab_size", "vocab_hash", "feature_config")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a checkpoint's model and to know what its outputs mean: the model's
    name, its own size parameters, and the vocabulary and features it was trained on."""

    use_model: str
    params: Mapping[str, int]
    vocab_size: int
    vocab_hash: str
    feature_config: FeatureConfig

    @property
    def spec(self) -> ModelSpec:
        return model_spec(self.use_model)

    def to_dict(self) -> dict:
        """The form state.json holds: flat, as it always was (DeepSpeech2's sizes beside the name)."""
        return {"use_model": self.use_model, **self.params, "vocab_size": self.vocab_size,
                "vocab_hash": self.vocab_hash, "feature_config": asdict(self.feature_config)}

    @classmethod
    def from_dict(cls, saved: Mapping) -> ModelConfig:
        return cls(use_model=saved["use_model"], params={k: v for k, v in saved.items() if k not in _DATA_KEYS},
                   vocab_size=saved["vocab_size"], vocab_hash=saved["vocab_hash"],
                   feature_config=FeatureConfig(**saved["feature_config"]))

    def build(self) -> paddle.nn.Layer:
        """A fresh model of this shape."""
        return self.spec.build(self.feature_config.dim, self.vocab_size, **self.params)

    def describe(self) -> str:
        sizes = "".join(f"{name} {value}, " for name, value in self.params.items())
        return (f"{self.use_model} ({sizes}vocabulary {self.vocab_size}, {self.feature_config.method} "
                f"{self.feature_config.dim})")


def saved_model_config(path: str | None) -> ModelConfig | None:
    """The model config in ``path``'s state.json; None for a PPASR-made folder without one."""
    saved = read_state(path).get("model_config") if path else None
    return ModelConfig.from_dict(saved) if saved else None


def resolve_model_config(choice: ModelChoice, vocabulary: list[str], feature_config: FeatureConfig,
                         checkpoint: str | None = None, strict: bool = True) -> ModelConfig:
    """The model to build: sizes from ``checkpoint`` when it records them, else the flags (None: not
    given), else the model's defaults.

    ``strict`` (eval, export, tune, resume): the checkpoint must have been made for this vocabulary and
    feature config, and an explicit size flag must agree with it. Not strict (``--pretrained_model``):
    explicit flags win and vocabulary or features may differ (matching tensors are loaded).
    """
    use_model, size_flags = choice.use_model, choice.size_flags()
    spec = model_spec(use_model)
    foreign = [name for name, flag in size_flags.items() if flag is not None and name not in spec.defaults]
    if foreign:
        raise UserError(f"--{foreign[0]} is not a size of {use_model} (its sizes: {', '.join(spec.defaults)})")
    saved = saved_model_config(checkpoint)
    sizes = {}
    for name, default in spec.defaults.items():
        flag = size_flags.get(name)
        recorded = saved.params.get(name, default) if saved is not None else None
        if saved is None:
            sizes[name] = default if flag is None else flag
        elif flag is None or flag == recorded:
            sizes[name] = recorded
        elif strict:
            raise UserError(f"--{name}={flag} contradicts {checkpoint}, which was trained with {name}="
                            f"{recorded}; leave the flag out (the size comes from the checkpoint)")
        else:
            sizes[name] = flag
    config = ModelConfig(use_model=use_model, params=sizes, vocab_size=len(vocabulary),
                         vocab_hash=vocabulary_hash(vocabulary), feature_config=feature_config)
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
        raise UserError(f"{path} was trained with features {saved.feature_config.to_json()}, but mean_std.npz "
                        f"now records {current.feature_config.to_json()}")


def load_trained_model(checkpoint: str, choice: ModelChoice, vocabulary: list[str],
                       feature_config: FeatureConfig) -> tuple[ModelConfig, paddle.nn.Layer]:
    """``checkpoint``'s model in eval mode, built from its recorded config (eval, export, tune)."""
    check_model_dir(checkpoint)
    config = resolve_model_config(choice, vocabulary, feature_config, checkpoint)
    model = config.build()
    load_weights(checkpoint, model)
    model.eval()
    return config, model
