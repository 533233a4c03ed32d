"""``clean_changed`` as an ``evaluate`` metric: over-correction on clean input (DESIGN.md section 5).

Load it offline with ``restorer.eval.load_metric("clean_changed")`` or
``evaluate.load("/path/to/restorer/eval/clean_changed.py")``. The computation lives in the
sibling ``core.py``, which ``evaluate`` copies next to this script in its modules cache.
"""

from __future__ import annotations

import datasets
import evaluate

from .core import clean_changed_score

_CITATION = ""

_DESCRIPTION = """\
Share of words a restorer changes when it is given the *original* (clean) text:
sum(word_edit_distance(output, original)) / sum(number of original words). Lower is better;
the target is about 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): the model's outputs when fed the originals.
    references (`list` of `str`): the originals, which were also the model's input.
Returns:
    clean_changed (`float`).
Examples:
    >>> metric = load_metric("clean_changed")
    >>> metric.compute(predictions=["a large dog"], references=["a large dog"])
    {'clean_changed': 0.0}
"""


class CleanChanged(evaluate.Metric):
    """``evaluate`` wrapper around :func:`restorer.eval.core.clean_changed_score`."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        return {"clean_changed": clean_changed_score(predictions, references)}
