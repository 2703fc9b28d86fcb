"""Grid-search the LM weight alpha and insertion bonus beta (PPASR tools/tune.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppasr.scripts import tune  # noqa: E402

if __name__ == "__main__":
    tune()
