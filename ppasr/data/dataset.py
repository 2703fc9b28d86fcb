"""Manifest dataset (decode → augment → featurise → normalise), collate and SortaGrad samplers."""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import paddle

from ppasr.data.audio import AudioError, read_audio, resample
from ppasr.data.features import AudioFeaturizer, FeatureNormalizer
from ppasr.data.manifest import read_manifest
from ppasr.utils import LoaderWorkerInit

logger = logging.getLogger("ppasr")


def _ctc_min_frames(label: list[int]) -> int:
    """Output frames CTC needs: one per label plus a blank between repeated labels."""
    return len(label) + sum(1 for a, b in zip(label, label[1:]) if a == b)


class ManifestDataset(paddle.io.Dataset):
    """Utterances of a PPASR manifest as (feature [D, T] float32, label int32 array).

    Training sets drop utterances with characters outside the vocabulary and those whose label
    cannot fit the model's output frames (CTC infeasible); evaluation sets keep every utterance
    with a usable duration (their loss labels leave unknown characters out; CER uses the full text).
    ``dropped`` counts what was left out and why. ``output_length`` (the model's, required for a training
    set) maps input feature frames to output frames.
    """

    def __init__(self, manifest_path: str, vocabulary: list[str], normalizer: FeatureNormalizer,
                 augmentation=None, min_duration: float = 0.0, max_duration: float = -1.0, train: bool = True,
                 output_length: Callable[[int], int] | None = None):
        super().__init__()
        if train and output_length is None:
            raise ValueError("a training set needs the model's output_length (CTC feasibility)")
        self.vocabulary = vocabulary
        self.token_ids = {tok: i for i, tok in enumerate(vocabulary)}
        self.normalizer = normalizer
        self.featurizer = AudioFeaturizer(normalizer.feature_config)
        self.augmentation = augmentation
        self.dropped: dict[str, int] = {}
        self.items = []
        sample_rate = normalizer.feature_config.sample_rate
        for item in read_manifest(manifest_path):
            duration = float(item["duration"])
            if duration < min_duration or (max_duration != -1 and duration > max_duration):
                self._drop("duration outside [min_duration, max_duration]")
                continue
            label = [self.token_ids[ch] for ch in item["text"] if ch in self.token_ids]
            if train and len(label) != len(item["text"]):
                self._drop("text has characters outside the vocabulary")
                continue
            if train and output_length(self.featurizer.num_frames(int(duration * sample_rate))) < max(
                    1, _ctc_min_frames(label)):
                self._drop("label longer than the model's output frames (CTC infeasible)")
                continue
            self.items.append((item["audio_filepath"], duration, item["text"], label))
        self.items.sort(key=lambda x: x[1])  # SortaGrad order: shortest first
        self.durations = [x[1] for x in self.items]
        self.seed, self.epoch = 0, 0

    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, seed: int, epoch: int) -> None:
        """Select the augmentation streams of ``epoch``; call before the epoch's loader starts."""
        self.seed, self.epoch = seed, epoch

    def __getitem__(self, index: int):
        path, _, text, label = self.items[index]
        try:
            samples, sample_rate = read_audio(path, self.normalizer.feature_config.sample_rate)
            if self.augmentation is not None:
                # one stream per (seed, epoch, utterance): the same augmentation whichever worker
                # loads it, with any number of workers, and after a resume in the middle of an epoch
                self.augmentation.reseed(self.seed, self.epoch, index)
                samples, sample_rate = self.augmentation.transform_audio(samples, sample_rate)
                if sample_rate != self.featurizer.config.sample_rate:
                    samples = resample(samples, sample_rate, self.featurizer.config.sample_rate)
                    sample_rate = self.featurizer.config.sample_rate
            feature = self.normalizer.apply(self.featurizer.featurize(samples, sample_rate))
            if self.augmentation is not None:
                feature = self.augmentation.transform_feature(feature)
        except AudioError as e:  # bad audio skips the utterance; anything else is a bug and keeps its traceback
            logger.warning("skip: %s: %s", path, e)
            return None
        return feature.astype(np.float32), np.array(label, dtype=np.int32), index

    def text(self, index: int) -> str:
        return self.items[index][2]


def collate(batch):
    """Pad a batch: features [B, D, T], lengths [B], labels [B, L] (pad 0), label lengths, indices.

    Utterances that failed to load (None) are left out. When all failed, a one-frame placeholder
    with index -1 comes back (paddle's DataLoader cannot pass None or empty arrays); see
    ``is_placeholder``.
    """
    loaded = [b for b in batch if b is not None]
    if not loaded:
        return (np.zeros((1, 1, 1), np.float32), np.ones(1, np.int64), np.zeros((1, 1), np.int32),
                np.ones(1, np.int64), np.full(1, -1, np.int64))
    batch = loaded
    dim = batch[0][0].shape[0]
    max_frames = max(f.shape[1] for f, _, _ in batch)
    max_label = max(1, max(len(l) for _, l, _ in batch))
    features = np.zeros((len(batch), dim, max_frames), dtype=np.float32)
    labels = np.zeros((len(batch), max_label), dtype=np.int32)
    feature_lens = np.zeros(len(batch), dtype=np.int64)
    label_lens = np.zeros(len(batch), dtype=np.int64)
    for i, (feature, label, _) in enumerate(batch):
        features[i, :, :feature.shape[1]] = feature
        labels[i, :len(label)] = label
        feature_lens[i] = feature.shape[1]
        label_lens[i] = len(label)
    indices = np.array([idx for _, _, idx in batch], dtype=np.int64)
    return features, feature_lens, labels, label_lens, indices


def build_loader(dataset: ManifestDataset, sampler: paddle.io.BatchSampler, num_workers: int) -> paddle.io.DataLoader:
    """The DataLoader for ``dataset``: ``collate``d batches, workers that die with this process."""
    return paddle.io.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
                                worker_init_fn=LoaderWorkerInit())


def is_placeholder(indices) -> bool:
    """True for the batch ``collate`` returns when no utterance of it could be loaded."""
    return int(np.asarray(indices)[0]) < 0


class SortaGradBatchSampler(paddle.io.BatchSampler):
    """Duration-sorted batches; epoch 1 in order (SortaGrad), later epochs shuffled by step.

    Every step's batches (one per rank) are cut from one group of ``batch_size × num_replicas``
    neighbouring lengths, dealt interleaved (rank r takes the group's r-th, (r+R)-th, … utterance),
    so no rank waits for another holding much longer utterances. Shuffled epochs start the groups
    at a random offset and permute them. The order depends only on (seed, epoch), so a resumed run
    sees exactly the batches it would have seen. With ``even_shards`` every rank runs the same
    number of batches: an end piece smaller than ``num_replicas`` utterances is left out of that epoch
    (the offset changes which); without it nothing is left out and ranks may run fewer batches.
    ``max_batch_duration`` (seconds, 0 = off) sizes the groups by audio instead of ``batch_size``.
    """

    def __init__(self, dataset: ManifestDataset, batch_size: int, shuffle: bool = True, sortagrad: bool = True,
                 seed: int = 0, num_replicas: int = 1, rank: int = 0, even_shards: bool = True,
                 max_batch_duration: float = 0.0):
        self.num_items = len(dataset)
        self.batch_size = batch_size
        self.max_batch_duration = max_batch_duration
        self.durations = dataset.durations if max_batch_duration > 0 else None
        self.shuffle, self.sortagrad, self.seed = shuffle, sortagrad, seed
        self.num_replicas, self.rank, self.even_shards = num_replicas, rank, even_shards
        self.epoch = 1
        self.skip_batches = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the epoch's order; ``skip_batches`` resumes in the middle of an epoch."""
        self.epoch, self.skip_batches = epoch, skip_batches

    def _cut(self, indices: list[int]) -> list[list[int]]:
        """Consecutive groups of ``batch_size × num_replicas`` indices or, with ``max_batch_duration``,
        the longest runs whose every rank's share stays within that many seconds of audio (a share of
        one utterance may exceed it)."""
        if not self.max_batch_duration:
            size = self.batch_size * self.num_replicas
            return [indices[i:i + size] for i in range(0, len(indices), size)]
        groups, group, seconds = [], [], [0.0] * self.num_replicas
        for index in indices:
            share = len(group) % self.num_replicas
            duration = float(self.durations[index])
            if seconds[share] > 0 and seconds[share] + duration > self.max_batch_duration:
                groups.append(group)
                group, seconds, share = [], [0.0] * self.num_replicas, 0
            group.append(index)
            seconds[share] += duration
        return groups + [group] if group else groups

    def _groups(self) -> list[list[int]]:
        """The epoch's steps: each a run of neighbouring (duration-sorted) indices for all ranks."""
        indices = list(range(self.num_items))
        if not self.shuffle or (self.sortagrad and self.epoch == 1):
            return self._cut(indices)
        rng = np.random.default_rng([self.seed, self.epoch])
        span = len(self._cut(indices)[0]) if self.max_batch_duration and indices else \
            self.batch_size * self.num_replicas
        shift = int(rng.integers(0, span)) if span > 1 else 0
        head, rest = indices[:shift], indices[shift:]
        groups = self._cut(rest)
        if head:
            groups.append(head)
        order = rng.permutation(len(groups))
        return [groups[i] for i in order]

    def _rank_batches(self) -> list[list[int]]:
        pieces = [group[self.rank::self.num_replicas] for group in self._groups()
                  if not self.even_shards or len(group) >= self.num_replicas]
        return [piece for piece in pieces if piece]

    def __iter__(self):
        yield from self._rank_batches()[self.skip_batches:]

    def __len__(self) -> int:
        return max(0, len(self._rank_batches()) - self.skip_batches)
