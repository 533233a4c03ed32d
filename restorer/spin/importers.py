"""Import other spinners' dictionaries: spintax, ``word|syn|syn`` lines and TSV pairs.

All three formats become a list of ``(original, [alternatives])`` entries, which are turned
into a ``Lexicon`` layered in front of the shipped one: a one-word entry whose original is a
known base form is inflected (``child|kid`` also gives ``children -> kids``); everything else
is matched literally, multi-word entries as phrases, and so are function words (``very|really``),
which the synonym path never touches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from restorer.spin.lexicon import BASE_TAG, STOPWORDS, Lexicon

Entry = tuple[str, list[str]]
_SPINTAX_GROUP = re.compile(r"\{([^{}]*\|[^{}]*)\}")


class DictionaryError(ValueError):
    """A dictionary file that cannot be read."""


def parse_spintax(text: str) -> list[Entry]:
    """``{a|b|c}`` groups: every alternative may stand for every other one.

    Nested groups are resolved from the inside out; a group's alternatives that still contain
    braces are skipped.
    """
    groups: list[list[str]] = []
    while True:
        found = _SPINTAX_GROUP.findall(text)
        if not found:
            break
        for g in found:
            groups.append([a.strip() for a in g.split("|") if a.strip()])
        text = _SPINTAX_GROUP.sub(lambda m: m.group(1).split("|")[0], text)
    entries: list[Entry] = []
    for alts in groups:
        for a in alts:
            others = [b for b in alts if b != a]
            if others:
                entries.append((a, others))
    return entries


def parse_pipe_lines(text: str) -> list[Entry]:
    """``word|syn1|syn2`` lines (The Best Spinner / Spinner Chief style); ``#`` comments."""
    entries: list[Entry] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("|") if p.strip()]
        if len(parts) >= 2:
            entries.append((parts[0], parts[1:]))
    return entries


def parse_tsv_pairs(text: str) -> list[Entry]:
    """``original<TAB>spun`` lines; several lines for one original are merged."""
    merged: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
            raise DictionaryError(f"line {n}: expected 'original<TAB>spun', got {line[:80]!r}")
        lst = merged.setdefault(parts[0].strip(), [])
        for alt in parts[1:]:
            if alt.strip() and alt.strip() not in lst:
                lst.append(alt.strip())
    return list(merged.items())


def detect_format(path: Path, text: str) -> str:
    if path.suffix in (".tsv", ".tab"):
        return "tsv"
    if path.suffix in (".spintax",) or _SPINTAX_GROUP.search(text):
        return "spintax"
    sample = [ln for ln in text.splitlines()[:200] if ln.strip() and not ln.startswith("#")]
    if sample and sum("\t" in ln for ln in sample) > len(sample) / 2:
        return "tsv"
    if sample and sum("|" in ln for ln in sample) > len(sample) / 2:
        return "pipe"
    raise DictionaryError(
        f"{path}: cannot tell the dictionary format (spintax {{a|b}}, 'word|syn' lines or TSV)"
    )


def read_dictionary(path: Path, fmt: str | None = None) -> list[Entry]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DictionaryError(f"dictionary not found: {path}") from exc
    except UnicodeDecodeError as exc:
        raise DictionaryError(f"{path}: not UTF-8 text ({exc})") from exc
    fmt = fmt or detect_format(path, text)
    parser = {"spintax": parse_spintax, "pipe": parse_pipe_lines, "tsv": parse_tsv_pairs}.get(fmt)
    if parser is None:
        raise DictionaryError(f"unknown dictionary format {fmt!r}")
    entries = parser(text)
    if not entries:
        raise DictionaryError(f"{path}: no entries found")
    return entries


def entries_to_lexicon(entries: Iterable[Entry], base: Lexicon, kind: str = "dictionary") -> Lexicon:
    """Build a lexicon from imported entries, inflecting entries for known base forms."""
    lex = Lexicon(forms=base.forms)
    for original, alts in entries:
        low = original.lower()
        words = low.split()
        if len(words) > 1:
            lex.add_phrase(words, alts, kind)
            continue
        if low in STOPWORDS or len(low) <= 2:  # the synonym path skips these words
            lex.add_literal(kind, low, alts)
            continue
        base_readings = [r for r in base.readings.get(low, []) if r[2] == BASE_TAG[r[1]] and r[0] == low]
        if base_readings:
            for lemma, pos, _tag, prior in base_readings:
                lex.add_curated(lemma, pos, alts, prior)
        else:
            lex.add_literal(kind, low, alts)
    lex.imported = True  # its entries are used whatever thesaurus sources a style selects
    return lex


def load_dictionaries(paths: Iterable[Path], base: Lexicon) -> Lexicon:
    entries: list[Entry] = []
    for p in paths:
        entries.extend(read_dictionary(p))
    return entries_to_lexicon(entries, base)
