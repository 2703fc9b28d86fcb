"""Build an n-gram language model (ARPA) for the CTC beam search from your own transcripts.

    python tools/build_lm.py --manifest dataset/manifest.train --output lm/my_lm.arpa

Then decode with ``--decoder=ctc_beam_search --lang_model_path=lm/my_lm.arpa``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppasr.cli import build_lm_parser  # noqa: E402
from ppasr.decode.lm_builder import build_lm  # noqa: E402
from ppasr.errors import UserError, run_main  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Build the LM and print its size."""
    args = build_lm_parser().parse_args(argv)
    try:
        model = build_lm(args.manifest, args.output, order=args.order, token=args.token,
                         build_binary=args.build_binary)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None
    sizes = ", ".join(f"{n}-grams: {count}" for n, count in enumerate(model.counts(), start=1))
    print(f"wrote {args.output} ({model.token} tokens, order {model.order}; {sizes})")


if __name__ == "__main__":
    run_main(main)
