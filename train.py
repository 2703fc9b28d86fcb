"""Train DeepSpeech2 + CTC (PPASR train.py). Multi-process: python -m paddle.distributed.launch train.py"""
import os

from ppasr.cli import train_parser
from ppasr.errors import run_main
from ppasr.utils import print_arguments


def main() -> None:
    args = train_parser().parse_args()
    from ppasr.train.trainer import train  # after the flags are valid: --help and flag errors need no paddle
    if os.environ.get("PADDLE_TRAINER_ID", "0") == "0":
        print_arguments(args)
    train(args)


if __name__ == "__main__":
    run_main(main)
