"""What the data side of a run reads: manifests, vocabulary, mean/std, features and the loader.

Scripts fill it from flags of the same names (``ppasr.cli.options``); the fields a script has no flag
for (eval.py has no training manifest) keep the neutral defaults below.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataOptions:
    """Data files and loader settings of train.py (and of eval.py / tools/tune.py, test side only)."""

    test_manifest: str
    dataset_vocab: str
    mean_std_path: str
    feature_method: str | None  # None: the method mean_std.npz records
    batch_size: int
    num_workers: int
    train_manifest: str | None = None
    augment_conf_path: str | None = None
    min_duration: float = 0.0
    max_duration: float = -1.0  # -1: no limit
    max_batch_duration: float = 0.0  # 0: batches of batch_size utterances
