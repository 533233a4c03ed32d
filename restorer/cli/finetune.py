"""``restorer finetune``: fine-tune a model on a new spinner style."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from restorer.cli.base import CLIError

if TYPE_CHECKING:
    from restorer.train.config import RunConfig


_FINETUNE_OPTIONS = (
    ("--model", "DIR", "train.init_from", "the base model directory (e.g. runs/default/best)"),
    ("--output", "DIR", "train.output_dir", "the new model directory to write"),
    ("--pairs", "FILE", "finetune.pairs", 'JSONL of the new style\'s {"spun", "original"} pairs (sentences or phrases)'),
    ("--dictionary", "FILE", "finetune.dictionary", "the new spinner's dictionary: spintax, word|syn lines or TSV"),
    ("--style", "FILE", "finetune.style", "the new spinner's style YAML (or a built-in style name)"),
    ("--corpus", "PATH", "finetune.corpus", "clean text to spin with the new style: a `data build` folder, or "
     "text, Markdown or JSONL files and folders (default: the base corpus)"),
    ("--valid", "FILE", "finetune.valid", "held-out pairs of the new style (default: split off --pairs)"),
    ("--base-corpus", "DIR", "finetune.base_corpus", "the base corpus folder, for replay and the base valid set "
     "(default: corpus)"),
)  # fmt: skip


def _finetune_settings(cfg: RunConfig, args: argparse.Namespace) -> RunConfig:
    """``cfg`` with the values of the finetune flags (paths are taken verbatim, not as YAML)."""
    from dataclasses import replace

    for flag, _metavar, setting, _help in _FINETUNE_OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            section, key = setting.split(".")
            cfg = replace(cfg, **{section: replace(getattr(cfg, section), **{key: value})})
    if args.max_minutes is not None:
        cfg = replace(cfg, train=replace(cfg.train, max_minutes=args.max_minutes))
    if args.no_mine:
        cfg = replace(cfg, finetune=replace(cfg.finetune, mine=False))
    if args.no_train:
        if args.no_mine:
            raise CLIError("--no-train keeps the mined dictionary alone: it cannot go with --no-mine")
        cfg = replace(cfg, finetune=replace(cfg.finetune, train=False))
    return cfg


def cmd_finetune(args: argparse.Namespace) -> int:
    from restorer.train.config import ConfigError
    from restorer.train.finetune import FinetuneError, finetune_config, run_finetune

    if not args.output:
        raise CLIError("give the new model's directory: --output DIR")
    if args.max_minutes is not None and args.max_minutes < 0:
        raise CLIError("--max-minutes must be 0 (no limit) or more")
    saved = Path(args.output) / "finetune_config.yaml"
    config = args.config or (saved if args.resume and saved.exists() else None)
    if config is None and not args.model:
        raise CLIError("give the base model: --model DIR (a model directory, e.g. runs/default/best)")
    try:
        cfg = _finetune_settings(finetune_config(config, args.set or []), args)
        result = run_finetune(cfg, resume=args.resume)
    except (ConfigError, FinetuneError) as exc:
        raise CLIError(str(exc)) from None
    return 130 if result.get("interrupted") else 0


def add_finetune(sub: Any) -> None:
    """The parser of ``restorer finetune``."""
    ft = sub.add_parser(
        "finetune", help="make a style package for a new spinner style (pairs, a dictionary or a style), "
        "and fine-tune a proposer for it",
        description="Make a style package for a new spinner style in --output: its dictionary (style.yaml, "
        "dictionary.tsv; mined from --pairs or imported), which the judge uses at once, and (unless "
        "--no-train) a copy of the seq2seq model fine-tuned on the style with replay of the base mix. The "
        "base model is never changed; use the package with `restorer restore --style OUTPUT`. Give one of "
        "--pairs, --dictionary or --style. See docs/finetuning.md.",
    )  # fmt: skip
    for flag, metavar, _setting, help_text in _FINETUNE_OPTIONS:
        ft.add_argument(flag, default=None, metavar=metavar, help=help_text)
    ft.add_argument("--no-mine", action="store_true", help="with --pairs: train on the pairs alone, no style mining")
    ft.add_argument("--no-train", action="store_true",
                    help="write the style package's dictionary (mined or imported) and its card, and train nothing: "
                    "it helps at once through the judge's proposals (restorer restore --style OUTPUT)")
    ft.add_argument("--max-minutes", type=float, default=None, metavar="M", help="budget of the whole fine-tune (default: 30)")
    ft.add_argument("--config", default=None, metavar="YAML", help="a YAML layered on the fine-tune defaults (configs/finetune.yaml)")
    ft.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="a config override, e.g. train.lr=1e-4")
    ft.add_argument("--resume", action="store_true", help="continue the interrupted fine-tune in --output")
    ft.set_defaults(func=cmd_finetune)
