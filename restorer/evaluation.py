"""Score a Restorer on pairs: the numbers of `restorer eval`, the model card and the guard sweep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from restorer.infer.decoded import Decoded
from restorer.infer.guard import GuardConfig, guard_sentence
from restorer.metrics.core import clean_changed_score, compute_metrics


def score_decodes(
    spun: Sequence[str],
    originals: Sequence[str],
    dec_spun: Sequence[Decoded],
    dec_clean: Sequence[Decoded],
    guard: GuardConfig,
) -> tuple[dict[str, float], list[str]]:
    """Metrics of decodes of the spun sentences and of the originals (for ``clean_changed``)
    under one guard setting; also the outputs for the spun sentences."""

    def out(src: Sequence[str], dec: Sequence[Decoded]) -> list[str]:
        if not guard.enabled:
            return [d.text.strip() for d in dec]
        return [guard_sentence(s, d, guard).text for s, d in zip(src, dec, strict=True)]

    outs = out(spun, dec_spun)
    metrics = compute_metrics(spun, outs, originals)
    metrics["clean_changed"] = clean_changed_score(out(originals, dec_clean), originals)
    return metrics, outs


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
