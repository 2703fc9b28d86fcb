"""Train DeepSpeech2 + CTC (PPASR train.py). Multi-process: python -m paddle.distributed.launch train.py"""
import os

from ppasr.cli import train_parser
from ppasr.errors import run_main
from ppasr.trainer import train
from ppasr.utils import print_arguments

if __name__ == "__main__":
    args = train_parser().parse_args()
    if os.environ.get("PADDLE_TRAINER_ID", "0") == "0":
        print_arguments(args)
    run_main(lambda: train(args))
