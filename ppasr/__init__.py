"""ppasr: DeepSpeech2 + CTC speech recognition on PaddlePaddle (a modern PPASR)."""

__version__ = "0.1.0"
