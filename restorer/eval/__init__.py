"""Evaluation: the metrics of ``restorer eval`` (DESIGN.md section 5) and the one procedure
that every caller uses (:func:`restorer.eval.evaluation.evaluate`).

Pure functions live in :mod:`restorer.eval.core` and are re-exported here; importing this
package does not import ``evaluate`` (which is slow to import). The ``evaluate`` modules
``repaired.py`` and ``clean_changed.py`` in this directory are loaded by *file path* with
:func:`load_metric`, which works with no network and no Hub access.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core import (
    WORD_RE,
    WordEdit,
    bleu_score,
    chrf_score,
    clean_changed_score,
    compute_metrics,
    edit_counts,
    edit_scores,
    exact_score,
    extract_edits,
    precision_recall_f,
    repaired_score,
    restoration_scores,
    token_edit_distance,
    tokenize_words,
    word_edit_distance,
)

if TYPE_CHECKING:
    import evaluate

__all__ = [
    "METRIC_NAMES",
    "WORD_RE",
    "WordEdit",
    "bleu_score",
    "chrf_score",
    "clean_changed_score",
    "compute_metrics",
    "edit_counts",
    "edit_scores",
    "exact_score",
    "extract_edits",
    "load_metric",
    "metric_path",
    "precision_recall_f",
    "repaired_score",
    "restoration_scores",
    "token_edit_distance",
    "tokenize_words",
    "word_edit_distance",
]

METRIC_NAMES: tuple[str, ...] = ("repaired", "clean_changed")
"""Names of the local ``evaluate`` modules shipped in this package."""

_HERE = Path(__file__).resolve().parent


def metric_path(name: str) -> Path:
    """Absolute path of the ``evaluate`` script of metric ``name`` (one of :data:`METRIC_NAMES`)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(METRIC_NAMES)}")
    return _HERE / f"{name}.py"


def load_metric(name: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """Load one of our metrics through ``evaluate.load`` from its local script, offline.

    ``evaluate.load`` given an existing ``*.py`` path takes its local branch before any Hub
    logic: it copies the script and the files it imports relatively (``core.py``) into
    ``$HF_MODULES_CACHE/evaluate_modules/metrics/<name>/<content hash>/``, imports it from there
    and instantiates the ``evaluate.Metric`` subclass it defines. No network is used, with or
    without ``HF_HUB_OFFLINE`` / ``HF_EVALUATE_OFFLINE``.

    ``kwargs`` go to ``evaluate.load``; ``keep_in_memory`` defaults to True (no Arrow cache
    files under ``~/.cache/huggingface/metrics``); pass ``keep_in_memory=False`` together with
    ``num_process``/``process_id`` for distributed evaluation.
    """
    path = metric_path(name)
    import evaluate

    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(path), **kwargs)
