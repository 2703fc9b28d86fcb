"""Generate a synthetic speech corpus (eSpeak NG) with a PPASR annotation file.

    python tools/generate_audio.py --num_samples 3000 --grammar demo --name demo

writes ``dataset/audio/demo/demo_000001.wav`` ... and ``dataset/annotation/demo.txt``
(``path<TAB>text`` per line). The same flags and seed always give the same files.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppasr.synth import BACKENDS, GRAMMARS, LANGUAGES, generate_corpus  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags of the corpus generator."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_samples", type=int, default=3000,
                        help="utterances to generate. Default: %(default)s")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of sentences, voices and noise. Default: %(default)s")
    parser.add_argument("--language", choices=LANGUAGES, default="zh",
                        help="zh: Mandarin (Hanzi transcripts); en: English (lower-case words). "
                             "Default: %(default)s")
    parser.add_argument("--grammar", choices=GRAMMARS, default="demo",
                        help="demo: ~130 characters, short sentences, quick to learn; full: richer. "
                             "Default: %(default)s")
    parser.add_argument("--name", default="demo",
                        help="corpus name (audio sub-folder and annotation file). Default: %(default)s")
    parser.add_argument("--output_dir", default="dataset",
                        help="root of audio/ and annotation/. Default: %(default)s")
    parser.add_argument("--num_workers", type=int, default=None,
                        help="synthesis processes. Default: the number of CPUs")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="eSpeak NG from pip espeakng-loader ('library') or the espeak-ng program "
                             "('cli'); 'auto' prefers the library. Default: %(default)s")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Generate the corpus and print where it went."""
    args = parse_args(argv)
    try:
        annotation = generate_corpus(args.num_samples, seed=args.seed, language=args.language,
                                     grammar=args.grammar, name=args.name, output_dir=args.output_dir,
                                     num_workers=args.num_workers, backend=args.backend)
    except (OSError, RuntimeError, ValueError) as exc:
        sys.exit(f"generate_audio.py: error: {exc}")
    print(f"wrote {args.num_samples} utterances; annotation: {annotation}")


if __name__ == "__main__":
    main()
