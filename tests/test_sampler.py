"""SortaGrad batch sampler: ordering, epochs, batch size 1, disjoint distributed shards, resume."""

import numpy as np
import pytest

from ppasr.data.dataset import SortaGradBatchSampler


def sampler(n=103, batch_size=8, **kwargs):
    return SortaGradBatchSampler(range(n), batch_size, **kwargs)


def flat(batches):
    return [i for b in batches for i in b]


def test_first_epoch_is_sorted_then_shuffled_per_epoch():
    s = sampler(seed=3)
    s.set_epoch(1)
    first = list(s)
    assert flat(first) == list(range(103)), "SortaGrad: epoch 1 in duration order"
    orders = []
    for epoch in (2, 3):
        s.set_epoch(epoch)
        batches = list(s)
        assert sorted(flat(batches)) == list(range(103)), "every utterance exactly once"
        assert all(b == list(range(b[0], b[0] + len(b))) for b in batches), "batches stay duration-contiguous"
        orders.append(batches)
    assert orders[0] != orders[1], "the batch order changes with the epoch"
    s.set_epoch(2)
    assert list(s) == orders[0], "the order depends only on (seed, epoch)"


def test_batch_size_one_works():
    s = sampler(n=5, batch_size=1)
    s.set_epoch(2)
    assert sorted(flat(list(s))) == [0, 1, 2, 3, 4] and len(s) == 5


@pytest.mark.parametrize("world", [2, 3])
def test_distributed_shards_are_disjoint_and_equal(world):
    shards = []
    for rank in range(world):
        s = sampler(seed=1, num_replicas=world, rank=rank)
        s.set_epoch(4)
        shards.append(list(s))
    assert len({len(x) for x in shards}) == 1, "every rank runs the same number of batches"
    seen = [flat(x) for x in shards]
    assert all(not set(a) & set(b) for i, a in enumerate(seen) for b in seen[i + 1:]), "shards are disjoint"
    changed = []
    for epoch in (4, 5):
        s = sampler(seed=1, num_replicas=world, rank=0)
        s.set_epoch(epoch)
        changed.append(list(s))
    assert changed[0] != changed[1], "the distributed order advances with the epoch"


def test_resume_skips_the_batches_already_seen():
    s = sampler(seed=9)
    s.set_epoch(3)
    full = list(s)
    s.set_epoch(3, skip_batches=5)
    assert list(s) == full[5:] and len(s) == len(full) - 5


def test_eval_shards_cover_everything():
    parts = []
    for rank in range(2):
        s = sampler(n=21, batch_size=4, shuffle=False, num_replicas=2, rank=rank, even_shards=False)
        parts.append(flat(list(s)))
    assert sorted(parts[0] + parts[1]) == list(range(21))


def _bench():
    """bench/bench_sampler.py, whose figures the balance test holds to its goal."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_sampler.py"
    spec = importlib.util.spec_from_file_location("bench_sampler", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("ranks", [2, 8])
def test_every_step_gives_ranks_neighbouring_lengths(ranks):
    bench = _bench()
    durations = bench.synthetic_durations(4000)
    for epoch in (1, 2, 3):
        per_rank = bench.rank_batches(durations, 32, ranks, epoch)
        assert bench.rank_waiting(durations, per_rank) <= 0.03, "the bench's goal: ≤ 3 % rank waiting"
        for step in zip(*per_rank):
            union = sorted(flat(step))
            assert union == list(range(union[0], union[0] + len(union))), "one group of neighbouring lengths"
            assert max(map(len, step)) - min(map(len, step)) <= 1, "ranks get equal shares"


@pytest.mark.parametrize("n,world", [(1000, 8), (103, 3), (96, 4)])
def test_each_utterance_once_per_epoch_across_ranks(n, world):
    for epoch in (1, 2, 5):
        shards = []
        for rank in range(world):
            s = sampler(n=n, seed=2, num_replicas=world, rank=rank)
            s.set_epoch(epoch)
            shards.append(list(s))
        used = flat(b for shard in shards for b in shard)
        assert len(used) == len(set(used)), "no utterance twice in an epoch"
        assert n - len(used) <= 2 * (world - 1), "only end pieces smaller than the rank count are left out"
        if n % (8 * world) == 0 and epoch == 1:
            assert len(used) == n
        assert len({len(x) for x in shards}) == 1


def test_distributed_resume_continues_every_rank_exactly():
    for rank in range(4):
        s = sampler(n=500, seed=7, num_replicas=4, rank=rank)
        s.set_epoch(3)
        full = list(s)
        s.set_epoch(3, skip_batches=6)
        assert list(s) == full[6:] and len(s) == len(full) - 6


class _Durations:
    """What the sampler reads of a ManifestDataset: its length and sorted durations."""

    def __init__(self, durations):
        self.durations = sorted(durations)

    def __len__(self):
        return len(self.durations)


@pytest.mark.parametrize("world", [1, 4])
def test_duration_batches_stay_under_the_cap_but_for_single_long_utterances(world):
    bench = _bench()
    data = _Durations(list(bench.synthetic_durations(3000)) + [25.0, 31.0, 40.0, 44.0])
    cap = 60.0
    for epoch in (1, 2, 3):
        shards = []
        for rank in range(world):
            s = SortaGradBatchSampler(data, 32, seed=4, num_replicas=world, rank=rank, max_batch_duration=cap)
            s.set_epoch(epoch)
            shards.append(list(s))
        assert len({len(x) for x in shards}) == 1
        for batch in (b for shard in shards for b in shard):
            seconds = sum(data.durations[i] for i in batch)
            assert seconds <= cap or len(batch) == 1, f"{len(batch)} utterances, {seconds:.1f} s over the cap"
        used = flat(b for shard in shards for b in shard)
        assert len(used) == len(set(used)) and len(data) - len(used) <= 2 * (world - 1)
        sizes = [len(b) for b in shards[0]]
        assert max(sizes) >= 4 * min(sizes), "short utterances fill bigger batches than long ones"
        if world > 1:
            per_rank = [[b for b in shard] for shard in shards]
            longest = np.array([[data.durations[b[-1]] for b in x] for x in per_rank])
            assert longest.max(axis=0).sum() / longest.mean(axis=0).sum() - 1 <= 0.03
