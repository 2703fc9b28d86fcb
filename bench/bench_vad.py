"""Long-audio VADs against the truth: long synthesised recordings with known pauses, clean and noisy.

Per VAD and condition: mean boundary error (ms, |detected - true| for the start and the end of each
utterance that was found), missed utterances (no segment touches them), false segments (touch no
utterance), merged segments (span two or more utterances) and the VAD's speed (x real time).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppasr.demo.long_audio import long_recording, score_segments  # noqa: E402
from ppasr.demo.synth import SAMPLE_RATE  # noqa: E402
from ppasr.serve.vad import VADS, split_on_silence  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--utterances", type=int, default=30, help="utterances per recording")
    parser.add_argument("--snr_db", type=float, nargs="*", default=[20.0, 10.0, 5.0], help="pink-noise conditions")
    parser.add_argument("--vads", nargs="*", default=list(VADS), choices=VADS)
    args = parser.parse_args()
    conditions = [("clean", None)] + [(f"pink {snr:g} dB", snr) for snr in args.snr_db]
    print(f"{args.utterances} utterances per recording, pauses 0.6-2.0 s")
    print(f"{'condition':<12} {'vad':<7} {'audio s':>7} {'segments':>8} {'bound. ms':>9} {'p90 ms':>7} "
          f"{'missed':>6} {'false':>5} {'merged':>6} {'x RT':>6}")
    for name, snr in conditions:
        samples, truth = long_recording(args.utterances, seed=11, snr_db=snr)
        seconds = len(samples) / SAMPLE_RATE
        for vad in args.vads:
            start = time.perf_counter()
            found = split_on_silence(samples, SAMPLE_RATE, vad)
            elapsed = time.perf_counter() - start
            errors, missed, false, merged = score_segments(found, truth)
            mean = f"{np.mean(errors):.0f}" if errors else "-"
            p90 = f"{np.percentile(errors, 90):.0f}" if errors else "-"
            print(f"{name:<12} {vad:<7} {seconds:>7.0f} {len(found):>8} {mean:>9} {p90:>7} {missed:>6} {false:>5} "
                  f"{merged:>6} {seconds / elapsed:>6.0f}")


if __name__ == "__main__":
    main()
