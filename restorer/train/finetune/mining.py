"""Style mining: learn a spinner's substitution table from (spun, original) example pairs.

Each pair is aligned at word level (difflib on lowercased word tokens). Every block of differing
words is a candidate substitution *original -> spun*:

* a block of as many words on both sides is split into one-word swaps when every swap is
  *supported*: seen on its own in some pair, or listed as a synonym by the shipped thesaurus.
  Otherwise it is kept whole, as a phrase (``make sure -> be certain``);
* the supported ends of an unequal block are peeled off the same way, and the core is a
  phrase (``because -> as a result of``);
* an insertion or deletion next to a one-word match is merged with the difference on the other
  side of it: the replacement contained the original word (``need -> be in need of``); one left
  alone is anchored to its neighbouring word (``few -> just a few``, ``in order to -> to``); an
  article fixed for the replacement (``a great -> an of great magnitude``) is no part of it;
* a one-word original whose replacement is the same inflection of its own base form
  (``said -> stated``, both past tense; ``years -> annual periods``, inflected on the head
  word) is recorded under the base forms (``say -> state``, ``year -> annual period``): the
  dictionary importer inflects those, so the style also covers ``says``, ``saying``.

Article fixes (a <-> an), case-only changes, punctuation, blocks longer than
``max_phrase_words`` and originals replaced in fewer than 2% of their occurrences (alignment
accidents on common words) are left out. The result is a TSV dictionary (``original<TAB>spun``, most
frequent first, with counts in comments) and a style YAML that imports it, with the
replacement rate and choice (a favourite per word, or a sample) measured on the pairs.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from restorer.common import WORD_RE
from restorer.infer.styles import (
    DICTIONARY_FILE,
    EVIDENCE_FILE,
    STYLE_FILE,
    load_style_package,
    write_evidence,
)
from restorer.spin.lexicon import STOPWORDS, Lexicon, default_lexicon, match_case

_PHRASE_RE = re.compile(r"[\w']+(?: [\w']+)*")
_ARTICLES = frozenset({"a", "an"})
NOISE_SHARE = 0.02  # entries replaced in fewer of their occurrences are left out
Token = tuple[str, int, int]  # lowercased text, start, end
Span = tuple[int, int, int, int]  # original tokens [a0:a1] -> spun tokens [b0:b1]


@dataclass
class MinedStyle:
    """A mined substitution table with the counts behind it."""

    entries: dict[str, Counter[str]] = field(default_factory=dict)  # original -> spun -> count
    surfaces: dict[str, set[str]] = field(default_factory=dict)  # original -> forms seen in the pairs
    opportunities: dict[str, int] = field(default_factory=dict)  # original -> occurrences in the pairs
    n_pairs: int = 0
    n_changed: int = 0  # pairs whose two sides differ
    n_skipped: int = 0  # differences left out of the table (punctuation, articles, too long)

    # ------------------------------------------------------------------ measures
    @property
    def n_substitutions(self) -> int:
        return sum(sum(c.values()) for c in self.entries.values())

    def share(self, key: str) -> float:
        """Share of the occurrences of ``key`` in the originals that the spinner replaced."""
        return sum(self.entries[key].values()) / max(1, self.opportunities.get(key, 0))

    def rate(self) -> float:
        """The spinner's replacement rate: the mean share of the entries, weighted by their
        counts (a stray alignment of a common word weighs one substitution, not its thousand
        occurrences)."""
        keys = [k for k in self.entries if self.share(k) >= NOISE_SHARE]
        n = sum(sum(self.entries[k].values()) for k in keys)
        return sum(sum(self.entries[k].values()) * self.share(k) for k in keys) / n if n else 0.0

    def consistency(self) -> float:
        """Share of the substitutions that use their original's most frequent alternative
        (originals replaced at least twice): near 1 for a favourite-synonym spinner."""
        repeated = [c for c in self.entries.values() if sum(c.values()) >= 2]
        total = sum(sum(c.values()) for c in repeated)
        return sum(max(c.values()) for c in repeated) / total if total else 1.0

    def kept(self, min_count: int = 1) -> dict[str, list[tuple[str, int]]]:
        """Entries with the alternatives seen at least ``min_count`` times, most frequent first."""
        out: dict[str, list[tuple[str, int]]] = {}
        for key in sorted(self.entries, key=lambda k: (-sum(self.entries[k].values()), k)):
            if self.share(key) < NOISE_SHARE:
                continue  # "and" replaced once in 900 occurrences: an alignment accident
            alts = [(a, n) for a, n in self.entries[key].most_common() if n >= min_count]
            if alts:
                out[key] = alts
        return out

    def summary(self, min_count: int = 1) -> dict[str, Any]:
        kept = self.kept(min_count)
        return {
            "pairs": self.n_pairs,
            "changed_pairs": self.n_changed,
            "entries": len(kept),
            "alternatives": sum(len(a) for a in kept.values()),
            "substitutions": self.n_substitutions,
            "skipped_differences": self.n_skipped,
            "rate": round(self.rate(), 4),
            "consistency": round(self.consistency(), 4),
        }

    # ------------------------------------------------------------------ files
    def to_tsv(self, min_count: int = 1, source: str = "") -> str:
        kept = self.kept(min_count)
        lines = [
            "# restorer mined dictionary: original<TAB>spun, most frequent first.",
            f"# Mined (`restorer finetune`, `restorer tables mine`) from {self.n_pairs} example pairs{f' ({source})' if source else ''}; "
            "edit freely.",
            "# A one-word original that is a base form (say, child) also covers its inflections "
            "(said, children); other entries match literally.",
        ]
        for key, alts in kept.items():
            seen = self.opportunities.get(key, 0)
            detail = ", ".join(f"{a} {n}" for a, n in alts)
            lines.append(f"# {key}: replaced {sum(n for _, n in alts)} of {seen} times: {detail}")
            lines += [f"{key}\t{a}" for a, _ in alts]
        return "\n".join(lines) + "\n"

    def style(self, dictionary: str, min_count: int = 1, base: str = "autoblog") -> dict[str, Any]:
        """The style mapping: ``base`` with only the mined dictionary, at the measured rate."""
        favourite = self.consistency() >= 0.75
        widest = max((len(a) for a in self.kept(min_count).values()), default=1)
        return {
            "description": "spinner mined from example pairs",
            "base": base,
            "dictionaries": [dictionary],
            "dictionary_only": True,
            "rate": round(min(0.95, max(0.1, self.rate())), 3),
            "choice": "favourite" if favourite else "sample",
            "dictionary_seed": 0,
            "coverage": 1.0,
            "capitalized": 1.0,
            "top_k": 1 if favourite else min(16, widest),
            "temperature": 1.0,
        }

    def save(self, out_dir: Path, min_count: int = 1, source: str = "") -> tuple[Path, Path]:
        """Write ``dictionary.tsv`` and ``style.yaml`` (which imports it) into ``out_dir``: a style package."""
        out_dir.mkdir(parents=True, exist_ok=True)
        tsv = out_dir / DICTIONARY_FILE
        yml = out_dir / STYLE_FILE
        tsv.write_text(self.to_tsv(min_count, source), encoding="utf-8")
        s = self.summary(min_count)
        header = [
            f"# Mined (`restorer finetune`, `restorer tables mine`) from {s['pairs']} example pairs: {s['entries']} entries "
            f"in {tsv.name}.",
            f"# The spinner replaced {s['rate']:.0%} of the occurrences of the words and phrases it "
            f"has an entry for, and used the most frequent alternative {s['consistency']:.0%} of the time.",
            "# Edit this file or the dictionary and fine-tune again (docs/finetuning.md, docs/spinner.md).",
        ]
        body = yaml.safe_dump(self.style(tsv.name, min_count), sort_keys=False, allow_unicode=True)
        yml.write_text("\n".join(header) + "\n" + body, encoding="utf-8")
        return yml, tsv


# ----------------------------------------------------------------------------- alignment


def tokens(text: str) -> list[Token]:
    return [(m.group().lower().replace("’", "'"), m.start(), m.end()) for m in WORD_RE.finditer(text)]


def diff_spans(orig: Sequence[Token], spun: Sequence[Token]) -> list[Span]:
    """Blocks of differing tokens.

    An insertion or deletion next to a one-word match is merged with the difference on the
    other side of it: the spinner's replacement contained the original word
    (``need -> be in need of``, ``great -> of great magnitude``). An insertion or deletion left
    alone takes its neighbouring word along (``few -> just a few``)."""
    a = [t[0] for t in orig]
    b = [t[0] for t in spun]
    ops = []
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "equal" and a0 < a1 and b0 < b1 and {a[a0], b[b0]} <= _ARTICLES:
            a0, b0 = a0 + 1, b0 + 1  # an article fixed for the replacement is no part of it
        if op != "equal" and (a0 < a1 or b0 < b1):
            ops.append(("replace" if a0 < a1 and b0 < b1 else "indel", a0, a1, b0, b1))
    merged: list[list[Any]] = []
    for op in ops:
        prev = merged[-1] if merged else None
        if prev and op[1] - prev[2] <= 1 and op[3] - prev[4] <= 1 and "replace" not in (prev[0], op[0]):
            prev[0], prev[2], prev[4] = "merged", op[2], op[4]
        else:
            merged.append(list(op))
    spans: list[Span] = []
    for _op, a0, a1, b0, b1 in merged:
        if a0 == a1 or b0 == b1:  # still a pure insertion or deletion: anchor to the next word
            if a1 < len(a) and b1 < len(b):
                a1, b1 = a1 + 1, b1 + 1
            elif a0 > 0 and b0 > 0:  # at the end: to the previous one
                a0, b0 = a0 - 1, b0 - 1
            else:
                continue
        spans.append((a0, a1, b0, b1))
    return spans


def lemma_pair(o: str, s: str, lex: Lexicon) -> tuple[str, str] | None:
    """Base forms of a one-word swap whose replacement is the same inflection of its own base
    form (``said -> stated``: ``say -> state``; ``years -> annual periods``:
    ``year -> annual period``, a phrase inflected on its head word, as the importer does)."""
    if o in STOPWORDS:
        return None
    words = s.split(" ")
    for lemma, pos, tag, _ in sorted(lex.readings.get(o, ()), key=lambda r: -r[3]):
        head = 0 if pos == "VERB" else len(words) - 1
        for lemma2, pos2, tag2, _ in lex.readings.get(words[head], ()):
            if (pos2, tag2) != (pos, tag):
                continue
            base = " ".join([*words[:head], lemma2, *words[head + 1 :]])
            if base != lemma and lex.inflect(base, pos, tag) == s:
                return lemma, base
    return None


class _Support:
    """Is a one-word swap plausible on its own: seen alone in the pairs, or a thesaurus synonym?"""

    def __init__(self, lex: Lexicon) -> None:
        self.lex = lex
        self.seen: set[tuple[str, str]] = set()

    def add(self, o: str, s: str) -> None:
        self.seen.add((o, s))
        pair = lemma_pair(o, s, self.lex)
        if pair:
            self.seen.add(pair)

    def __call__(self, o: str, s: str) -> bool:
        if {o, s} <= _ARTICLES or (o, s) in self.seen:
            return True
        pair = lemma_pair(o, s, self.lex)
        if pair and pair in self.seen:
            return True
        lemmas = {r[0] for r in self.lex.readings.get(s, ())} | {s}
        for lemma, pos, _tag, _ in self.lex.readings.get(o, ()):
            if any(syn.text in lemmas for syn in self.lex.synonyms(lemma, pos)):
                return True
        return False


def split_span(span: Span, orig: Sequence[Token], spun: Sequence[Token], ok: _Support) -> list[Span]:
    """Split a block into one-word swaps and a phrase core (see the module docstring)."""
    a0, a1, b0, b1 = span
    if a1 - a0 == b1 - b0 > 1:
        if all(ok(orig[a0 + i][0], spun[b0 + i][0]) for i in range(a1 - a0)):
            return [(a0 + i, a0 + i + 1, b0 + i, b0 + i + 1) for i in range(a1 - a0)]
        return [span]
    front: list[Span] = []
    back: list[Span] = []
    while a1 - a0 > 1 and b1 - b0 > 1 and ok(orig[a0][0], spun[b0][0]):
        front.append((a0, a0 + 1, b0, b0 + 1))
        a0, b0 = a0 + 1, b0 + 1
    while a1 - a0 > 1 and b1 - b0 > 1 and ok(orig[a1 - 1][0], spun[b1 - 1][0]):
        back.insert(0, (a1 - 1, a1, b1 - 1, b1))
        a1, b1 = a1 - 1, b1 - 1
    if a1 - a0 == b1 - b0 == 1 and not ok(orig[a0][0], spun[b0][0]) and (front or back):
        return [span]  # the core alone would be a swap nothing supports: keep the block whole
    return [*front, (a0, a1, b0, b1), *back]


# ----------------------------------------------------------------------------- mining


def _entry(original: str, spun: str, span: Span, orig: Sequence[Token], sp: Sequence[Token],
           lex: Lexicon, max_words: int) -> tuple[str, str, str] | None:  # fmt: skip
    """``(key, alternative, surface)`` of one substitution, or ``None`` to leave it out."""
    a0, a1, b0, b1 = span
    if not (0 < a1 - a0 <= max_words and 0 < b1 - b0 <= max_words):
        return None
    surface = " ".join(t[0] for t in orig[a0:a1])
    src = original[orig[a0][1] : orig[a1 - 1][2]]
    alt = " ".join(spun[sp[b0][1] : sp[b1 - 1][2]].split())
    if not _PHRASE_RE.fullmatch(surface) or " ".join(src.lower().replace("’", "'").split()) != surface:
        return None  # punctuation, hyphens: spinner rules match words separated by single spaces
    if surface == alt.lower() or {surface, alt.lower()} <= _ARTICLES:
        return None
    if match_case(src, alt.lower()) == alt:  # keep capitals only where the case rule cannot explain them
        alt = alt.lower()
    key = surface
    if a1 - a0 == 1:
        pair = lemma_pair(surface, alt.lower(), lex) if alt.islower() else None
        if pair:
            key, alt = pair
    return key, alt, surface


def _count_opportunities(mined: MinedStyle, originals: Iterable[str], max_words: int) -> None:
    wanted = {s for forms in mined.surfaces.values() for s in forms}
    counts: Counter[str] = Counter()
    for text in originals:
        toks = [t[0] for t in tokens(text)]
        for n in range(1, max_words + 1):
            for i in range(len(toks) - n + 1):
                gram = " ".join(toks[i : i + n])
                if gram in wanted:
                    counts[gram] += 1
    for key, forms in mined.surfaces.items():
        mined.opportunities[key] = sum(counts[f] for f in forms)


def mine_style(
    pairs: Sequence[dict[str, Any]], max_phrase_words: int = 4, lexicon: Lexicon | None = None
) -> MinedStyle:
    """Mine the substitution table of the spinner behind ``pairs`` (``{"spun", "original"}``)."""
    lex = lexicon or default_lexicon()
    aligned = []
    support = _Support(lex)
    for p in pairs:
        orig, sp = tokens(p["original"]), tokens(p["spun"])
        spans = diff_spans(orig, sp)
        aligned.append((p, orig, sp, spans))
        for a0, a1, b0, b1 in spans:
            if a1 - a0 == 1 and b1 - b0 == 1:
                support.add(orig[a0][0], sp[b0][0])
    mined = MinedStyle(n_pairs=len(pairs))
    for p, orig, sp, spans in aligned:
        mined.n_changed += bool(spans)
        for span in spans:
            for part in split_span(span, orig, sp, support):
                entry = _entry(p["original"], p["spun"], part, orig, sp, lex, max_phrase_words)
                if entry is None:
                    mined.n_skipped += 1
                    continue
                key, alt, surface = entry
                mined.entries.setdefault(key, Counter())[alt] += 1
                mined.surfaces.setdefault(key, set()).add(surface)
    _count_opportunities(mined, (p["original"] for p in pairs), max_phrase_words)
    return mined


# ----------------------------------------------------------------------------- evidence


def style_evidence(pairs: Sequence[dict[str, Any]], lexicon: Lexicon) -> dict[tuple[str, str], tuple[int, int]]:
    """How often each of the style dictionary's proposals was right on the example pairs.

    The dictionary is inverted as at restore time (``Proposer``, style rows only) and run on the
    spun side of every pair (:func:`proposal_evidence`). A spinner that always writes "earth"
    for "soil" and a genuine "earth" that is rare give high log-odds; a spun word that is also a
    common word of the domain gives low ones.
    """
    from restorer.infer.proposals import ProposalConfig, Proposer

    return proposal_evidence(pairs, Proposer(ProposalConfig(tables=False, thesaurus=False), [lexicon]), ("style",))


def proposal_evidence(pairs: Iterable[dict[str, Any]], proposer: Any,
                      sources: Sequence[str]) -> dict[tuple[str, str], tuple[int, int]]:  # fmt: skip
    """(spun words, original words), lowercased and space-joined -> (right, seen) of ``proposer``'s
    candidates from ``sources`` on the spun side of ``pairs``: a candidate is *seen* wherever its
    spun text occurs, and *right* when it brings the sentence closer to the pair's original (more
    words in common, in order). A candidate that touches no word the spinner changed is never right,
    which spares the comparison for most of them."""
    counts: dict[tuple[str, str], list[int]] = {}
    for p in pairs:
        spun, orig = p["spun"], p["original"]
        ot, sp = tokens(orig), tokens(spun)
        target = [t[0] for t in ot]
        changed = [(sp[b0][1], sp[b1 - 1][2]) for _, _, b0, b1 in diff_spans(ot, sp) if b1 > b0]
        base: float | None = None
        for c in proposer.propose(spun):
            if c.source not in sources:
                continue
            key = (" ".join(t[0] for t in tokens(c.original)), c.replacement.lower())
            n = counts.setdefault(key, [0, 0])
            n[1] += 1
            if not any(c.start < b and a < c.end for a, b in changed):
                continue
            if base is None:
                base = difflib.SequenceMatcher(None, [t[0] for t in sp], target, autojunk=False).ratio()
            fixed = spun[: c.start] + c.replacement + spun[c.end :]
            ratio = difflib.SequenceMatcher(None, [t[0] for t in tokens(fixed)], target, autojunk=False).ratio()
            n[0] += ratio > base
    return {k: (v[0], v[1]) for k, v in counts.items()}


def save_style_package(mined: MinedStyle, pairs: Sequence[dict[str, Any]], out_dir: Path, min_count: int = 1,
                       source: str = "") -> Path:  # fmt: skip
    """Write a mined style as a style package: ``style.yaml``, ``dictionary.tsv`` and the
    ``evidence.tsv`` of its rows on ``pairs`` (measured on the dictionary as restore reads it)."""
    yml, _ = mined.save(out_dir, min_count, source)
    lexicon = load_style_package(out_dir).lexicon
    if lexicon is not None:
        write_evidence(out_dir / EVIDENCE_FILE, style_evidence(pairs, lexicon))
    return yml


class BaseRowsError(ValueError):
    """A model directory whose base rows cannot be mined (it names no judge)."""


def mine_base_rows(pairs: Sequence[dict[str, Any]], model_dir: Path, min_count: int = 3,
                   subdir: str = "mined", source: str = "", min_seen: int = 10) -> dict[str, Any]:  # fmt: skip
    """Learn the base spinner's rows for a model directory's judge from spinner pairs of the train
    split: the dictionary mined from ``pairs`` (entries seen at least ``min_count`` times) joins the
    shipped tables, and every table and thesaurus row's evidence on the same pairs is measured with
    them. Both go to ``model_dir/subdir`` and are named in ``restorer.json``'s judge section.
    A row never right and seen fewer than ``min_seen`` times is left out of the evidence file (it
    would weigh little and most rows are of that kind); the rates of the sources are those of the
    rows kept."""
    import json

    from restorer.infer.pipeline import RESTORER_JSON, JudgeSpec, read_judge_spec
    from restorer.infer.proposals import ProposalConfig, Proposer

    spec = read_judge_spec(model_dir)
    if spec is None:
        raise BaseRowsError(f"{model_dir} names no judge ({RESTORER_JSON}): its base rows serve the judge only")
    out = model_dir / subdir
    mined = mine_style(pairs)
    mined.save(out, min_count, source)
    lexicon = load_style_package(out).lexicon
    cfg = ProposalConfig(**{"tables": "tables" in spec.proposers, "thesaurus": "thesaurus" in spec.proposers,
                            **spec.proposals})  # fmt: skip
    proposer = Proposer(cfg, tables=[lexicon] if lexicon is not None else [])
    counts = proposal_evidence(pairs, proposer, ("table", "thesaurus"))
    counts = {k: (r, n) for k, (r, n) in counts.items() if r > 0 or n >= min_seen}
    write_evidence(out / EVIDENCE_FILE, counts, "the base tables")
    data = json.loads((model_dir / RESTORER_JSON).read_text(encoding="utf-8"))
    data["judge"] = JudgeSpec(**{**spec.to_dict(), "tables": subdir, "evidence": f"{subdir}/{EVIDENCE_FILE}"}).to_dict()
    (model_dir / RESTORER_JSON).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return {"pairs": len(pairs), "mined": mined.summary(min_count), "evidence_rows": len(counts),
            "rows_right": sum(r for r, _ in counts.values()), "rows_seen": sum(n for _, n in counts.values())}  # fmt: skip
