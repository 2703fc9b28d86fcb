"""Train DeepSpeech2 + CTC (PPASR train.py). Multi-process: python -m paddle.distributed.launch train.py"""
from ppasr.scripts import train

if __name__ == "__main__":
    train()
