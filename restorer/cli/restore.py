"""``restorer restore`` and ``restorer eval``: the model of the command line, on files or on pairs."""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from restorer.cli.base import CLIError

if TYPE_CHECKING:
    from restorer.batch.world import World


def _guard_config(args: argparse.Namespace):  # -> GuardConfig
    from restorer.infer.guard import GuardConfig

    try:
        guard = GuardConfig(enabled=not args.no_guard)
        if args.min_confidence is not None:
            guard = GuardConfig(enabled=guard.enabled, min_confidence=args.min_confidence)
    except ValueError as exc:
        raise CLIError(str(exc).replace("guard min_confidence", "--min-confidence")) from None
    return guard


def _load_restorer(args: argparse.Namespace, world: World | None = None):  # -> Restorer
    """The model of the command line; with several processes in ``world``, on this process's
    GPU (``cuda:LOCAL_RANK``) or its share of the CPU cores."""
    from restorer.infer.restorer import ModelNotFoundError, Restorer
    from restorer.model.base_lm import LMFetchError

    if args.batch_size < 1:
        raise CLIError("--batch-size must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise CLIError("--threads must be at least 1")
    device, threads = args.device, args.threads
    if world is not None:
        device, threads = world.device(device), world.threads(threads)
    try:
        return Restorer.from_pretrained(
            args.model, device=device, batch_size=args.batch_size, threads=threads,
            guard=_guard_config(args), decoder=args.decoder, backend=args.backend, judge=args.judge,
            styles=args.style,
        )  # fmt: skip
    except (ModelNotFoundError, ValueError, LMFetchError) as exc:
        raise CLIError(str(exc)) from None


def cmd_restore(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from restorer.batch import InputError, RestoreOptions, run_restore
    from restorer.batch.world import LaunchError, World, connected

    if args.batch_size < 1:
        raise CLIError("--batch-size must be at least 1")
    settings = {
        "format": args.format,
        "explain": args.explain,
        "model": str(Path(args.model).resolve()) if args.model else "default",
        "guard": asdict(_guard_config(args)),
        "judge": args.judge,
        "styles": [str(Path(x).resolve()) if Path(x).exists() else x for x in args.style],
    }
    options = RestoreOptions(args.format, args.explain, args.resume, args.chunk_lines, settings)
    try:
        with connected(World.from_env()) as world:  # several processes under accelerate launch / torchrun
            run_restore(args.paths, args.output, options, load=partial(_load_restorer, args, world), world=world)
    except (InputError, LaunchError) as exc:
        raise CLIError(str(exc)) from None
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from restorer.data import PairsError, read_pairs
    from restorer.eval.evaluation import evaluate

    try:
        pairs = read_pairs(args.pairs)
    except PairsError as exc:
        raise CLIError(str(exc)) from None
    if args.limit:
        pairs = pairs[: args.limit]
    restorer = _load_restorer(args)
    ev = evaluate(restorer.restore_sentences, [p["spun"] for p in pairs], [p["original"] for p in pairs])
    if args.predictions:
        from restorer.data import write_pairs

        write_pairs(args.predictions, [{**p, "restored": o} for p, o in zip(pairs, ev.outputs, strict=True)])
    print(json.dumps(ev.metrics))
    return 0


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch (default: 32)")
    p.add_argument(
        "--threads", type=int, default=None,
        help="CPU threads for the model (default: torch's; restore under accelerate launch: the cores shared out)",
    )  # fmt: skip
    p.add_argument("--no-guard", action="store_true", help="use the model's output as is, without the guard")
    p.add_argument(
        "--min-confidence", type=float, default=None, metavar="X",
        help="seq2seq tier (--judge none): the guard keeps an edit only when the model's confidence is at "
        "least X (0-1; default: 0.4)",
    )  # fmt: skip
    p.add_argument(
        "--backend", choices=("auto", "torch", "ctranslate2"), default="auto",
        help="auto (default): on the CPU, the model's own int8 CTranslate2 export when it has one "
        "(the shipped model does), else torch; a `restorer export ctranslate2` directory runs on CTranslate2",
    )  # fmt: skip
    p.add_argument(
        "--decoder", choices=("speculative", "greedy"), default=None,
        help="torch backend: copy-speculative (default) or plain greedy generate; the outputs are the same "
        "(asking for one picks the torch backend under --backend auto)",
    )  # fmt: skip
    p.add_argument(
        "--judge", default="auto", metavar="NAME|DIR|none",
        help="the LM that judges proposed edits: auto (default: the one the model directory names, "
        "for the shipped model smollm2-135m, fetched and cached on first use), a known LM name "
        "(restorer models list), a directory of a causal LM, or none (the seq2seq model alone, as before)",
    )  # fmt: skip
    p.add_argument(
        "--style", action="append", default=[], metavar="DIR|FILE|NAME",
        help="add a spinner style: a style package (`restorer finetune` output), a style YAML or a built-in "
        "style name; repeat to combine styles. Its dictionary proposes next to the base tables, which are "
        "always kept (docs/finetuning.md)",
    )  # fmt: skip


def add_restore(sub: Any) -> None:
    """The parser of ``restorer restore``."""
    rp = sub.add_parser(
        "restore", help="restore spun text (line i of the output restores line i of the input)",
        description="Restore spun text. Under `accelerate launch -m restorer restore ... -o OUT` (or torchrun) "
        "each process restores its share of the input on its own GPU or CPU cores into a shard beside "
        "OUT, and the main process merges the shards in order.",
    )  # fmt: skip
    rp.add_argument(
        "paths", nargs="*", help="input files or folders (every *.txt, or *.jsonl); stdin when none or '-'"
    )
    rp.add_argument(
        "-o", "--output", default=None,
        help="output file, or folder for folder inputs (mirrors their layout); default: stdout",
    )  # fmt: skip
    rp.add_argument(
        "--format", choices=("text", "jsonl"), default="text",
        help='text: line i out restores line i in; jsonl: {"text"|"spun": ...} per line in, '
        '{"text", "edits", "spin_score"} out',
    )  # fmt: skip
    rp.add_argument(
        "--explain", action="store_true",
        help="text: show the edits ([-old-]{+new+}, coloured on a terminal); jsonl: add rejected edits and sentences",
    )  # fmt: skip
    rp.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted run into -o from its OUT.partial and OUT.progress.json",
    )  # fmt: skip
    rp.add_argument(
        "--chunk-lines", type=int, default=256, metavar="N",
        help="lines restored and written per chunk, the unit of progress and resume (default: 256)",
    )  # fmt: skip
    _add_model_args(rp)
    rp.set_defaults(func=cmd_restore)


def add_eval(sub: Any) -> None:
    """The parser of ``restorer eval``."""
    ep = sub.add_parser("eval", help="evaluate a model on a pairs file; prints one JSON object of metrics")
    ep.add_argument("--pairs", required=True, help='JSONL with {"spun": ..., "original": ...} per line')
    ep.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    ep.add_argument("--predictions", default=None, help="also write the pairs with the model's outputs here")
    _add_model_args(ep)
    ep.set_defaults(func=cmd_eval)
