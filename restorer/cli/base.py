"""What every command shares: the user error, reading inputs, writing outputs atomically."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


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
