"""``restorer export`` and ``restorer ship``: a model for a fast runtime, and the shipped default."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from restorer.cli.base import CLIError


def cmd_export(args: argparse.Namespace) -> int:
    from restorer.infer.ct2 import SUBDIR, ExportError, export_ctranslate2
    from restorer.infer.restorer import default_model_dir

    model = Path(args.model) if args.model else default_model_dir()
    output = Path(args.output) if args.output else model / SUBDIR
    try:
        info = export_ctranslate2(model, output, args.quantization, force=args.force)
    except ExportError as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps(info))
    return 0


def cmd_ship(args: argparse.Namespace) -> int:
    from restorer.train.ship import ShipError, ship_model

    try:
        info = ship_model(
            Path(args.model_dir),
            Path(args.to) if args.to else None,
            Path(args.eval_pairs) if args.eval_pairs else None,
            args.eval_limit,
            args.note,
        )
    except ShipError as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps(info))
    return 0


def add_export(sub: Any) -> None:
    """The parser of ``restorer export ctranslate2``."""
    xp = sub.add_parser("export", help="export a model for a fast runtime")
    xsub = xp.add_subparsers(dest="export_command", required=True, metavar="RUNTIME")
    xc = xsub.add_parser("ctranslate2", help="convert to CTranslate2 (int8 by default), tokenizer included")
    xc.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    xc.add_argument(
        "--output", default=None,
        help="the CTranslate2 directory to write (default: MODEL/ctranslate2, which Restorer then runs on the CPU)",
    )  # fmt: skip
    xc.add_argument(
        "--quantization", default="int8",
        choices=("int8", "int8_float32", "int8_float16", "int8_bfloat16", "float16", "bfloat16", "float32"),
        help="weight type (default: int8; int8_float16 or float16 for GPUs)",
    )  # fmt: skip
    xc.add_argument("--force", action="store_true", help="overwrite a non-empty output directory")
    xc.set_defaults(func=cmd_export)


def add_ship(sub: Any) -> None:
    """The parser of ``restorer ship``."""
    sh = sub.add_parser(
        "ship", help="pack a trained model directory as fp16 safetensors (the shipped default)"
    )
    sh.add_argument("model_dir", help="a model directory written by train.py (e.g. runs/default/best)")
    sh.add_argument("--to", default=None, help="destination (default: restorer/checkpoints/default)")
    sh.add_argument(
        "--eval-pairs", default=None, help="score the shipped weights on these pairs (guard on and off) for the card"
    )
    sh.add_argument("--eval-limit", type=int, default=0, help="only the first N eval pairs")
    sh.add_argument("--note", default="", help="a paragraph for the model card (e.g. the training history)")
    sh.set_defaults(func=cmd_ship)
