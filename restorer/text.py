"""Text layout: split a line into sentences without losing a byte of what lies between them.

The unit of work everywhere in restorer is the sentence. A document is split into lines, each
line into sentence spans; the text between the spans (indentation, double spaces, trailing
whitespace) is kept as it is, so a document can be put back together byte for byte.
"""

from __future__ import annotations

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
