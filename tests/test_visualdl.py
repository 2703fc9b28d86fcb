"""VisualDL logging end to end: a resumed run continues its curves, fresh runs get their own folder,
the real VisualDL server serves the figures train.py printed, and its scalar page renders a chart."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from visualdl import LogReader

from helpers import REPO, TINY_MODEL, run_cli

from tools.browser import find_chromium
from tools.vdl_screenshot import screenshot, visualdl_server

FAST = TINY_MODEL + ["--batch_size=8", "--num_workers=0", "--augment_conf_path=None", "--log_interval=1"]
TAGS = {"Train loss", "Learning rate", "Test cer", "Test loss"}
DECIMALS = {"Train loss": 5, "Learning rate": 8, "Test cer": 5, "Test loss": 5}  # as train.py prints them
TRAIN_LINE = re.compile(r"Train epoch: \[\d+/\d+\], batch: \[\d+/\d+\], loss: ([\d.]+), learning rate: ([\d.]+)")
TEST_LINE = re.compile(r"Test epoch: (\d+), .*, loss: ([\d.]+), cer: ([\d.]+)")
RUN_DIR = re.compile(r"VisualDL: (\S+)$", re.MULTILINE)
GRID_GREY = 221  # the grey of ECharts' horizontal split lines (#ddd) in VisualDL 2.5.3


@dataclass
class Runs:
    """A workdir after: 2 epochs, a resume to epoch 3, then a fresh 1-epoch run."""
    root: Path
    run: str  # the first run's folder ("log/train_..."), which is also its VisualDL run name
    resumed_run: str
    fresh_run: str
    outputs: list[str]  # stdout of the first and of the resumed process
    digests_before_fresh: dict[str, str]


def run_folder(stdout: str) -> str:
    """The run folder train.py announced ("VisualDL: log/train_...")."""
    match = RUN_DIR.search(stdout)
    assert match, stdout
    return match.group(1)


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in ``folder``, by name."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def runs(prepared_corpus, tmp_path_factory) -> Runs:
    root = tmp_path_factory.mktemp("visualdl") / "work"
    shutil.copytree(prepared_corpus, root, symlinks=True)
    first = run_cli("train.py", *FAST, "--num_epoch=2", cwd=root).stdout
    resumed = run_cli("train.py", *FAST, "--num_epoch=3", "--resume_model=models/deepspeech2/epoch_2", cwd=root).stdout
    assert "resumed from models/deepspeech2/epoch_2" in resumed
    snapshot = digests(root / run_folder(first))
    fresh = run_cli("train.py", *FAST, "--num_epoch=1", "--save_model_path=fresh_models/", cwd=root).stdout
    return Runs(root, run_folder(first), run_folder(resumed), run_folder(fresh), [first, resumed], snapshot)


@pytest.fixture(scope="module")
def server(runs) -> Iterator[str]:
    """The real VisualDL server over the runs' ``log`` folder, as ``visualdl --logdir=log`` serves it."""
    with visualdl_server("log", cwd=runs.root) as url:
        yield url


def printed(outputs: list[str]) -> dict[str, list[float]]:
    """Every figure train.py printed, per VisualDL tag, in order."""
    text = "\n".join(outputs)
    train, test = TRAIN_LINE.findall(text), TEST_LINE.findall(text)
    assert [int(epoch) for epoch, _, _ in test] == [1, 2, 3]
    return {"Train loss": [float(loss) for loss, _ in train], "Learning rate": [float(lr) for _, lr in train],
            "Test loss": [float(loss) for _, loss, _ in test], "Test cer": [float(cer) for _, _, cer in test]}


def records(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, value) per tag over all record files of a run folder, oldest file first."""
    points: dict[str, list[tuple[int, float]]] = {tag: [] for tag in TAGS}
    for path in sorted(folder.glob("vdlrecords.*")):  # named vdlrecords.<10-digit unix time>.log
        reader = LogReader(file_path=str(path))
        for tag in TAGS:
            points[tag] += [(int(record.id), float(record.value)) for record in reader.get_data("scalar", tag)]
    return points


def assert_printed_values(tag: str, values: list[float], expected: list[float]) -> None:
    """float32 values equal the figures printed with DECIMALS[tag] decimals."""
    assert len(values) == len(expected), (tag, values, expected)
    for value, figure in zip(values, expected):
        assert value == pytest.approx(figure, abs=0.5 * 10 ** -DECIMALS[tag] + abs(figure) * 2 ** -23), tag


def api(base: str, route: str, **query: str):
    """The ``data`` of a VisualDL JSON API reply."""
    url = f"{base}{route}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept-Language": "en"}), timeout=10) as reply:
        body = json.loads(reply.read())
    assert body["status"] == 0, body
    return body["data"]


def test_resumed_run_continues_in_its_run_folder(runs):
    assert runs.resumed_run == runs.run, "the resumed run must log into the run folder of its checkpoint"
    points = records(runs.root / runs.run)
    assert [step for step, _ in points["Test cer"]] == [1, 2, 3]
    steps = [step for step, _ in points["Train loss"]]
    assert steps[0] == 1 and all(a < b for a, b in itertools.pairwise(steps)), steps  # across both processes
    figures = printed(runs.outputs)
    for tag in TAGS:
        assert_printed_values(tag, [value for _, value in points[tag]], figures[tag])


def test_fresh_run_gets_a_new_folder_and_earlier_runs_stay(runs):
    assert runs.fresh_run != runs.run
    assert sorted(p.name for p in (runs.root / "log").iterdir()) == sorted([Path(runs.run).name,
                                                                           Path(runs.fresh_run).name])
    assert digests(runs.root / runs.run) == runs.digests_before_fresh
    assert [step for step, _ in records(runs.root / runs.fresh_run)["Test cer"]] == [1]


def test_visualdl_server_serves_the_continued_curves(runs, server):
    assert {runs.run, runs.fresh_run} <= set(api(server, "/app/api/runs"))
    tags = api(server, "/app/api/scalar/tags")
    assert set(dict(zip(tags["runs"], tags["tags"]))[runs.run]) == TAGS
    figures = printed(runs.outputs)
    for tag in ("Test cer", "Train loss"):
        points = api(server, "/app/api/scalar/list", run=runs.run, tag=tag)  # [[wall time ms, step, value]]
        steps = [step for _, step, _ in points]
        assert len(steps) == len(figures[tag]) and steps[0] == 1, (
            f"{tag}: VisualDL shows only steps {steps}: it reads just the newest vdlrecords file of a run "
            f"folder, so a resumed run must append to the existing file")
        assert all(a < b for a, b in itertools.pairwise(steps)), steps
        assert tag != "Test cer" or steps == [1, 2, 3]
        assert_printed_values(tag, [value for _, _, value in points], figures[tag])
    page = urllib.request.Request(f"{server}/app/scalar", headers={"Accept-Language": "en"})
    with urllib.request.urlopen(page, timeout=10) as reply:
        assert reply.status == 200 and reply.headers.get_content_type() == "text/html"


def grey_lines(row: np.ndarray, gap: int = 8, min_length: int = 150) -> list[tuple[int, int]]:
    """(first, last) x of the long runs of True in ``row``, bridging gaps of up to ``gap`` pixels
    (where a plotted curve crosses a grid line)."""
    xs = np.flatnonzero(row)
    if xs.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(xs) > gap)
    starts, ends = np.r_[xs[0], xs[breaks + 1]], np.r_[xs[breaks], xs[-1]]
    return [(int(a), int(b)) for a, b in zip(starts, ends) if b - a >= min_length]


def plotted_charts(png: Path) -> list[int]:
    """Per chart found in a screenshot, the number of coloured pixels inside its plot area.

    A chart is recognised by its grid: long grey horizontal lines sharing a left or right end (a curve
    lying on a grid line shortens it), at least three of them evenly spaced; the page's other grey rules
    are single, paired or unevenly spaced. Coloured pixels there are the plotted curves: text and rules
    are grey."""
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    grey = (np.abs(image - GRID_GREY) <= 3).all(axis=2)
    grids: list[list[tuple[int, int, int]]] = []  # per grid: (y, x0, x1) of its lines
    for y, row in enumerate(grey):
        for x0, x1 in grey_lines(row):
            grid = next((g for g in grids if any(abs(x0 - a) <= 4 or abs(x1 - b) <= 4 for _, a, b in g)), None)
            if grid is None:
                grids.append([(y, x0, x1)])
            else:
                grid.append((y, x0, x1))
    counts = []
    for grid in grids:
        rows = sorted({y for y, _, _ in grid})
        gaps = np.diff(rows)
        if gaps.size >= 2 and (np.abs(gaps - np.median(gaps)) <= 2).sum() >= 2:
            x0, x1 = min(a for _, a, _ in grid), max(b for _, _, b in grid)
            area = image[rows[0]:rows[-1] + 1, x0:x1 + 1]
            counts.append(int((area.max(axis=2) - area.min(axis=2) > 60).sum()))
    return counts


@pytest.mark.skipif(find_chromium() is None and not os.environ.get("CI"),
                    reason="needs Chromium: apt-get install -y --no-install-recommends chromium (CI installs it)")
def test_scalar_page_renders_a_chart(server, tmp_path):
    (tmp_path / "log").mkdir()
    with visualdl_server("log", cwd=tmp_path) as empty:  # same UI, no records: the "no data" page
        blank = screenshot(f"{empty}/app/scalar", tmp_path / "empty.png")
    assert plotted_charts(blank) == [], "the chart detector fires on a page without charts"
    for attempt in range(3):  # on a loaded machine the page may still be drawing when the budget ends
        charts = plotted_charts(screenshot(f"{server}/app/scalar", tmp_path / f"scalar_{attempt}.png"))
        if charts and max(charts) >= 50:  # an expanded chart with its curve drawn
            break
    assert len(charts) == 1 and charts[0] >= 50, f"expected one expanded chart with a plotted curve: {charts}"
