"""Generate a synthetic speech corpus (eSpeak NG) with a PPASR annotation file.

    python tools/generate_audio.py --num_samples 3000 --grammar demo --name demo
    python tools/generate_audio.py --num_samples 200 --split unseen --name demo

The first writes ``dataset/audio/demo/demo_000001.wav`` ... and ``dataset/annotation/demo.txt``
(``path<TAB>text`` per line); the second a test set of held-out voices and sentence templates into
``dataset/audio/demo_unseen/`` and ``dataset/annotation/test.txt``. The same flags and seed always
give the same files.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppasr.cli import generate_audio_parser  # noqa: E402
from ppasr.demo.synth import generate_corpus, generate_noise  # noqa: E402
from ppasr.errors import UserError, run_main  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Generate the corpus and print where it went."""
    args = generate_audio_parser().parse_args(argv)
    try:
        annotation = generate_corpus(args.num_samples, seed=args.seed, language=args.language,
                                     grammar=args.grammar, name=args.name, output_dir=args.output_dir,
                                     num_workers=args.num_workers, backend=args.backend, split=args.split)
        noise = generate_noise(args.noise_clips, seed=args.seed, language=args.language, grammar=args.grammar,
                               name=args.name, output_dir=args.output_dir,
                               backend=args.backend) if args.noise_clips else None
    except (OSError, RuntimeError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {args.num_samples} {args.split} utterances; annotation: {annotation}")
    if noise:
        print(f"wrote {args.noise_clips} noise clips to {noise}")


if __name__ == "__main__":
    run_main(main)
