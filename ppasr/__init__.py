"""ppasr: DeepSpeech2 + CTC speech recognition on PaddlePaddle (a modern PPASR)."""
import os

__version__ = "0.1.0"

# paddle overwrites OMP_NUM_THREADS when imported; remember what the user asked for.
USER_OMP_NUM_THREADS = os.environ.get("OMP_NUM_THREADS")
