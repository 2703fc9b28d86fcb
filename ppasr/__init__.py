"""ppasr: DeepSpeech2 + CTC speech recognition on PaddlePaddle (a modern PPASR)."""
import os
import warnings

__version__ = "0.1.0"

# paddle overwrites OMP_NUM_THREADS when imported; remember what the user asked for.
USER_OMP_NUM_THREADS = os.environ.get("OMP_NUM_THREADS")

# paddle 3 warns on every import that ccache (for compiling C++ extensions, which ppasr never does) is
# missing; it would be the first lines of every run's stderr, above a user error.
warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)

# paddle's C++ executor logs INFO lines (and a banner per exported-model load) through glog; they are
# not about the user's run (PPASR called disable_glog_info()). Set before paddle is imported.
os.environ.setdefault("GLOG_minloglevel", "2")
