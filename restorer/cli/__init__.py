"""The ``restorer`` command (``restorer.cli:main``): all argument parsing, one module per command group."""

from __future__ import annotations

from restorer.cli.base import CLIError
from restorer.cli.parser import build_parser, main

__all__ = ["CLIError", "build_parser", "main"]
