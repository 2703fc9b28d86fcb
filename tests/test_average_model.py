"""tools/average_model.py: the mean of a run's last checkpoints, as a model folder eval.py reads."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest

from helpers import LEARN_EPOCHS, LEARN_MANIFEST, run_cli


@pytest.fixture
def run_copy(learned_run, tmp_path) -> Path:
    """The learned run's corpus with a copy of its checkpoints (the last three epochs: keep_checkpoints 3)."""
    root = tmp_path / "work"
    shutil.copytree(learned_run.root, root, symlinks=True, ignore=shutil.ignore_patterns("log"))
    return root


def _weights(folder: Path) -> dict[str, np.ndarray]:
    return {key: np.asarray(value) for key, value in paddle.load(str(folder / "model.pdparams")).items()}


def test_the_average_is_the_mean_of_the_newest_epochs_and_eval_reads_it(run_copy):
    models = run_copy / "models/deepspeech2"
    epochs = [models / f"epoch_{n}" for n in range(LEARN_EPOCHS - 2, LEARN_EPOCHS + 1)]
    before = {path: (path / "model.pdparams").read_bytes() for path in epochs}
    proc = run_cli("tools/average_model.py", "--model_dir=models/deepspeech2", "--num=3", cwd=run_copy)
    average = models / "avg_3"
    assert "averaged 3 checkpoints" in proc.stdout and "avg_3" in proc.stdout
    assert sorted(p.name for p in average.iterdir()) == ["model.pdparams", "state.json"]  # no optimizer state
    mean, each = _weights(average), [_weights(path) for path in epochs]
    assert set(mean) == set(each[0])
    for key in mean:
        assert mean[key].dtype == each[0][key].dtype
        np.testing.assert_allclose(mean[key], sum(w[key].astype(np.float64) for w in each) / 3, rtol=1e-6, atol=1e-7)
    assert any(not np.allclose(mean[key], each[-1][key]) for key in mean)  # really another model than the newest
    state = json.loads((average / "state.json").read_text(encoding="utf-8"))
    assert [entry["epoch"] for entry in state["averaged_from"]] == [LEARN_EPOCHS - 2, LEARN_EPOCHS - 1, LEARN_EPOCHS]
    assert state["model_config"] == json.loads((epochs[-1] / "state.json").read_text())["model_config"]
    assert "test_cer" not in state  # the newest epoch's figure, not the average's
    assert all((path / "model.pdparams").read_bytes() == before[path] for path in epochs)

    # eval.py takes the sizes from the average's state.json, as from any checkpoint
    proc = run_cli("eval.py", "--resume_model=models/deepspeech2/avg_3/", f"--test_manifest={LEARN_MANIFEST}",
                   "--num_workers=0", "--batch_size=4", cwd=run_copy)
    assert float(proc.stdout.split("字错率 cer: ")[1].split()[0]) < 0.9

    # training cannot resume from it (no optimizer state): one error line that names the way to use it
    proc = run_cli("train.py", "--rnn_size=256", "--num_rnn_layers=1", "--cnn_size=16", "--num_workers=0",
                   "--resume_model=models/deepspeech2/avg_3/", f"--num_epoch={LEARN_EPOCHS + 1}",
                   "--augment_conf_path=None", cwd=run_copy, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "error: " in proc.stderr and "--pretrained_model=models/deepspeech2/avg_3/" in proc.stderr

    # a second average into the same folder replaces the first; a checkpoint is never an --output
    run_cli("tools/average_model.py", "--model_dir=models/deepspeech2", "--num=2", "--output=models/deepspeech2/avg_3",
            cwd=run_copy)
    assert len(json.loads((average / "state.json").read_text(encoding="utf-8"))["averaged_from"]) == 2
    proc = run_cli("tools/average_model.py", "--num=2", f"--output=models/deepspeech2/epoch_{LEARN_EPOCHS}",
                   cwd=run_copy, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        f"error: --output models/deepspeech2/epoch_{LEARN_EPOCHS} exists and is not an average this tool wrote; "
        f"pass a new folder (it would replace that folder)"]
    assert (epochs[-1] / "model.pdparams").read_bytes() == before[epochs[-1]]


def _checkpoint(folder: Path, weights: dict[str, np.ndarray], rnn_size: int, epoch: int) -> Path:
    folder.mkdir(parents=True)
    paddle.save({key: paddle.to_tensor(value) for key, value in weights.items()}, str(folder / "model.pdparams"))
    (folder / "state.json").write_text(json.dumps({"run_id": "r", "epoch": epoch, "test_cer": 0.5,
                                                   "model_config": {"use_model": "deepspeech2", "rnn_size": rnn_size}}))
    return folder


def test_checkpoints_of_other_models_or_too_few_epochs_are_refused_in_one_line(tmp_path):
    models = tmp_path / "models/deepspeech2"
    rng = np.random.default_rng(0)
    _checkpoint(models / "epoch_1", {"w": rng.random((3, 4), dtype=np.float32)}, 32, 1)
    _checkpoint(models / "epoch_2", {"w": rng.random((3, 4), dtype=np.float32)}, 64, 2)
    proc = run_cli("tools/average_model.py", "--num=2", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "error: models/deepspeech2/epoch_2 is another model than models/deepspeech2/epoch_1 (model_config differs "
        "in rnn_size); average checkpoints of one model"]

    _checkpoint(models / "epoch_3", {"w": rng.random((4, 4), dtype=np.float32)}, 32, 3)
    proc = run_cli("tools/average_model.py", "--checkpoints", "models/deepspeech2/epoch_1", "models/deepspeech2/epoch_3",
                   cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "error: models/deepspeech2/epoch_3 does not fit models/deepspeech2/epoch_1 (w [4, 4] vs [3, 4]); "
        "average checkpoints of one model"]

    proc = run_cli("tools/average_model.py", "--num=4", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "error: models/deepspeech2/ holds 3 end-of-epoch checkpoints (epoch_1, epoch_2, epoch_3), fewer than "
        "--num=4; pass a smaller --num or the folders themselves with --checkpoints"]
    assert not any(path.name.startswith(("avg", ".")) for path in models.iterdir())  # nothing half-written
