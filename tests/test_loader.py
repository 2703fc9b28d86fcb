"""Augmentation in train.py's real data path: 2 DataLoader workers and the default
conf/augmentation.json. Every utterance of this corpus is the same clip, so any two training features
that come out equal were augmented with the same random draws."""
from __future__ import annotations

import hashlib
import json
import os
import runpy
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, TINY_MODEL
from ppasr.data.audio import read_audio
from ppasr.data.features import AudioFeaturizer, FeatureNormalizer
from ppasr.model.deepspeech2 import DeepSpeech2Model
from ppasr.utils import available_cores

pytestmark = pytest.mark.skipif(available_cores() < 2, reason="needs 2 cores for 2 loader workers")
COPIES = 12  # batch size 2: 6 batches per epoch, dealt alternately to the two workers


@dataclass
class ModelInputs:
    """The features the model received (each trimmed to its own length), by mode."""
    train: list[np.ndarray] = field(default_factory=list)
    test: list[np.ndarray] = field(default_factory=list)


def digest(feature: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(feature, dtype=np.float32).tobytes()).hexdigest()


def has_mask(feature: np.ndarray) -> bool:
    """SpecAugment sets whole frequency bands or whole frames to one value."""
    return bool((np.ptp(feature, axis=1) == 0).any() or (np.ptp(feature, axis=0) == 0).any())


@pytest.fixture(scope="module")
def one_clip_corpus(prepared_corpus, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("one_clip") / "work"
    shutil.copytree(prepared_corpus, root, symlinks=True)
    line = (root / "dataset/manifest.train").read_text(encoding="utf-8").splitlines()[0] + "\n"
    (root / "clip.train").write_text(line * COPIES, encoding="utf-8")
    (root / "clip.test").write_text(line * 3, encoding="utf-8")
    return root


def train_and_record(root: Path, seed: int, monkeypatch) -> ModelInputs:
    """Run train.py (2 epochs, 2 workers, default augmentation) in this process, recording the
    features the model receives; the one place this file reaches inside training."""
    inputs = ModelInputs()
    original = DeepSpeech2Model.forward

    def recording_forward(self, audio, audio_len, *rest):
        lengths = audio_len.numpy()
        target = inputs.train if self.training else inputs.test
        target += [audio.numpy()[i, :, :lengths[i]].copy() for i in range(len(lengths))]
        return original(self, audio, audio_len, *rest)

    work = root.parent / f"run_seed{seed}_{len(os.listdir(root.parent))}"
    shutil.copytree(root, work, symlinks=True)
    with monkeypatch.context() as patch:
        patch.setattr(DeepSpeech2Model, "forward", recording_forward)
        patch.chdir(work)
        patch.setattr(sys, "argv", ["train.py", *TINY_MODEL, "--batch_size=2", "--num_workers=2", "--num_epoch=2",
                                    f"--seed={seed}", "--train_manifest=clip.train", "--test_manifest=clip.test",
                                    "--augment_conf_path=conf/augmentation.json", "--log_interval=100"])
        runpy.run_path(str(REPO / "train.py"), run_name="__main__")
    assert len(inputs.train) == 2 * COPIES and len(inputs.test) == 2 * 3
    return inputs


@pytest.fixture(scope="module")
def runs(one_clip_corpus) -> dict[str, ModelInputs]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return {name: train_and_record(one_clip_corpus, seed, monkeypatch)
                for name, seed in (("a", 1000), ("again", 1000), ("other_seed", 7))}


@pytest.fixture(scope="module")
def clean_feature(one_clip_corpus) -> np.ndarray:
    item = json.loads((one_clip_corpus / "clip.train").read_text(encoding="utf-8").splitlines()[0])
    normalizer = FeatureNormalizer(str(one_clip_corpus / "dataset/mean_std.npz"))
    samples, rate = read_audio(str(one_clip_corpus / item["audio_filepath"]), normalizer.feature_config.sample_rate)
    return normalizer.apply(AudioFeaturizer(normalizer.feature_config).featurize(samples, rate))


def test_every_worker_and_epoch_draws_its_own_augmentation(runs):
    digests = [digest(f) for f in runs["a"].train]
    assert len(set(digests)) == len(digests), "two training features got identical augmentation"


def test_augmentation_is_reproducible_for_a_seed(runs):
    assert [digest(f) for f in runs["again"].train] == [digest(f) for f in runs["a"].train]
    assert not {digest(f) for f in runs["other_seed"].train} & {digest(f) for f in runs["a"].train}


def test_specaugment_masks_training_features_and_never_test_features(runs, clean_feature):
    assert not has_mask(clean_feature)
    masked = sum(has_mask(f) for f in runs["a"].train)
    assert masked >= 0.75 * len(runs["a"].train), f"only {masked} of {len(runs['a'].train)} features masked"
    for feature in runs["a"].test:
        np.testing.assert_allclose(feature, clean_feature, rtol=0, atol=1e-5)
