"""The faithfulness guard: keep the model's edits that look like undoing a spinner, and
nothing else.

The model's output is aligned with its input at word level. Each difference is an edit with a
character span in the input, the replacement taken from the output, and a confidence (the
lowest probability the model gave any token of the replacement). An edit falls back to the
input's words when

* the model is unsure of it (confidence below ``min_confidence``);
* it rewrites far more than a spinner does (more than ``max_edit_words`` words on either
  side: dropped or added clauses, runaway repetition);
* it touches what spinners leave alone and a restorer must never change: numbers written in
  digits, URLs, e-mail addresses, code, and names (capitalised words that are not ordinary
  English words).

The restored sentence is the *input* with the accepted edits spliced in, so spacing and every
character outside an accepted edit stay byte-identical.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

from restorer.common import WORD_RE, settings_from_dict
from restorer.infer.decoded import Decoded

_PROTECTED_RE = re.compile(
    r"(?:https?://|ftp://|www\.)\S+"  # URLs
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|`[^`]*`"  # inline code
    r"|\b\w*_\w*\b"  # snake_case identifiers
    r"|\b[a-z]+[A-Z]\w*\b"  # camelCase identifiers
    r"|\b\w+\.(?:py|js|ts|html?|json|ya?ml|txt|md|csv|exe|com|org|net)\b"  # file and host names
    r"|(?<![\w@#])[@#]\w+"  # @handles and #hashtags
    r"|(?<![\w/])/[\w.-]+(?:/[\w.-]*)+|\b[A-Za-z]:\\\S+"  # file paths
    r"|“[^”\n]*”|(?<!\w)\"[^\"\n]*\""  # quoted strings: a quotation is kept word for word
)
# a number with what is written onto it: 3,500  12.5%  $4.99  £1.2bn  10:30  2024-03-05  5th
_NUMBER_TOKEN_RE = re.compile(r"[$€£¥]?\d(?:[\d,.:/-]*\d)?(?:%|[^\W\d_]+)?")
_SMALL_NUMBER_RE = re.compile(r"\d{1,2}(?:st|nd|rd|th)?")
_DIGIT_RE = re.compile(r"\d")
_WORDY_RE = re.compile(r"\w")


@dataclass
class GuardConfig:
    """Thresholds of the faithfulness guard (defaults chosen on the valid set: docs/restore.md)."""

    enabled: bool = True
    min_confidence: float = 0.4
    max_edit_words: int = 4  # per side of one edit; spinner phrases are at most about 4 words
    max_changed_share: float = 0.6  # a sentence rewritten beyond this share is left as it was
    protect_numbers: bool = True
    protect_names: bool = True
    protect_code: bool = True  # URLs, e-mails, identifiers, inline code

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"guard min_confidence must be in [0, 1], got {self.min_confidence}")
        if self.max_edit_words < 1:
            raise ValueError(f"guard max_edit_words must be at least 1, got {self.max_edit_words}")
        if not 0.0 < self.max_changed_share <= 1.0:
            raise ValueError(f"guard max_changed_share must be in (0, 1], got {self.max_changed_share}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> GuardConfig:
        return settings_from_dict(cls, d, "guard")


@dataclass
class Edit:
    """One word-level difference between a sentence and the model's output for it."""

    start: int  # character span in the input sentence (or document, once shifted)
    end: int
    original: str  # the input's text at [start, end)
    replacement: str
    confidence: float
    accepted: bool = True
    reason: str = ""  # why a rejected edit was kept as it was
    source: str = "seq2seq"  # the proposer: seq2seq, table, thesaurus or style
    gain: float | None = None  # the LM judge's gain in nats (None: no judge)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.gain is None:  # the seq2seq tier's edits: the fields they always had
            del d["gain"], d["source"]
        return d

    def shifted(self, offset: int) -> Edit:
        return replace(self, start=self.start + offset, end=self.end + offset)


@dataclass
class Guarded:
    """A sentence after the guard: the text to output and every edit, accepted or not."""

    text: str
    edits: list[Edit] = field(default_factory=list)
    n_words: int = 0

    @property
    def accepted(self) -> list[Edit]:
        return [e for e in self.edits if e.accepted]

    @property
    def spin_score(self) -> float:
        """Share of the sentence's words that the accepted edits restore (0 = looks clean)."""
        return spin_score([self])


def spin_score(sentences: list[Guarded]) -> float:
    words = sum(g.n_words for g in sentences)
    if not words:
        return 0.0
    changed = sum(max(1, len(WORD_RE.findall(e.original))) for g in sentences for e in g.accepted)
    return min(1.0, changed / words)


@lru_cache(maxsize=1)
def _known_words() -> frozenset[str]:
    from restorer.spin.lexicon import default_lexicon

    lex = default_lexicon()
    return frozenset(w for w in lex.readings if w not in lex.names)


def looks_like_name(word: str, first: bool) -> bool:
    """A capitalised word that is not an ordinary English word: a name, a brand, an acronym.

    ``first`` says whether the word opens the sentence; the default rule is the same either
    way (an ordinary word is capitalised there anyway), custom rules may differ."""
    if not word[:1].isupper():
        return False
    return word.lower() not in _known_words()


def _protected_spans(sentence: str) -> list[tuple[int, int]]:
    return [m.span() for m in _PROTECTED_RE.finditer(sentence)]


def align(source: str, output: str, decoded: Decoded | None = None) -> list[Edit]:
    """Word-level edits that turn ``source`` into ``output``, with character spans in
    ``source`` and replacement text taken verbatim from ``output``."""
    sw = [(m.group(), m.start(), m.end()) for m in WORD_RE.finditer(source)]
    ow = [(m.group(), m.start(), m.end()) for m in WORD_RE.finditer(output)]
    sm = difflib.SequenceMatcher(None, [w for w, _, _ in sw], [w for w, _, _ in ow], autojunk=False)
    edits: list[Edit] = []
    ops: list[tuple[int, int, int, int]] = []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1:  # word for word: one edit per word
            ops.extend((i1 + k, i1 + k + 1, j1 + k, j1 + k + 1) for k in range(i2 - i1))
        else:
            ops.append((i1, i2, j1, j2))
    for i1, i2, j1, j2 in ops:
        if i1 < i2:  # the source side has words
            s0, s1 = sw[i1][1], sw[i2 - 1][2]
        else:  # pure insertion before source word i1 (or at the end)
            s0 = s1 = sw[i1][1] if i1 < len(sw) else len(source.rstrip())
        if j1 < j2:
            o0, o1 = ow[j1][1], ow[j2 - 1][2]
        else:  # pure deletion: the output continues at word j1
            o0 = o1 = ow[j1][1] if j1 < len(ow) else len(output)
        repl = output[o0:o1]
        conf = decoded.min_prob(o0, o1) if decoded is not None and decoded.token_spans else 1.0
        if i1 == i2:  # insertion: carry the spacing the output has after the inserted words
            nxt = ow[j2][1] if j2 < len(ow) else len(output)
            if i1 < len(sw):
                repl = output[o0:nxt] if nxt > o0 else repl + " "
            else:
                prev = ow[j1 - 1][2] if j1 > 0 else 0
                repl = output[prev:o1]
        elif j1 == j2:  # deletion: take the gap after the deleted words with them
            if i2 < len(sw):
                s1 = sw[i2][1]
            elif i1 > 0:
                s0 = sw[i1 - 1][2]
        edits.append(Edit(s0, s1, source[s0:s1], repl, conf))
    return edits


def _repeats_source(edit: Edit, sentence: str) -> bool:
    """An insertion that repeats the sentence's own words next to where it goes in: a
    runaway decode (spinners never delete a repeated phrase, so restoring one is never due)."""
    ins = WORD_RE.findall(edit.replacement)
    if not ins:
        return False
    n = len(ins)
    before = WORD_RE.findall(sentence[: edit.start])
    after = WORD_RE.findall(sentence[edit.end :])
    if before[-n:] == ins or after[:n] == ins:
        return True
    words = WORD_RE.findall(sentence)
    return n >= 2 and any(words[k : k + n] == ins for k in range(len(words) - n + 1))


def _stutters(edit: Edit) -> bool:
    """A word that comes back with its own ending repeated ("Reading" -> "Readinging."): a
    runaway decode inside a word, not an inflection (which never repeats the word's end)."""
    src = [w for w in WORD_RE.findall(edit.original) if _WORDY_RE.search(w)]
    out = [w for w in WORD_RE.findall(edit.replacement) if _WORDY_RE.search(w)]
    if len(src) != 1 or len(out) != 1:
        return False
    a, b = src[0].lower(), out[0].lower()
    extra = b[len(a) :]
    return b.startswith(a) and len(extra) >= 2 and a.endswith(extra)


def _touches(edit: Edit, spans: list[tuple[int, int]]) -> bool:
    """The edit overlaps a span, or writes right against one: an edit that ends where a
    protected token starts (or starts where one ends) would glue text onto it."""
    return any(s <= edit.end and edit.start <= e for s, e in spans)


def number_spans(sentence: str) -> list[tuple[int, int]]:
    return [m.span() for m in _NUMBER_TOKEN_RE.finditer(sentence)]


def _reject(edit: Edit, sentence: str, cfg: GuardConfig, protected: list[tuple[int, int]],
            is_name: Callable[[str, bool], bool], numbers: list[tuple[int, int]] | None = None) -> str:  # fmt: skip
    """The reason to keep the input's words for ``edit``, or ``""`` to accept it. ``protected``
    and ``numbers`` are the sentence's spans (``numbers`` found here when not given)."""
    if edit.confidence < cfg.min_confidence:
        return "low confidence"
    n_src = len(WORD_RE.findall(edit.original))
    n_out = len(WORD_RE.findall(edit.replacement))
    if n_src > cfg.max_edit_words or n_out > cfg.max_edit_words:
        return "rewrites too much"
    if (not edit.original.strip() and _repeats_source(edit, sentence)) or _stutters(edit):
        return "repetition"
    if not (edit.original.strip() and edit.replacement.strip()) and not _WORDY_RE.search(
        edit.original + edit.replacement
    ):
        return "punctuation only"  # spinners swap words, they do not punctuate
    if cfg.protect_code and _touches(edit, protected):
        return "code, URL or e-mail"
    if numbers is None:
        numbers = number_spans(sentence) if cfg.protect_numbers else []
    if cfg.protect_numbers and _touches(edit, numbers) \
            and not _SMALL_NUMBER_RE.fullmatch(edit.original.strip()):  # fmt: skip
        return "number"
    if cfg.protect_numbers:
        src_digits = _DIGIT_RE.search(edit.original) is not None
        out_digits = _DIGIT_RE.findall(edit.replacement)
        if src_digits and not (_SMALL_NUMBER_RE.fullmatch(edit.original.strip()) and not out_digits):
            return "number"
        if out_digits and _DIGIT_RE.findall(edit.original) != out_digits:
            return "number"
    if cfg.protect_names:
        for m in WORD_RE.finditer(edit.original):
            first = not sentence[: edit.start + m.start()].strip()
            if is_name(m.group(), first):
                return "name"
    return ""


def guard_sentence(
    source: str,
    decoded: Decoded,
    cfg: GuardConfig | None = None,
    is_name: Callable[[str, bool], bool] = looks_like_name,
) -> Guarded:
    """Apply the guard to one sentence and its decode."""
    cfg = cfg or GuardConfig()
    n_words = len(WORD_RE.findall(source))
    if not cfg.enabled:
        edits = align(source, decoded.text, decoded)
        return Guarded(decoded.text.strip(), edits, n_words)
    edits = align(source, decoded.text, decoded)
    protected = _protected_spans(source) if cfg.protect_code else []
    numbers = number_spans(source) if cfg.protect_numbers else []
    for e in edits:
        e.reason = _reject(e, source, cfg, protected, is_name, numbers)
        e.accepted = not e.reason
    changed = sum(max(1, len(WORD_RE.findall(e.original))) for e in edits)
    if n_words and changed / n_words > cfg.max_changed_share:
        for e in edits:
            if e.accepted:
                e.accepted, e.reason = False, "sentence rewritten"
    return Guarded(apply_edits(source, [e for e in edits if e.accepted]), edits, n_words)


def apply_edits(source: str, edits: list[Edit]) -> str:
    """Splice edits (non-overlapping, spans in ``source``) into ``source``."""
    out: list[str] = []
    pos = 0
    for e in sorted(edits, key=lambda e: (e.start, e.end)):
        if e.start < pos:
            continue  # overlapping edits cannot both apply: keep the first
        out.append(source[pos : e.start])
        out.append(e.replacement)
        pos = e.end
    out.append(source[pos:])
    return "".join(out)
