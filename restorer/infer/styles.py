"""Style packages: what a restore adds for a spinner style, on top of the base that it never changes.

A style package is a directory (``restorer finetune`` writes one)::

    DIR/style.yaml       the spinner style (docs/spinner.md); its ``dictionaries`` are the style's
                         dictionary, e.g. dictionary.tsv (original<TAB>spun), readable and editable
    DIR/dictionary.tsv   the mined or imported dictionary
    DIR/evidence.tsv     optional (mined styles): how often each entry's spun text, where it appeared in
                         the example pairs, stood for its original (spun, original, right, seen)
    DIR/README.md        the card: data, time, and the figures before and after
    DIR/config.json, model.safetensors, ...   optional: a fine-tuned copy of the seq2seq proposer

A style's dictionary is inverted into proposals for the judge at once, next to the base tables
(a style adds; it never replaces them). A style that carries a seq2seq model adds that model's
edits to the judge's proposals and vouches for the style's candidates next to the base model,
and is the decoder of ``--judge none``; the base model's files are never touched. ``--style`` also takes a style YAML file or a built-in style name (its
dictionaries, if it has any). Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from restorer.spin.lexicon import Lexicon

STYLE_FILE = "style.yaml"
DICTIONARY_FILE = "dictionary.tsv"
EVIDENCE_FILE = "evidence.tsv"


class StylePackageError(ValueError):
    """A ``--style`` that cannot be used: no such style, or a package that cannot be read."""


@dataclass
class StylePackage:
    """One loaded style: its name, its dictionaries as a lexicon, and its own proposer if any."""

    name: str
    path: Path | None  # the package directory or the style file; None for a built-in style
    dictionaries: list[Path] = field(default_factory=list)
    lexicon: Lexicon | None = None  # None when the style has no dictionary
    model_dir: Path | None = None  # a fine-tuned seq2seq proposer kept in the package
    # (spun, original) lowercased -> log-odds that the spun text stands for the original, measured
    # on the example pairs: the judge takes it off the edit's cost (JudgeConfig.style_weight)
    evidence: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def entries(self) -> int:
        if self.lexicon is None:
            return 0
        lex = self.lexicon
        return (sum(len(t) for t in lex.literal.values()) + sum(len(r) for r in lex.phrases.values())
                + len(lex.curated))  # fmt: skip


def load_style_package(name_or_path: str | Path) -> StylePackage:
    """A style package directory, a style YAML file, or a built-in style's name."""
    from restorer.spin.importers import DictionaryError, load_dictionaries
    from restorer.spin.lexicon import default_lexicon
    from restorer.spin.styles import StyleError, builtin_styles, load_style

    p = Path(name_or_path)
    model_dir = None
    if p.is_dir():
        yml = p / STYLE_FILE
        if not yml.exists():
            raise StylePackageError(
                f"{p} is not a style package: it has no {STYLE_FILE} (make one with `restorer finetune`, "
                "see docs/finetuning.md)"
            )
        if (p / "config.json").exists() and (p / "model.safetensors").exists():
            model_dir = p
        where: Path | None = p
    elif p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise StylePackageError(f"style file not found: {p}")
        yml, where = p, p
    elif str(name_or_path) in builtin_styles():
        yml, where = Path(str(name_or_path)), None
    else:
        raise StylePackageError(
            f"unknown style {str(name_or_path)!r}: give a style package directory, a style YAML file or a "
            f"built-in style ({', '.join(builtin_styles())})"
        )
    try:
        style = load_style(yml if where is not None else str(name_or_path))
    except StyleError as exc:
        raise StylePackageError(str(exc)) from None
    dicts = [Path(d) for d in style.dictionaries]
    lexicon = None
    if dicts:
        try:
            lexicon = load_dictionaries(dicts, default_lexicon())
        except DictionaryError as exc:
            raise StylePackageError(f"style {style.name}: {exc}") from None
    name = p.name if p.is_dir() else style.name
    evidence = read_evidence(p / EVIDENCE_FILE) if p.is_dir() and (p / EVIDENCE_FILE).exists() else {}
    return StylePackage(name, where, dicts, lexicon, model_dir, evidence)


def log_odds(right: int, seen: int) -> float:
    """The smoothed log-odds that an occurrence stands for the original: right of seen times."""
    return math.log((right + 0.5) / (seen - right + 0.5))


def read_evidence_counts(path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """``evidence.tsv``: ``spun<TAB>original<TAB>right<TAB>seen`` lines -> (right, seen)."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            spun, orig, right, seen = parts[0], parts[1], int(parts[2]), int(parts[3])
            if not 0 <= right <= seen:
                raise ValueError
        except (IndexError, ValueError):
            raise StylePackageError(f"{path}:{n}: expected 'spun<TAB>original<TAB>right<TAB>seen' "
                                    f"with 0 <= right <= seen, got {line[:80]!r}") from None  # fmt: skip
        out[(spun.lower(), orig.lower())] = (right, seen)
    return out


def read_evidence(path: Path) -> dict[tuple[str, str], float]:
    """``evidence.tsv`` -> the log-odds of each row."""
    return {k: log_odds(r, n) for k, (r, n) in read_evidence_counts(path).items()}


def write_evidence(path: Path, counts: dict[tuple[str, str], tuple[int, int]], what: str = "the style's dictionary") -> None:
    lines = ["# restorer evidence: spun<TAB>original<TAB>right<TAB>seen. Of the `seen` times "
             f"{what} proposed",
             "# `original` for `spun` on the spun side of the example pairs, the pair's original "
             "had it `right` times.",
             "# The judge takes the log-odds off the edit's cost. Delete this file (or its row) to weigh "
             "the rows alike."]  # fmt: skip
    for (spun, orig), (right, seen) in sorted(counts.items(), key=lambda kv: (-kv[1][1], kv[0])):
        lines.append(f"{spun}\t{orig}\t{right}\t{seen}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_style_packages(names: Sequence[str | Path]) -> list[StylePackage]:
    """Several styles, combined: every dictionary proposes; at most one may bring a proposer."""
    packages = [load_style_package(n) for n in names]
    own = [s for s in packages if s.model_dir is not None]
    if len(own) > 1:
        raise StylePackageError(
            "only one style may bring its own seq2seq proposer; these do: "
            + ", ".join(str(s.model_dir) for s in own)
            + " (copy a style.yaml and its dictionary into a new directory to use a style's dictionary alone)"
        )
    return packages
