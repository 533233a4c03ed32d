"""The ``restorer`` command (``restorer.cli:main``)."""

from __future__ import annotations

from restorer.cli.parser import CLIError, build_parser, main

__all__ = ["CLIError", "build_parser", "main"]
