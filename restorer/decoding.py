"""Decoding: restore sentences with a model and keep what the guard needs.

Every decoder returns, for each input, the decoded text plus the probability the model gave
each of its output tokens and the character span of each token in the decoded text. The
faithfulness guard (``restorer.guard``) turns those into per-edit confidences.

``greedy_decode`` is the reference decoder: plain greedy ``model.generate`` over batches of
similar length. Faster decoders must produce identical texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Decoded:
    """One decoded sentence."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    token_probs: list[float] = field(default_factory=list)
    token_spans: list[tuple[int, int]] = field(default_factory=list)  # char spans in ``text``

    def min_prob(self, start: int, end: int) -> float:
        """Lowest token probability over the tokens that overlap ``text[start:end]``.

        An empty span (a deletion) takes the token that starts at or after ``start``: the
        model's decision to go on with the next word instead of the deleted ones.
        """
        probs = [p for (s, e), p in zip(self.token_spans, self.token_probs, strict=True) if s < end and e > start]
        if not probs and start == end:
            probs = [p for (s, _e), p in zip(self.token_spans, self.token_probs, strict=True) if s >= start][:1]
        if not probs:
            return 1.0
        return min(probs)


def token_char_spans(tokenizer: Any, ids: Sequence[int], text: str) -> list[tuple[int, int]]:
    """Character span of every token of ``ids`` in ``text == decode(ids)``.

    Prefix decodes give each token's end; byte-fallback tokens that only make sense together
    (one UTF-8 character split over several byte tokens) are clamped to stay monotonic.
    """
    if not ids:
        return []
    prefixes = tokenizer.batch_decode([list(ids[: i + 1]) for i in range(len(ids))], skip_special_tokens=True)
    spans: list[tuple[int, int]] = []
    prev = 0
    for p in prefixes:
        end = min(max(len(p), prev), len(text))
        start = prev
        # a piece that begins with a word boundary contributes its leading space: skip it
        while start < end and text[start].isspace():
            start += 1
        spans.append((min(start, end), end))
        prev = end
    return spans


def greedy_decode(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 32,
    max_new_tokens: int = 128,
    with_scores: bool = True,
) -> list[Decoded]:
    """Greedy ``model.generate`` over ``texts``, batched by length; results in input order."""
    import torch

    if not texts:
        return []
    device = next(model.parameters()).device
    enc = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(enc[i]))
    out: list[Decoded | None] = [None] * len(texts)
    pad = tokenizer.pad_token_id
    special = set(tokenizer.all_special_ids)
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
                output_scores=with_scores,
                return_dict_in_generate=True,
            )
            seqs = gen.sequences[:, 1:].tolist()  # drop the decoder start token
            if with_scores:
                # probability of the chosen token at every step: (batch, steps)
                steps = torch.stack([torch.log_softmax(s.float(), dim=-1) for s in gen.scores], dim=1)
                chosen = gen.sequences[:, 1 : 1 + steps.shape[1]].unsqueeze(-1)
                probs = steps.gather(-1, chosen).squeeze(-1).exp().tolist()
            for r, i in enumerate(idx):
                toks, tprobs = [], []
                for k, t in enumerate(seqs[r]):
                    if t in special:
                        if t == tokenizer.eos_token_id or t == pad:
                            break
                        continue
                    toks.append(t)
                    tprobs.append(probs[r][k] if with_scores else 1.0)
                text = tokenizer.decode(toks, skip_special_tokens=True)
                spans = token_char_spans(tokenizer, toks, text) if with_scores else []
                out[i] = Decoded(text, toks, tprobs if with_scores else [], spans)
    return [d for d in out if d is not None]
