"""Decoding: restore sentences with a model and keep what the guard needs.

Every decoder returns, for each input, the decoded text plus the probability the model gave
each of its output tokens and the character span of each token in the decoded text. The
faithfulness guard (``restorer.guard``) turns those into per-edit confidences.

``greedy_decode`` is the reference decoder: plain greedy ``model.generate`` over batches of
similar length. Faster decoders must produce identical texts.
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

    device = next(model.parameters()).device
    out: list[Decoded | None] = [None] * len(texts)
    with torch.inference_mode():
        for idx, rows, cap in length_batches(tokenizer, texts, batch_size, max_new_tokens):
            ids, mask = padded(rows, tokenizer.pad_token_id, device)
            gen = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                num_beams=1,
                max_new_tokens=cap,
                output_scores=with_scores,
                return_dict_in_generate=True,
            )
            seqs = gen.sequences[:, 1:].tolist()  # drop the decoder start token
            probs: list[list[float]] | None = None
            if with_scores:
                # probability of the chosen token at every step: (batch, steps)
                steps = torch.stack([torch.log_softmax(x.float(), dim=-1) for x in gen.scores], dim=1)
                chosen = gen.sequences[:, 1 : 1 + steps.shape[1]].unsqueeze(-1)
                probs = steps.gather(-1, chosen).squeeze(-1).exp().tolist()
            for r, i in enumerate(idx):
                out[i] = finish(tokenizer, seqs[r], probs[r] if probs is not None else None)
    return [d for d in out if d is not None]


# ----------------------------------------------------------------------------- copy-speculative


def _lookup(hay: list[int], out: list[int], ptr: int, end: int, max_ctx: int = 6) -> tuple[int, int]:
    """Where in ``hay[:end]`` the output continues: the position ``j`` after the occurrence
    of the output's last token that matches the longest run of preceding output tokens
    (up to ``max_ctx``), nearest to ``ptr`` among equals. Returns ``(context, j)``; context 0
    means the last token does not occur."""
    last = out[-1]
    best_ctx, best_j = 0, -1
    for j in range(end):
        if hay[j] != last:
            continue
        c = 1
        while c < max_ctx and c < len(out) and j - c >= 0 and hay[j - c] == out[-1 - c]:
            c += 1
        if c > best_ctx or (c == best_ctx and abs(j + 1 - ptr) < abs(best_j + 1 - ptr)):
            best_ctx, best_j = c, j
    return best_ctx, best_j + 1


def _draft(src: list[int], out: list[int], ptr: int, k: int) -> tuple[list[int], int]:
    """Propose the next ``k`` output tokens.

    A restored sentence mostly copies its source, so the draft is the source's continuation
    after the output's last tokens, aligned by ``ptr`` (where the output is expected to be in
    the source). When the output's own history matches a longer run of its last tokens (a
    model repeating itself), the draft continues the repetition instead.
    """
    if k <= 0:
        return [], ptr
    if not out:
        return src[:k], 0
    ctx_s, at_s = _lookup(src, out, ptr, len(src))
    ctx_o, at_o = _lookup(out, out, len(out), len(out) - 1)
    if ctx_o > ctx_s:
        return out[at_o : at_o + k], ptr
    if ctx_s:
        return src[at_s : at_s + k], at_s
    return [], ptr


def speculative_decode(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 32,
    max_new_tokens: int = 128,
    with_scores: bool = True,
    draft_len: int = 6,
    stats: dict[str, int] | None = None,
    workers: int = 1,
) -> list[Decoded]:
    """Greedy decoding, sped up by drafting tokens copied from the source.

    Each decoder pass feeds every sequence its last token plus a drafted continuation
    (:func:`_draft`); the model's greedy choice at every drafted position comes out of that one
    pass, the longest prefix of the draft that matches is accepted together with the model's
    own next token, and each row keeps exactly its accepted positions in the KV cache. Tokens
    are only ever the model's argmax, so the output is greedy decoding's (up to floating-point
    near-ties). Batching, length caps and the end of sequences are those of
    :func:`greedy_decode`. The passes run on :class:`restorer.lean.LeanT5`; ``stats`` (if
    given) gets the number of decoder ``passes`` and ``positions`` computed added to it.
    ``workers`` > 1 decodes that many batches at once on the CPU, each on one thread.
    """
    from restorer.lean import LeanT5

    runtime = LeanT5(model)
    out = runtime.decode(tokenizer, texts, batch_size, max_new_tokens, with_scores, draft_len, workers=workers)
    if stats is not None:
        stats["passes"] = stats.get("passes", 0) + runtime.passes
        stats["positions"] = stats.get("positions", 0) + runtime.positions
    return out
