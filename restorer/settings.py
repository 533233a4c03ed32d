"""Settings dataclasses from plain dicts (YAML, JSON): unknown keys are a clear error."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def settings_from_dict(cls: type[T], d: dict[str, Any] | None, what: str) -> T:
    """``cls(**d)``, refusing keys ``cls`` does not have with a message naming ``what``."""
    d = dict(d or {})
    unknown = set(d) - set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    if unknown:
        raise ValueError(f"unknown {what} setting(s): {', '.join(sorted(unknown))}")
    return cls(**d)
