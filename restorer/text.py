"""Text layout: split a line into sentences without losing a byte of what lies between them.

The unit of work everywhere in restorer is the sentence. A document is split into lines, each
line into sentence spans; the text between the spans (indentation, double spaces, trailing
whitespace) is kept as it is, so a document can be put back together byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import blingfire


def sentence_spans(line: str) -> list[tuple[int, int]]:
    """Character spans of the sentences in one line (no newlines inside)."""
    if not line.strip():
        return []
    try:
        _, offsets = blingfire.text_to_sentences_and_offsets(line)
    except Exception:  # blingfire is C code: never let it take a document down
        offsets = []
    spans = [(s, e) for s, e in offsets if 0 <= s < e <= len(line)]
    if not spans:
        s = len(line) - len(line.lstrip())
        return [(s, len(line.rstrip()))]
    # blingfire must not drop text: anything outside the spans has to be whitespace
    covered = 0
    for s, e in spans:
        if s < covered or line[covered:s].strip():
            s0 = len(line) - len(line.lstrip())
            return [(s0, len(line.rstrip()))]
        covered = e
    if line[covered:].strip():
        s0 = len(line) - len(line.lstrip())
        return [(s0, len(line.rstrip()))]
    return spans


def split_layout(line: str) -> tuple[list[str], list[str]]:
    """``(gaps, sentences)`` with ``gaps[0] + s[0] + gaps[1] + ... + s[-1] + gaps[-1] == line``."""
    spans = sentence_spans(line)
    gaps: list[str] = []
    sents: list[str] = []
    pos = 0
    for s, e in spans:
        gaps.append(line[pos:s])
        sents.append(line[s:e])
        pos = e
    gaps.append(line[pos:])
    return gaps, sents


def join_layout(gaps: list[str], sentences: list[str]) -> str:
    if len(gaps) != len(sentences) + 1:
        raise ValueError("join_layout needs exactly one more gap than sentences")
    parts = [gaps[0]]
    for s, g in zip(sentences, gaps[1:], strict=True):
        parts.append(s)
        parts.append(g)
    return "".join(parts)


def map_sentences(text: str, fn: Callable[[str, int, int], str]) -> str:
    """Apply ``fn(sentence, line_no, sentence_no)`` to every sentence, keeping the layout.

    Line ends (``\\n``, ``\\r\\n``) and blank lines are preserved exactly.
    """
    out: list[str] = []
    for line_no, raw in enumerate(text.splitlines(keepends=True)):
        body = raw.rstrip("\r\n")
        ending = raw[len(body) :]
        gaps, sents = split_layout(body)
        new = [fn(s, line_no, k) for k, s in enumerate(sents)]
        out.append(join_layout(gaps, new) + ending)
    return "".join(out)


def iter_lines(text: str) -> Iterator[tuple[str, str]]:
    """``(body, line_ending)`` for every line of a text."""
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        yield body, raw[len(body) :]


def document_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of every sentence of a document, line by line (never across lines)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        spans.extend((pos + s, pos + e) for s, e in sentence_spans(body))
        pos += len(raw)
    return spans


def splice(text: str, spans: list[tuple[int, int]], replacements: list[str]) -> str:
    """Replace ``text[s:e]`` for every span (sorted, non-overlapping) by its replacement."""
    if len(spans) != len(replacements):
        raise ValueError("splice needs one replacement per span")
    out: list[str] = []
    pos = 0
    for (s, e), r in zip(spans, replacements, strict=True):
        if s < pos:
            raise ValueError("splice spans overlap or are not sorted")
        out.append(text[pos:s])
        out.append(r)
        pos = e
    out.append(text[pos:])
    return "".join(out)


_CUT_RE = re.compile(r"(?<=[;:,\u2014\u2013)])\s+|\s+(?=(?:and|but|or|which|while|because|when|where|that)\s)")


def split_long(sentence: str, too_long: Callable[[str], bool], min_chars: int = 8) -> list[tuple[int, int]]:
    """Cut a sentence the model cannot take in one piece into spans it can, at safe points.

    Preferred cuts are after ``; : , — –`` and before a conjunction, nearest the middle; then
    any whitespace; a run without whitespace is cut in the middle. The text between the spans
    is whitespace only, so the pieces join back with the sentence's own spacing.
    """
    def rec(s: int, e: int, depth: int) -> list[tuple[int, int]]:
        piece = sentence[s:e]
        if depth > 40 or e - s <= min_chars or not too_long(piece):
            return [(s, e)]
        mid = (s + e) / 2
        cuts = [(m.start() + s, m.end() + s) for m in _CUT_RE.finditer(piece)]
        cuts = [c for c in cuts if s + min_chars // 2 < c[0] and c[1] < e - min_chars // 2]
        if not cuts:
            cuts = [(m.start() + s, m.end() + s) for m in re.finditer(r"\s+", piece)]
            cuts = [c for c in cuts if s < c[0] and c[1] < e]
        if cuts:
            a, b = min(cuts, key=lambda c: abs(c[0] - mid))
        else:
            a = b = int(mid)
        return rec(s, a, depth + 1) + rec(b, e, depth + 1)

    return rec(0, len(sentence), 0) if sentence else []
