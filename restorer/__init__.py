"""restorer: turn article-spun text back into the original idiomatic English."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from restorer.common import __version__

__all__ = ["Restorer", "__version__"]

if TYPE_CHECKING:
    from restorer.infer.restorer import Restorer


def __getattr__(name: str) -> Any:
    # lazy: `import restorer` stays cheap (no torch) for the spinner and the corpus tools
    if name == "Restorer":
        from restorer.infer.restorer import Restorer

        return Restorer
    raise AttributeError(f"module 'restorer' has no attribute {name!r}")
