"""The trainer's typed options: a checkpoint records them, and they rebuild the options of the command
that made it (a run can be reproduced from its checkpoint alone)."""
from __future__ import annotations

import json

import pytest
from helpers import TINY_MODEL, run_cli

from ppasr import cli
from ppasr.errors import UserError
from ppasr.model.checkpoint import read_state
from ppasr.scripts import train_options
from ppasr.train.options import TrainOptions
from ppasr.train.state import TrainState

FLAGS = [*TINY_MODEL, "--batch_size=8", "--num_workers=0", "--num_epoch=1", "--augment_conf_path=None",
         "--learning_rate=5e-3", "--lr_gamma=0.9", "--warmup_steps=3", "--seed=4", "--save_interval=0",
         "--max_duration=-1"]


def test_checkpoint_records_the_options_of_its_command_and_older_ones_resume(workdir):
    run_cli("train.py", *FLAGS, cwd=workdir)
    state = json.loads((workdir / "models/deepspeech2/epoch_1/state.json").read_text())
    recorded = TrainOptions.from_dict(state["train_options"])
    assert recorded == train_options(cli.train_parser().parse_args(FLAGS))
    assert recorded != train_options(cli.train_parser().parse_args(FLAGS + ["--seed=5"]))
    assert (recorded.optim.learning_rate, recorded.data.augment_conf_path, recorded.model.rnn_size) == (5e-3, None, 32)

    old = workdir / "models/deepspeech2/epoch_1/state.json"  # as an earlier version wrote it
    old.write_text(json.dumps({k: v for k, v in state.items() if k != "train_options"}))
    resumed = [*TINY_MODEL, "--batch_size=8", "--num_workers=0", "--augment_conf_path=None", "--num_epoch=2",
               "--resume_model=models/deepspeech2/epoch_1"]
    run_cli("train.py", *resumed, cwd=workdir)
    state = json.loads((workdir / "models/deepspeech2/epoch_2/state.json").read_text())
    assert state["run_id"] == json.loads(old.read_text())["run_id"], "the resumed run continues the old one"
    assert TrainOptions.from_dict(state["train_options"]) == train_options(cli.train_parser().parse_args(resumed))


# state.json as the version before TrainState wrote it (no train_options; test figures and save time)
OLD_STATE = {"run_id": "20261201-101010-ab12", "epoch": 3, "batch_in_epoch": 4, "step": 40, "seed": 1000,
             "best_cer": 0.25, "run_log_dir": "log/run-1",
             "model_config": {"use_model": "deepspeech2", "cnn_size": 8}, "learning_rate": 0.0005,
             "test_cer": 0.3, "test_loss": 12.5, "saved_at": "2026-12-01 10:10:10"}


def test_train_state_round_trips_through_json_and_reads_old_files(tmp_path):
    state = TrainState.from_dict(json.loads(json.dumps(OLD_STATE)), "models/old")
    assert (state.epoch, state.batch_in_epoch, state.step, state.best_cer) == (3, 4, 40, 0.25)
    assert state.train_options is None and state.amp_scaler is None
    state.amp_scaler = {"scale": 512.0}
    assert TrainState.from_dict(json.loads(json.dumps(state.to_dict())), "models/new") == state
    assert set(TrainState(run_id="r").to_dict()) == set(OLD_STATE) - {"test_cer", "test_loss", "saved_at"} | {
        "train_options"}, "the keys state.json always had keep their names"

    fresh = TrainState(run_id="new-run", seed=1)
    ppasr_made = tmp_path / "epoch_7"  # PPASR's folders have no state.json
    ppasr_made.mkdir()
    fresh.continue_from(TrainState.from_dict(read_state(str(ppasr_made)), str(ppasr_made)))
    assert (fresh.run_id, fresh.epoch, fresh.step) == ("new-run", 7, 0), "a PPASR-made folder has no run id"
    fresh.continue_from(state)
    assert (fresh.run_id, fresh.epoch, fresh.batch_in_epoch, fresh.seed) == (OLD_STATE["run_id"], 3, 4, 1)


@pytest.mark.parametrize("bad", [{"epoch": "3"}, {"step": -1}, {"batch_in_epoch": 2.5}, {"epoch": True}])
def test_damaged_state_counters_are_a_user_error(bad):
    with pytest.raises(UserError, match=r"models/x/state.json: \w+ is .*pick another checkpoint"):
        TrainState.from_dict(dict(OLD_STATE, **bad), "models/x")
