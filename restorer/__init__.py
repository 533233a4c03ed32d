"""restorer: turn article-spun text back into the original idiomatic English."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
