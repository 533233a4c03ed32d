"""Spinner styles: YAML files describing how a spinner behaves.

A style is a flat set of knobs (``Style``). Any numeric knob may be given as ``[lo, hi]``, in
which case a value is drawn per text. A *mixture* style (``mix:``) lists component styles with
weights and per-component overrides; each text is spun by one component drawn at random.
See ``configs/spinners/*.yaml`` for the shipped styles and docs/spinner.md for the reference.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

Number = float | list[float]

SOURCE_NAMES = ("curated", "wordnet", "mythes", "moby")


class StyleError(ValueError):
    """A style file or style name that cannot be used."""


@dataclass
class Style:
    name: str = "custom"
    description: str = ""
    # probability that an eligible content word (one with synonyms) is replaced
    rate: Number = 0.3
    # favourite: one fixed synonym per word for a given dictionary seed (autoblog spinners);
    # sample: a synonym drawn anew for every occurrence (thesaurus spinners)
    choice: str = "favourite"
    dictionary_seed: int | str = 0  # an int, or "random" to draw a new dictionary per text
    coverage: Number = 1.0  # share of words that have an entry in the favourite dictionary
    sources: list[str] | str = field(default_factory=lambda: list(SOURCE_NAMES))  # or "random"
    top_k: int | list[int] = 6  # only the k best synonyms are candidates
    temperature: Number = 1.0  # > 1 flattens the frequency preference, < 1 sharpens it
    min_score: float = 0.0  # drop synonyms with a lower frequency score
    capitalized: Number = 0.8  # rate multiplier for capitalised words inside a sentence (names)
    # probabilities of the rule families, per matching occurrence
    phrases: Number = 0.6
    function: Number = 0.3  # auxiliaries, connectives and other function-word swaps
    contract: Number = 0.3
    expand: Number = 0.3
    aux: Number = 0.3
    number: Number = 0.3
    unit: Number = 0.5
    british: Number = 0.0
    tortured: Number = 0.0
    fix_articles: Number = 0.5  # fix "a"/"an" after a swap (real spinners often do not)
    dictionaries: list[str] = field(default_factory=list)  # extra imported dictionaries
    dictionary_only: bool = False  # use only the imported dictionaries (a user's spinner)
    mix: list[dict[str, Any]] = field(default_factory=list)

    def sample(self, rng: random.Random) -> Style:
        """Resolve ranges and "random" settings into one concrete style for one text."""
        out = replace(self)
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list) and len(v) == 2 and all(isinstance(x, int | float) for x in v):
                lo, hi = v
                if isinstance(lo, int) and isinstance(hi, int) and f.name == "top_k":
                    setattr(out, f.name, rng.randint(lo, hi))
                else:
                    setattr(out, f.name, rng.uniform(float(lo), float(hi)))
        if self.dictionary_seed == "random":
            out.dictionary_seed = rng.getrandbits(32)
        if self.sources == "random":
            picked = [s for s in SOURCE_NAMES if rng.random() < 0.6]
            out.sources = picked or [rng.choice(SOURCE_NAMES)]
        return out


STYLE_FIELDS = {f.name for f in fields(Style)}


def builtin_style_dir() -> Path:
    return Path(str(resources.files("restorer.spin").joinpath("styles")))


def builtin_styles() -> list[str]:
    return sorted(p.stem for p in builtin_style_dir().glob("*.yaml"))


def _validate(data: dict[str, Any], where: str) -> None:
    unknown = set(data) - STYLE_FIELDS
    if unknown:
        raise StyleError(f"{where}: unknown style keys {sorted(unknown)}; known keys: {sorted(STYLE_FIELDS)}")
    if "choice" in data and data["choice"] not in ("favourite", "sample"):
        raise StyleError(f"{where}: choice must be 'favourite' or 'sample', not {data['choice']!r}")
    src = data.get("sources")
    if isinstance(src, list) and set(src) - set(SOURCE_NAMES):
        raise StyleError(
            f"{where}: unknown sources {sorted(set(src) - set(SOURCE_NAMES))}; use {SOURCE_NAMES}"
        )
    for key in ("rate", "coverage", "capitalized", "phrases", "function", "contract", "expand", "aux",
                "number", "unit", "british", "tortured", "fix_articles"):  # fmt: skip
        v = data.get(key)
        vals = v if isinstance(v, list) else [v] if v is not None else []
        for x in vals:
            if not isinstance(x, int | float) or not 0.0 <= float(x) <= 1.0:
                raise StyleError(
                    f"{where}: {key} must be a probability in [0, 1] or a [lo, hi] range, not {v!r}"
                )


def resolve_style_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise StyleError(f"style file not found: {p}")
        return p
    builtin = builtin_style_dir() / f"{name_or_path}.yaml"
    if builtin.exists():
        return builtin
    raise StyleError(
        f"unknown style {str(name_or_path)!r}; built-in styles: {', '.join(builtin_styles())}, or give a YAML file"
    )


def load_style(name_or_path: str | Path, overrides: dict[str, Any] | None = None) -> Style:
    """Load a built-in style by name or a user's YAML file, with optional overrides."""
    path = resolve_style_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise StyleError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise StyleError(f"{path}: a style file must be a YAML mapping")
    base = data.pop("base", None)
    style = load_style(base) if base else Style()
    data.setdefault("name", path.stem)
    data.update(overrides or {})
    _validate(data, str(path))
    for item in data.get("mix", []):
        if "style" not in item:
            raise StyleError(f"{path}: every mix entry needs a 'style' (a name or a file)")
        _validate(
            {k: v for k, v in item.items() if k not in ("style", "weight")},
            f"{path} mix entry {item['style']}",
        )
    # relative dictionary paths are relative to the style file
    dicts = [
        str((path.parent / d).resolve()) if not Path(d).is_absolute() else d
        for d in data.get("dictionaries", [])
    ]
    if dicts:
        data["dictionaries"] = dicts
    return replace(style, **data)
