"""create_data.py wall time versus worker count, and per-core feature throughput.

Synthesises (or reuses) a corpus of at least an hour of eSpeak demo speech, runs
``create_data.py`` on it as a user would (a subprocess) with 1, 2 and all-cores workers for
each feature method, and times featurisation alone in this process on a sample. The point:
show that the parallel stages really use the cores (CPU/wall close to the worker count, speed-up
close to it too on a quiet machine).

    python bench/bench_create_data.py [--corpus_dir DIR] [--methods linear fbank mfcc]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ppasr.data.audio import read_audio  # noqa: E402
from ppasr.data.features import FEATURE_METHODS, AudioFeaturizer, FeatureConfig  # noqa: E402
from ppasr.utils import available_cores  # noqa: E402

CORPUS_NAME = "bench"
DEFAULT_CORPUS_DIR = os.path.join(tempfile.gettempdir(), "ppasr_bench_corpus")


def annotation_paths(corpus_dir: str) -> list[str]:
    """Audio paths listed by every ``annotation/*.txt`` of a PPASR dataset folder."""
    folder = Path(corpus_dir) / "annotation"
    paths = []
    for annotation in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
        for line in annotation.read_text(encoding="utf-8").splitlines():
            if "\t" in line:
                paths.append(line.split("\t", 1)[0].strip())
    return paths


def ensure_corpus(corpus_dir: str, num_samples: int, seed: int, min_hours: float) -> tuple[list[str], float]:
    """Reuse the annotated audio in ``corpus_dir``, or synthesise ``num_samples`` utterances there.

    Returns the audio paths and their total duration in seconds; every file is read once, which
    also warms the page cache so the first timed run does not pay for disk reads.
    """
    paths = annotation_paths(corpus_dir)
    if paths:
        print(f"reusing {len(paths)} annotated utterances in {corpus_dir}", file=sys.stderr)
    else:
        from ppasr.demo.synth import generate_corpus

        print(f"synthesising {num_samples} utterances into {corpus_dir}", file=sys.stderr)
        start = time.perf_counter()
        generate_corpus(num_samples, seed=seed, name=CORPUS_NAME, output_dir=os.path.abspath(corpus_dir))
        print(f"synthesised in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        paths = annotation_paths(corpus_dir)
    seconds = 0.0
    for path in paths:
        seconds += soundfile.info(path).duration
        Path(path).read_bytes()
    if seconds < min_hours * 3600:
        raise SystemExit(f"error: the corpus in {corpus_dir} has {seconds / 3600:.2f} h of audio, less than "
                         f"--min_hours {min_hours}; raise --num_samples or pass an empty --corpus_dir")
    print(f"corpus: {len(paths)} utterances, {seconds / 3600:.2f} h of audio", file=sys.stderr)
    return paths, seconds


def create_data_command(corpus_dir: str, method: str, workers: int, out_dir: str, num_samples: int = -1) -> list[str]:
    """The create_data.py command line that prepares ``corpus_dir`` into ``out_dir``."""
    out = Path(out_dir)
    return [sys.executable, str(REPO / "create_data.py"),
            f"--annotation_path={Path(corpus_dir) / 'annotation'}",
            f"--train_manifest={out / 'manifest.train'}", f"--test_manifest={out / 'manifest.test'}",
            f"--dataset_vocab={out / 'vocabulary.txt'}", f"--mean_std_path={out / 'mean_std.npz'}",
            f"--noise_path={out / 'no_noise'}", f"--noise_manifest_path={out / 'manifest.noise'}",
            f"--num_workers={workers}", f"--feature_method={method}", f"--num_samples={num_samples}"]


def run_create_data(corpus_dir: str, method: str, workers: int, out_dir: str) -> tuple[float, float]:
    """Run create_data.py once; return (wall seconds, CPU seconds of it and all its workers)."""
    command = create_data_command(corpus_dir, method, workers, out_dir)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"create_data.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _burn(n: int) -> int:
    """Pure-Python CPU work with no I/O and no shared state."""
    total = 0
    for i in range(n):
        total += i
    return total


def machine_speed_up(workers: int, jobs: int = 8, size: int = 2_000_000) -> float:
    """Speed-up this machine grants ``workers`` processes right now (the control for busy machines).

    Times the same pure CPU work with a pool of 1 and of ``workers`` processes; on an idle
    machine it is about ``min(workers, cores)``, on a shared one what is left over.
    """
    walls = []
    for size_of_pool in (1, workers):
        with Pool(size_of_pool) as pool:
            start = time.perf_counter()
            pool.map(_burn, [size] * jobs, chunksize=1)
            walls.append(time.perf_counter() - start)
    return walls[0] / walls[1]


def feature_throughput(paths: list[str], methods: list[str], sample_size: int, seed: int) -> list[dict]:
    """Audio seconds per second of decoding and of each featuriser, in this process, on a sample."""
    rng = np.random.default_rng(seed)
    sample = [paths[i] for i in sorted(rng.choice(len(paths), min(sample_size, len(paths)), replace=False))]
    clips, rows = [], []
    wall, cpu = time.perf_counter(), time.process_time()
    for path in sample:
        clips.append(read_audio(path)[0])
    seconds = sum(len(c) for c in clips) / 16000
    rows.append({"stage": "read_audio", "audio": seconds,
                 "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu})
    for method in methods:
        featurizer = AudioFeaturizer(FeatureConfig(method=method))
        featurizer.featurize(clips[0], 16000)
        wall, cpu = time.perf_counter(), time.process_time()
        for clip in clips:
            featurizer.featurize(clip, 16000)
        rows.append({"stage": f"featurize {method}", "audio": seconds,
                     "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu})
    return rows


def main() -> None:
    """Parse flags, run the benchmark and print both tables."""
    cores = available_cores()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus_dir", default=DEFAULT_CORPUS_DIR,
                        help="dataset folder with annotation/*.txt to reuse; synthesised there when it "
                             "has none. Default: %(default)s")
    parser.add_argument("--num_samples", type=int, default=1500,
                        help="utterances to synthesise (~3 s each). Default: %(default)s")
    parser.add_argument("--min_hours", type=float, default=1.0,
                        help="refuse a corpus shorter than this. Default: %(default)s")
    parser.add_argument("--methods", nargs="+", choices=FEATURE_METHODS, default=list(FEATURE_METHODS))
    parser.add_argument("--workers", type=int, nargs="+", default=sorted({1, 2, cores}),
                        help="create_data.py --num_workers values to time. Default: %(default)s")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per setting; the fastest counts. Default: %(default)s")
    parser.add_argument("--sample_size", type=int, default=150,
                        help="utterances for the in-process feature throughput. Default: %(default)s")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    paths, seconds = ensure_corpus(args.corpus_dir, args.num_samples, args.seed, args.min_hours)
    features = feature_throughput(paths, args.methods, args.sample_size, args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ppasr-bench-") as tmp:
        for method in args.methods:
            for workers in args.workers:
                runs = [run_create_data(args.corpus_dir, method, workers, tmp) for _ in range(args.repeats)]
                wall, cpu = min(runs)
                rows.append({"method": method, "workers": workers, "wall": wall, "cpu": cpu,
                             "machine": machine_speed_up(workers) if workers > 1 else 1.0})
                print(f"{method} workers={workers}: {wall:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)

    print(f"\ncores: {cores}, load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"corpus: {len(paths)} utterances, {seconds / 3600:.2f} h\n")
    print("In-process throughput (one process, sample of "
          f"{min(args.sample_size, len(paths))} utterances, {features[0]['audio']:.0f} s of audio):\n")
    print(f"| {'stage':<16} | {'audio s/s (wall)':>16} | {'audio s per CPU s':>17} |")
    print(f"|{'-' * 18}|{'-' * 18}|{'-' * 19}|")
    for row in features:
        print(f"| {row['stage']:<16} | {row['audio'] / row['wall']:>16.0f} | {row['audio'] / row['cpu']:>17.0f} |")
    print(f"\ncreate_data.py end to end ({seconds:.0f} s of audio; fastest of {args.repeats}; machine: the "
          f"speed-up pure CPU work got from as many processes just after the run):\n")
    print(f"| {'method':<6} | {'workers':>7} | {'wall s':>7} | {'CPU s':>7} | {'CPU/wall':>8} | "
          f"{'audio s/s':>9} | {'per core':>8} | {'speed-up':>8} | {'machine':>7} |")
    print(f"|{'-' * 8}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 11}|{'-' * 10}|{'-' * 10}|{'-' * 9}|")
    for row in rows:
        base = next((r["wall"] for r in rows if r["method"] == row["method"] and r["workers"] == 1), None)
        speed_up = f"{base / row['wall']:.2f}x" if base else "-"
        rate = seconds / row["wall"]
        print(f"| {row['method']:<6} | {row['workers']:>7} | {row['wall']:>7.1f} | {row['cpu']:>7.1f} | "
              f"{row['cpu'] / row['wall']:>8.2f} | {rate:>9.0f} | {rate / min(row['workers'], cores):>8.0f} | "
              f"{speed_up:>8} | {row['machine']:>6.2f}x |")


if __name__ == "__main__":
    main()
