"""The ``restorer`` command line: the parser of every command group, and ``main``.

Each command group has its own module (:mod:`.spin`, :mod:`.restore`, :mod:`.data`,
:mod:`.export`, :mod:`.finetune`, :mod:`.serve`, :mod:`.models`): its ``cmd_*`` functions and the
``add_*`` functions that add its subcommands here. This package is the only place in restorer
that parses arguments (``train.py`` at the top of the repository is the other).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from restorer.cli import data, export, finetune, models, restore, serve, spin
from restorer.cli.base import CLIError
from restorer.common import __version__


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="restorer", description="Restore article-spun text to the original English."
    )
    ap.add_argument("--version", action="version", version=f"restorer {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # the order of `restorer --help`
    spin.add_spin(sub)
    restore.add_restore(sub)
    restore.add_eval(sub)
    export.add_export(sub)
    export.add_ship(sub)
    finetune.add_finetune(sub)
    serve.add_serve(sub)
    spin.add_styles(sub)
    data.add_data(sub)
    models.add_models(sub)
    data.add_tables(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"restorer: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `restorer spin big.txt | head`
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
