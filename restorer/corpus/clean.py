"""Turn raw text into clean sentences: Brown detokenizer, segmentation, normalisation and filters.

Everything here is pure (no I/O) so other parts of restorer can reuse it:

* :func:`detokenize_brown` joins Brown/PTB-style tokens back into running text;
* :func:`iter_sentences` splits a text into normalised sentences (blingfire), keeping
  paragraph and heading boundaries that blingfire alone would glue together;
* :func:`reject_reason` / :func:`clean_sentences` decide which sentences are good training targets.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

import blingfire

__all__ = [
    "CleanConfig",
    "clean_sentences",
    "detokenize_brown",
    "fix_mojibake",
    "iter_clean_sentences",
    "iter_sentences",
    "normalize_sentence",
    "reject_reason",
    "split_blocks",
    "word_count",
]

# --------------------------------------------------------------------------- normalisation

_INVISIBLE_RE = re.compile("[\u00ad\u200b\u2060\ufeff]")  # soft hyphen, zero-width space, word joiner, BOM
_SPACE_RE = re.compile(r"\s+")
# UTF-8 bytes decoded as cp1252/latin-1: "â€™", "Ã©", "Â " ...
_MOJIBAKE_RE = re.compile("(?:â€|Ã[\u0080-\u00bf]|Â[\u00a0-\u00bf])")


def fix_mojibake(text: str) -> str:
    """Undo the trivial UTF-8-read-as-cp1252 mojibake ("itâ€™s" -> "it’s"); otherwise return ``text``."""
    if not _MOJIBAKE_RE.search(text):
        return text
    for codec in ("cp1252", "latin-1"):
        try:
            fixed = text.encode(codec).decode("utf-8")
        except UnicodeError:
            continue
        if len(_MOJIBAKE_RE.findall(fixed)) < len(_MOJIBAKE_RE.findall(text)):
            return fixed
    return text


def normalize_sentence(text: str) -> str:
    """Drop invisible characters, fix trivial mojibake, collapse whitespace runs and strip.

    All other characters (curly quotes, dashes, accents, emoji) are kept as they are.
    """
    text = _INVISIBLE_RE.sub("", text)
    text = fix_mojibake(text)
    return _SPACE_RE.sub(" ", text).strip()


def word_count(sentence: str) -> int:
    """Words as the corpus counts them: whitespace-separated tokens."""
    return len(sentence.split())


# --------------------------------------------------------------------------- Brown detokenizer

_CONTRACTIONS = {"'s", "n't", "'re", "'ll", "'ve", "'d", "'m"}
_NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", ")", "]", "}", "%", "...", "…"}
_NO_SPACE_AFTER = {"(", "[", "{", "$", "#"}
_SENTENCE_END = (".", "?", "!")


def _mark_belongs_to_quote(tokens: Sequence[str], close: int) -> bool:
    """Does a ``?``/``!`` right after the quote closed at ``close`` end the quotation itself?

    Yes when the quote opened in an earlier sentence, opens the sentence or follows ``,`` / ``:``
    (direct speech), or is at least three tokens long; not for ``Did he say `` yes '' ?``.
    """
    for j in range(close - 1, -1, -1):
        if tokens[j] == "``":
            return j == 0 or tokens[j - 1] in {",", ":", ";"} or close - j - 1 >= 3
        if tokens[j] == "''":
            break
    return True


def _normalise_brown_tokens(tokens: Sequence[str], american_quotes: bool) -> list[str]:
    """Token-level fixes for Brown's conventions before the tokens are joined."""
    out: list[str] = []
    skip_quote = False
    for tok in tokens:
        if not tok or (skip_quote and tok == "''"):
            skip_quote = False
            continue
        skip_quote = False
        if len(tok) > 2 and tok.endswith("''") and tok[0].isdigit():
            # inch marks: Brown writes `1/16''/nn ''/''` for 1/16"; the second quote is spurious
            tok, skip_quote = tok[:-2] + '"', True
        # Brown doubles sentence-final "?", "!" and ";": `it/pps ?/. ?/.`
        if out and tok in {"?", "!", ";"} and out[-1] == tok:
            continue
        # "Jr. ." / "Okla. ." / `? .`: the sentence period is absorbed by the abbreviation or mark.
        if tok == "." and out and out[-1].endswith(_SENTENCE_END) and out[-1] not in {"''", "'"}:
            continue
        out.append(tok)
    if american_quotes:
        # Brown moves all punctuation outside a closing double quote (`trouble '' .`, `guy '' ?`);
        # printed American English has commas and periods inside (`trouble."`), and in Brown the
        # `?`/`!` after a closing quote belongs to the quotation (`guy?"`). `;` and `:` stay outside.
        # A `?`/`!` after a short quote inside a sentence (`Did he say `` yes '' ?`) stays outside.
        i = 0
        while i < len(out) - 1:
            if out[i] == "''" and out[i + 1] in {",", ".", "?", "!"}:
                prev = out[i - 1] if i else ""
                if out[i + 1] in {",", "."} and (prev.endswith(_SENTENCE_END) or prev in {",", ";", ":"}):
                    del out[i + 1]  # `? '' .` -> `?"`
                elif out[i + 1] in {",", "."} or _mark_belongs_to_quote(out, i):
                    out[i], out[i + 1] = out[i + 1], out[i]
            i += 1
    return out


def detokenize_brown(tokens: Sequence[str], *, american_quotes: bool = True) -> str:
    """Join Brown (or Penn-Treebank-like) word tokens into ordinary text.

    * `````` and ``''`` become ``"``; the opening quote attaches to the next word, the closing one
      to the previous word. Standalone ``'`` tokens alternate between opening and closing.
    * No space before ``, . ; : ! ? ) ] } % ...`` and the clitics ``'s n't 're 'll 've 'd 'm``;
      no space after ``( [ { $ #``; ``/`` is glued on both sides; ``--`` keeps its spaces.
    * Brown quirks: doubled ``? ?`` / ``; ;`` are collapsed, the extra period after ``Jr.`` is dropped,
      and (``american_quotes``) ``'' ,`` / ``'' .`` / ``'' ?`` become ``,"`` / ``."`` / ``?"``.

    >>> detokenize_brown(["``", "No", "evidence", "''", ",", "he", "said", "."])
    '"No evidence," he said.'
    """
    toks = _normalise_brown_tokens(tokens, american_quotes)
    pieces: list[str] = []
    glue_next = True  # no space before the next token (start of text, or after an opener)
    single_open = False
    for tok in toks:
        low = tok.lower()
        if tok == "``":
            text, space, glue_next = '"', not glue_next, True
        elif tok == "''":
            text, space, glue_next = '"', False, False
        elif tok == "'":
            if single_open:
                text, space, glue_next = "'", False, False
            else:
                text, space, glue_next = "'", not glue_next, True
            single_open = not single_open
        elif tok == "/":
            text, space, glue_next = tok, False, True
        elif tok in _NO_SPACE_BEFORE or low in _CONTRACTIONS:
            text, space, glue_next = tok, False, False
        elif tok in _NO_SPACE_AFTER:
            text, space, glue_next = tok, not glue_next, True
        else:
            text, space, glue_next = tok, not glue_next, False
        if space and pieces:
            pieces.append(" ")
        pieces.append(text)
    return "".join(pieces)


# --------------------------------------------------------------------------- segmentation

_TERMINAL_RE = re.compile(r"[.!?…][\"'”’)\]]*$")
_LIST_ITEM_RE = re.compile(r"^(?:[-*•+–]|\d{1,3}[.)]|\(?[a-z0-9]{1,3}\))\s+")


def _is_hard_break(line: str, nxt: str, longest: int) -> bool:
    """Is the newline between ``line`` and ``nxt`` a real boundary (not a soft wrap)?"""
    if _LIST_ITEM_RE.match(nxt):
        return True
    if _TERMINAL_RE.search(line):
        return False  # blingfire will split here anyway, and "Mr.\nSmith" must stay joined
    if line.endswith(":"):
        return True
    # a short line with no final punctuation followed by a capital: heading, title, verse line
    return len(line) < 0.6 * longest and nxt[:1].isupper()


def split_blocks(text: str) -> Iterator[str]:
    """Split ``text`` into blocks that never span a paragraph, heading or list-item boundary.

    Blank lines end a paragraph. Inside a paragraph, hard-wrapped lines are joined with a space,
    but a short line without final punctuation (a heading) or a list item starts a new block;
    the list marker (``-``, ``*``, ``1.``, ``(a)`` ...) is removed.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for para in re.split(r"\n[^\S\n]*\n", text):
        lines = [ln.strip() for ln in para.split("\n")]
        lines = [ln for ln in lines if ln]
        if not lines:
            continue
        longest = max(len(ln) for ln in lines)
        current: list[str] = []
        for i, line in enumerate(lines):
            current.append(line)
            if i + 1 == len(lines) or _is_hard_break(line, lines[i + 1], longest):
                yield _LIST_ITEM_RE.sub("", " ".join(current), count=1)
                current = []


def iter_sentences(text: str) -> Iterator[str]:
    """Yield the normalised sentences of ``text`` (blingfire segmentation), without filtering."""
    for block in split_blocks(text):
        for sentence in blingfire.text_to_sentences(block).split("\n"):
            sentence = normalize_sentence(sentence)
            if sentence:
                yield sentence


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class CleanConfig:
    """Which sentences are kept. Every check can be relaxed; see :func:`reject_reason`."""

    min_words: int = 5
    max_words: int = 60
    max_word_chars: int = 40
    min_letter_ratio: float = 0.5
    min_latin_ratio: float = 0.9
    max_caps_ratio: float = 0.6
    require_end_punct: bool = True
    drop_unbalanced: bool = True

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


_URL_RE = re.compile(
    r"(?i:\b(?:https?|ftp)://|\bwww\.\w)|\b[\w.+-]+@[\w-]+\.[\w.]+|\b[\w-]+\.(?:com|org|net|gov|edu|io)\b(?!\.\w)"
)
_TABLE_RE = re.compile(r"[|\t]|-{4,}|={3,}|_{3,}|\+-|\.{4,}")
_ELLIPSIS_RE = re.compile(r"\.(?: \.){2,}")
_WORD_PART_RE = re.compile(r"[^\s\-–—/]+")
# leftovers of removed markup / math / pronunciations, gap markers, unconverted Brown quotes
_ARTIFACT_RE = re.compile(
    r"\s[,;:.](?=\s|$)|\(\s*[,;]?\s*\)|\(\s*[,;]|\[\s*\]|``|''|\ufffd|\[(?:missing|illegible|inaudible|\.\.\.|…)",
    re.IGNORECASE,
)
_END_RE = re.compile(r"[.!?…][\"'”’)\]]*$")
_FRAGMENT_START = set(",;:.!?)]}%[")
_PAIRS = {")": "(", "]": "[", "}": "{"}


def _balanced(sentence: str) -> bool:
    stack: list[str] = []
    for ch in sentence:
        if ch in "([{":
            stack.append(ch)
        elif ch in _PAIRS and (not stack or stack.pop() != _PAIRS[ch]):
            return False
    if stack:
        return False
    return sentence.count('"') % 2 == 0 and sentence.count("“") == sentence.count("”")


def _is_latin(ch: str) -> bool:
    o = ord(ch)
    return o < 0x250 or 0x1E00 <= o <= 0x1EFF


def reject_reason(sentence: str, config: CleanConfig | None = None) -> str | None:
    """Return why ``sentence`` (already normalised) is not a good training sentence, or ``None``.

    Reasons: ``length``, ``url``, ``table``, ``long_word``, ``non_letters``, ``non_latin``,
    ``all_caps``, ``fragment``, ``no_end_punct``, ``artifact``, ``unbalanced``.
    """
    cfg = config or CleanConfig()
    words = sentence.split()
    if not cfg.min_words <= len(words) <= cfg.max_words:
        return "length"
    if _URL_RE.search(sentence):
        return "url"
    if _TABLE_RE.search(sentence):
        return "table"
    if max(map(len, _WORD_PART_RE.findall(sentence)), default=0) > cfg.max_word_chars:
        return "long_word"
    letters = [ch for ch in sentence if ch.isalpha()]
    visible = len(sentence) - sentence.count(" ")
    if not letters or len(letters) < cfg.min_letter_ratio * visible:
        return "non_letters"
    if sum(map(_is_latin, letters)) < cfg.min_latin_ratio * len(letters):
        return "non_latin"
    if len(letters) >= 4 and sum(map(str.isupper, letters)) > cfg.max_caps_ratio * len(letters):
        return "all_caps"
    first = sentence[0]
    if first in _FRAGMENT_START or (first.islower() and words[0].islower()):
        return "fragment"
    if cfg.require_end_punct and not _END_RE.search(sentence):
        return "no_end_punct"
    if _ARTIFACT_RE.search(_ELLIPSIS_RE.sub("…", sentence)):
        return "artifact"
    if cfg.drop_unbalanced and not _balanced(sentence):
        return "unbalanced"
    return None


def clean_sentences(
    sentences: Iterable[str],
    config: CleanConfig | None = None,
    rejected: Counter[str] | None = None,
) -> Iterator[str]:
    """Normalise each sentence and yield the ones that pass :func:`reject_reason`.

    When ``rejected`` is given, it counts the reasons of the dropped sentences.
    """
    cfg = config or CleanConfig()
    for raw in sentences:
        sentence = normalize_sentence(raw)
        if not sentence:
            continue
        reason = reject_reason(sentence, cfg)
        if reason is None:
            yield sentence
        elif rejected is not None:
            rejected[reason] += 1


def iter_clean_sentences(text: str, config: CleanConfig | None = None) -> Iterator[str]:
    """Segment ``text`` and yield only the sentences that pass the filters."""
    return clean_sentences(iter_sentences(text), config)
