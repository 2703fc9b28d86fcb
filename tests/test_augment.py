"""Tests for the augmentation pipeline and its augmentors (ppasr.data.augment, augmentors, spec_augment)
on real speech (tests/resources/test.wav)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile

import ppasr.data.augmentors as augmentors
from helpers import REPO
from ppasr.data.augment import AugmentationPipeline, build_augmentation_pipeline
from ppasr.data.spec_augment import SpecAugment
from ppasr.errors import UserError

TEST_WAV = REPO / "tests" / "resources" / "test.wav"


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    """The reference utterance as mono float32 samples and its rate."""
    data, sr = soundfile.read(str(TEST_WAV), dtype="float32", always_2d=True)
    return data.mean(axis=1).astype(np.float32), int(sr)


def _entry(kind: str, prob: float = 1.0, **params) -> dict:
    return {"type": kind, "params": params, "prob": prob}


def _white_noise_manifest(tmp_path: Path, seconds: float, sr: int, name: str = "noise") -> Path:
    """Write a white-noise wav of ``seconds`` at ``sr`` and a manifest listing it."""
    noise = np.random.default_rng(123).uniform(-0.5, 0.5, int(seconds * sr)).astype(np.float32)
    wav = tmp_path / f"{name}.wav"
    soundfile.write(str(wav), noise, sr)
    manifest = tmp_path / f"{name}.manifest"
    manifest.write_text(json.dumps({"audio_filepath": str(wav), "duration": seconds, "text": ""}) + "\n")
    return manifest


def _snr_db(clean: np.ndarray, mixed: np.ndarray) -> float:
    noise = mixed.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise ** 2))


# ----------------------------------------------------------------------------- audio level

@pytest.mark.parametrize("rate", [0.9, 1.1, 1.25])
def test_speed_changes_duration_by_rate(speech, rate):
    x, sr = speech
    pipe = AugmentationPipeline([_entry("speed", min_speed_rate=rate, max_speed_rate=rate, num_rates=1)])
    y, sr_out = pipe.transform_audio(x, sr)
    assert sr_out == sr and y.dtype == np.float32
    assert abs(y.size - x.size / rate) <= 1
    # the audio is time-scaled, not cropped: sample k of the output is near sample k*rate of the input
    k = np.arange(0, y.size, 97)
    assert np.corrcoef(y[k], np.interp(k * (x.size - 1) / (y.size - 1), np.arange(x.size), x))[0, 1] > 0.99


def test_speed_draws_from_discrete_rates_or_uniform(speech):
    x, sr = speech
    allowed = {round(x.size / r) for r in (0.9, 1.0, 1.1)}
    discrete = AugmentationPipeline([_entry("speed", min_speed_rate=0.9, max_speed_rate=1.1, num_rates=3)])
    uniform = AugmentationPipeline([_entry("speed", min_speed_rate=0.9, max_speed_rate=1.1, num_rates=0)])
    seen_discrete, seen_uniform = set(), set()
    for seed in range(12):
        discrete.reseed(seed, 0, 0)
        uniform.reseed(seed, 0, 0)
        seen_discrete.add(discrete.transform_audio(x, sr)[0].size)
        seen_uniform.add(uniform.transform_audio(x, sr)[0].size)
    assert seen_discrete <= allowed and len(seen_discrete) >= 2
    assert len(seen_uniform) > 3
    assert all(round(x.size / 1.1) <= n <= round(x.size / 0.9) for n in seen_uniform)


def test_speed_entry_without_num_rates_is_ppasrs_continuous_rate(speech):
    x, sr = speech
    pipe = AugmentationPipeline([{"type": "speed", "params": {"min_speed_rate": 0.9, "max_speed_rate": 1.1},
                                  "prob": 1.0}])
    sizes = set()
    for seed in range(12):
        pipe.reseed(seed, 0, 0)
        sizes.add(pipe.transform_audio(x, sr)[0].size)
    assert len(sizes) > 3


def test_shipped_config_keeps_ppasrs_probabilities():
    entries = json.loads((REPO / "conf" / "augmentation.json").read_text(encoding="utf-8"))
    probs = {e["type"]: e["prob"] for e in entries}
    assert probs == {"noise": 0.5, "speed": 0.5, "shift": 0.5, "volume": 0.5, "specaug": 1.0}
    speed = next(e for e in entries if e["type"] == "speed")["params"]
    assert speed == {"min_speed_rate": 0.9, "max_speed_rate": 1.1}


def test_volume_changes_rms_by_gain(speech):
    x, sr = speech
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2))
    fixed = AugmentationPipeline([_entry("volume", min_gain_dBFS=6.0, max_gain_dBFS=6.0)])
    y, _ = fixed.transform_audio(x, sr)
    assert 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)) / rms) == pytest.approx(6.0, abs=1e-4)
    ranged = AugmentationPipeline([_entry("volume", min_gain_dBFS=-15, max_gain_dBFS=15)], seed=3)
    gains = [20 * np.log10(np.sqrt(np.mean(ranged.transform_audio(x, sr)[0].astype(np.float64) ** 2)) / rms)
             for _ in range(8)]
    assert all(-15 - 1e-4 <= g <= 15 + 1e-4 for g in gains)
    assert np.ptp(gains) > 1.0


@pytest.mark.parametrize("shift_ms, shift", [(3.0, 48), (-3.0, -48)])
def test_shift_moves_signal(speech, shift_ms, shift):
    x, sr = speech
    pipe = AugmentationPipeline([_entry("shift", min_shift_ms=shift_ms, max_shift_ms=shift_ms)])
    y, _ = pipe.transform_audio(x, sr)
    assert y.size == x.size
    if shift > 0:  # advanced: start dropped, zeros at the end
        np.testing.assert_array_equal(y[:-shift], x[shift:])
        assert not y[-shift:].any()
    else:  # delayed: zeros at the start
        np.testing.assert_array_equal(y[-shift:], x[:shift])
        assert not y[:-shift].any()


def test_resample_returns_new_rate_and_later_augmentors_use_it(speech):
    x, sr = speech
    pipe = AugmentationPipeline([_entry("resample", new_sample_rate=8000),
                                 _entry("shift", min_shift_ms=3.0, max_shift_ms=3.0)])
    y, sr_out = pipe.transform_audio(x, sr)
    assert sr_out == 8000
    assert abs(y.size - x.size // 2) <= 2
    assert not y[-24:].any() and y[-25] != 0  # 3 ms at 8 kHz = 24 samples


def test_noise_snr_within_range(speech, tmp_path):
    x, sr = speech
    manifest = _white_noise_manifest(tmp_path, 10.0, sr)
    pipe = AugmentationPipeline([_entry("noise", min_snr_dB=10, max_snr_dB=20,
                                        noise_manifest_path=str(manifest))], seed=1)
    snrs = []
    for _ in range(6):
        y, sr_out = pipe.transform_audio(x, sr)
        assert sr_out == sr and y.shape == x.shape and y.dtype == np.float32
        snrs.append(_snr_db(x, y))
    assert all(10 - 0.01 <= s <= 20 + 0.01 for s in snrs), snrs
    assert np.ptp(snrs) > 0.5


def test_short_noise_is_tiled_over_whole_utterance(speech, tmp_path):
    x, sr = speech
    # 0.5 s at 8 kHz: also checks that the clip is resampled to the utterance rate
    manifest = _white_noise_manifest(tmp_path, 0.5, 8000)
    pipe = AugmentationPipeline([_entry("noise", min_snr_dB=10, max_snr_dB=10,
                                        noise_manifest_path=str(manifest))])
    y, _ = pipe.transform_audio(x, sr)
    added = y.astype(np.float64) - x
    period = int(0.5 * sr)
    tail_rms = np.sqrt(np.mean(added[-period:] ** 2))
    assert tail_rms > 0.5 * np.sqrt(np.mean(added ** 2))
    assert _snr_db(x, y) == pytest.approx(10.0, abs=0.01)
    # the added signal repeats with the clip's period (looped, not padded)
    np.testing.assert_allclose(added[period:], added[:-period], atol=1e-5)


def test_noise_offset_is_random(speech, tmp_path):
    x, sr = speech
    manifest = _white_noise_manifest(tmp_path, 0.5, sr)
    pipe = AugmentationPipeline([_entry("noise", min_snr_dB=10, max_snr_dB=10,
                                        noise_manifest_path=str(manifest))])
    starts = {float(pipe.transform_audio(x, sr)[0][0] - x[0]) for _ in range(4)}
    assert len(starts) > 1


def test_silent_speech_or_noise_gives_no_nan(speech, tmp_path):
    x, sr = speech
    silent_wav = tmp_path / "silence.wav"
    soundfile.write(str(silent_wav), np.zeros(sr, dtype=np.float32), sr)
    silent_manifest = tmp_path / "silence.manifest"
    silent_manifest.write_text(json.dumps({"audio_filepath": str(silent_wav), "duration": 1.0}) + "\n")
    loud_manifest = _white_noise_manifest(tmp_path, 1.0, sr)
    with_silent_noise = AugmentationPipeline([_entry("noise", min_snr_dB=10, max_snr_dB=10,
                                                     noise_manifest_path=str(silent_manifest))])
    y, _ = with_silent_noise.transform_audio(x, sr)
    np.testing.assert_array_equal(y, x)
    with_noise = AugmentationPipeline([_entry("noise", min_snr_dB=10, max_snr_dB=10,
                                              noise_manifest_path=str(loud_manifest))])
    z, _ = with_noise.transform_audio(np.zeros(sr, dtype=np.float32), sr)
    assert np.isfinite(z).all() and not z.any()


def test_noise_clips_are_cached(speech, tmp_path, monkeypatch):
    x, sr = speech
    manifest = _white_noise_manifest(tmp_path, 1.0, sr)
    pipe = AugmentationPipeline([_entry("noise", min_snr_dB=10, max_snr_dB=20,
                                        noise_manifest_path=str(manifest))])
    reads = []
    real_read = augmentors.read_audio
    monkeypatch.setattr(augmentors, "read_audio", lambda *a, **k: reads.append(a) or real_read(*a, **k))
    for _ in range(5):
        pipe.transform_audio(x, sr)
    assert len(reads) == 1


def test_noise_cache_is_bounded(speech, tmp_path):
    x, sr = speech
    manifests = [_white_noise_manifest(tmp_path, 1.0, sr, name=f"n{i}") for i in range(3)]
    lines = "".join(m.read_text() for m in manifests)
    manifest = tmp_path / "all.manifest"
    manifest.write_text(lines)
    noise = augmentors.NoisePerturb(10, 20, str(manifest), max_cache_samples=2 * sr)
    rng = np.random.default_rng(0)
    for _ in range(20):
        noise(x, sr, rng)
    assert sum(c.size for c in noise._cache.values()) <= 2 * sr
    assert len(noise._cache) == 2


@pytest.mark.parametrize("content", [None, ""])
def test_missing_or_empty_noise_manifest_warns_and_skips(speech, tmp_path, content, caplog):
    x, sr = speech
    manifest = tmp_path / "manifest.noise"
    if content is not None:
        manifest.write_text(content)
    config = [_entry("noise", min_snr_dB=10, max_snr_dB=20, noise_manifest_path=str(manifest)),
              _entry("volume", min_gain_dBFS=6, max_gain_dBFS=6)]
    with caplog.at_level(logging.WARNING, logger="ppasr"):
        pipe = AugmentationPipeline(config)
    assert len(caplog.records) == 1 and "noise" in caplog.records[0].getMessage()
    assert caplog.records[0].levelno == logging.WARNING
    assert [type(a) for _, a in pipe.audio_augmentors] == [augmentors.VolumePerturb]
    y, _ = pipe.transform_audio(x, sr)
    np.testing.assert_allclose(y, x * np.float32(10 ** 0.3), rtol=1e-6)


# ----------------------------------------------------------------------------- feature level

def _feature(mean: float = 0.0) -> np.ndarray:
    return (np.random.default_rng(7).standard_normal((161, 200)) + mean).astype(np.float32)


def _masked_rows_cols(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check that changed cells are whole rows/columns; return the masked row and column indices."""
    changed = after != before
    rows = np.flatnonzero(changed.all(axis=1))
    cols = np.flatnonzero(changed.all(axis=0))
    union = np.zeros_like(changed)
    union[rows, :] = True
    union[:, cols] = True
    np.testing.assert_array_equal(changed, union)
    return rows, cols


@pytest.mark.parametrize("replace_with_zero", [True, False])
def test_specaug_masks_bands_and_frames(replace_with_zero):
    feature = _feature(mean=3.0)
    original = feature.copy()
    pipe = AugmentationPipeline([_entry("specaug", F=20, T=30, n_freq_masks=2, n_time_masks=2,
                                        replace_with_zero=replace_with_zero)])
    fill = np.float32(0.0) if replace_with_zero else np.float32(feature.mean(dtype=np.float64))
    total_rows = total_cols = 0
    for seed in range(6):
        pipe.reseed(seed, 0, 0)
        out = pipe.transform_feature(feature)
        assert out.shape == feature.shape and out.dtype == np.float32
        np.testing.assert_array_equal(feature, original)  # input untouched
        rows, cols = _masked_rows_cols(feature, out)
        assert rows.size <= 40 and cols.size <= 60
        assert (out[rows, :] == fill).all() and (out[:, cols] == fill).all()
        total_rows += rows.size
        total_cols += cols.size
    assert total_rows > 0 and total_cols > 0


def test_specaug_time_mask_capped_by_p():
    feature = _feature()
    pipe = AugmentationPipeline([_entry("specaug", F=0, T=100, n_freq_masks=0, n_time_masks=1, p=0.05)])
    widths = []
    for seed in range(10):
        pipe.reseed(seed, 0, 0)
        rows, cols = _masked_rows_cols(feature, pipe.transform_feature(feature))
        assert rows.size == 0
        widths.append(cols.size)
    assert max(widths) <= 10 and max(widths) > 0


def test_specaug_adaptive_time_masks():
    feature = _feature()
    by_size = AugmentationPipeline([_entry("specaug", F=0, T=0, n_freq_masks=0, n_time_masks=1,
                                           adaptive_size_ratio=0.2)])
    by_number = AugmentationPipeline([_entry("specaug", F=0, T=1, n_freq_masks=0, n_time_masks=0,
                                             adaptive_number_ratio=0.1, max_n_time_masks=5)])
    size_widths, number_counts = [], []
    for seed in range(10):
        by_size.reseed(seed, 0, 0)
        by_number.reseed(seed, 0, 0)
        size_widths.append(_masked_rows_cols(feature, by_size.transform_feature(feature))[1].size)
        number_counts.append(_masked_rows_cols(feature, by_number.transform_feature(feature))[1].size)
    assert 0 < max(size_widths) <= 40  # width up to 0.2 * 200 frames although T is 0
    assert 0 < max(number_counts) <= 5  # 20 masks by ratio, capped at 5


def test_specaug_time_warp():
    t = np.linspace(0, 1, 120, dtype=np.float32)
    feature = np.stack([np.sin(2 * np.pi * (k + 1) * t) for k in range(40)]).astype(np.float32)
    warp = AugmentationPipeline([_entry("specaug", F=0, T=0, n_freq_masks=0, n_time_masks=0, W=10)])
    outs = []
    for seed in range(3):
        warp.reseed(seed, 0, 0)
        out = warp.transform_feature(feature)
        assert out.shape == feature.shape
        np.testing.assert_allclose(out[:, [0, -1]], feature[:, [0, -1]], atol=1e-6)
        outs.append(out)
    assert any(np.abs(o - feature).max() > 1e-3 for o in outs)
    still = AugmentationPipeline([_entry("specaug", F=0, T=0, n_freq_masks=0, n_time_masks=0, W=0)])
    np.testing.assert_array_equal(still.transform_feature(feature), feature)


def test_feature_stage_respects_prob():
    feature = _feature()
    never = AugmentationPipeline([_entry("specaug", prob=0.0, F=30, T=50, n_freq_masks=2, n_time_masks=2)])
    for _ in range(5):
        np.testing.assert_array_equal(never.transform_feature(feature), feature)


# ----------------------------------------------------------------------------- seeding

def _full_config(tmp_path: Path, sr: int) -> list:
    manifest = _white_noise_manifest(tmp_path, 2.0, sr)
    return [_entry("noise", min_snr_dB=10, max_snr_dB=50, noise_manifest_path=str(manifest)),
            _entry("speed", min_speed_rate=0.9, max_speed_rate=1.1, num_rates=0),
            _entry("shift", min_shift_ms=-5, max_shift_ms=5),
            _entry("volume", min_gain_dBFS=-15, max_gain_dBFS=15),
            _entry("specaug", F=10, T=50, n_freq_masks=2, n_time_masks=2)]


def _run(pipe: AugmentationPipeline, x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    audio, _ = pipe.transform_audio(x, sr)
    return audio, pipe.transform_feature(_feature())


def _same(a: tuple, b: tuple) -> bool:
    return all(u.shape == v.shape and np.array_equal(u, v) for u, v in zip(a, b))


def test_reseed_workers_epochs_independent_and_reproducible(speech, tmp_path):
    x, sr = speech
    config = _full_config(tmp_path, sr)
    worker0, worker1 = AugmentationPipeline(config), AugmentationPipeline(config)
    worker0.reseed(42, 0, 0)
    worker1.reseed(42, 0, 1)
    a, b = _run(worker0, x, sr), _run(worker1, x, sr)
    assert not _same(a, b)
    assert not np.array_equal(a[1], b[1])  # feature stage differs too
    worker1.reseed(42, 0, 0)
    assert _same(_run(worker1, x, sr), a)
    worker1.reseed(42, 1, 0)
    assert not _same(_run(worker1, x, sr), a)
    assert _same(_run(AugmentationPipeline(config, seed=42), x, sr), a)  # constructor == reseed(seed, 0, 0)


def test_reseed_rejects_bad_values():
    pipe = AugmentationPipeline(None)
    with pytest.raises(ValueError, match="worker_id"):
        pipe.reseed(0, 0, -1)


# ----------------------------------------------------------------------------- config

@pytest.mark.parametrize("config, message", [
    ([_entry("volume", min_gain_dBFS=0, max_gain_dBFS=1), _entry("chorus")],
     r"entry 1 \(type 'chorus'\).*unknown augmentor type"),
    ([_entry("volume", min_gain_dBFS=0, max_gain_dBFS=1, gain=3)], r"entry 0 .*unknown param.*'gain'"),
    ([_entry("shift", min_shift_ms=-5)], r"entry 0 .*missing required param 'max_shift_ms'"),
    ([_entry("volume", prob=1.5, min_gain_dBFS=0, max_gain_dBFS=1)], r"entry 0 .*'prob' must be"),
    ([_entry("volume", prob=-0.1, min_gain_dBFS=0, max_gain_dBFS=1)], r"entry 0 .*'prob' must be"),
    ([_entry("speed", min_speed_rate=1.2, max_speed_rate=0.8)],
     r"entry 0 .*'min_speed_rate' \(1.2\) is greater than 'max_speed_rate'"),
    ([_entry("noise", min_snr_dB=50, max_snr_dB=10, noise_manifest_path="x")], r"entry 0 .*min_snr_dB"),
    ([_entry("volume", min_gain_dBFS="loud", max_gain_dBFS=1)], r"entry 0 .*'min_gain_dBFS' must be"),
    ([_entry("specaug", F=10, T=50, n_freq_masks=2, n_time_masks=2, p=2.0)], r"entry 0 .*'p' must be"),
    ([{"type": "volume", "params": {"min_gain_dBFS": 0, "max_gain_dBFS": 1}, "probability": 1}],
     r"entry 0 .*unknown key.*probability"),
    ([{"type": "volume", "prob": 1.0}], r"entry 0 .*'params' must be"),
    (["volume"], r"entry 0: expected an object"),
    ('{"type": "volume"}', r"must be a JSON list"),
    ('[{"type": "volume",]', r"invalid JSON"),
])
def test_bad_config_raises_value_error_naming_entry(config, message):
    with pytest.raises(ValueError, match=message):
        AugmentationPipeline(config)


def test_invalid_json_file_error_names_path(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"type": "speed", }]')
    with pytest.raises(UserError, match=f"invalid JSON in augmentation config file {path}"):
        build_augmentation_pipeline(str(path))


def test_config_from_file_string_and_list_agree(speech, tmp_path):
    x, sr = speech
    config = [_entry("volume", min_gain_dBFS=-6, max_gain_dBFS=6),
              _entry("shift", min_shift_ms=-5, max_shift_ms=5)]
    path = tmp_path / "aug.json"
    path.write_text(json.dumps(config))
    outputs = [AugmentationPipeline(c, seed=9).transform_audio(x, sr)[0]
               for c in (config, json.dumps(config), str(path), path)]
    outputs.append(build_augmentation_pipeline(path, seed=9).transform_audio(x, sr)[0])
    assert not np.array_equal(outputs[0], x)
    for out in outputs[1:]:
        np.testing.assert_array_equal(out, outputs[0])


@pytest.mark.parametrize("make", [lambda: AugmentationPipeline(None), lambda: AugmentationPipeline("None"),
                                  lambda: build_augmentation_pipeline("None"),
                                  lambda: build_augmentation_pipeline(None)])
def test_none_config_is_identity(speech, make):
    x, sr = speech
    pipe = make()
    assert not pipe.enabled
    y, sr_out = pipe.transform_audio(x, sr)
    assert sr_out == sr
    np.testing.assert_array_equal(y, x)
    feature = _feature()
    np.testing.assert_array_equal(pipe.transform_feature(feature), feature)


def test_default_config_file_is_valid(speech, monkeypatch):
    x, sr = speech
    monkeypatch.chdir(REPO)
    pipe = build_augmentation_pipeline(REPO / "conf" / "augmentation.json")
    kinds = [type(a) for _, a in pipe.audio_augmentors]
    assert kinds[-3:] == [augmentors.SpeedPerturb, augmentors.ShiftPerturb, augmentors.VolumePerturb]
    assert [type(a) for _, a in pipe.feature_augmentors] == [SpecAugment]
    y, sr_out = pipe.transform_audio(x, sr)
    assert sr_out == sr and np.isfinite(y).all()
    assert pipe.transform_feature(_feature()).shape == (161, 200)


def test_unreadable_noise_clip_is_dropped_with_warning(speech, tmp_path, caplog):
    x, sr = speech
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    manifest = tmp_path / "bad.manifest"
    manifest.write_text(json.dumps({"audio_filepath": str(bad), "duration": 1.0, "text": ""}) + "\n")
    pipe = AugmentationPipeline([_entry("noise", min_snr_dB=10, max_snr_dB=20, noise_manifest_path=str(manifest))])
    with caplog.at_level(logging.WARNING, logger="ppasr"):
        out, out_sr = pipe.transform_audio(x, sr)
    assert [r.levelno for r in caplog.records] == [logging.WARNING] and "bad.wav" in caplog.records[0].getMessage()
    assert out_sr == sr and np.array_equal(out, x)
    out, _ = pipe.transform_audio(x, sr)  # no second warning, no crash
    assert np.array_equal(out, x)
