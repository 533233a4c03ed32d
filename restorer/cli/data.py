"""``restorer data build``, ``restorer data pairs`` and ``restorer tables build``: the corpus,
fixed pairs files and the synonym tables.

``restorer data build`` is :func:`add_build_arguments` + :func:`run_build` (with the printed
summary table); :func:`restorer.corpus.build_corpus` is the Python API.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from restorer.cli.base import CLIError
from restorer.corpus.build import SPLITS, build_corpus, parse_sources
from restorer.corpus.fetch import FetchError
from restorer.corpus.sources import DEFAULT_SOURCES, SOURCES, UserInputError

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


def cmd_data_build(args: argparse.Namespace) -> int:
    return run_build(args)


def cmd_data_pairs(args: argparse.Namespace) -> int:
    from restorer.data import PairsError, load_sentences, make_pairs, write_pairs
    from restorer.spin.spinner import Spinner
    from restorer.spin.styles import StyleError

    try:
        sentences = load_sentences(args.corpus)
        spinner = Spinner.from_style(args.style)
    except (PairsError, StyleError) as exc:
        raise CLIError(str(exc)) from None
    if args.limit and args.limit < len(sentences):
        import random

        # a seeded sample across the whole split (the file is ordered by source and document)
        keep = sorted(random.Random(args.seed).sample(range(len(sentences)), args.limit))
        sentences = [sentences[i] for i in keep]
    pairs = make_pairs(sentences, spinner, seed=f"{args.style}:{args.seed}")
    write_pairs(args.out, pairs)
    changed = sum(p["spun"] != p["original"] for p in pairs)
    print(f"wrote {len(pairs)} pairs ({changed} changed) to {args.out}", file=sys.stderr)
    return 0


def cmd_tables_build(args: argparse.Namespace) -> int:
    from restorer.common import cache_root
    from restorer.spin.build_tables import MYTHES_PATH, TablesError, rebuild_tables
    from restorer.spin.lexicon import data_path

    out = Path(args.out) if args.out else data_path("")
    cache = Path(args.cache) if args.cache else cache_root()
    corpus = Path(args.corpus) if args.corpus else None
    if corpus is not None and corpus.is_dir():
        corpus = corpus / "train.jsonl"
    if corpus is not None and not corpus.exists():
        raise CLIError(f"corpus not found: {corpus} (build it with `restorer data build --out DIR`)")
    try:
        stats = rebuild_tables(out, cache, Path(args.mythes) if args.mythes else MYTHES_PATH, corpus=corpus)
    except TablesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(stats))
    return 0


def cmd_tables_mine(args: argparse.Namespace) -> int:
    from restorer.data import PairsError, read_pairs
    from restorer.train.finetune.mining import BaseRowsError, mine_base_rows

    model = Path(args.model)
    try:
        pairs = [p for f in args.pairs for p in read_pairs(f)]
        stats = mine_base_rows(pairs, model, min_count=args.min_count, min_seen=args.min_seen,
                               source=", ".join(Path(f).name for f in args.pairs))  # fmt: skip
    except (PairsError, BaseRowsError, OSError) as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps(stats))
    print(f"wrote {model}/mined/ and named it in {model}/restorer.json", file=sys.stderr)
    return 0


def add_data(sub: Any) -> None:
    """The parser of ``restorer data build`` and ``restorer data pairs``."""
    dp = sub.add_parser("data", help="corpus commands")
    dsub = dp.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    db = dsub.add_parser("build", help="build the clean sentence corpus from the offline sources")
    add_build_arguments(db)
    db.set_defaults(func=cmd_data_build)
    dpp = dsub.add_parser(
        "pairs", help="spin a corpus split into a fixed pairs file (for eval and test sets)"
    )
    dpp.add_argument("--corpus", required=True, help="corpus JSONL, e.g. corpus/test.jsonl")
    dpp.add_argument("--out", required=True, help="pairs JSONL to write")
    dpp.add_argument("--style", default="mixed", help="spinner style (default: mixed)")
    dpp.add_argument("--seed", type=int, default=0)
    dpp.add_argument("--limit", type=int, default=0, help="a seeded sample of N sentences")
    dpp.set_defaults(func=cmd_data_pairs)


def add_tables(sub: Any) -> None:
    """The parser of ``restorer tables build`` and ``restorer tables mine``."""
    tp = sub.add_parser("tables", help="synonym table commands")
    tsub = tp.add_subparsers(dest="tables_command", required=True, metavar="SUBCOMMAND")
    tb = tsub.add_parser("build", help="rebuild the shipped synonym tables from WordNet, MyThes and Moby")
    tb.add_argument("--out", default=None, help="output folder (default: the package's data folder)")
    tb.add_argument(
        "--cache", default=None, help="download cache (default: $RESTORER_CACHE or ~/.cache/restorer)"
    )
    tb.add_argument("--mythes", default=None, help="path of th_en_US_v2.dat (Debian mythes-en-us)")
    tb.add_argument(
        "--corpus", default=None, help="corpus folder or train.jsonl, to list names spinners skip"
    )
    tb.set_defaults(func=cmd_tables_build)
    tm = tsub.add_parser(
        "mine",
        help="learn the base spinner's rows for a model's judge from train-split pairs: a mined "
        "dictionary next to the tables, and every row's evidence (docs/judge.md)",
    )
    tm.add_argument("--pairs", required=True, nargs="+", help="pairs JSONL files of the train split "
                    "(`restorer data pairs --corpus corpus/train.jsonl`)")  # fmt: skip
    tm.add_argument("--model", required=True, help="a model directory that names a judge (restorer.json)")
    tm.add_argument("--min-count", type=int, default=3, help="keep mined entries seen at least this often")
    tm.add_argument("--min-seen", type=int, default=10,
                    help="keep the evidence of a row never right only when it was seen this often")  # fmt: skip
    tm.set_defaults(func=cmd_tables_mine)
