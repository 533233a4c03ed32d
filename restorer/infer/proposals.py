"""Proposals: candidate edits that would undo a spinner, each tagged with where it came from.

The spinner's knowledge is inverted. Wherever a sentence holds a word or phrase that some
table could have produced, the words it could have replaced are proposed, in the same
inflection and case:

* ``table``: the hand-written spinner tables (favourite synonyms, everyday phrase
  paraphrases, function-word and grammar swaps, British spellings, tortured phrases) and the
  dictionaries of active styles, inverted exactly;
* ``thesaurus``: the shipped thesaurus (WordNet, MyThes, Moby), inverted: ``w`` is proposed
  for a spun ``s`` when ``s`` is among the ``top_k`` synonyms of ``w``, in every inflection;
* ``seq2seq``: the seq2seq model's own edits (added by the caller).

Proposals are cheap and aim at recall; the judge decides. Each carries a ``rank`` (0 for a
table row, the synonym's rank in ``w``'s list for the thesaurus) from which the judge derives
a prior. Nothing here imports torch.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from restorer.common import WORD_RE
from restorer.spin.lexicon import POS_TAGS, Lexicon, default_lexicon, match_case

_DIGIT_RE = re.compile(r"\d")
SOURCES = ("table", "thesaurus", "style", "seq2seq")


@dataclass(frozen=True)
class Candidate:
    """One proposed edit: replace ``sentence[start:end]`` by ``replacement``."""

    start: int
    end: int
    original: str  # the sentence's text at [start, end)
    replacement: str
    source: str  # table, thesaurus, style or seq2seq
    rank: int = 0  # 0 for a table row; the synonym's rank for the thesaurus
    agree: bool = False  # the seq2seq model proposed the same edit
    # proposed by a style (its dictionary: source "style", or its own fine-tuned seq2seq model):
    # only such candidates take the style model's prior, so the base's candidates cost what they
    # cost without the style
    style: bool = False
    # measured evidence that this spun text stands for this original: a style row's log-odds on the
    # style's example pairs; a base row's log-odds on spinner pairs above those of its source's rows
    evidence: float = 0.0

    def overlaps(self, other: Candidate) -> bool:
        return self.start < other.end and other.start < self.end or (self.start == other.start == self.end)


@dataclass
class ProposalConfig:
    """Which inverted tables propose, and how widely."""

    tables: bool = True
    thesaurus: bool = True
    thesaurus_top_k: int = 24  # w is proposed for s when s is among w's first top_k synonyms
    max_phrase_words: int = 5
    max_per_slot: int = 8  # candidates kept per span (table rows first, then by thesaurus rank)
    # the base evidence (a model directory's evidence.tsv, measured on spinner pairs of the train
    # split): a row seen n times, right r of them, counts as r + evidence_prior * p of
    # n + evidence_prior, where p is the rate of all rows of its source
    evidence_prior: float = 5.0


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in WORD_RE.findall(text))


@dataclass
class InverseIndex:
    """spun word sequence (lowercased) -> [(original, source, rank)]."""

    entries: dict[tuple[str, ...], list[tuple[str, str, int]]] = field(default_factory=dict)
    max_len: int = 1

    def add(self, spun: str, original: str, source: str, rank: int = 0) -> None:
        key = _words(spun)
        if not key or key == _words(original) or not original.strip():
            return
        lst = self.entries.setdefault(key, [])
        for k, (o, s, r) in enumerate(lst):
            if o == original:
                if (SOURCES.index(source), rank) < (SOURCES.index(s), r):
                    lst[k] = (original, source, rank)
                return
        lst.append((original, source, rank))
        self.max_len = max(self.max_len, len(key))

    def update(self, other: InverseIndex, override: bool = False) -> None:
        """Add ``other``'s entries; where both have an original for a span, ``override`` takes
        ``other``'s (a style's row, with its evidence, over the base table's)."""
        for key, lst in other.entries.items():
            mine = self.entries.setdefault(key, [])
            for o, s, r in lst:
                k = next((k for k, (x, _, _) in enumerate(mine) if x == o), None)
                if k is None:
                    mine.append((o, s, r))
                elif override:
                    mine[k] = (o, s, r)
        self.max_len = max(self.max_len, other.max_len)


def _inflections(lex: Lexicon, lemma: str, alt: str, pos: str) -> Iterable[tuple[str, str]]:
    """(original form, spun form) of ``lemma`` and its substitute ``alt`` in every tag."""
    for tag in POS_TAGS[pos]:
        o = lex.inflect(lemma, pos, tag)
        s = lex.inflect(alt, pos, tag)
        if o and s:
            yield o, s


def invert_tables(lex: Lexicon, source: str = "table") -> InverseIndex:
    """The exact inverse of a lexicon's hand-written (or imported) tables."""
    inv = InverseIndex()
    for table in lex.literal.values():
        for word, alts in table.items():
            for alt in alts:
                inv.add(alt, word, source)
    for rules in lex.phrases.values():
        for rule in rules:
            for alt in rule.alternatives:
                inv.add(alt, " ".join(rule.words), source)
    for (lemma, pos), alts in lex.curated.items():
        for alt in alts:
            for o, s in _inflections(lex, lemma, alt, pos):
                inv.add(s, o, source)
    return inv


def invert_thesaurus(lex: Lexicon, top_k: int) -> InverseIndex:
    """``w`` for every spun ``s`` among the first ``top_k`` thesaurus synonyms of ``w``."""
    inv = InverseIndex()
    for (lemma, pos), raw in lex.synonyms_raw.items():
        if pos not in POS_TAGS:
            continue
        for rank, item in enumerate(raw.split("|")[:top_k]):
            alt = item.rsplit(":", 2)[0]
            for o, s in _inflections(lex, lemma, alt, pos):
                inv.add(s, o, "thesaurus", rank)
    return inv


INDEX_VERSION = 2  # bump when the inversion changes


def _index_cache_file(tables: bool, thesaurus: bool, top_k: int, per_slot: int) -> Path:
    """Where the inverted shipped tables are kept: keyed by the tables' bytes and the settings."""
    from restorer.common import cache_root
    from restorer.spin.lexicon import data_path

    h = hashlib.sha256(f"{INDEX_VERSION}:{tables}:{thesaurus}:{top_k}:{per_slot}".encode())
    for p in sorted(data_path("").iterdir()):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return cache_root() / "proposals" / f"index-{h.hexdigest()[:16]}.json.gz"


def _slot_order(hit: tuple[str, str, int]) -> tuple[int, int]:
    """The order of a span's candidates: a style's dictionary, the tables, then the thesaurus by rank."""
    return (SOURCES.index(hit[1]) if hit[1] != "style" else -1, hit[2])


def _compact(inv: InverseIndex, per_slot: int) -> InverseIndex:
    """Only the ``per_slot`` first candidates of each span (all that ``propose`` can use), with
    shared strings: 790k hits in 270 MB become 300k in a fraction of that."""
    out = InverseIndex(max_len=inv.max_len)
    intern = sys.intern
    for key, hits in inv.entries.items():
        best = sorted(hits, key=_slot_order)[:per_slot]
        out.entries[tuple(intern(w) for w in key)] = [(intern(o), intern(s), r) for o, s, r in best]
    return out


@lru_cache(maxsize=8)
def _default_index(tables: bool, thesaurus: bool, top_k: int, per_slot: int) -> InverseIndex:
    """The inverse of the shipped tables, ``per_slot`` candidates per span: built once (about
    15 s), then read from the cache (about 1 s). A cache file that cannot be read is rebuilt."""
    path = _index_cache_file(tables, thesaurus, top_k, per_slot)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
        inv = InverseIndex(max_len=int(data["max_len"]))
        intern = sys.intern
        inv.entries = {tuple(intern(w) for w in k): [(intern(o), intern(s), int(r)) for o, s, r in v]
                       for k, v in data["entries"]}  # fmt: skip
        return inv
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        pass
    return _save_index(path, _compact(_build_index(tables, thesaurus, top_k), per_slot))


def _build_index(tables: bool, thesaurus: bool, top_k: int) -> InverseIndex:
    lex = default_lexicon()
    inv = InverseIndex()
    if tables:
        inv.update(invert_tables(lex))
    if thesaurus:
        inv.update(invert_thesaurus(lex, top_k))
    return inv


def _save_index(path: Path, inv: InverseIndex) -> InverseIndex:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8", compresslevel=3) as fh:
            json.dump({"max_len": inv.max_len, "entries": [[list(k), v] for k, v in inv.entries.items()]}, fh)
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs the rebuild next time
        pass
    return inv


def relative_evidence(index: InverseIndex, counts: dict[tuple[str, str], tuple[int, int]],
                      prior: float) -> dict[tuple[str, str], float]:  # fmt: skip
    """Each counted row's log-odds of being right, shrunk toward the rate ``p`` of all counted rows
    of its source (``prior`` pseudo-counts), less the log-odds of ``p``: 0 for a row never seen,
    positive for a row the spinner's pairs bear out more often than its source's rows do
    ("nationwide" -> "national"), negative for one they rarely do (a common word of the text)."""
    source = {(" ".join(k), o.lower()): s for k, lst in index.entries.items() for o, s, _ in lst}
    tot: dict[str, list[int]] = {}
    for key, (r, n) in counts.items():
        t = tot.setdefault(source.get(key, ""), [0, 0])
        t[0], t[1] = t[0] + r, t[1] + n
    rate = {s: min(max((r + 0.5) / (n + 1.0), 1e-4), 1 - 1e-4) for s, (r, n) in tot.items()}
    out = {}
    for key, (r, n) in counts.items():
        src = source.get(key)
        if src is None:
            continue  # a row this index does not have
        p = rate[src]
        q = (r + prior * p) / (n + prior)
        out[key] = math.log(q / (1 - q)) - math.log(p / (1 - p))
    return out


class Proposer:
    """Candidate edits for a sentence from the inverted tables (and any styles' dictionaries)."""

    def __init__(self, config: ProposalConfig | None = None, styles: Sequence[Lexicon] = (),
                 evidence: dict[tuple[str, str], float] | None = None,
                 base_evidence: dict[tuple[str, str], tuple[int, int]] | None = None,
                 tables: Sequence[Lexicon] = ()) -> None:  # fmt: skip
        """``evidence``: (spun words, original words), lowercased and space-joined -> log-odds
        measured on a style's example pairs (``restorer.infer.styles``), carried by its candidates.
        ``base_evidence``: the same key -> (right, seen) of the base rows on spinner pairs (a model
        directory's ``evidence.tsv``), carried by table and thesaurus candidates as their log-odds
        above those of their source (:func:`relative_evidence`). ``tables``: more rows of the base
        spinner (a dictionary mined from its pairs), proposed as ``table`` rows."""
        self.cfg = config or ProposalConfig()
        shipped = _default_index(self.cfg.tables, self.cfg.thesaurus, self.cfg.thesaurus_top_k, self.cfg.max_per_slot)
        if tables or styles:
            self.index = InverseIndex()  # one copy, with the mined rows and the styles' added
            self.index.update(shipped)
        else:
            self.index = shipped  # shared, read-only: copying its 74k entries cost seconds at start-up
        for lex in tables:
            self.index.update(invert_tables(lex, "table"), override=True)  # a thesaurus hit the spinner was seen making
        # the base rows' evidence is relative to their sources before any style's row overrides them
        self.evidence = relative_evidence(self.index, base_evidence, self.cfg.evidence_prior) if base_evidence else {}
        self.evidence.update(evidence or {})
        for lex in styles:
            self.index.update(invert_tables(lex, "style"), override=True)

    def propose(self, sentence: str) -> list[Candidate]:
        toks = [(m.group(), m.start(), m.end()) for m in WORD_RE.finditer(sentence)]
        low = [t[0].lower() for t in toks]
        out: list[Candidate] = []
        max_n = min(self.cfg.max_phrase_words, self.index.max_len)
        for i in range(len(toks)):
            for n in range(1, max_n + 1):
                if i + n > len(toks):
                    break
                hits = self.index.entries.get(tuple(low[i : i + n]))
                if not hits:
                    continue
                a, b = toks[i][1], toks[i + n - 1][2]
                span = sentence[a:b]
                if _DIGIT_RE.search(span):
                    continue  # numbers written in digits are never changed
                ranked = sorted(hits, key=_slot_order)
                for orig, src, rank in ranked[: self.cfg.max_per_slot]:
                    if _DIGIT_RE.search(orig):
                        continue
                    repl = match_case(span, orig)
                    if repl != span:
                        ev = self.evidence.get((" ".join(low[i : i + n]), orig.lower()), 0.0)
                        out.append(Candidate(a, b, span, repl, src, rank, evidence=ev, style=src == "style"))
        return out
