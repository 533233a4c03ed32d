"""The spinner's word knowledge: synonyms, inflected forms and curated substitution tables.

Everything is read from small files shipped in ``restorer/spin/data/`` (see ``build_tables``
for the generated ones and the header of each ``.tsv`` for the hand-written ones), so spinning
needs no NLP library at run time. Parsing is lazy where it matters: the 400k synonym pairs are
split only for the words a text actually contains.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

POS_TAGS = {
    "NOUN": ("NN", "NNS"),
    "VERB": ("VB", "VBD", "VBG", "VBN", "VBZ"),
    "ADJ": ("JJ", "JJR", "JJS"),
    "ADV": ("RB", "RBR", "RBS"),
}
BASE_TAG = {"NOUN": "NN", "VERB": "VB", "ADJ": "JJ", "ADV": "RB"}
SOURCE_BITS = {"wordnet": 1, "mythes": 2, "moby": 4}
CURATED_BIT = 8
ALL_SOURCES = 1 | 2 | 4 | 8

# Words a spinner leaves alone when it looks for synonyms (they still go through the
# function-word table, which is where auxiliaries and connectives are swapped).
STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been before
being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
don't down during each few for from further had hadn't has hasn't have haven't having he he'd
he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into
is isn't it it's its itself let's me more most mustn't my myself no nor not of off on once only
or other ought our ours ourselves out over own same shan't she she'd she'll she's should
shouldn't so some such than that that's the their theirs them themselves then there there's
these they they'd they'll they're they've this those through to too under until up very was
wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while
who who's whom why why's will with won't would wouldn't you you'd you'll you're you've your
yours yourself yourselves mr mrs ms dr st jr sr inc ltd co corp vs etc one two three four five
six seven eight nine ten eleven twelve twenty thirty forty fifty hundred thousand million
billion trillion first second third fourth fifth half dozen zero also just may might must shall
ago yes today yesterday tomorrow monday tuesday wednesday thursday friday saturday sunday
january february march april june july august september october november december
    """.split()
)


def data_path(name: str) -> Path:
    return Path(str(resources.files("restorer.spin").joinpath("data", name)))


def read_tsv(path: Path) -> Iterator[list[str]]:
    """Rows of a hand-written table: ``#`` comments and blank lines skipped, TAB separated."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            yield line.split("\t")


# ----------------------------------------------------------------------------- inflection

_VOWELS = set("aeiou")


def _double_final(word: str) -> bool:
    """Short CVC verbs double their last consonant: stop -> stopped (not: visit -> visited)."""
    return (
        len(word) >= 3
        and len(word) <= 4
        and word[-1] not in _VOWELS | {"w", "x", "y"}
        and word[-2] in _VOWELS
        and word[-3] not in _VOWELS
    )


def regular_form(word: str, tag: str) -> str:
    """Regular English inflection of one word, for words the shipped tables do not know."""
    if tag in ("NNS", "VBZ"):
        if word.endswith(("s", "x", "z", "ch", "sh")):
            return word + "es"
        if word.endswith("y") and len(word) > 1 and word[-2] not in _VOWELS:
            return word[:-1] + "ies"
        return word + "s"
    if tag in ("VBD", "VBN"):
        if word.endswith("e"):
            return word + "d"
        if word.endswith("y") and len(word) > 1 and word[-2] not in _VOWELS:
            return word[:-1] + "ied"
        return word + word[-1] + "ed" if _double_final(word) else word + "ed"
    if tag == "VBG":
        if word.endswith("ie"):
            return word[:-2] + "ying"
        if word.endswith("e") and not word.endswith(("ee", "ye", "oe")):
            return word[:-1] + "ing"
        return word + word[-1] + "ing" if _double_final(word) else word + "ing"
    if tag in ("JJR", "RBR", "JJS", "RBS"):
        suffix = "er" if tag in ("JJR", "RBR") else "est"
        if word.endswith("e"):
            return word + suffix[1:]
        if word.endswith("y") and len(word) > 1 and word[-2] not in _VOWELS:
            return word[:-1] + "i" + suffix
        return word + suffix
    return word


def inflect_phrase(phrase: str, pos: str, tag: str, forms: dict[str, str] | None = None) -> str | None:
    """Inflect a (possibly multi-word) lemma: verbs on their first word, nouns on the last.

    ``forms`` are the table's known forms of the phrase; without them regular rules are used.
    Returns None when the form does not exist (e.g. a comparative of a multi-word adjective).
    """
    if tag == BASE_TAG.get(pos) or tag == "VBP":
        return phrase
    if forms is not None:  # a known lemma: its table lists every form it has
        return forms.get(tag)
    words = phrase.split(" ")
    if pos in ("ADJ", "ADV"):
        if len(words) > 1 or len(phrase) > 6:  # "more X" is not what spinners produce
            return None
        return regular_form(phrase, tag)
    idx = 0 if pos == "VERB" else len(words) - 1
    words[idx] = regular_form(words[idx], tag)
    return " ".join(words)


# ----------------------------------------------------------------------------- case


def match_case(source: str, replacement: str) -> str:
    """Give ``replacement`` the capitalisation pattern of ``source`` (a word or phrase)."""
    if not source or not replacement:
        return replacement
    letters = [c for c in source if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return replacement.upper()
    if source[0].isupper():
        words = source.split(" ")
        if len(words) > 1 and all(w[:1].isupper() for w in words if w[:1].isalpha()):
            return " ".join(w[:1].upper() + w[1:] for w in replacement.split(" "))
        return replacement[:1].upper() + replacement[1:]
    return replacement


# ----------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Synonym:
    text: str
    score: float  # preference, roughly Zipf frequency (log10 per billion words)
    mask: int  # which sources list it (SOURCE_BITS, CURATED_BIT)


@dataclass
class PhraseRule:
    """A multi-token substitution: ``words`` (lowercased tokens) -> alternatives."""

    words: tuple[str, ...]
    alternatives: tuple[str, ...]
    kind: str


@dataclass
class Lexicon:
    """All substitution knowledge the spinner draws from."""

    forms: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    readings: dict[str, list[tuple[str, str, str, float]]] = field(default_factory=dict)
    synonyms_raw: dict[tuple[str, str], str] = field(default_factory=dict)
    curated: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # literal one-token swaps by kind: kind -> {lower word: alternatives}
    literal: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    # multi-token rules indexed by their first lowercased token, longest first
    phrases: dict[str, list[PhraseRule]] = field(default_factory=dict)
    names: frozenset[str] = frozenset()  # lowercased words that are mostly names
    imported: bool = False  # an imported dictionary: entries bypass the style's source filter
    _syn_cache: dict[tuple[str, str], list[Synonym]] = field(default_factory=dict, repr=False)

    # -- synonyms ----------------------------------------------------------
    def synonyms(self, lemma: str, pos: str) -> list[Synonym]:
        key = (lemma, pos)
        cached = self._syn_cache.get(key)
        if cached is not None:
            return cached
        out: list[Synonym] = []
        seen: set[str] = set()
        for i, alt in enumerate(self.curated.get(key, ())):
            # curated favourites outrank thesaurus entries, the first most of all
            out.append(Synonym(alt, 9.0 - 0.3 * i, CURATED_BIT))
            seen.add(alt)
        raw = self.synonyms_raw.get(key)
        if raw:
            for item in raw.split("|"):
                text, score, mask = item.rsplit(":", 2)
                if text in seen:
                    continue
                out.append(Synonym(text, int(score) / 10.0, int(mask)))
        self._syn_cache[key] = out
        return out

    def inflect(self, lemma: str, pos: str, tag: str) -> str | None:
        forms = self.forms.get((lemma, pos))
        if forms is None and " " in lemma and pos in ("VERB", "NOUN"):
            # a phrase the tables do not list: inflect its head word by the word's own forms
            words = lemma.split(" ")
            idx = 0 if pos == "VERB" else len(words) - 1
            head = inflect_phrase(words[idx], pos, tag, self.forms.get((words[idx], pos)))
            if head is None:
                return None
            words[idx] = head
            return " ".join(words)
        return inflect_phrase(lemma, pos, tag, forms)

    def add_reading(self, surface: str, lemma: str, pos: str, tag: str, prior: float) -> None:
        lst = self.readings.setdefault(surface, [])
        if (lemma, pos, tag) not in [(r[0], r[1], r[2]) for r in lst]:
            lst.append((lemma, pos, tag, prior))

    def add_phrase(self, words: Iterable[str], alternatives: Iterable[str], kind: str) -> None:
        rule = PhraseRule(tuple(w.lower() for w in words), tuple(alternatives), kind)
        if len(rule.words) < 1 or not rule.alternatives:
            return
        lst = self.phrases.setdefault(rule.words[0], [])
        for i, old in enumerate(lst):
            if old.words == rule.words and old.kind == rule.kind:
                merged = old.alternatives + tuple(a for a in rule.alternatives if a not in old.alternatives)
                lst[i] = PhraseRule(old.words, merged, kind)
                return
        lst.append(rule)
        lst.sort(key=lambda r: -len(r.words))

    def add_literal(self, kind: str, word: str, alternatives: Iterable[str]) -> None:
        table = self.literal.setdefault(kind, {})
        old = table.get(word.lower(), ())
        table[word.lower()] = old + tuple(a for a in alternatives if a not in old and a != word.lower())

    def add_curated(self, lemma: str, pos: str, alternatives: Iterable[str], prior: float = 1.0) -> None:
        """A hand-written favourite (or an imported dictionary entry) for a content word."""
        alts = [a for a in alternatives if a and a != lemma]
        if not alts:
            return
        key = (lemma, pos)
        old = self.curated.get(key, [])
        self.curated[key] = old + [a for a in alts if a not in old]
        self._syn_cache.pop(key, None)
        self.add_reading(lemma, lemma, pos, BASE_TAG[pos], prior)
        for tag in POS_TAGS[pos][1:]:
            form = self.inflect(lemma, pos, tag)
            if form:
                self.add_reading(form, lemma, pos, tag, prior)


def _expand_verb_phrase(
    lex: Lexicon, words: list[str], alts: list[str]
) -> Iterator[tuple[list[str], list[str]]]:
    """All tenses of a phrase whose first word is a base-form verb: find out -> found out, ..."""
    yield words, alts
    seen = {words[0]}
    for tag in ("VBD", "VBN", "VBG", "VBZ"):
        head = lex.inflect(words[0], "VERB", tag)
        if not head or head in seen:  # "made" is past and participle: the past stands for both
            continue
        seen.add(head)
        new_alts = [a for a in (lex.inflect(a, "VERB", tag) for a in alts) if a]
        yield [head, *words[1:]], new_alts


def load_curated_tables(lex: Lexicon, directory: Path) -> None:
    """Load the hand-written tables (phrases, words, british, function words, tortured)."""
    p = directory / "words.tsv"
    if p.exists():
        for row in read_tsv(p):
            if len(row) < 3:
                continue
            word, alts, pos = row[0].strip(), [a.strip() for a in row[1].split("|")], row[2].strip()
            if pos == "FUNC":
                if " " in word:
                    lex.add_phrase(word.split(" "), alts, "function")
                else:
                    lex.add_literal("function", word, alts)
            elif pos in POS_TAGS:
                lex.add_curated(word, pos, alts)
    for name, kind in (("phrases.tsv", "phrase"), ("tortured.tsv", "tortured")):
        p = directory / name
        if not p.exists():
            continue
        for row in read_tsv(p):
            if len(row) < 2:
                continue
            words = row[0].strip().split(" ")
            alts = [a.strip() for a in row[1].split("|") if a.strip()]
            flags = row[2].strip() if len(row) > 2 else "-"
            variants = _expand_verb_phrase(lex, words, alts) if "V" in flags else [(words, alts)]
            for w, a in variants:
                if len(w) == 1:
                    lex.add_literal(kind, w[0], a)
                else:
                    lex.add_phrase(w, a, kind)
    p = directory / "british.tsv"
    if p.exists():
        for row in read_tsv(p):
            if len(row) >= 2:
                lex.add_literal("british", row[0].strip(), [row[1].strip()])
    p = directory / "function.tsv"
    if p.exists():
        for row in read_tsv(p):
            if len(row) < 3:
                continue
            words = row[0].strip().split(" ")
            alts = [a.strip() for a in row[1].split("|") if a.strip()]
            kind = row[2].strip()
            if len(words) == 1:
                lex.add_literal(kind, words[0], alts)
            else:
                lex.add_phrase(words, alts, kind)


def load_generated_tables(lex: Lexicon, directory: Path) -> None:
    forms_path = directory / "forms.tsv.gz"
    if forms_path.exists():
        for row in read_tsv(forms_path):
            lemma, pos = row[0], row[1]
            lex.forms[(lemma, pos)] = (
                dict(kv.split("=", 1) for kv in row[2].split("|")) if len(row) > 2 and row[2] else {}
            )
    names_path = directory / "names.txt.gz"
    if names_path.exists():
        lex.names = frozenset(row[0] for row in read_tsv(names_path))
    syn_path = directory / "synonyms.tsv.gz"
    if syn_path.exists():
        for row in read_tsv(syn_path):
            lemma, pos, prior, raw = row
            lex.synonyms_raw[(lemma, pos)] = raw
            p = float(prior)
            lex.add_reading(lemma, lemma, pos, BASE_TAG[pos], p)
            for tag, form in lex.forms.get((lemma, pos), {}).items():
                if " " not in form:
                    lex.add_reading(form, lemma, pos, tag, p)


def demote_lexicalised_forms(lex: Lexicon, factor: float = 0.15) -> None:
    """Prefer the inflectional reading of a surface form: "years" is mostly the plural of
    "year", rarely the noun "years" (old age); "said" mostly the verb, rarely the adjective."""
    for surface, readings in lex.readings.items():
        if len(readings) < 2:
            continue
        if any(r[2] != BASE_TAG[r[1]] and r[0] != surface for r in readings):
            lex.readings[surface] = [
                (lemma, pos, tag, prior * factor if (tag == BASE_TAG[pos] and lemma == surface) else prior)
                for lemma, pos, tag, prior in readings
            ]


@lru_cache(maxsize=4)
def _load_default(directory: str) -> Lexicon:
    lex = Lexicon()
    load_generated_tables(lex, Path(directory))
    load_curated_tables(lex, Path(directory))
    demote_lexicalised_forms(lex)
    return lex


def default_lexicon() -> Lexicon:
    """The shipped lexicon (cached per process; treat it as read-only)."""
    return _load_default(str(data_path("")))
