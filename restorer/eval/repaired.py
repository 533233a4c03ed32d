"""``repaired`` as an ``evaluate`` metric: restoration of article-spun text (DESIGN.md section 5).

Load it offline with ``restorer.eval.load_metric("repaired")`` or
``evaluate.load("/path/to/restorer/eval/repaired.py")``. The computation lives in the
sibling ``core.py``; ``evaluate`` copies both files into its modules cache, so this script is
self-contained and never touches the Hub.
"""

from __future__ import annotations

import datasets
import evaluate

from .core import restoration_scores

_CITATION = ""

_DESCRIPTION = """\
How much of the spinning a system undid. ``repaired`` is
1 - sum(word_edit_distance(prediction, reference)) / sum(word_edit_distance(source, reference))
over the corpus: identity scores 0, a perfect restoration 1, damage goes negative. Also reports
``exact`` (share of sentences restored exactly) and ERRANT-style word-level edit precision,
recall and F0.5 (precision is 1.0 when no edit was proposed).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): model outputs.
    references (`list` of `str`): the original sentences.
    sources (`list` of `str`): the spun sentences the model was given.
Returns:
    repaired (`float`), exact (`float`), edit_precision (`float`), edit_recall (`float`),
    edit_f05 (`float`), n (`int`, number of sentences).
Examples:
    >>> metric = load_metric("repaired")
    >>> metric.compute(sources=["a big dog"], predictions=["a large dog"], references=["a large dog"])["repaired"]
    1.0
"""


class Repaired(evaluate.Metric):
    """``evaluate`` wrapper around :func:`restorer.eval.core.restoration_scores`."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                    "sources": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions: list[str], references: list[str], sources: list[str]) -> dict[str, float]:
        return restoration_scores(sources, predictions, references)
