"""The spinner simulator: spins clean English the way article spinners do, recording every edit.

One pass over the tokens of a text. At each word it tries, in order:
1. multi-word rules (everyday paraphrases, contractions, auxiliaries, units, tortured phrases,
   imported dictionaries), longest first;
2. one-word literal swaps (function words, British spellings, numbers, units);
3. a synonym of the word's lemma, inflected like the word and cased like it.
Each rule family fires with the probability the style gives it. Edits are recorded as
character spans in both the input and the output.
"""

from __future__ import annotations

import bisect
import math
import random
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restorer.spin.lexicon import (
    ALL_SOURCES,
    CURATED_BIT,
    SOURCE_BITS,
    STOPWORDS,
    Lexicon,
    Synonym,
    default_lexicon,
    match_case,
)
from restorer.spin.styles import Style, load_style

TOKEN_RE = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*|\d+(?:[.,]\d+)*(?:st|nd|rd|th)?|\s+|.", re.S)
_SENT_END = frozenset(".!?")
_POSSESSIVE = ("'s", "’s")
_BASE_CONTEXT = frozenset(
    [
        "to",
        "can",
        "could",
        "will",
        "would",
        "shall",
        "should",
        "may",
        "might",
        "must",
        "do",
        "does",
        "did",
        "not",
        "let",
    ]
)
_PARTICIPLE_CONTEXT = frozenset(
    [
        "has",
        "have",
        "had",
        "having",
        "was",
        "were",
        "been",
        "be",
        "being",
        "is",
        "are",
        "am",
        "get",
        "gets",
        "got",
    ]
)
_DETERMINERS = frozenset(
    "the a an this that these those his her its their our my your every each no some any".split()
)
_VOWEL_SOUND_EXCEPTIONS = ("hour", "honest", "honor", "honour", "heir")
_CONSONANT_SOUND_EXCEPTIONS = ("uni", "use", "usu", "uti", "one", "once", "eu", "ewe", "ure")


@dataclass
class SpinEdit:
    """One substitution the spinner made, with its span in the original and in the spun text."""

    start: int  # span in the original text
    end: int
    original: str
    replacement: str
    kind: str
    spun_start: int = 0  # span in the spun text
    spun_end: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "original": self.original,
            "replacement": self.replacement,
            "kind": self.kind,
            "spun_start": self.spun_start,
            "spun_end": self.spun_end,
        }


@dataclass
class SpinResult:
    original: str
    text: str
    edits: list[SpinEdit] = field(default_factory=list)
    style: str = ""

    def to_pair(self) -> dict[str, Any]:
        return {
            "spun": self.text,
            "original": self.original,
            "style": self.style,
            "edits": [e.to_dict() for e in self.edits],
        }


def stable_unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (unlike ``hash``, stable across runs)."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode()) / 4294967296.0


def needs_an(word: str) -> bool:
    w = word.lower()
    if w.startswith(_VOWEL_SOUND_EXCEPTIONS):
        return True
    if w.startswith(_CONSONANT_SOUND_EXCEPTIONS):
        return False
    if w[:1].isdigit():
        return w.startswith(("8", "11", "18"))
    return w[:1] in "aeiou"


def _same_apostrophes(source: str, replacement: str) -> str:
    """Keep the source's typographic apostrophes: don’t -> do not, it is -> it’s."""
    return replacement.replace("'", "’") if "’" in source else replacement


def _tokenize(text: str) -> list[tuple[str, int]]:
    return [(m.group(), m.start()) for m in TOKEN_RE.finditer(text)]


class _Plan:
    """Everything fixed for one text: the concrete style and its derived switches."""

    __slots__ = ("style", "mask", "seed", "rates", "top_k", "temperature")

    def __init__(self, style: Style) -> None:
        self.style = style
        srcs = style.sources if isinstance(style.sources, list) else list(SOURCE_BITS)
        mask = 0
        for s in srcs:
            mask |= CURATED_BIT if s == "curated" else SOURCE_BITS.get(s, 0)
        self.mask = mask or ALL_SOURCES
        self.seed = style.dictionary_seed
        self.top_k = int(style.top_k)  # type: ignore[arg-type]
        self.temperature = max(float(style.temperature), 1e-3)  # type: ignore[arg-type]
        self.rates = {
            k: float(getattr(style, k))
            for k in (
                "rate",
                "coverage",
                "capitalized",
                "phrases",
                "function",
                "contract",
                "expand",
                "aux",
                "number",
                "unit",
                "british",
                "tortured",
                "fix_articles",
            )  # fmt: skip
        }
        self.rates["phrase"] = self.rates["phrases"]
        self.rates["dictionary"] = self.rates["rate"]


class Spinner:
    """Spins text in one style. ``spin`` is deterministic for a given seed."""

    def __init__(self, style: Style, lexicon: Lexicon | None = None) -> None:
        self.style = style
        base = lexicon or default_lexicon()
        self.lexicons: list[Lexicon] = []
        if style.dictionaries:
            from restorer.spin.importers import load_dictionaries

            self.lexicons.append(load_dictionaries([Path(p) for p in style.dictionaries], base))
        if not style.dictionary_only or not self.lexicons:
            self.lexicons.append(base)
        self._components: list[tuple[float, Spinner]] = []
        for item in style.mix:
            item = dict(item)
            weight = float(item.pop("weight", 1.0))
            sub = load_style(item.pop("style"), overrides=item)
            self._components.append((weight, Spinner(sub, base)))
        self._cum_weights = []
        total = 0.0
        for w, _ in self._components:
            total += w
            self._cum_weights.append(total)
        self._names = base.names
        self._cand_cache: dict[tuple[Any, ...], tuple[list[Synonym], list[float]]] = {}

    @classmethod
    def from_style(cls, name_or_path: str | Path, **overrides: Any) -> Spinner:
        return cls(load_style(name_or_path, overrides=overrides or None))

    # ------------------------------------------------------------------ public
    def spin(self, text: str, seed: int | str | random.Random | None = None) -> SpinResult:
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        if self._components:
            u = rng.random() * self._cum_weights[-1]
            idx = min(bisect.bisect_right(self._cum_weights, u), len(self._components) - 1)
            return self._components[idx][1].spin(text, rng)
        plan = _Plan(self.style.sample(rng))
        result = self._spin(text, plan, rng)
        result.style = self.style.name
        return result

    # ------------------------------------------------------------------ engine
    def _spin(self, text: str, plan: _Plan, rng: random.Random) -> SpinResult:
        toks = _tokenize(text)
        n = len(toks)
        edits: list[SpinEdit] = []
        rates = plan.rates
        sentence_start = True
        i = 0
        while i < n:
            tok, start = toks[i]
            c0 = tok[0]
            if not (c0.isalnum()):
                if tok in _SENT_END or "\n" in tok:
                    sentence_start = True
                i += 1
                continue
            low = tok.lower()
            if "’" in low:  # tables are written with straight apostrophes
                low = low.replace("’", "'")
            at_start = sentence_start
            sentence_start = False
            # 1. multi-word rules
            j = self._try_phrase(text, toks, i, low, plan, rng, edits)
            if j:
                i = j
                continue
            # 2. one-word literal swaps
            if self._try_literal(tok, start, low, plan, rng, edits, toks, i):
                i += 1
                continue
            # 3. synonyms of content words
            if c0.isalpha() and len(low) > 2 and low not in STOPWORDS:
                rate = rates["rate"]
                if c0.isupper() and (not at_start or low in self._names):
                    if tok.isupper() and len(tok) > 1:  # acronyms: spinners mostly leave them
                        rate *= 0.1
                    rate *= rates["capitalized"]
                if rng.random() < rate:
                    self._try_synonym(tok, start, low, plan, rng, edits, toks, i)
            i += 1
        return self._apply(text, edits)

    def _try_phrase(self, text: str, toks: list[tuple[str, int]], i: int, low: str, plan: _Plan,
                    rng: random.Random, edits: list[SpinEdit]) -> int:  # fmt: skip
        for lex in self.lexicons:
            rules = lex.phrases.get(low)
            if not rules:
                continue
            for rule in rules:
                p = plan.rates.get(rule.kind, 0.0)
                if p <= 0.0:
                    continue
                words = rule.words
                j = i + 1
                ok = True
                for w in words[1:]:
                    # words must be separated by exactly one plain space
                    if (
                        j + 1 >= len(toks)
                        or toks[j][0] != " "
                        or toks[j + 1][0].lower().replace("’", "'") != w
                    ):
                        ok = False
                        break
                    j += 2
                if not ok or rng.random() >= p:
                    continue
                start = toks[i][1]
                end = toks[j - 1][1] + len(toks[j - 1][0])
                src = text[start:end]
                alt = self._pick(rule.alternatives, plan, rng, "phrase", rule.words)
                repl = _same_apostrophes(src, match_case(src, alt))
                if repl != src:
                    self._maybe_fix_article(toks, i, repl, plan, rng, edits)
                    edits.append(SpinEdit(start, end, src, repl, rule.kind))
                return j
        return 0

    def _try_literal(self, tok: str, start: int, low: str, plan: _Plan, rng: random.Random,
                     edits: list[SpinEdit], toks: list[tuple[str, int]], i: int) -> bool:  # fmt: skip
        for lex in self.lexicons:
            for kind, table in lex.literal.items():
                alts = table.get(low)
                if not alts:
                    continue
                p = plan.rates.get(kind, 0.0)
                if p <= 0.0 or rng.random() >= p:
                    continue
                alt = self._pick(alts, plan, rng, kind, low)
                repl = _same_apostrophes(tok, match_case(tok, alt))
                if repl == tok:
                    return False
                self._maybe_fix_article(toks, i, repl, plan, rng, edits)
                edits.append(SpinEdit(start, start + len(tok), tok, repl, kind))
                return True
        return False

    def _try_synonym(self, tok: str, start: int, low: str, plan: _Plan, rng: random.Random,
                     edits: list[SpinEdit], toks: list[tuple[str, int]], i: int) -> bool:  # fmt: skip
        if "'" in low or "’" in low:
            if low.endswith(_POSSESSIVE):  # the company's -> the firm's: the edit spans the noun only
                tok, low = tok[:-2], low[:-2]
            else:
                return False
        for lex in self.lexicons:
            readings = lex.readings.get(low)
            if not readings:
                continue
            if len(readings) == 1:
                lemma, pos, tag, _ = readings[0]
            else:
                lemma, pos, tag = self._pick_reading(readings, toks, i, rng)
            if pos == "VERB" and len(readings) > 1:
                tag = self._verb_tag(readings, lemma, tag, toks, i)
            cands, cum = self._candidates(lex, lemma, pos, plan)
            if not cands:
                continue
            if plan.style.choice == "favourite":
                if stable_unit("cov", plan.seed, lemma, pos) >= plan.rates["coverage"]:
                    return False
                u = stable_unit("fav", plan.seed, lemma, pos)
            else:
                u = rng.random()
            k = min(bisect.bisect_right(cum, u * cum[-1]), len(cands) - 1)
            # try the chosen synonym, then the next ones, until one inflects
            for off in range(len(cands)):
                syn = cands[(k + off) % len(cands)]
                form = lex.inflect(syn.text, pos, tag)
                if form and form != low:
                    repl = match_case(tok, form)
                    self._maybe_fix_article(toks, i, repl, plan, rng, edits)
                    edits.append(SpinEdit(start, start + len(tok), tok, repl, "synonym"))
                    return True
            return False
        return False

    @staticmethod
    def _pick_reading(readings: list[tuple[str, str, str, float]], toks: list[tuple[str, int]], i: int,
                      rng: random.Random) -> tuple[str, str, str]:  # fmt: skip
        """Choose a reading of an ambiguous word by its prior, nudged by the word before it:
        "may last" is a verb, "the last" is not. Spinners are blind, but their tables are
        mostly keyed by surface forms that behave like this."""
        prev = toks[i - 2][0].lower() if i >= 2 and toks[i - 1][0] == " " else ""
        weights = []
        for _lemma, pos, _tag, prior in readings:
            w = prior
            if prev in _BASE_CONTEXT:
                w *= 5.0 if pos == "VERB" else 0.2
            elif prev in _DETERMINERS:
                w *= 0.1 if pos in ("VERB", "ADV") else 1.0
            weights.append(w)
        u = rng.random() * sum(weights)
        for (lemma, pos, tag, _), w in zip(readings, weights, strict=True):
            u -= w
            if u <= 0:
                return lemma, pos, tag
        return readings[-1][:3]

    @staticmethod
    def _verb_tag(readings: list[tuple[str, str, str, float]], lemma: str, tag: str,
                  toks: list[tuple[str, int]], i: int) -> str:  # fmt: skip
        """Pick between the tags of an ambiguous verb form ("read", "said", "put") from the
        word before it: "can read" is a base form, "has said" a participle."""
        tags = {r[2] for r in readings if r[0] == lemma and r[1] == "VERB"}
        if len(tags) < 2:
            return tag
        prev = toks[i - 2][0].lower() if i >= 2 and toks[i - 1][0] == " " else ""
        if (prev in _BASE_CONTEXT or prev.endswith(("n't", "n’t"))) and "VB" in tags:
            return "VB"
        if prev in _PARTICIPLE_CONTEXT and "VBN" in tags:
            return "VBN"
        for t in ("VBD", "VB", "VBN"):
            if t in tags:
                return t
        return tag

    def _candidates(
        self, lex: Lexicon, lemma: str, pos: str, plan: _Plan
    ) -> tuple[list[Synonym], list[float]]:
        key = (id(lex), lemma, pos, plan.mask, plan.top_k, round(plan.temperature, 2), plan.style.min_score)
        hit = self._cand_cache.get(key)
        if hit is not None:
            return hit
        mask = ALL_SOURCES if lex.imported else plan.mask
        syns = [s for s in lex.synonyms(lemma, pos) if s.mask & mask and s.score >= plan.style.min_score]
        syns = syns[: plan.top_k] if plan.top_k > 0 else syns
        cum: list[float] = []
        total = 0.0
        t = plan.temperature
        for s in syns:
            total += math.exp(s.score / t)
            cum.append(total)
        if len(self._cand_cache) > 300_000:
            self._cand_cache.clear()
        self._cand_cache[key] = (syns, cum)
        return syns, cum

    def _pick(self, alts: tuple[str, ...], plan: _Plan, rng: random.Random, kind: str, key: object) -> str:
        if len(alts) == 1:
            return alts[0]
        if plan.style.choice == "favourite":
            # the first alternative is the most typical spinner output: favour it
            u = stable_unit(kind, plan.seed, key)
        else:
            u = rng.random()
        return alts[0] if u < 0.5 else alts[1 + int((u - 0.5) * 2 * (len(alts) - 1))]

    def _maybe_fix_article(self, toks: list[tuple[str, int]], i: int, repl: str, plan: _Plan,
                           rng: random.Random, edits: list[SpinEdit]) -> None:  # fmt: skip
        if i < 2 or toks[i - 1][0] != " ":
            return
        art, astart = toks[i - 2]
        low = art.lower()
        if low not in ("a", "an"):
            return
        if edits and edits[-1].end > astart:
            return
        want = "an" if needs_an(repl) else "a"
        if want == low or rng.random() >= plan.rates["fix_articles"]:
            return
        edits.append(SpinEdit(astart, astart + len(art), art, match_case(art, want), "article"))

    @staticmethod
    def _apply(text: str, edits: list[SpinEdit]) -> SpinResult:
        if not edits:
            return SpinResult(text, text, [])
        edits.sort(key=lambda e: e.start)
        parts: list[str] = []
        pos = 0
        out_len = 0
        for e in edits:
            chunk = text[pos : e.start]
            parts.append(chunk)
            out_len += len(chunk)
            e.spun_start = out_len
            parts.append(e.replacement)
            out_len += len(e.replacement)
            e.spun_end = out_len
            pos = e.end
        parts.append(text[pos:])
        return SpinResult(text, "".join(parts), edits)


def spin_text(
    text: str, style: str | Path = "autoblog", seed: int | str | None = 0, **overrides: Any
) -> SpinResult:
    """Convenience: spin one text with a named style."""
    return Spinner.from_style(style, **overrides).spin(text, seed)
