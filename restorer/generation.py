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
    import torch

    if not texts:
        return []
    device = next(model.parameters()).device
    enc = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(enc[i]))
    out: list[str] = [""] * len(texts)
    pad = tokenizer.pad_token_id
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            longest = max(len(enc[i]) for i in idx)
            ids = torch.full((len(idx), longest), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), longest), dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, : len(enc[i])] = torch.tensor(enc[i])
                mask[r, : len(enc[i])] = 1
            gen = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                do_sample=False,
                num_beams=1,
                max_new_tokens=min(max_new_tokens, int(longest * 1.5) + 8),
            )
            dec = tokenizer.batch_decode(gen, skip_special_tokens=True)
            for r, i in enumerate(idx):
                out[i] = dec[r]
    return out
