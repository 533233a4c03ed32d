"""``restorer serve``: the HTTP server; every setting is a flag and a ``RESTORER_*`` variable."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from restorer.cli.base import CLIError


def cmd_serve(args: argparse.Namespace) -> int:
    from restorer.infer.restorer import default_model_dir
    from restorer.model.device import resolve_device
    from restorer.serving.server import run
    from restorer.serving.settings import ServeConfig, option_help
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
    from restorer.serving.settings import env_name, flag_name, option_help

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


def add_serve(sub: Any) -> None:
    """The parser of ``restorer serve``."""
    sv = sub.add_parser(
        "serve", help="serve the model over HTTP (KServe v2 / Open Inference Protocol, /v1/restore, /metrics)",
        description="Every setting can also come from the environment (RESTORER_*); a flag wins over the environment.",
    )  # fmt: skip
    _add_serve_args(sv)
    sv.set_defaults(func=cmd_serve)
