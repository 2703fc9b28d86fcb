"""Generate a synthetic speech corpus (eSpeak NG) with a PPASR annotation file.

    python tools/generate_audio.py --num_samples 3000 --grammar demo --name demo

writes ``dataset/audio/demo/demo_000001.wav`` ... and ``dataset/annotation/demo.txt``
(``path<TAB>text`` per line). The same flags and seed always give the same files.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppasr.cli import generate_audio_parser  # noqa: E402
from ppasr.demo.synth import generate_corpus  # noqa: E402
from ppasr.errors import UserError, run_main  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Generate the corpus and print where it went."""
    args = generate_audio_parser().parse_args(argv)
    try:
        annotation = generate_corpus(args.num_samples, seed=args.seed, language=args.language,
                                     grammar=args.grammar, name=args.name, output_dir=args.output_dir,
                                     num_workers=args.num_workers, backend=args.backend)
    except (OSError, RuntimeError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {args.num_samples} utterances; annotation: {annotation}")


if __name__ == "__main__":
    run_main(main)
