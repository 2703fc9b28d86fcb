"""The model flags as typed options (no paddle import: scripts build them before loading paddle)."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelChoice:
    """The model flags: which model, and PPASR's DeepSpeech2 size flags (None: from the checkpoint, else the
    model's defaults)."""

    use_model: str
    cnn_size: int | None = None
    num_rnn_layers: int | None = None
    rnn_size: int | None = None

    def size_flags(self) -> dict[str, int | None]:
        return {name: value for name, value in asdict(self).items() if name != "use_model"}
