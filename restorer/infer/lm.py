"""Score sentences and their one-edit variants with a causal LM, fast.

A variant differs from its base sentence from some token ``b`` on. Its log-probability gain
over the base is ``sum(lp(variant[b:])) - sum(lp(base[b:]))``: the prefix is the same, so its
keys and values are computed once, in the base pass, and each variant computes only its own
tokens from ``b`` on (prefix KV reuse). All the variants of a sentence are packed into one row
whose attention mask lets each variant see the base prefix up to its branch point and its own
earlier tokens (a tree of suffixes); rows of many sentences run as one batch.

With ``window`` set, a variant is scored only up to ``window`` tokens past its change (the
base over the same tokens): the change's effect on far tokens is small, and it is most of the
cost. ``window=None`` is exact.

The fast path runs a lean forward of Llama-family models (SmolLM2, Llama, Mistral, Qwen2: the
same module names). ``gains_naive`` scores every variant in full with the model's own
``forward``: the reference the fast path must agree with, and the path other architectures
take.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

# oneDNN (bf16 on the CPU) caches a primitive, and ideep a reordered copy of the weights, for
# every matrix shape it meets, 1,024 of each by default; the judge's packed rows come in
# thousands of shapes, so memory grew by about 65 MB per 100 sentences and never came back.
# 64 of each keeps it flat at the same speed (measured: 3.78 and 3.80 sentences/s). Both are
# read when first used, so setting them here (unless the user has) is in time.
os.environ.setdefault("LRU_CACHE_CAPACITY", "64")
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")

LEAN_TYPES = ("llama", "mistral", "qwen2")
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters
_M_ARENA_MAX = -8


# glibc serves blocks of this size or more with their own mmap, given back when freed
_MMAP_THRESHOLD = 8 << 20


@lru_cache(maxsize=1)
def bound_heap() -> None:
    """Fix glibc's mmap threshold at 8 MB, so that it does not climb with use, and keep every
    thread's small blocks in the one heap.

    Below the threshold, blocks come from the heap; above it, each is its own mmap, whose pages
    the kernel faults in and zeroes on every use. At 1 MB (sessions 6-10) the output layer's
    logits and the forward's activations were all fresh mmaps: the output layer ran at half
    speed and the judge at 3.7 sentences/s against 4.7 (200 ``mixed`` test sentences, bf16). At
    32 MB, glibc's own ceiling, the peak while restoring 1,000 sentences was 1,497 MB, at 8 MB
    1,329 (``benchmarks/bench_memory.py``): the judge's ever-changing shapes fragment the heap,
    which ``malloc_trim`` after each chunk gives back (``restorer.infer.pipeline``).

    Worker threads (torch's, CTranslate2's) otherwise get heaps of their own, up to eight per
    core, which keep what they freed: in fp32 (a CPU without bf16) a chunk of 16 sentences
    peaked 200-500 MB over its start, and restoring 300 ``mixed`` test sentences peaked at
    1,785 MB against 1,530 with one heap, at the same speed. Arenas are fixed when a thread
    first allocates, so this runs before the models load (``JudgeTier.load``). Not glibc:
    nothing to do."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(_M_ARENA_MAX, 1)


@dataclass
class LMScorerConfig:
    """How the judge's LM runs."""

    # tokens per forward pass (base rows, or packed variant rows); None: 2048 in bf16/fp16, 1024
    # in fp32 (the same bytes; in fp32 1,024 ran 1.07x faster than 2,048 and peaked 46 MB lower)
    max_batch_tokens: int | None = None
    max_row_tokens: int = 192  # most variant tokens packed into one row
    fast: bool = True  # prefix KV reuse + packed variants; False: score every variant in full
    quantize: bool = False  # torch dynamic int8 for the linear layers (CPU only)
    window: int | None = None  # score a variant up to this many tokens past its change
    dtype: str = "auto"  # auto: bf16 where the device computes it fast (CUDA, CPUs with AVX512-BF16/AMX), else fp32
    head_fp32: bool = False  # with bf16: the output layer in fp32 too (the softmax always is); measured: the same quality, 1.4x slower

    def __post_init__(self) -> None:
        for name in ("max_batch_tokens", "max_row_tokens", "window"):
            v = getattr(self, name)
            if (v is not None or name == "max_row_tokens") and (type(v) is not int or v < 1):
                raise ValueError(f"scorer {name} must be a whole number of tokens of at least 1, not {v!r}")


def _doc_start_id(tok: Any) -> int:
    """The token that opens a document in pre-training: ``<|endoftext|>`` if the vocabulary
    has it, else BOS, else EOS."""
    vocab = tok.get_vocab()
    for t in ("<|endoftext|>", "<bos>", "<s>"):
        if t in vocab:
            return int(vocab[t])
    for t in (tok.bos_token_id, tok.eos_token_id):
        if t is not None:
            return int(t)
    raise ValueError("the tokenizer has no BOS, EOS or <|endoftext|> token to open a sentence")


@dataclass
class _Base:
    """One base sentence after its pass: tokens, final hidden states [n, d], per-layer keys
    and values [heads, n, head_dim], and each token's log-probability (n - 1)."""

    ids: list[int]
    hidden: torch.Tensor
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    lp: torch.Tensor


def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX). oneDNN also accepts bf16
    on a plain AVX512 CPU (``_is_mkldnn_bf16_supported`` says yes), but emulates it: measured on
    an Ice Lake Xeon, a bf16 matrix product ran at a third of fp32's speed."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # an older torch: take the safe fp32
        return False


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """``auto``: bf16 on CUDA (fp16 where bf16 is not supported) and on CPUs whose oneDNN runs
    bf16 natively (AVX512-BF16 or AMX: about 4x fp32 here); fp32 elsewhere."""
    if name == "fp32":
        return torch.float32
    if name in ("bf16", "fp16"):
        return torch.bfloat16 if name == "bf16" else torch.float16
    if name != "auto":
        raise ValueError(f"unknown LM dtype {name!r}; use auto, fp32, bf16 or fp16")
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu":
        return torch.bfloat16 if native_cpu_bf16() else torch.float32
    return torch.float32


def _branch(base: list[int], variant: list[int]) -> int:
    """The first token index where ``variant`` leaves ``base`` (at least 1: the start token
    is shared)."""
    n = min(len(base), len(variant))
    b = 1
    while b < n and base[b] == variant[b]:
        b += 1
    return b


def _spans(base: list[int], variant: list[int], window: int | None) -> tuple[int, int, int]:
    """``(b, end_base, end_variant)``: the tokens ``[b, end)`` of each side that are scored."""
    b = _branch(base, variant)
    if window is None:
        return b, len(base), len(variant)
    s = 0  # common suffix, not reaching into the common prefix
    while s < min(len(base), len(variant)) - b and base[-1 - s] == variant[-1 - s]:
        s += 1
    return b, min(len(base), len(base) - s + window), min(len(variant), len(variant) - s + window)


def _padded_past(states: Sequence[_Base], lengths: Sequence[int], width: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's keys and values of the first ``lengths[r]`` tokens of ``states[r]``, as one
    batch padded to ``width`` positions (``[B, heads, width, head_dim]``)."""
    past = []
    for li, (k0, _) in enumerate(states[0].kv):
        ks = k0.new_zeros(len(states), k0.shape[0], width, k0.shape[-1])
        vs = torch.zeros_like(ks)
        for r, (st, n) in enumerate(zip(states, lengths, strict=True)):
            ks[r, :, :n] = st.kv[li][0][:, :n]
            vs[r, :, :n] = st.kv[li][1][:, :n]
        past.append((ks, vs))
    return past


class LMScorer:
    """Sentence log-probabilities and variant gains under a causal LM."""

    MIN_SHARED = 4  # a base grows from a cached one only when they share more tokens than this

    def __init__(self, model: Any, tokenizer: Any, config: LMScorerConfig | None = None,
                 head_weight: torch.Tensor | None = None) -> None:  # fmt: skip
        """``head_weight``: the output layer's fp32 weight when ``model`` was loaded in a lower
        precision (used with ``head_fp32``); by default it is taken from the model."""
        bound_heap()
        self.cfg = config or LMScorerConfig()
        self.tok = tokenizer
        self.start_id = _doc_start_id(tokenizer)
        self.device = next(model.parameters()).device
        self.lean = getattr(model.config, "model_type", "") in LEAN_TYPES and self.cfg.fast
        if self.cfg.quantize and self.device.type == "cpu":
            # the transformer blocks only: the (tied) output layer stays fp32
            model.model.layers = torch.ao.quantization.quantize_dynamic(
                model.model.layers, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
            )
        self.dtype = resolve_dtype(self.cfg.dtype, self.device.type)
        self._head_w: torch.Tensor | None = None
        if self.dtype != torch.float32 and not self.cfg.quantize:
            if self.cfg.head_fp32:
                w = head_weight if head_weight is not None else model.lm_head.weight.detach()
                self._head_w = w.to(self.device, torch.float32)  # held apart from the cast below
            model = model.to(self.dtype)
        self.model = model
        self.max_batch_tokens = self.cfg.max_batch_tokens or (1024 if self.dtype == torch.float32 else 2048)
        self.n_forward_tokens = 0  # tokens through the LM (for benchmarks)
        self._bases: dict[tuple[int, ...], _Base] = {}

    def clear(self) -> None:
        """Forget the cached base passes (the judge calls this after each chunk)."""
        self._bases.clear()

    # ------------------------------------------------------------------ tokens
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        ids = self.tok(list(texts), add_special_tokens=False)["input_ids"]
        return [[self.start_id, *x] for x in ids]

    # the fp32 output layer, in blocks of at most this many rows and vocabulary entries
    HEAD_ROWS, HEAD_VOCAB = 2048, 512

    def _head_lp(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) for each row of final hidden states. The logits of a whole batch
        (thousands of rows x the vocabulary) would be gigabytes, so they are never held.

        In fp32: ``logit(target) - logsumexp(logits)``, the log-sum-exp gathered over blocks of
        ``HEAD_VOCAB`` vocabulary entries for up to ``HEAD_ROWS`` rows at once (4 MB of logits).
        Each block of the weight (1.2 MB) stays in the cache for all the rows; 42 rows at a
        time (under the mmap threshold) streamed the whole weight (113 MB) from memory for every
        42 rows: 1,558 rows took
        1.50 s against 0.56 s (the same log-probabilities to 4e-6 nats; AVX2 CPU, 2 threads).

        In a lower precision (bf16): a few rows at a time, under the heap's mmap threshold
        (``bound_heap``), with the softmax fused (cross-entropy) in bf16: its logits are never
        copied to fp32, which made the output layer 1.9x as fast (8,500 against 4,500 rows/s)
        and moved a token's log-probability by 0.009 nats on average, 0.05 at most (40 valid
        sentences). The blocks above were not measured in bf16."""
        w = self._head_w if self._head_w is not None else self.model.lm_head.weight
        if w.dtype == torch.float32 and hidden.dtype == torch.float32:
            return self._head_lp_blocks(hidden, targets, w)
        rows = max(1, min(64, _MMAP_THRESHOLD // (w.shape[0] * w.element_size())))
        out = []
        for i in range(0, hidden.shape[0], rows):
            h = hidden[i : i + rows]
            logits = h.float() @ w.T if self._head_w is not None else self.model.lm_head(h)
            out.append(-F.cross_entropy(logits, targets[i : i + rows], reduction="none").float())
        return torch.cat(out) if out else hidden.new_zeros(0, dtype=torch.float32)

    def _head_lp_blocks(self, hidden: torch.Tensor, targets: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n = hidden.shape[0]
        lse = hidden.new_full((n,), float("-inf"))
        for v in range(0, w.shape[0], self.HEAD_VOCAB):
            wb = w[v : v + self.HEAD_VOCAB]
            for r in range(0, n, self.HEAD_ROWS):
                part = lse[r : r + self.HEAD_ROWS]
                torch.logaddexp(part, torch.logsumexp(hidden[r : r + self.HEAD_ROWS] @ wb.T, -1), out=part)
        return (hidden * w[targets]).sum(-1) - lse

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if self._head_w is not None:
            return hidden.float() @ self._head_w.T
        return self.model.lm_head(hidden).float()

    # ------------------------------------------------------------------ naive
    @torch.inference_mode()
    def token_logprobs(self, seqs: Sequence[list[int]]) -> list[torch.Tensor]:
        """Log-probability of every token after the first, for whole sequences (model forward)."""
        out: list[torch.Tensor] = [torch.empty(0)] * len(seqs)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        i = 0
        while i < len(order):
            j = i + 1
            while j < len(order) and (j - i + 1) * len(seqs[order[j]]) <= self.max_batch_tokens:
                j += 1
            batch = [seqs[k] for k in order[i:j]]
            width = max(len(s) for s in batch)
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.long)
            for r, s in enumerate(batch):
                ids[r, : len(s)] = torch.tensor(s)
                mask[r, : len(s)] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            hidden = self.model.model(input_ids=ids, attention_mask=mask).last_hidden_state
            self.n_forward_tokens += int(mask.sum())
            h = hidden[:, :-1]
            lp = self._head_lp(h.reshape(-1, h.shape[-1]), ids[:, 1:].reshape(-1)).view(h.shape[0], -1)
            for r, k in enumerate(order[i:j]):
                out[k] = lp[r, : len(seqs[k]) - 1].cpu()
            i = j
        return out

    def sentence_scores(self, texts: Sequence[str]) -> list[float]:
        """Total log-probability (nats) of each text, opened by the document-start token."""
        return [float(x.sum()) for x in self.token_logprobs(self.encode(texts))]

    def gains_naive(self, bases: Sequence[str], variants: Sequence[Sequence[str]],
                    window: int | None = None) -> list[list[float]]:  # fmt: skip
        """``logp(variant) - logp(base)`` over the scored tokens, each sequence in full."""
        base_ids = self.encode(bases)
        var_ids = self.encode([v for vs in variants for v in vs])
        lps = self.token_logprobs(base_ids + var_ids)
        out: list[list[float]] = []
        k = 0
        for i, vs in enumerate(variants):
            row = []
            for _ in vs:
                b, eb, ev = _spans(base_ids[i], var_ids[k], window)
                row.append(float(lps[len(bases) + k][b - 1 : ev - 1].sum() - lps[i][b - 1 : eb - 1].sum()))
                k += 1
            out.append(row)
        return out

    # ------------------------------------------------------------------ fast
    def _ensure_bases(self, base_ids: list[list[int]]) -> list[_Base]:
        todo = list(dict.fromkeys(tuple(b) for b in base_ids if tuple(b) not in self._bases))
        todo.sort(key=len)
        # a base that shares a prefix with one already passed (the judge's re-check: the sentence
        # with its accepted edits) computes only its tokens from where they part
        fresh: list[tuple[int, ...]] = []
        grown: list[tuple[tuple[int, ...], _Base, int]] = []
        for t in todo:
            parent, p = self._parent(t)
            if parent is None:
                fresh.append(t)
            else:
                grown.append((t, parent, p))
        for group in self._batches(fresh, len):
            for key, st in zip(group, self._base_pass([list(t) for t in group]), strict=True):
                self._bases[key] = st
        for group in self._batches(grown, lambda x: len(x[0])):
            for (key, _, _), st in zip(group, self._extend_pass(group), strict=True):
                self._bases[key] = st
        return [self._bases[tuple(b)] for b in base_ids]

    def _batches(self, items: list[Any], size: Any) -> list[list[Any]]:
        """``items`` (shortest first) in groups of at most ``max_batch_tokens`` padded tokens."""
        out, i = [], 0
        while i < len(items):
            j = i + 1
            while j < len(items) and (j - i + 1) * size(items[j]) <= self.max_batch_tokens:
                j += 1
            out.append(items[i:j])
            i = j
        return out

    def _parent(self, ids: tuple[int, ...]) -> tuple[_Base | None, int]:
        """The cached base sharing the longest prefix with ``ids`` (at least ``MIN_SHARED``
        tokens besides the start token), and where they part; or ``(None, 0)``."""
        best, at, seq = None, 0, list(ids)
        for st in self._bases.values():
            b = _branch(st.ids, seq)
            if b > at:
                best, at = st, b
        if best is None or at <= self.MIN_SHARED or at >= len(ids):
            return None, 0
        return best, at

    @torch.inference_mode()
    def _extend_pass(self, items: list[tuple[tuple[int, ...], _Base, int]]) -> list[_Base]:
        """Bases that share their first ``p`` tokens with a cached base: their tokens from ``p``
        on, against that base's keys and values (the same as a full pass, to rounding)."""
        dev = self.device
        B = len(items)
        P = max(p for _, _, p in items)
        W = max(len(t) - p for t, _, p in items)
        ids = torch.zeros(B, W, dtype=torch.long)
        pos = torch.zeros(B, W, dtype=torch.long)
        mask = torch.zeros(B, 1, W, P + W, dtype=torch.bool)
        valid = torch.zeros(B, W, dtype=torch.bool)
        for r, (t, _, p) in enumerate(items):
            m = len(t) - p
            ids[r, :m] = torch.tensor(t[p:])
            pos[r, :m] = torch.arange(p, len(t))
            mask[r, 0, :m, :p] = True
            mask[r, 0, :m, P : P + m] = torch.tril(torch.ones(m, m, dtype=torch.bool))
            mask[r, 0, m:, 0] = True  # padding rows see something (their output is unused)
            valid[r, :m] = True
        past = _padded_past([st for _, st, _ in items], [p for _, _, p in items], P)
        hidden, kv = self._forward(ids.to(dev), pos.to(dev), mask.to(dev), past, valid.to(dev))
        self.n_forward_tokens += int(valid.sum())
        # log p of the tokens from p on: the first from the parent's last shared state
        rows = torch.cat([torch.cat([st.hidden[p - 1 : p], hidden[r, : len(t) - p - 1]]) for r, (t, st, p) in enumerate(items)])
        tgt = torch.tensor([x for t, _, p in items for x in t[p:]], device=dev)
        lps = self._head_lp(rows, tgt).split([len(t) - p for t, _, p in items])
        out = []
        for r, (t, st, p) in enumerate(items):
            m = len(t) - p
            out.append(_Base(list(t), torch.cat([st.hidden[:p], hidden[r, :m]]),
                             [(torch.cat([st.kv[li][0][:, :p], k[r, :, :m]], 1),
                               torch.cat([st.kv[li][1][:, :p], v[r, :, :m]], 1)) for li, (k, v) in enumerate(kv)],
                             torch.cat([st.lp[: p - 1], lps[r]])))  # fmt: skip
        return out

    @torch.inference_mode()
    def _base_pass(self, bases: list[list[int]]) -> list[_Base]:
        dev = self.device
        B, T = len(bases), max(len(b) for b in bases)
        ids = torch.zeros(B, T, dtype=torch.long)
        mask = torch.zeros(B, 1, T, T, dtype=torch.bool)
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        for r, b in enumerate(bases):
            ids[r, : len(b)] = torch.tensor(b)
            mask[r, 0, : len(b), : len(b)] = causal[: len(b), : len(b)]
            mask[r, 0, len(b) :, 0] = True  # padding rows see something (their output is unused)
        pos = torch.arange(T).expand(B, T)
        valid = torch.arange(T)[None, :] < torch.tensor([len(b) for b in bases])[:, None]
        hidden, kv = self._forward(ids.to(dev), pos.to(dev), mask.to(dev), None, valid.to(dev))
        self.n_forward_tokens += sum(len(b) for b in bases)
        rows = torch.cat([hidden[r, : len(b) - 1] for r, b in enumerate(bases)])
        tgt = torch.tensor([t for b in bases for t in b[1:]], device=dev)
        lps = self._head_lp(rows, tgt).split([len(b) - 1 for b in bases])
        return [
            _Base(b, hidden[r, : len(b)], [(k[r, :, : len(b)], v[r, :, : len(b)]) for k, v in kv], lps[r])
            for r, b in enumerate(bases)
        ]

    def first_gains(self, bases: Sequence[str], variants: Sequence[Sequence[str]]) -> list[list[float]]:
        """For each variant, the log-probability gain of its first changed token alone: free
        from the base pass, and exact for that token."""
        base_ids = self.encode(bases)
        states = self._ensure_bases(base_ids) if self.lean else None
        flat = self.encode([v for vs in variants for v in vs])
        out: list[list[float]] = []
        k = 0
        with torch.inference_mode():
            for i, vs in enumerate(variants):
                base = base_ids[i]
                vids = flat[k : k + len(vs)]
                k += len(vs)
                branches = [_branch(base, v) for v in vids]
                # only the positions where some variant branches off
                at = sorted({b - 1 for b, v in zip(branches, vids, strict=True) if b < len(v)})
                if states is None:
                    lp_rows = self._naive_rows(base)[at] if at else None
                elif at:
                    logits = self._logits(states[i].hidden[at])
                    lp_rows = logits - torch.logsumexp(logits, -1, keepdim=True)
                where = {p: j for j, p in enumerate(at)}
                row = []
                for b, v in zip(branches, vids, strict=True):
                    if b >= len(v) or lp_rows is None:
                        row.append(0.0)
                        continue
                    lp = lp_rows[where[b - 1]]
                    old = float(lp[base[b]]) if b < len(base) else 0.0
                    row.append(float(lp[v[b]]) - old)
                out.append(row)
        return out

    def _naive_rows(self, base: list[int]) -> torch.Tensor:
        hidden = self.model.model(input_ids=torch.tensor([base], device=self.device)).last_hidden_state
        logits = self._logits(hidden[0, :-1])
        self.n_forward_tokens += len(base)
        return logits - torch.logsumexp(logits, -1, keepdim=True)

    def gains(self, bases: Sequence[str], variants: Sequence[Sequence[str]],
              window: int | None = None) -> list[list[float]]:  # fmt: skip
        """The same gains as ``gains_naive``, each variant computing only its own tokens from
        its branch point on, against the base's cached keys and values."""
        if not self.lean:
            return self.gains_naive(bases, variants, window)
        base_ids = self.encode(bases)
        states = self._ensure_bases(base_ids)
        flat = self.encode([v for vs in variants for v in vs])
        var_ids: list[list[list[int]]] = []
        k = 0
        for vs in variants:
            var_ids.append(flat[k : k + len(vs)])
            k += len(vs)
        out: list[list[float]] = [[] for _ in bases]
        # rows: a sentence's variants packed up to ``max_row_tokens`` suffix tokens each (the
        # attention of a packed row grows with the square of its width)
        rows: list[tuple[int, list[int], int]] = []  # (sentence, variant indices, tokens)
        for i in sorted(range(len(bases)), key=lambda i: len(base_ids[i])):
            cur: list[int] = []
            width = 0
            for j, v in enumerate(var_ids[i]):
                b, _eb, ev = _spans(base_ids[i], v, window)
                m = max(1, ev - b)
                if cur and width + m > self.cfg.max_row_tokens:
                    rows.append((i, cur, width))
                    cur, width = [], 0
                cur.append(j)
                width += m
            if cur:
                rows.append((i, cur, width))
        for i in range(len(bases)):
            out[i] = [0.0] * len(var_ids[i])
        k = 0
        while k < len(rows):
            j, load = k, 0
            while j < len(rows):
                cost = len(base_ids[rows[j][0]]) + rows[j][2]
                if j > k and load + cost > self.max_batch_tokens:
                    break
                load += cost
                j += 1
            batch = rows[k:j]
            res = self._variants_pass([states[i] for i, _, _ in batch],
                                      [[var_ids[i][x] for x in idx] for i, idx, _ in batch], window)  # fmt: skip
            for (i, idx, _), g in zip(batch, res, strict=True):
                for x, val in zip(idx, g, strict=True):
                    out[i][x] = val
            k = j
        return out

    @torch.inference_mode()
    def _variants_pass(self, states: list[_Base], variants: list[list[list[int]]],
                       window: int | None) -> list[list[float]]:  # fmt: skip
        dev = self.device
        B = len(states)
        T = max(len(s.ids) for s in states)
        segs: list[list[tuple[int, int, int, int, int]]] = []  # (variant, b, end_base, end_var, offset)
        width = 1
        for st, vs in zip(states, variants, strict=True):
            off, row = 0, []
            for j, v in enumerate(vs):
                b, eb, ev = _spans(st.ids, v, window)
                row.append((j, b, eb, ev, off))
                off += max(0, ev - b - 1)  # the first scored token comes from the base's state
            segs.append(row)
            width = max(width, off)
        nids = torch.zeros(B, width, dtype=torch.long)
        npos = torch.zeros(B, width, dtype=torch.long)
        nmask = torch.zeros(B, 1, width, T + width, dtype=torch.bool)
        past = _padded_past(states, [len(st.ids) for st in states], T)
        n_new = 0
        valid = torch.zeros(B, width, dtype=torch.bool)
        for r, vs in enumerate(variants):
            used = 0
            for j, b, _eb, ev, off in segs[r]:
                m = ev - b - 1  # tokens fed: v[b : ev - 1] predict v[b + 1 : ev]
                if m <= 0:
                    continue
                nids[r, off : off + m] = torch.tensor(vs[j][b : ev - 1])
                npos[r, off : off + m] = torch.arange(b, ev - 1)
                nmask[r, 0, off : off + m, :b] = True
                nmask[r, 0, off : off + m, T + off : T + off + m] = torch.tril(torch.ones(m, m, dtype=torch.bool))
                used = off + m
            nmask[r, 0, used:, 0] = True
            valid[r, :used] = True
            n_new += used
        h2 = None
        if n_new:
            h2, _ = self._forward(nids.to(dev), npos.to(dev), nmask.to(dev), past, valid.to(dev), keep_kv=False)
            self.n_forward_tokens += n_new
        # every scored variant token in one head pass
        hs, tg, owner = [], [], []
        for r, (st, vs) in enumerate(zip(states, variants, strict=True)):
            for j, b, _eb, ev, off in segs[r]:
                if ev <= b:
                    continue
                hs.append(st.hidden[b - 1 : b])
                if ev - b - 1 > 0 and h2 is not None:
                    hs.append(h2[r, off : off + ev - b - 1])
                tg.extend(vs[j][b:ev])
                owner.extend([(r, j)] * (ev - b))
        sums: dict[tuple[int, int], float] = {}
        if hs:
            lp = self._head_lp(torch.cat(hs), torch.tensor(tg, device=dev)).tolist()
            for key, x in zip(owner, lp, strict=True):
                sums[key] = sums.get(key, 0.0) + x
        out: list[list[float]] = []
        for r, st in enumerate(states):
            row = [0.0] * len(variants[r])
            for j, b, eb, _ev, _off in segs[r]:
                row[j] = sums.get((r, j), 0.0) - float(st.lp[b - 1 : eb - 1].sum())
            out.append(row)
        return out

    def _forward(self, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor,
                 past: list[tuple[torch.Tensor, torch.Tensor]] | None,
                 valid: torch.Tensor | None = None, keep_kv: bool = True) -> tuple[torch.Tensor, list]:  # fmt: skip
        """Lean Llama forward: final-normed hidden states and each layer's keys and values
        (none with ``keep_kv`` off: a variant pass needs only its hidden states, and its keys
        and values of every layer are a packed batch's worth, tens of MB).

        ``valid`` [B, T] marks the real tokens of the padded rows: the linear layers, which are
        most of the cost, run on those alone (the judge's rows are ragged: a third of a padded
        batch was padding), and only attention sees the padded layout. Padding positions of
        the hidden states come back as zeros."""
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        core = self.model.model
        B, T = ids.shape
        flat = None if valid is None or bool(valid.all()) else valid.reshape(-1).nonzero().squeeze(1)
        N = B * T if flat is None else int(flat.numel())

        def pick(t: torch.Tensor) -> torch.Tensor:  # [B * T, ...] -> [N, ...]
            return t if flat is None else t.index_select(0, flat)

        def pad(t: torch.Tensor) -> torch.Tensor:  # [N, C] -> [B, T, C]
            if flat is None:
                return t.view(B, T, -1)
            return t.new_zeros(B * T, t.shape[-1]).index_copy_(0, flat, t).view(B, T, -1)

        x = core.embed_tokens(pick(ids.reshape(-1)))  # [N, D]
        cos, sin = core.rotary_emb(x[None], pick(pos.reshape(-1))[None])
        kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        for li, layer in enumerate(core.layers):
            att = layer.self_attn
            hd = att.head_dim
            h = layer.input_layernorm(x)
            q = att.q_proj(h).view(1, N, -1, hd).transpose(1, 2)
            k = att.k_proj(h).view(1, N, -1, hd).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            q = pad(q.transpose(1, 2).reshape(N, -1)).view(B, T, -1, hd).transpose(1, 2)
            k = pad(k.transpose(1, 2).reshape(N, -1)).view(B, T, -1, hd).transpose(1, 2)
            v = pad(att.v_proj(h)).view(B, T, -1, hd).transpose(1, 2)
            if keep_kv:
                kv.append((k, v))
            if past is not None:
                k = torch.cat([past[li][0], k], dim=2)
                v = torch.cat([past[li][1], v], dim=2)
            rep = q.shape[1] // k.shape[1]
            if rep > 1:
                k = k.repeat_interleave(rep, dim=1)
                v = v.repeat_interleave(rep, dim=1)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=att.scaling)
            x = x + att.o_proj(pick(a.transpose(1, 2).reshape(B * T, -1)))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return pad(core.norm(x)), kv
