"""SortaGrad batch sampler: ordering, epochs, batch size 1, disjoint distributed shards, resume."""

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
