"""What a decoder returns, and the pieces every decoder shares.

Every decoder returns, for each input, a :class:`Decoded`: the decoded text plus the
probability the model gave each of its output tokens and the character span of each token in
the decoded text. The faithfulness guard (:mod:`restorer.infer.guard`) turns those into
per-edit confidences. Every decoder batches its inputs by length with :func:`length_batches`
and turns generated ids into a result with :func:`finish`, so that their outputs can match.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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

    Each token ends where the decode of the ids up to it ends. When the pieces spell the text
    directly (SentencePiece pieces with ``▁`` for a space, no byte-fallback tokens: nearly every
    sentence) those ends are the pieces' running lengths; otherwise they come from prefix
    decodes, and byte-fallback tokens that only make sense together (one UTF-8 character split
    over several byte tokens) are clamped to stay monotonic. A token's leading space belongs to
    the gap before it, not to its span.
    """
    if not ids:
        return []
    ends = _piece_ends(tokenizer, ids, text)
    if ends is None:
        prefixes = tokenizer.batch_decode([list(ids[: i + 1]) for i in range(len(ids))], skip_special_tokens=True)
        ends = [len(p) for p in prefixes]
    spans: list[tuple[int, int]] = []
    prev = 0
    for e in ends:
        end = min(max(e, prev), len(text))
        start = prev
        # a piece that begins with a word boundary contributes its leading space: skip it
        while start < end and text[start].isspace():
            start += 1
        spans.append((min(start, end), end))
        prev = end
    return spans


def _piece_ends(tokenizer: Any, ids: Sequence[int], text: str) -> list[int] | None:
    """Running text lengths of the pieces of ``ids``, if the pieces spell ``text`` exactly
    (``▁`` read as a space, the one leading space dropped as the decoder drops it)."""
    pieces = tokenizer.convert_ids_to_tokens(list(ids))
    if any(p is None or (p.startswith("<0x") and p.endswith(">")) for p in pieces):
        return None
    ends: list[int] = []
    total = 0
    for p in pieces:
        total += len(p)
        ends.append(total)
    joined = "".join(pieces).replace("\u2581", " ")
    shift = 1 if joined.startswith(" ") else 0
    if joined[shift:] != text:
        return None
    return [max(e - shift, 0) for e in ends]


def length_batches(
    tokenizer: Any, texts: Sequence[str], batch_size: int, max_new_tokens: int
) -> Iterator[tuple[list[int], list[list[int]], int]]:
    """Token ids of ``texts`` in batches of similar length: ``(indices, ids, cap)`` where
    ``cap`` is the batch's limit on new tokens (1.5 × its longest input + 8, at most
    ``max_new_tokens``). Every decoder batches this way, so their outputs can match."""
    if not texts:
        return
    enc = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(enc[i]))
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        longest = max(len(enc[i]) for i in idx)
        yield idx, [enc[i] for i in idx], min(max_new_tokens, int(longest * 1.5) + 8)


def padded(rows: Sequence[Sequence[int]], pad: int, device: Any) -> tuple[Any, Any]:
    """Right-padded ``input_ids`` and ``attention_mask`` tensors on ``device``."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, : len(r)] = torch.tensor(r)
        mask[k, : len(r)] = 1
    return ids.to(device), mask.to(device)


def finish(tokenizer: Any, toks: Sequence[int], probs: Sequence[float] | None) -> Decoded:
    """A ``Decoded`` from generated ids: cut at the first end or pad token, special tokens
    dropped, text decoded, token spans found (when there are probabilities)."""
    stop = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    special = set(tokenizer.all_special_ids)
    keep_t: list[int] = []
    keep_p: list[float] = []
    for k, t in enumerate(toks):
        if t in stop:
            break
        if t in special:
            continue
        keep_t.append(t)
        if probs is not None:
            keep_p.append(probs[k])
    text = tokenizer.decode(keep_t, skip_special_tokens=True)
    if probs is None:
        return Decoded(text, keep_t)
    return Decoded(text, keep_t, keep_p, token_char_spans(tokenizer, keep_t, text))
