"""Training really learns; the CER it reports is the corpus CER eval.py computes; pretrained weights
load; NaN and inf losses are skipped."""
from __future__ import annotations

import json
import re
import runpy
import sys

import numpy as np
import paddle
import pytest

from helpers import (LEARN_EPOCHS, LEARN_MANIFEST, LEARN_MODEL, REPO, TINY_MODEL, epoch_results, run_cli)

EVAL_CER = re.compile(r"字错率\D*([\d.]+)")


def eval_rows(root, *args: str) -> tuple[float, list[dict]]:
    """eval.py's printed CER and its result rows (reference, hypothesis, distance)."""
    proc = run_cli("eval.py", *args, "--result_path=eval_rows.jsonl", "--num_workers=0", cwd=root)
    cer = float(EVAL_CER.search(proc.stdout).group(1))
    rows = [json.loads(line) for line in (root / "eval_rows.jsonl").read_text(encoding="utf-8").splitlines()]
    return cer, rows


def test_training_lowers_the_loss_and_transcribes(learned_run):
    results = epoch_results(learned_run.stdout)
    assert sorted(results) == list(range(1, LEARN_EPOCHS + 1)), learned_run.stdout[-3000:]
    (first_loss, first_cer), (last_loss, last_cer) = results[1], results[LEARN_EPOCHS]
    assert first_cer >= 0.95  # measured 0.98: the first epoch outputs (almost) only blanks
    assert last_loss < 0.4 * first_loss, (first_loss, last_loss)  # measured 57 -> 5.7
    assert last_cer < 0.7, last_cer  # measured 0.31
    _, rows = eval_rows(learned_run.root, *LEARN_MODEL, f"--resume_model={learned_run.checkpoint}",
                        f"--test_manifest={LEARN_MANIFEST}")
    assert len(rows) == 16 and sum(1 for row in rows if row["hypothesis"]) >= 12, rows  # measured 16


def test_reported_cer_is_the_corpus_cer(learned_run):
    """train.py's last Test cer and eval.py's cer are Σ edits / Σ characters, not PPASR's mean of
    per-utterance CERs (on this model the two differ: 0.310 vs 0.287)."""
    printed, rows = eval_rows(learned_run.root, *LEARN_MODEL, f"--resume_model={learned_run.checkpoint}",
                              f"--test_manifest={LEARN_MANIFEST}", "--batch_size=4")
    corpus = sum(r["distance"] for r in rows) / sum(len(r["reference"]) for r in rows)
    per_utterance = float(np.mean([r["distance"] / len(r["reference"]) for r in rows]))
    assert abs(corpus - per_utterance) > 1e-3, "the model must tell the two figures apart"
    assert printed == pytest.approx(corpus, abs=1e-5)
    _, trained_cer = epoch_results(learned_run.stdout)[LEARN_EPOCHS]
    assert trained_cer == pytest.approx(corpus, abs=1e-5)


def test_pretrained_model_tensors_are_loaded(workdir):
    """--pretrained_model starts from the source's tensors (a 1e-9 learning rate keeps them there)."""
    fast = TINY_MODEL + ["--batch_size=8", "--num_workers=0", "--augment_conf_path=None", "--num_epoch=1"]
    run_cli("train.py", *fast, cwd=workdir)
    source = paddle.load(str(workdir / "models/deepspeech2/epoch_1/model.pdparams"))
    run_cli("train.py", *fast, "--pretrained_model=models/deepspeech2/epoch_1", "--learning_rate=1e-9",
            "--seed=5", "--save_model_path=models2/", cwd=workdir)
    loaded = paddle.load(str(workdir / "models2/deepspeech2/epoch_1/model.pdparams"))
    assert sorted(loaded) == sorted(source)
    for name, tensor in source.items():
        np.testing.assert_allclose(loaded[name].numpy(), tensor.numpy(), atol=1e-6, err_msg=name)


# ---- NaN / inf guard -------------------------------------------------------------------------------
# The one place these tests reach inside training: paddle's CTCLoss (whatever ppasr function calls it)
# is wrapped so that training-time losses follow a schedule of factors (1, nan, inf).

def run_train_with_loss_factors(monkeypatch, capsys, workdir, factors: list[float], *args: str):
    """Run train.py in this process with the n-th training loss multiplied by ``factors[n]``."""
    original = paddle.nn.CTCLoss.forward
    calls = {"n": 0}

    def scheduled(self, *inputs, **kwargs):
        loss = original(self, *inputs, **kwargs)
        if not paddle.is_grad_enabled():  # evaluation
            return loss
        factor = factors[min(calls["n"], len(factors) - 1)]
        calls["n"] += 1
        return loss * factor

    monkeypatch.setattr(paddle.nn.CTCLoss, "forward", scheduled)
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "argv", ["train.py", *TINY_MODEL, "--batch_size=8", "--num_workers=0",
                                      "--augment_conf_path=None", "--num_epoch=1", *args])
    code = 0
    try:
        runpy.run_path(str(REPO / "train.py"), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    out, err = capsys.readouterr()
    return code, out + err


def test_nan_and_inf_losses_are_skipped_and_the_bad_run_counter_resets(workdir, monkeypatch, capsys):
    nan, inf = float("nan"), float("inf")
    # 6 batches: two runs of 2 bad batches, separated by a good one; 3 in a row would stop the run
    code, out = run_train_with_loss_factors(monkeypatch, capsys, workdir, [1, nan, inf, 1, inf, nan],
                                            "--max_bad_steps=3")
    assert code == 0, out[-3000:]
    assert out.count("NaN/inf") == 4, out[-3000:]
    assert "training finished with 4 skipped batches" in out, out[-3000:]
    state = json.loads((workdir / "models/deepspeech2/epoch_1/state.json").read_text())
    assert state["step"] == 2, "only the two finite batches update the model"
    weights = paddle.load(str(workdir / "models/deepspeech2/epoch_1/model.pdparams"))
    assert all(np.isfinite(t.numpy()).all() for t in weights.values())


def test_persistent_nan_stops_the_run_without_a_checkpoint(workdir, monkeypatch, capsys):
    code, out = run_train_with_loss_factors(monkeypatch, capsys, workdir, [1, float("nan")], "--max_bad_steps=3")
    assert code != 0 and "3 bad batches" in out, out[-3000:]
    assert not (workdir / "models/deepspeech2/epoch_1").exists()
