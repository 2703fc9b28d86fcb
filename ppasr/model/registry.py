"""The model interface and the registry keyed by ``--use_model``.

Shared code knows a network only through its :class:`ModelSpec`: the trainer builds it, the dataset
asks how many output frames an utterance gives (CTC feasibility), the exporter asks for the streaming
state's shape, the streamer for the receptive field and the time subsampling. A model module defines
one ``SPEC``; DeepSpeech2 is built in. A model of your own needs no change here: put its module on the
Python path and name it in ``PPASR_MODELS`` (comma-separated module names), then ``--use_model=<name>``.

The network's contract: ``forward(audio [B, D, T], audio_len [B], state)`` → (logits [B, T', V],
out_len [B], final state), where ``state`` has :meth:`ModelSpec.state_shape` with the batch on axis 1
(a stateless model passes a placeholder through unchanged).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Callable

from ppasr.errors import UserError

PLUGINS_ENV = "PPASR_MODELS"
_BUILT_IN = {"deepspeech2": "ppasr.model.deepspeech2"}  # name → module defining SPEC (imported when used)
_specs: dict[str, ModelSpec] = {}


@dataclass(frozen=True)
class ModelSpec:
    """What the rest of the toolkit needs to know about one kind of network."""

    name: str
    build: Callable[..., Any]  # build(feat_dim, vocab_size, **params) → paddle.nn.Layer
    defaults: dict[str, int]  # its size parameters, in display order, with their defaults
    subsampling: int  # input frames per output frame
    context: int  # input frames the first output frame reads (its receptive field)
    state_shape: Callable[[dict[str, int]], tuple[int, ...]]  # one utterance's streaming state; batch = axis 1

    def output_length(self, frames):
        return strided_output_length(frames, self.context, self.subsampling)


def strided_output_length(frames, context: int, subsampling: int):
    """Output frames for ``frames`` input frames (an int or a tensor) when output k reads input frames
    [subsampling·k, subsampling·k + context)."""
    return (frames - context) // subsampling + 1


def _load(module_name: str) -> ModelSpec:
    spec = getattr(importlib.import_module(module_name), "SPEC", None)
    if not isinstance(spec, ModelSpec):
        raise UserError(f"model module {module_name} defines no SPEC (a ppasr.model.registry.ModelSpec)")
    _specs[spec.name] = spec
    return spec


def _plugins() -> list[str]:
    return [name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(",") if name.strip()]


def model_names() -> list[str]:
    """Every model ``--use_model`` accepts: the built-in ones and those named in ``PPASR_MODELS``."""
    for module_name in _plugins():
        try:
            _load(module_name)
        except ImportError as e:
            raise UserError(f"{PLUGINS_ENV} names {module_name}, which cannot be imported: {e}") from None
    return sorted(set(_BUILT_IN) | set(_specs))


def model_spec(name: str) -> ModelSpec:
    """The spec registered as ``name``."""
    if name not in _specs:
        if name in _BUILT_IN:
            return _load(_BUILT_IN[name])
        if name not in model_names():
            raise UserError(f"unknown model {name!r} (known: {', '.join(model_names())}); a model of your own: "
                            f"put its module on the Python path and name it in {PLUGINS_ENV}")
    return _specs[name]
