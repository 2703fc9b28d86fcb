"""Build an n-gram language model (ARPA) for the CTC beam search from your own transcripts.

    python tools/build_lm.py --manifest dataset/manifest.train --output lm/my_lm.arpa

Then decode with ``--decoder=ctc_beam_search --lang_model_path=lm/my_lm.arpa``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppasr.scripts import build_lm  # noqa: E402

if __name__ == "__main__":
    build_lm()
