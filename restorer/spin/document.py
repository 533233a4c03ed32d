"""Spin whole documents sentence by sentence, keeping their layout byte for byte."""

from __future__ import annotations

from restorer.spin.spinner import Spinner, SpinResult
from restorer.text import map_sentences


def spin_document(spinner: Spinner, text: str, seed: int | str = 0) -> tuple[str, list[SpinResult]]:
    """Spin every sentence of ``text``; return the spun document and one result per sentence.

    Sentence *k* of line *i* is spun with the seed ``f"{seed}:{i}:{k}"``, so the output only
    depends on the seed and the text, never on the order of calls.
    """
    results: list[SpinResult] = []

    def one(sentence: str, line_no: int, k: int) -> str:
        r = spinner.spin(sentence, f"{seed}:{line_no}:{k}")
        results.append(r)
        return r.text

    return map_sentences(text, one), results
