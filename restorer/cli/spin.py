"""``restorer spin`` and ``restorer styles``: spin clean text with a spinner style."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from typing import Any

from restorer.cli.base import AtomicWriter, CLIError, read_inputs


def cmd_spin(args: argparse.Namespace) -> int:
    from restorer.spin.document import spin_document
    from restorer.spin.spinner import Spinner
    from restorer.spin.styles import StyleError, load_style

    overrides = {}
    if args.rate is not None:
        if not 0.0 <= args.rate <= 1.0:
            raise CLIError("--rate must be between 0 and 1")
        overrides["rate"] = args.rate
    try:
        style = load_style(args.style, overrides=overrides or None)
        if overrides and style.mix:  # --rate applies to every spinner of a mixture
            style.mix = [{**m, **overrides} for m in style.mix]
        spinner = Spinner(style)
    except (StyleError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    n_pairs = 0
    with (
        AtomicWriter(args.output) as out,
        AtomicWriter(args.pairs_out) if args.pairs_out else nullcontext() as pairs,
    ):
        for doc_no, (_name, text) in enumerate(read_inputs(args.paths)):
            spun, results = spin_document(spinner, text, seed=f"{args.seed}:{doc_no}")
            if args.format == "jsonl":
                for r in results:
                    out.write(json.dumps(r.to_pair(), ensure_ascii=False) + "\n")
            else:
                out.write(spun)
            if pairs is not None:
                for r in results:
                    pairs.write(json.dumps(r.to_pair(), ensure_ascii=False) + "\n")
                    n_pairs += 1
    if args.pairs_out:
        print(f"wrote {n_pairs} pairs to {args.pairs_out}", file=sys.stderr)
    return 0


def cmd_styles(args: argparse.Namespace) -> int:
    from restorer.spin.styles import builtin_style_dir, builtin_styles, load_style

    for name in builtin_styles():
        st = load_style(name)
        print(f"{name:12s} {st.description}")
    print(f"\n(style files live in {builtin_style_dir()}; `--style my.yaml` uses your own)")
    return 0


def add_spin(sub: Any) -> None:
    """The parser of ``restorer spin``."""
    sp = sub.add_parser("spin", help="spin clean text with a spinner style (deterministic per seed)")
    sp.add_argument("paths", nargs="*", help="input files; stdin when none or '-'")
    sp.add_argument(
        "--style", default="autoblog", help="built-in style name or a style YAML file (default: autoblog)"
    )
    sp.add_argument("--rate", type=float, default=None, help="override the style's replacement rate (0-1)")
    sp.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same output")
    sp.add_argument("-o", "--output", default=None, help="output file (default: stdout)")
    sp.add_argument(
        "--format", choices=("text", "jsonl"), default="text", help="spun text, or one JSON pair per sentence"
    )
    sp.add_argument("--pairs-out", default=None, help="also write (spun, original) sentence pairs as JSONL")
    sp.set_defaults(func=cmd_spin)


def add_styles(sub: Any) -> None:
    """The parser of ``restorer styles``."""
    st = sub.add_parser("styles", help="list the built-in spinner styles")
    st.set_defaults(func=cmd_styles)
