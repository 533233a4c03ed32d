"""Pairs files and corpus files: read, write, and spin a fixed list of sentences into pairs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from restorer.spin.spinner import Spinner


class PairsError(ValueError):
    """A pairs or corpus file that cannot be used."""


def load_sentences(path: str | Path, min_words: int = 1) -> list[str]:
    """Sentences of a corpus JSONL file (``{"text": ...}`` per line, as `data build` writes)."""
    p = Path(path)
    if not p.exists():
        raise PairsError(f"corpus file not found: {p} (build it with `restorer data build --out {p.parent}`)")
    out: list[str] = []
    with open(p, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise PairsError(f"{p}:{n}: expected a JSON object with a 'text' field") from None
            if len(text.split()) >= min_words:
                out.append(text)
    if not out:
        raise PairsError(f"{p}: no sentences")
    return out


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """A pairs file: one ``{"spun": ..., "original": ...}`` per line (extra keys kept)."""
    p = Path(path)
    if not p.exists():
        raise PairsError(f"pairs file not found: {p}")
    pairs = []
    with open(p, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PairsError(f"{p}:{n}: not JSON ({exc.msg})") from None
            if (
                not isinstance(obj, dict)
                or not isinstance(obj.get("spun"), str)
                or not isinstance(obj.get("original"), str)
            ):
                raise PairsError(f'{p}:{n}: expected {{"spun": str, "original": str}}')
            pairs.append(obj)
    if not pairs:
        raise PairsError(f"{p}: no pairs")
    return pairs


def write_pairs(path: str | Path, pairs: Sequence[dict[str, Any]]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for obj in pairs:
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    tmp.replace(p)


def make_pairs(sentences: Sequence[str], spinner: Spinner, seed: int | str = 0) -> list[dict[str, Any]]:
    """Spin a fixed list of sentences into pairs (for valid and test sets)."""
    out = []
    for i, s in enumerate(sentences):
        out.append(spinner.spin(s, f"{seed}:{i}").to_pair())
    return out
