"""CPU training throughput, data-loader rate and peak memory of two DeepSpeech2 configurations.

For each configuration (PPASR's default model and a small demo model) the corpus is prepared with
``create_data.py`` for the configuration's features, then a fresh process measures

* the DataLoader alone (same dataset, sampler, collate and workers as training), without and
  with the augmentation of ``conf/augmentation.json``;
* training steps as ``ppasr.train.trainer.train`` runs them (model, CTC, Adam, gradient clipping),
  timed after a warm-up, with the time spent waiting for the loader;
* peak memory: ``ru_maxrss`` of that process, and the RSS/PSS of it plus its loader workers.

    python bench/bench_train.py [--configs ppasr demo] [--ppasr_steps 3] [--demo_steps 20]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_create_data import DEFAULT_CORPUS_DIR, available_cores, create_data_command, ensure_corpus  # noqa: E402
from ppasr import USER_OMP_NUM_THREADS  # noqa: E402
from ppasr.data.augment import build_augmentation_pipeline  # noqa: E402
from ppasr.data.dataset import ManifestDataset, SortaGradBatchSampler, build_loader  # noqa: E402
from ppasr.data.features import FEATURE_METHODS, FeatureNormalizer  # noqa: E402
from ppasr.model.deepspeech2 import SPEC as DS2, DeepSpeech2Model  # noqa: E402
from ppasr.train.trainer import batch_loss, update  # noqa: E402
from ppasr.utils import loader_workers, read_vocabulary, set_paddle_threads, str2bool  # noqa: E402

import paddle  # noqa: E402  (after ppasr, which records OMP_NUM_THREADS before paddle overwrites it)

CONFIGS = {
    "ppasr": {"feature": "linear", "cnn_size": 32, "rnn_size": 1024, "num_rnn_layers": 3, "batch_size": 32,
              "warmup": 1, "steps": 3},
    "demo": {"feature": "fbank", "cnn_size": 16, "rnn_size": 256, "num_rnn_layers": 2, "batch_size": 8,
             "warmup": 3, "steps": 20},
}
SEED = 1000  # train.py's default --seed
EPOCH = 2  # a shuffled epoch: SortaGrad's first epoch would give only the shortest utterances


def user_environment() -> dict[str, str]:
    """``os.environ`` as the user started us: importing paddle set OMP_NUM_THREADS=1 in it."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if USER_OMP_NUM_THREADS is not None:
        env["OMP_NUM_THREADS"] = USER_OMP_NUM_THREADS
    return env


def prepare_data(corpus_dir: str, method: str, out_dir: str, workers: int) -> None:
    """Manifests, vocabulary and mean/std for ``method`` with create_data.py."""
    command = create_data_command(corpus_dir, method, workers, out_dir, num_samples=500)
    proc = subprocess.run(command, capture_output=True, text=True, env=user_environment())
    if proc.returncode != 0:
        raise SystemExit(f"create_data.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


class TreeMemory:
    """Peak memory of this process plus its descendants (the loader workers), sampled from /proc.

    ``ru_maxrss`` of RUSAGE_CHILDREN cannot give it: it only covers children that have been
    reaped, and it is already ~230 MB after ``import paddle`` (a helper subprocess). RSS counts
    pages a forked worker shares with its parent in both; PSS splits them, so the PSS sum is
    the real footprint.
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.rss_mb = self.pss_mb = self.worker_rss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _children(pid: int) -> list[int]:
        found = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
        return found

    @staticmethod
    def _rollup(pid: int) -> tuple[float, float]:
        """(RSS, PSS) of one process in MB."""
        values = {}
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Rss", "Pss"):
                    values[key] = int(rest.split()[0]) / 1024
        return values["Rss"], values["Pss"]

    def sample(self) -> None:
        """Add one observation of the whole process tree."""
        me = os.getpid()
        pending, rss, pss = [me], 0.0, 0.0
        while pending:
            pid = pending.pop()
            try:
                pending += self._children(pid)
                one_rss, one_pss = self._rollup(pid)
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited meanwhile
            rss, pss = rss + one_rss, pss + one_pss
            if pid != me:
                self.worker_rss_mb = max(self.worker_rss_mb, one_rss)
        self.rss_mb, self.pss_mb = max(self.rss_mb, rss), max(self.pss_mb, pss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


def train_step(model, optimizer, ctc, batch) -> bool:
    """One step of ``ppasr.train.trainer.train``'s loop, single process on CPU (no AMP, no DataParallel)."""
    loss = batch_loss(model, batch, ctc)
    if loss is None or not np.isfinite(float(loss.item())):
        optimizer.clear_grad()
        return False
    update(loss, optimizer)
    return True


def batch_audio(batch, durations: list[float]) -> tuple[int, float]:
    """(utterances, manifest audio seconds) of a collated batch."""
    indices = [int(i) for i in batch[4].numpy() if i >= 0]
    return len(indices), sum(durations[i] for i in indices)


class FirstBatches(SortaGradBatchSampler):
    """The training sampler on a shuffled epoch, cut after ``limit`` batches.

    Running out ends the DataLoader's iteration, so its workers exit and none linger into
    the next measurement.
    """

    def __init__(self, dataset: ManifestDataset, batch_size: int, limit: int):
        super().__init__(dataset, batch_size, shuffle=True, seed=SEED)
        self.set_epoch(EPOCH)
        self.limit = limit

    def __iter__(self):
        yield from list(super().__iter__())[:self.limit]

    def __len__(self) -> int:
        return min(self.limit, super().__len__())


def make_loader(dataset: ManifestDataset, batch_size: int, workers: int, limit: int) -> paddle.io.DataLoader:
    """The training DataLoader as trainer.py builds it, over the first ``limit`` batches."""
    dataset.set_epoch(SEED, EPOCH)
    return build_loader(dataset, FirstBatches(dataset, batch_size, limit), workers)


def loader_rate(dataset: ManifestDataset, batch_size: int, workers: int, warmup: int, batches: int) -> dict:
    """Iterate the DataLoader only; rates over ``batches`` batches after ``warmup``."""
    utts = seconds = 0.0
    for count, batch in enumerate(make_loader(dataset, batch_size, workers, warmup + batches)):
        if count == warmup:
            start = time.perf_counter()
        if count >= warmup:
            n, s = batch_audio(batch, dataset.durations)
            utts, seconds = utts + n, seconds + s
    elapsed = time.perf_counter() - start
    return {"utt_s": utts / elapsed, "audio_s": seconds / elapsed}


def measure(name: str, config: dict, data_dir: str, args: argparse.Namespace) -> dict:
    """Everything for one configuration, in this (fresh) process."""
    paddle.set_device("cpu")
    threads = set_paddle_threads(1)
    workers = loader_workers(args.num_workers, 1)
    data = Path(data_dir)
    vocabulary = read_vocabulary(str(data / "vocabulary.txt"))
    normalizer = FeatureNormalizer(str(data / "mean_std.npz"))

    def dataset(augment: bool) -> ManifestDataset:
        augmentation = build_augmentation_pipeline(args.augment_conf_path if augment else None, seed=SEED)
        return ManifestDataset(str(data / "manifest.train"), vocabulary, normalizer, augmentation,
                               0.0, 20.0, train=True, output_length=DS2.output_length)

    batch_size, warmup, steps = config["batch_size"], config["warmup"], config["steps"]
    plain_set = dataset(False)
    needed = warmup + max(steps, args.loader_batches)
    available = -(-len(plain_set) // batch_size)
    if available < needed:
        raise SystemExit(f"error: [{name}] {available} batches of {batch_size} in the corpus, {needed} needed; "
                         f"use a larger corpus (--num_samples) or fewer --{name}_steps/--loader_batches")
    print(f"[{name}] loader alone ({workers} workers)...", file=sys.stderr)
    plain = loader_rate(plain_set, batch_size, workers, warmup, args.loader_batches)
    augmented = loader_rate(dataset(True), batch_size, workers, warmup, args.loader_batches)

    paddle.seed(SEED)
    model = DeepSpeech2Model(normalizer.feature_config.dim, len(vocabulary), config["cnn_size"],
                             config["num_rnn_layers"], config["rnn_size"])
    scheduler = paddle.optimizer.lr.ExponentialDecay(learning_rate=1e-3, gamma=0.83)
    optimizer = paddle.optimizer.Adam(learning_rate=scheduler, parameters=model.parameters(),
                                      weight_decay=paddle.regularizer.L2Decay(1e-6),
                                      grad_clip=paddle.nn.ClipGradByGlobalNorm(400))
    ctc = paddle.nn.CTCLoss(blank=0, reduction="none")
    train_set = dataset(args.train_augment)
    loader = make_loader(train_set, batch_size, workers, warmup + steps)
    model.train()
    print(f"[{name}] training: {warmup} warm-up + {steps} timed steps...", file=sys.stderr)
    utts = seconds = wait = 0.0
    bad = 0
    ready = time.perf_counter()
    for step, batch in enumerate(loader):
        if step == warmup:
            start = ready
        if step >= warmup:
            wait += time.perf_counter() - ready
            n, s = batch_audio(batch, train_set.durations)
            utts, seconds = utts + n, seconds + s
        bad += not train_step(model, optimizer, ctc, batch)
        ready = time.perf_counter()
    elapsed = ready - start
    return {
        "config": name, "feature": f"{normalizer.feature_config.method} {normalizer.feature_config.dim}",
        "model": f"cnn {config['cnn_size']}, rnn {config['rnn_size']}x{config['num_rnn_layers']}",
        "params": sum(int(np.prod(p.shape)) for p in model.parameters()), "batch": batch_size,
        "workers": workers, "threads": threads, "steps": steps, "bad_steps": bad,
        "step_s": elapsed / steps, "train_utt_s": utts / elapsed, "train_audio_s": seconds / elapsed,
        "wait_pct": 100.0 * wait / elapsed, "loader_plain": plain, "loader_aug": augmented,
    }


def print_tables(results: list[dict], train_augment: bool) -> None:
    """The throughput and memory tables."""
    print(f"\ncores: {available_cores()}, load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"training with augmentation: {train_augment}\n")
    print(f"| {'config':<6} | {'features':<10} | {'model':<22} | {'params':>6} | {'batch':>5} | {'steps':>5} | "
          f"{'s/step':>6} | {'utt/s':>6} | {'audio s/s':>9} | {'loader wait':>11} |")
    print(f"|{'-' * 8}|{'-' * 12}|{'-' * 24}|{'-' * 8}|{'-' * 7}|{'-' * 7}|{'-' * 8}|{'-' * 8}|{'-' * 11}|{'-' * 13}|")
    for r in results:
        print(f"| {r['config']:<6} | {r['feature']:<10} | {r['model']:<22} | {r['params'] / 1e6:>5.1f}M | "
              f"{r['batch']:>5} | {r['steps']:>5} | {r['step_s']:>6.2f} | {r['train_utt_s']:>6.1f} | "
              f"{r['train_audio_s']:>9.1f} | {r['wait_pct']:>10.1f}% |")
    print(f"\n| {'config':<6} | {'workers':>7} | {'threads':>7} | {'loader audio s/s':>16} | "
          f"{'+augment':>8} | {'loader/train':>12} | {'+augment':>8} |")
    print(f"|{'-' * 8}|{'-' * 9}|{'-' * 9}|{'-' * 18}|{'-' * 10}|{'-' * 14}|{'-' * 10}|")
    for r in results:
        plain, aug = r["loader_plain"]["audio_s"], r["loader_aug"]["audio_s"]
        print(f"| {r['config']:<6} | {r['workers']:>7} | {r['threads']:>7} | {plain:>16.0f} | {aug:>8.0f} | "
              f"{plain / r['train_audio_s']:>11.1f}x | {aug / r['train_audio_s']:>7.1f}x |")
    print("\nPeak memory, MB (self: ru_maxrss; tree: this process + loader workers, sampled):\n")
    print(f"| {'config':<6} | {'self RSS':>8} | {'tree RSS':>8} | {'tree PSS':>8} | {'worker RSS':>10} |")
    print(f"|{'-' * 8}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 12}|")
    for r in results:
        print(f"| {r['config']:<6} | {r['rss_self_mb']:>8.0f} | {r['tree_rss_mb']:>8.0f} | "
              f"{r['tree_pss_mb']:>8.0f} | {r['worker_rss_mb']:>10.0f} |")
    for r in results:
        if r["bad_steps"]:
            print(f"note: {r['config']}: {r['bad_steps']} steps skipped (NaN/inf loss or unloadable batch)")


def main() -> None:
    """Parse flags; prepare data, then measure each configuration in its own process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus_dir", default=DEFAULT_CORPUS_DIR,
                        help="dataset folder with annotation/*.txt to reuse (bench_create_data.py's corpus); "
                             "synthesised there when it has none. Default: %(default)s")
    parser.add_argument("--num_samples", type=int, default=1500, help="utterances to synthesise. Default: %(default)s")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--num_workers", type=int, default=8,
                        help="DataLoader workers, capped at the cores as train.py does. Default: %(default)s")
    parser.add_argument("--augment_conf_path", default=str(REPO / "conf" / "augmentation.json"),
                        help="augmentation for the '+augment' loader rate. Default: %(default)s")
    parser.add_argument("--train_augment", type=str2bool, default=True,
                        help="augment during the timed training steps (train.py's default). Default: %(default)s")
    parser.add_argument("--loader_batches", type=int, default=30,
                        help="batches timed for each loader rate (after the warm-up). Default: %(default)s")
    for name, config in CONFIGS.items():
        for key, value in config.items():
            kwargs = {"choices": FEATURE_METHODS} if key == "feature" else {}
            parser.add_argument(f"--{name}_{key}", type=type(value), default=value,
                                help=f"{name} config {key}. Default: %(default)s", **kwargs)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data_dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    configs = {name: {key: getattr(args, f"{name}_{key}") for key in CONFIGS[name]} for name in args.configs}

    if args.child:
        with TreeMemory() as memory:
            result = measure(args.child, configs[args.child], args.data_dir, args)
        result.update(rss_self_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      tree_rss_mb=memory.rss_mb, tree_pss_mb=memory.pss_mb, worker_rss_mb=memory.worker_rss_mb)
        print(json.dumps(result))
        return
    ensure_corpus(args.corpus_dir, args.num_samples, 0, 0.0)
    results = []
    with tempfile.TemporaryDirectory(prefix="ppasr-bench-train-") as tmp:
        for method in sorted({config["feature"] for config in configs.values()}):
            print(f"create_data.py --feature_method={method} ...", file=sys.stderr)
            prepare_data(args.corpus_dir, method, os.path.join(tmp, method), available_cores())
        for name, config in configs.items():
            proc = subprocess.run([sys.executable, __file__, *sys.argv[1:], f"--child={name}",
                                   f"--data_dir={os.path.join(tmp, config['feature'])}"],
                                  stdout=subprocess.PIPE, text=True, env=user_environment())
            if proc.returncode != 0:
                raise SystemExit(f"error: the {name} measurement failed ({proc.returncode})")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print_tables(results, args.train_augment)


if __name__ == "__main__":
    main()
