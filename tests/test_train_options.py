"""The trainer's typed options: a checkpoint records them, and they rebuild the options of the command
that made it (a run can be reproduced from its checkpoint alone)."""
from __future__ import annotations

import json

from conftest import TINY_MODEL, run_cli

from ppasr import cli
from ppasr.scripts import train_options
from ppasr.train.options import TrainOptions

FLAGS = [*TINY_MODEL, "--batch_size=8", "--num_workers=0", "--num_epoch=1", "--augment_conf_path=None",
         "--learning_rate=5e-3", "--lr_gamma=0.9", "--warmup_steps=3", "--seed=4", "--save_interval=0",
         "--max_duration=-1"]


def test_checkpoint_records_the_options_of_its_command(workdir):
    run_cli("train.py", *FLAGS, cwd=workdir)
    state = json.loads((workdir / "models/deepspeech2/epoch_1/state.json").read_text())
    recorded = TrainOptions.from_dict(state["train_options"])
    assert recorded == train_options(cli.train_parser().parse_args(FLAGS))
    assert recorded != train_options(cli.train_parser().parse_args(FLAGS + ["--seed=5"]))
    assert (recorded.optim.learning_rate, recorded.data.augment_conf_path, recorded.model.rnn_size) == (5e-3, None, 32)
