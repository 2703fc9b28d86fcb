"""ppasr: DeepSpeech2 + CTC speech recognition on PaddlePaddle (a modern PPASR)."""
import os
import warnings

__version__ = "0.1.0"

# paddle overwrites OMP_NUM_THREADS when imported; remember what the user asked for.
USER_OMP_NUM_THREADS = os.environ.get("OMP_NUM_THREADS")

# paddle warns on import that ccache (for compiling C++ extensions) is missing: not about the user's run.
warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
