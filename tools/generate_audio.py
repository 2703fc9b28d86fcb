"""Generate a synthetic speech corpus (eSpeak NG) with a PPASR annotation file.

    python tools/generate_audio.py --num_samples 3000 --grammar demo --name demo
    python tools/generate_audio.py --num_samples 200 --split unseen --name demo

The first writes ``dataset/audio/demo/demo_000001.wav`` ... and ``dataset/annotation/demo.txt``
(``path<TAB>text`` per line); the second a test set of held-out voices and sentence templates into
``dataset/audio/demo_unseen/`` and ``dataset/annotation/test.txt``. The same flags and seed always
give the same files.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppasr.scripts import generate_audio  # noqa: E402

if __name__ == "__main__":
    generate_audio()
