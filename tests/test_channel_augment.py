"""Channel augmentors of the demo (issue 22): a synthesised room and a telephone band, seeded, each with the
effect it promises measured."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ppasr.data.augment import AugmentationPipeline
from ppasr.data.augmentors import PitchShift, RoomReverb, TelephoneBand, impulse_response

RATE = 16000


def band_energy_db(samples: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(samples.size, 1 / RATE)
    return 10 * np.log10(spectrum[(freqs >= low) & (freqs < high)].sum() + 1e-30)


@pytest.mark.parametrize("rt60", [0.3, 0.7])
def test_the_impulse_response_decays_60_db_in_rt60(rt60):
    ir = impulse_response(rt60, drr_db=6.0, sample_rate=RATE, rng=np.random.default_rng(0))
    tail = ir.copy()
    tail[0] = 0.0
    schroeder = np.cumsum(tail[::-1] ** 2)[::-1]  # energy still to come (Schroeder's backward integral)
    decay_db = 10 * np.log10(schroeder / schroeder[0] + 1e-30)
    # the time the remaining energy takes to fall from -5 to -25 dB, extrapolated to 60 dB (T20)
    t5, t25 = np.argmax(decay_db < -5) / RATE, np.argmax(decay_db < -25) / RATE
    assert 3 * (t25 - t5) == pytest.approx(rt60, rel=0.15)
    assert 10 * np.log10(1.0 / np.sum(tail ** 2)) == pytest.approx(6.0, abs=0.01)  # direct-to-reverberant ratio


def test_reverb_is_seeded_keeps_length_and_level_and_smears_an_impulse():
    click = np.zeros(RATE, dtype=np.float32)
    click[1000] = 1.0
    room = RoomReverb(min_rt60=0.5, max_rt60=0.5, min_drr_dB=0.0, max_drr_dB=0.0)
    a, _ = room(click, RATE, np.random.default_rng(1))
    b, _ = room(click, RATE, np.random.default_rng(1))
    c, _ = room(click, RATE, np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c) and a.shape == click.shape
    assert np.mean(a ** 2) == pytest.approx(np.mean(click ** 2), rel=1e-4)
    assert np.abs(a[:1000]).max() < 1e-6 and np.sum(a[1000 + RATE // 20:] ** 2) > 0.05 * np.sum(a ** 2)  # 50 ms on: still ringing
    silent, _ = room(np.zeros(100, dtype=np.float32), RATE, np.random.default_rng(0))
    assert np.all(np.isfinite(silent)) and not silent.any()  # silence stays silence, never NaN


def test_telephone_keeps_the_band_and_removes_the_rest():
    noise = np.random.default_rng(0).standard_normal(RATE * 2).astype(np.float32) * 0.1
    phone = TelephoneBand(min_low_hz=300, max_low_hz=300, min_high_hz=3400, max_high_hz=3400, mu_law=False)
    out, rate = phone(noise, RATE, np.random.default_rng(0))
    assert rate == RATE and out.shape == noise.shape
    for low, high in ((0, 280), (3450, 8000)):
        assert band_energy_db(out, low, high) < band_energy_db(noise, low, high) - 60
    assert band_energy_db(out, 400, 3300) == pytest.approx(band_energy_db(noise, 400, 3300), abs=0.1)


def test_mu_law_quantises_to_256_levels_and_is_seeded():
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE)).astype(np.float32)
    phone = TelephoneBand()
    a, _ = phone(tone, RATE, np.random.default_rng(3))
    b, _ = phone(tone, RATE, np.random.default_rng(3))
    assert np.array_equal(a, b) and np.all(np.isfinite(a))
    assert len(np.unique(np.round(a / np.abs(a).max(), 6))) <= 255
    assert np.corrcoef(a, tone)[0, 1] > 0.99  # a 1 kHz tone passes a telephone


def test_the_pipeline_reads_them_from_ppasr_json():
    config = ('[{"type": "reverb", "params": {"min_rt60": 0.3, "max_rt60": 0.6}, "prob": 1.0},'
              ' {"type": "telephone", "params": {"mu_law": false}, "prob": 1.0}]')
    pipeline = AugmentationPipeline(config)
    assert [type(augmentor).__name__ for _, augmentor in pipeline.audio_augmentors] == ["RoomReverb", "TelephoneBand"]
    with pytest.raises(Exception, match="max_rt60"):
        AugmentationPipeline('[{"type": "reverb", "params": {"min_rt60": 0.9, "max_rt60": 0.3}, "prob": 1.0}]')


def test_the_demos_second_phase_adds_the_channels_to_the_first_phases_augmentation():
    """tools/demo.sh trains epochs 1-2 with conf/augmentation_demo.json, then resumes with
    conf/augmentation_demo_channels.json: the same augmentors with a room first and a telephone last."""
    import json
    from pathlib import Path

    conf = Path(__file__).resolve().parents[1] / "conf"
    first = json.loads((conf / "augmentation_demo.json").read_text(encoding="utf-8"))
    second = json.loads((conf / "augmentation_demo_channels.json").read_text(encoding="utf-8"))
    assert second[1:-1] == first
    assert (second[0]["type"], second[-1]["type"]) == ("reverb", "telephone")
    pipeline = AugmentationPipeline(conf / "augmentation_demo_channels.json")
    kinds = [type(augmentor).__name__ for _, augmentor in pipeline.audio_augmentors]
    assert kinds[0] == "RoomReverb" and kinds[-1] == "TelephoneBand"


@pytest.mark.parametrize("semitones", [-2.0, 3.0, 12.0])
def test_pitch_moves_every_frequency_and_keeps_the_timing_and_level(semitones):
    seconds = np.arange(2 * RATE) / RATE
    burst = np.where((seconds >= 0.5) & (seconds < 1.0), np.sin(2 * np.pi * 440 * seconds), 0.0).astype(np.float32)
    out, rate = PitchShift(semitones, semitones)(burst, RATE, np.random.default_rng(0))
    assert rate == RATE and out.shape == burst.shape
    peak = np.fft.rfftfreq(out.size, 1 / RATE)[np.argmax(np.abs(np.fft.rfft(out)))]
    assert peak == pytest.approx(440 * 2 ** (semitones / 12), abs=1.0)
    loud = np.flatnonzero(np.abs(out) > 0.3) / RATE
    assert loud[0] == pytest.approx(0.5, abs=0.01) and loud[-1] == pytest.approx(1.0, abs=0.01)  # same place, same length
    assert np.mean(out ** 2) == pytest.approx(np.mean(burst ** 2), rel=1e-3)


def test_pitch_is_seeded_and_moves_the_formants_of_speech():
    """A voice with a higher vocal tract: the spectral centroid of real speech (tests/resources/test.wav) rises by
    the drawn factor; the same seed gives the same samples."""
    from ppasr.data.audio import read_audio

    speech, rate = read_audio(str(Path(__file__).parent / "resources" / "test.wav"), RATE)
    shift = PitchShift(min_semitones=-2, max_semitones=2)
    a, _ = shift(speech, rate, np.random.default_rng(5))
    b, _ = shift(speech, rate, np.random.default_rng(5))
    c, _ = shift(speech, rate, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)

    def centroid(x: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(x.size, 1 / rate)
        keep = freqs < 4000  # well below the Nyquist frequency of the shifted copies
        return float(np.sum(freqs[keep] * power[keep]) / np.sum(power[keep]))

    for semitones in (-2.0, 2.0):
        out, _ = PitchShift(semitones, semitones)(speech, rate, np.random.default_rng(0))
        assert centroid(out) / centroid(speech) == pytest.approx(2 ** (semitones / 12), rel=0.03)
    with pytest.raises(ValueError, match="octave"):
        PitchShift(-13, 0)
    pipeline = AugmentationPipeline('[{"type": "pitch", "params": {"min_semitones": -1, "max_semitones": 1}, "prob": 1.0}]')
    assert type(pipeline.audio_augmentors[0][1]).__name__ == "PitchShift"
