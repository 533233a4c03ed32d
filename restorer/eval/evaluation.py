"""The evaluation procedure, written once: ``restorer eval``, training, ``restorer ship`` and
``restorer finetune`` all score a model with :func:`evaluate`.

The procedure: restore the spun sentences and the clean ones in one call, score the outputs for
the spun sentences against the originals (:func:`~restorer.eval.core.compute_metrics`), then
add ``clean_changed``, the over-correction on the clean sentences (the originals, unless the
caller has its own clean set). Callers differ only in how they restore:

* ``restorer eval``: ``Restorer.restore_sentences`` (the full path, judge included);
* training: the greedy decode of the model being trained, no guard;
* ``restorer ship``, ``restorer finetune`` and the guard sweep (:func:`evaluate_pairs`): one
  decode of the ``Restorer``, guarded with each setting compared (:func:`guarded`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from restorer.eval.core import clean_changed_score, compute_metrics
from restorer.infer.decoded import Decoded
from restorer.infer.guard import GuardConfig, guard_sentence

Restore = Callable[[list[str]], Sequence[str]]
"""Sentences in, one restored sentence each out, in order."""


@dataclass
class Evaluation:
    metrics: dict[str, float]  # compute_metrics' keys, then clean_changed (when there were clean sentences)
    outputs: list[str]  # the outputs for the spun sentences


def evaluate(
    restore: Restore, spun: Sequence[str], originals: Sequence[str], clean: Sequence[str] | None = None
) -> Evaluation:
    """Score ``restore`` on ``(spun, original)`` sentence pairs; ``clean_changed`` is measured
    on ``clean`` (default: the originals), and left out when ``clean`` is empty."""
    spun = list(spun)
    clean = list(originals) if clean is None else list(clean)
    outs = list(restore(spun + clean))
    n = len(spun)
    metrics = compute_metrics(spun, outs[:n], originals)
    if clean:
        metrics["clean_changed"] = clean_changed_score(outs[n:], clean)
    return Evaluation(metrics, outs[:n])


def guarded(decodes: Sequence[Decoded], guard: GuardConfig) -> Restore:
    """A restore function over decodes made beforehand, one per text it will be given (in order):
    each decode under ``guard``, so that one decode serves several guard settings."""

    def restore(texts: list[str]) -> list[str]:
        if not guard.enabled:
            return [d.text.strip() for d in decodes]
        return [guard_sentence(s, d, guard).text for s, d in zip(texts, decodes, strict=True)]

    return restore


def score_decodes(
    spun: Sequence[str],
    originals: Sequence[str],
    dec_spun: Sequence[Decoded],
    dec_clean: Sequence[Decoded],
    guard: GuardConfig,
) -> tuple[dict[str, float], list[str]]:
    """Metrics of decodes of the spun sentences and of the originals (for ``clean_changed``)
    under one guard setting; also the outputs for the spun sentences."""
    ev = evaluate(guarded([*dec_spun, *dec_clean], guard), spun, originals)
    return ev.metrics, ev.outputs


def evaluate_pairs(restorer: Any, pairs: Sequence[dict[str, Any]], both: bool = False) -> dict[str, Any]:
    """Metrics of ``restorer`` on pairs with its own guard setting; with ``both``, also with
    the guard off (``no_guard``) from the same decodes."""
    spun = [p["spun"] for p in pairs]
    originals = [p["original"] for p in pairs]
    dec = restorer.decode(spun + originals)
    ds, dc = dec[: len(pairs)], dec[len(pairs) :]
    metrics, outs = score_decodes(spun, originals, ds, dc, restorer.guard)
    result: dict[str, Any] = {"metrics": metrics, "outputs": outs}
    if both:
        off = GuardConfig(enabled=False)
        result["no_guard"] = score_decodes(spun, originals, ds, dc, off)[0]
        result["guard"] = metrics if restorer.guard.enabled else score_decodes(spun, originals, ds, dc, GuardConfig())[0]
    return result
