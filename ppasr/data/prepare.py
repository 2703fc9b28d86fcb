"""create_data.py's work: manifests, vocabulary, mean/std and noise manifest.

Input files are only ever read. Bad utterances are skipped with one line naming the file,
the annotation line and the reason; a summary closes the run.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from multiprocessing import Pool

import numpy as np
import soundfile
from tqdm import tqdm

from ppasr.data.audio import TARGET_SAMPLE_RATE, AudioError, audio_info, check_wav_complete, read_audio
from ppasr.data.features import AudioFeaturizer, FeatureConfig, save_mean_std
from ppasr.data.manifest import read_manifest
from ppasr.data.text import clean_text
from ppasr.errors import UserError
from ppasr.logger import PLAIN, logger
from ppasr.utils import pool_worker_init

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au")


@dataclass(frozen=True)
class PrepareOptions:
    """What create_data.py reads (annotations, noise) and writes (manifests, vocabulary, mean/std)."""

    annotation_path: str
    text_mode: str
    train_manifest: str
    test_manifest: str
    is_change_frame_rate: bool
    count_threshold: int
    dataset_vocab: str
    mean_std_path: str
    num_samples: int
    feature_method: str
    noise_path: str
    noise_manifest_path: str
    num_workers: int


def say(message: str) -> None:
    """One of create_data.py's progress lines, as PPASR prints them (no time prefix)."""
    logger.info(message, extra=PLAIN)


class SkipLog:
    """Counts skipped inputs by reason and reports one line for each."""

    def __init__(self):
        self.counts: Counter[str] = Counter()

    def skip(self, where: str, reason: str) -> None:
        self.counts[reason.split(" (")[0]] += 1
        say(f"skip: {where}: {reason}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.counts:
            return "skipped 0"
        parts = ", ".join(f"{reason}: {n}" for reason, n in self.counts.most_common())
        return f"skipped {self.total} ({parts})"


@dataclass
class ManifestEntry:
    """One line of a manifest: the audio training reads, its duration and text."""

    audio_filepath: str
    duration: float
    text: str

    def to_json(self) -> str:
        return json.dumps({"audio_filepath": self.audio_filepath, "duration": round(self.duration, 2),
                           "text": self.text}, ensure_ascii=False)


TEST_ANNOTATION = "test.txt"


@dataclass(frozen=True)
class AnnotationLine:
    """A usable line of an annotation file: the audio it names, its cleaned text, and where it is."""

    audio_path: str
    text: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def is_official_test(self) -> bool:
        """From ``test.txt``, the official test split (PPASR 2.x's convention)."""
        return os.path.basename(self.file) == TEST_ANNOTATION


def read_annotations(annotation_path: str, text_mode: str, skips: SkipLog) -> list[AnnotationLine]:
    """Every usable annotation line of the folder's ``*.txt`` files."""
    if not os.path.isdir(annotation_path):
        raise UserError(f"annotation folder {annotation_path} not found; put `audio_path<TAB>text` "
                        f"files there (e.g. `python3 tools/generate_audio.py`)")
    files = sorted(f for f in os.listdir(annotation_path) if f.endswith(".txt"))
    if not files:
        raise UserError(f"no *.txt annotation files in {annotation_path}; put `audio_path<TAB>text` files there")
    entries = []
    for name in files:
        path = os.path.join(annotation_path, name)
        with open(path, "rb") as f:
            raw_lines = f.read().splitlines()
        if not any(line.strip() for line in raw_lines):
            skips.skip(path, "annotation file is empty")
            continue
        for number, raw in enumerate(raw_lines, start=1):
            where = f"{path}:{number}"
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8").lstrip("\ufeff")
            except UnicodeDecodeError:
                skips.skip(where, "line is not UTF-8")
                continue
            if "\t" not in line:
                skips.skip(where, "no TAB between audio path and text")
                continue
            audio_path, text = line.split("\t", 1)
            text = clean_text(text, text_mode)
            if not text:
                skips.skip(where, "text is empty after filtering")
                continue
            entries.append(AnnotationLine(audio_path.strip().replace("\\", "/"), text, path, number))
    return entries


def _cache_path(cache_dir: str, audio_path: str) -> str:
    stat = os.stat(audio_path)
    key = f"{os.path.abspath(audio_path)}|{stat.st_size}|{stat.st_mtime_ns}"
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]
    stem = os.path.splitext(os.path.basename(audio_path))[0]
    return os.path.join(cache_dir, f"{stem}_{digest}.wav")


def probe_audio(audio_path: str, change_rate: bool, cache_dir: str) -> tuple[str, float]:
    """Check that audio is usable; return (path training reads, duration).

    Audio that is not 16 kHz mono is converted into ``cache_dir`` when ``change_rate`` is on
    (the user's file is never touched), otherwise it is resampled when loaded.
    """
    duration, sample_rate, channels = audio_info(audio_path)
    check_wav_complete(audio_path)
    if duration < 0.025:
        raise AudioError(f"audio is too short ({duration * 1000:.0f} ms)")
    if change_rate and (sample_rate != TARGET_SAMPLE_RATE or channels != 1):
        target = _cache_path(cache_dir, audio_path)
        if not os.path.exists(target):
            samples, _ = read_audio(audio_path, TARGET_SAMPLE_RATE)
            os.makedirs(cache_dir, exist_ok=True)
            tmp = f"{target}.{os.getpid()}.tmp.wav"
            soundfile.write(tmp, samples, TARGET_SAMPLE_RATE, subtype="PCM_16")
            os.replace(tmp, target)
        return target, soundfile.info(target).duration
    return audio_path, duration


def _probe_worker(job: tuple[str, bool, str]) -> tuple[str, float] | str:
    try:
        return probe_audio(*job)
    except AudioError as e:
        return str(e)


def create_manifests(entries: list[AnnotationLine], train_manifest: str, test_manifest: str,
                     change_rate: bool, num_workers: int, skips: SkipLog) -> tuple[int, int, float]:
    """Probe every utterance in parallel and split train/test.

    When the annotation folder holds ``test.txt`` (PPASR 2.x's convention, written by download_data/ for
    official test splits), exactly its utterances form the test set; otherwise every 100th utterance by
    descending duration does (PPASR a3c1911).
    """
    cache_dir = os.path.join(os.path.dirname(os.path.abspath(train_manifest)), "cache", "16k")
    jobs = [(entry.audio_path, change_rate, cache_dir) for entry in entries]
    utterances, official_test = [], []
    with Pool(max(1, num_workers), initializer=pool_worker_init, initargs=(os.getpid(),)) as pool:
        results = pool.imap(_probe_worker, jobs, chunksize=16)
        for entry, result in tqdm(zip(entries, results), total=len(jobs), desc="manifest"):
            if isinstance(result, str):
                skips.skip(f"{entry.where} ({entry.audio_path})", result)
            else:
                (official_test if entry.is_official_test else utterances).append(
                    ManifestEntry(result[0], result[1], entry.text))
    utterances.sort(key=lambda u: (-u.duration, u.audio_filepath))
    if any(entry.is_official_test for entry in entries):
        test, train = official_test, utterances
    else:
        test = [u for i, u in enumerate(utterances) if i % 100 == 0]
        train = [u for i, u in enumerate(utterances) if i % 100 != 0]
    write_lines(train_manifest, [u.to_json() for u in train])
    write_lines(test_manifest, [u.to_json() for u in test])
    return len(train), len(test), sum(u.duration for u in train + test)


def write_lines(path: str, lines: list[str]) -> None:
    """Write text lines atomically (a crash never leaves half a file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp, path)


def merge_test_lines(path: str, prefix: str, lines: list[str]) -> None:
    """Replace the lines of test.txt whose audio path starts with ``prefix``; keep every other line.

    Several corpora share test.txt (download_data/, the synthetic test splits): each owns its folder's lines.
    """
    kept = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            kept = [line.rstrip("\r\n") for line in f if not line.replace("\\", "/").startswith(prefix)]
    write_lines(path, [line for line in kept if line.strip()] + lines)


def build_vocabulary(train_manifest: str, vocab_path: str, count_threshold: int) -> int:
    """Write ``<blank>\\t-1`` then ``char\\tcount`` by descending count; return the size."""
    counter: Counter[str] = Counter()
    for item in read_manifest(train_manifest):
        counter.update(item["text"])
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    lines = ["<blank>\t-1"] + [f"{ch}\t{n}" for ch, n in ranked if n >= count_threshold]
    write_lines(vocab_path, lines)
    return len(lines)


def _stats_worker(job: tuple[list[str], FeatureConfig]) -> tuple[np.ndarray, np.ndarray, int, list, int]:
    paths, config = job
    featurizer = AudioFeaturizer(config)
    total = np.zeros(config.dim, dtype=np.float64)
    total_sq = np.zeros(config.dim, dtype=np.float64)
    frames, failures = 0, []
    for path in paths:
        try:
            samples, sr = read_audio(path, config.sample_rate)
            feature = featurizer.featurize(samples, sr).astype(np.float64)
        except AudioError as e:
            failures.append((path, str(e)))
            continue
        total += feature.sum(axis=1)
        total_sq += np.square(feature).sum(axis=1)
        frames += feature.shape[1]
    return total, total_sq, frames, failures, len(paths)


def compute_mean_std(manifest: str, output_path: str, config: FeatureConfig, num_samples: int,
                     num_workers: int, skips: SkipLog, seed: int = 0) -> int:
    """Per-bin mean/std over ``num_samples`` random utterances (-1 = all), float64 sums."""
    paths = [item["audio_filepath"] for item in read_manifest(manifest)]
    if 0 < num_samples < len(paths):
        rng = np.random.default_rng(seed)
        paths = [paths[i] for i in sorted(rng.choice(len(paths), num_samples, replace=False))]
    chunk = 8
    jobs = [(paths[i:i + chunk], config) for i in range(0, len(paths), chunk)]
    total = np.zeros(config.dim, dtype=np.float64)
    total_sq = np.zeros(config.dim, dtype=np.float64)
    frames = 0
    with Pool(max(1, num_workers), initializer=pool_worker_init, initargs=(os.getpid(),)) as pool, tqdm(total=len(paths), desc="mean_std") as bar:
        for part_sum, part_sq, part_frames, failures, done in pool.imap_unordered(_stats_worker, jobs):
            total += part_sum
            total_sq += part_sq
            frames += part_frames
            for path, reason in failures:
                skips.skip(path, reason)
            bar.update(done)
    if frames == 0:
        raise UserError(f"no audio listed in {manifest} could be featurised for mean/std (reasons above)")
    mean = total / frames
    std = np.sqrt(np.maximum(total_sq / frames - mean ** 2, 0.0))
    save_mean_std(output_path, mean, std, config)
    return frames


def create_noise_manifest(noise_path: str, manifest_path: str, skips: SkipLog) -> int:
    """List readable audio files under ``noise_path`` (short clips are looped at mix time)."""
    if not os.path.isdir(noise_path):
        logger.warning(f"noise folder {noise_path} not found: skipped the noise manifest "
                       f"(noise augmentation will be off)")
        return 0
    lines = []
    for root, _, names in sorted(os.walk(noise_path)):
        for name in sorted(names):
            if not name.lower().endswith(AUDIO_EXTENSIONS):
                continue
            path = os.path.join(root, name).replace("\\", "/")
            try:
                duration, _, _ = audio_info(path)
            except AudioError as e:
                skips.skip(path, str(e))
                continue
            lines.append(json.dumps({"audio_filepath": path, "duration": round(duration, 2), "text": ""},
                                    ensure_ascii=False))
    if not lines:
        logger.warning(f"no usable noise audio in {noise_path}: skipped the noise manifest")
        return 0
    write_lines(manifest_path, lines)
    return len(lines)


def create_data(options: PrepareOptions) -> None:
    """The whole create_data.py job."""
    skips = SkipLog()
    config = FeatureConfig(method=options.feature_method)
    entries = read_annotations(options.annotation_path, options.text_mode, skips)
    if not entries:
        say(skips.summary())
        raise UserError(f"no usable annotation lines in {options.annotation_path} (reasons above)")
    say("开始生成数据列表 (creating manifests)...")
    n_train, n_test, seconds = create_manifests(entries, options.train_manifest, options.test_manifest,
                                                options.is_change_frame_rate, options.num_workers, skips)
    if n_train + n_test == 0:
        say(skips.summary())
        raise UserError("no usable utterances: every audio file was skipped (see the lines above)")
    if n_train == 0:
        raise UserError("only one usable utterance; training needs more data")
    say(f"完成生成数据列表，数据集总长度为{seconds / 3600:.2f}小时！"
          f" train: {n_train}, test: {n_test} ({seconds / 3600:.2f} h)")
    say("开始生成噪声数据列表 (noise manifest)...")
    n_noise = create_noise_manifest(options.noise_path, options.noise_manifest_path, skips)
    say("开始生成数据字典 (vocabulary)...")
    vocab_size = build_vocabulary(options.train_manifest, options.dataset_vocab, options.count_threshold)
    say(f"数据字典生成完成: {vocab_size} tokens (with <blank>) -> {options.dataset_vocab}")
    say("开始抽取归一化文件 (mean/std)...")
    frames = compute_mean_std(options.train_manifest, options.mean_std_path, config, options.num_samples,
                              options.num_workers, skips)
    say(f"计算的均值和标准值已保存在 {options.mean_std_path}！({config.method}, dim {config.dim}, {frames} frames)")
    say(f"summary: kept {n_train + n_test} utterances (train {n_train}, test {n_test}), "
          f"noise files {n_noise}, {skips.summary()}")
