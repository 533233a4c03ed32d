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


def _realign(cache: Any, valid: list[int], pads: list[int]) -> list[int]:
    """Keep ``valid[r]`` decoder positions of each row, right-aligned (left padding).

    Row ``r``'s valid positions are ``pads[r] .. pads[r] + valid[r] - 1`` of the current
    self-attention cache. T5's position bias depends only on the distance between query and
    key, so rows whose newest tokens share the last column see exactly the distances they
    would see alone. Returns the new left pads.
    """
    import torch

    width = max(valid)
    new_pads = [width - v for v in valid]
    layers = cache.self_attention_cache.layers
    device = layers[0].keys.device
    index = torch.zeros((len(valid), width), dtype=torch.long)
    for r, (v, p) in enumerate(zip(valid, pads, strict=True)):
        if v:
            index[r, width - v :] = torch.arange(p, p + v)
    index = index.to(device)
    for layer in layers:
        h, dk = layer.keys.shape[1], layer.keys.shape[3]
        gather = index[:, None, :, None].expand(-1, h, -1, dk)
        layer.keys = layer.keys.gather(2, gather)
        layer.values = layer.values.gather(2, gather)
    return new_pads


def speculative_decode(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 32,
    max_new_tokens: int = 128,
    with_scores: bool = True,
    draft_len: int = 10,
) -> list[Decoded]:
    """Greedy decoding, sped up by drafting tokens copied from the source.

    Each decoder pass feeds every sequence its last token plus a drafted continuation; the
    model's greedy choice at every drafted position comes out of that one pass, the longest
    prefix of the draft that matches is accepted together with the model's own next token,
    and each row of the KV cache keeps exactly its accepted positions (rows are re-aligned to
    the right, with left padding masked out). Tokens are only ever the model's argmax, so the
    output is greedy decoding's (up to floating-point near-ties). Batching, length caps and
    the end of sequences are those of :func:`greedy_decode`.
    """
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    eos = tokenizer.eos_token_id
    start = model.config.decoder_start_token_id
    results: list[Decoded | None] = [None] * len(texts)
    encoder = model.get_encoder()
    with torch.inference_mode():
        for idx, src, cap in length_batches(tokenizer, texts, batch_size, max_new_tokens):
            ids, mask = padded(src, pad, device)
            hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            outs: list[list[int]] = [[] for _ in idx]  # generated tokens (no start token)
            probs: list[list[float]] = [[] for _ in idx]
            ptrs = [0] * len(idx)
            active = list(range(len(idx)))  # batch rows still decoding
            pads: list[int] = [0] * len(idx)  # left padding of each active row in the cache
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            while active:
                width_c = cache.get_seq_length()
                drafts: list[list[int]] = []
                for r in active:
                    room = cap - len(outs[r]) - 1  # the model's own token takes the last slot
                    d, ptrs[r] = _draft(src[r], outs[r], ptrs[r], min(draft_len, room))
                    drafts.append(d)
                width = 1 + max(len(d) for d in drafts)
                dec = torch.full((len(active), width), pad, dtype=torch.long)
                for k, r in enumerate(active):
                    dec[k, : 1 + len(drafts[k])] = torch.tensor([outs[r][-1] if outs[r] else start, *drafts[k]])
                dmask = torch.ones((len(active), width_c + width), dtype=torch.long)
                for k, p in enumerate(pads):
                    dmask[k, :p] = 0
                sel = torch.tensor(active, device=device)
                logits = model(
                    encoder_outputs=(hidden[sel],),
                    attention_mask=mask[sel],
                    decoder_input_ids=dec.to(device),
                    decoder_attention_mask=dmask.to(device),
                    past_key_values=cache,
                    use_cache=True,
                ).logits
                best = logits.argmax(-1).tolist()
                logp = torch.log_softmax(logits.float(), -1) if with_scores else None
                still: list[int] = []
                valid: list[int] = []
                for k, r in enumerate(active):
                    d = drafts[k]
                    done = False
                    accepted = 0
                    for a in range(len(d) + 1):
                        t = best[k][a]
                        outs[r].append(t)
                        if logp is not None:
                            probs[r].append(float(logp[k, a, t].exp()))
                        if t == eos or len(outs[r]) >= cap:
                            done = True
                            break
                        if a == len(d) or t != d[a]:
                            break
                        accepted += 1
                    ptrs[r] += accepted
                    if done:
                        results[idx[r]] = finish(tokenizer, outs[r], probs[r] if with_scores else None)
                    else:
                        still.append(k)
                        # the cache keeps the fed last token and the accepted draft
                        valid.append(width_c - pads[k] + 1 + accepted)
                if not still:
                    break
                if len(still) < len(active):
                    cache.batch_select_indices(torch.tensor(still, device=device))
                pads = _realign(cache, valid, [pads[k] for k in still])
                active = [active[k] for k in still]
    return [d for d in results if d is not None]
