"""Build an n-gram language model (ARPA) for the CTC beam search from your own transcripts.

    python tools/build_lm.py --manifest dataset/manifest.train --output lm/my_lm.arpa

Then decode with ``--decoder=ctc_beam_search --lang_model_path=lm/my_lm.arpa``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppasr.lm import TOKEN_MODES, build_lm


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags of the LM builder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", nargs="+", required=True,
                        help="manifests (JSON lines with a 'text' field) or plain-text files, "
                             "one transcript per line")
    parser.add_argument("--output", required=True,
                        help="ARPA file to write (.klm/.bin needs KenLM's build_binary)")
    parser.add_argument("--order", type=int, default=None,
                        help="n-gram order. Default: 5 for characters, 3 for words")
    parser.add_argument("--token", choices=TOKEN_MODES, default="auto",
                        help="LM tokens: characters (Chinese), words (English) or detected "
                             "from the text. Default: %(default)s")
    parser.add_argument("--build_binary", default=None,
                        help="path of KenLM's build_binary, for binary output. "
                             "Default: looked up on PATH")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Build the LM and print its size."""
    args = parse_args(argv)
    try:
        model = build_lm(args.manifest, args.output, order=args.order, token=args.token,
                         build_binary=args.build_binary)
    except (OSError, ValueError) as exc:
        sys.exit(f"build_lm.py: error: {exc}")
    sizes = ", ".join(f"{n}-grams: {count}" for n, count in enumerate(model.counts(), start=1))
    print(f"wrote {args.output} ({model.token} tokens, order {model.order}; {sizes})")


if __name__ == "__main__":
    main()
