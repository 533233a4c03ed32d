"""Batched greedy generation with the plain ``transformers`` API (the reference decoder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def greedy_restore(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 64,
    max_new_tokens: int = 128,
) -> list[str]:
    """Greedy ``model.generate`` over ``texts``, batched by length; outputs in input order."""
    from restorer.decoding import greedy_decode

    return [d.text for d in greedy_decode(model, tokenizer, texts, batch_size, max_new_tokens, with_scores=False)]
