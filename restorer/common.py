"""The shared leaves: what every room of restorer may import, and which imports nothing of restorer.

* ``__version__``;
* :class:`ConfigError`, a configuration file, override or setting that cannot be used (training
  YAML, ``restorer serve`` flags and environment);
* :func:`cache_root`, the cache directory (``$RESTORER_CACHE``, default ``~/.cache/restorer``);
* :data:`WORD_RE`, what a "word" is for the guard, the proposals and the metrics;
* :func:`settings_from_dict`, settings dataclasses from plain dicts (YAML, JSON).

Standard library only: importing this module costs nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

__version__ = "0.1.0"

T = TypeVar("T")

WORD_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
"""A word: a run of word characters with apostrophes inside kept (``don't``, ``it’s``), or
one punctuation character."""


class ConfigError(ValueError):
    """A configuration file or override that cannot be used."""


def cache_root() -> Path:
    """Where downloads and converted models are kept: ``$RESTORER_CACHE`` or ``~/.cache/restorer``."""
    return Path(os.environ.get("RESTORER_CACHE") or Path.home() / ".cache" / "restorer")


def settings_from_dict(cls: type[T], d: dict[str, Any] | None, what: str) -> T:
    """``cls(**d)``, refusing keys ``cls`` does not have with a message naming ``what``."""
    d = dict(d or {})
    unknown = set(d) - set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    if unknown:
        raise ValueError(f"unknown {what} setting(s): {', '.join(sorted(unknown))}")
    return cls(**d)
