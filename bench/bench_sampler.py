"""Rank waiting and padding of the training sampler, for 1/2/4/8 ranks (CPU only, seconds).

In data-parallel training every step ends when the slowest rank finishes, and a rank's time
grows with its batch's longest utterance. Per step, *rank waiting* compares the slowest rank's
longest utterance with the mean rank's (summed over an epoch); *padding* is padded frames /
real frames over all batches. "before" deals whole shuffled batches round-robin (this project
until issue 18); "groups" is the current sampler (one group of neighbouring lengths per step).

    python bench/bench_sampler.py [--manifest dataset/manifest.train] [--batch_size 32] [--epoch 2]

Default durations: 20,000 synthetic AISHELL-like lengths (lognormal, median 4.5 s, clipped 1.2–15 s).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppasr.data.dataset import SortaGradBatchSampler  # noqa: E402
from ppasr.data.manifest import read_manifest  # noqa: E402

RANKS = (1, 2, 4, 8)


def synthetic_durations(count: int = 20000, seed: int = 0) -> np.ndarray:
    """AISHELL-like utterance lengths in seconds, sorted as ManifestDataset sorts them."""
    rng = np.random.default_rng(seed)
    return np.sort(np.clip(rng.lognormal(np.log(4.5), 0.35, count), 1.2, 15.0))


def rank_batches(durations: np.ndarray, batch_size: int, ranks: int, epoch: int, grouped: bool = True,
                 seed: int = 1000) -> list[list[list[int]]]:
    """Each rank's batch list for ``epoch``; ``grouped=False`` gives the old round-robin dealing."""
    if not grouped:
        whole = SortaGradBatchSampler(durations, batch_size, seed=seed)
        whole.set_epoch(epoch)
        batches = list(whole)
        steps = len(batches) // ranks
        return [batches[r::ranks][:steps] for r in range(ranks)]
    out = []
    for rank in range(ranks):
        sampler = SortaGradBatchSampler(durations, batch_size, seed=seed, num_replicas=ranks, rank=rank)
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


def rank_waiting(durations: np.ndarray, per_rank: list[list[list[int]]]) -> float:
    """Summed slowest-rank longest utterance over the mean rank's, minus 1 (0.03 = 3 %)."""
    longest = np.array([[durations[b].max() for b in batches] for batches in per_rank])  # [ranks, steps]
    return float(longest.max(axis=0).sum() / longest.mean(axis=0).sum() - 1)


def padding(durations: np.ndarray, per_rank: list[list[list[int]]]) -> float:
    """Padded frames / real frames over every batch of every rank."""
    real = sum(durations[b].sum() for batches in per_rank for b in batches)
    padded = sum(len(b) * durations[b].max() for batches in per_rank for b in batches)
    return float(padded / real - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", help="a PPASR manifest (its durations); default: synthetic")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--epoch", type=int, default=2, help="a shuffled epoch (epoch 1 is SortaGrad's order)")
    args = parser.parse_args()
    if args.manifest:
        durations = np.sort(np.array([float(x["duration"]) for x in read_manifest(args.manifest)]))
        source = f"{args.manifest}: {len(durations)} utterances"
    else:
        durations = synthetic_durations()
        source = f"synthetic: {len(durations)} utterances, median {np.median(durations):.1f} s"
    print(f"{source}, batch {args.batch_size}, epoch {args.epoch}")
    print("| ranks | rank waiting, before | rank waiting, groups | padding, before | padding, groups |")
    print("|---|---|---|---|---|")
    for ranks in RANKS:
        old = rank_batches(durations, args.batch_size, ranks, args.epoch, grouped=False)
        new = rank_batches(durations, args.batch_size, ranks, args.epoch)
        print(f"| {ranks} | {rank_waiting(durations, old):+.1%} | {rank_waiting(durations, new):+.1%} "
              f"| {padding(durations, old):.1%} | {padding(durations, new):.1%} |")


if __name__ == "__main__":
    main()
