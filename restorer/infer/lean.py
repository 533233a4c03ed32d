"""A lean T5 decoding runtime for copy-speculative greedy decoding.

``transformers``' T5 forward pass is general: a cache object that grows by concatenation,
masks and position biases rebuilt in every layer, one layout for every row of the batch.
Copy-speculative decoding (:func:`restorer.infer.decoders.speculative_decode`) needs
something narrower: every row of a batch feeds its own number of drafted tokens, keeps its own
number of them, and the rows that are done leave the batch. This module runs the decoder stack of a
``T5ForConditionalGeneration`` (its own modules and weights, so a dynamically quantized int8
model works the same way) with

- a preallocated self-attention cache per layer, written in place at each row's own offset:
  rejected draft positions are simply overwritten by the next pass, no copying or re-aligning;
- the relative position bias looked up once per pass from a per-distance table and shared by
  the layers, the cross-attention keys and values computed once per batch;
- finished rows dropped from every tensor once an eighth of the batch is done;
- probabilities only for the tokens that are kept.

It computes what ``T5ForConditionalGeneration`` computes, in the same order, so its argmax
is greedy decoding's (tests compare the two on the tiny and on the shipped model). In fp16 or
bf16, ``transformers``' default SDPA attention kernel rounds differently, so near-ties can
go the other way there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from restorer.infer.decoded import Decoded, finish, length_batches, padded
from restorer.infer.drafting import draft

Drafter = Callable[[list[int], list[int], int, int], tuple[list[int], int]]
_THREADS_LOCK = threading.Lock()  # held while ``workers`` > 1 has set torch to one thread


class LeanT5:
    """Greedy copy-speculative decoding over the modules of a T5 model (fp32, fp16 or int8)."""

    def __init__(self, model: Any) -> None:
        import torch

        cfg = model.config
        self.model = model
        self.heads, self.d_kv = cfg.num_heads, cfg.d_kv
        self.encoder = model.get_encoder()
        decoder = model.get_decoder()
        self.embed = decoder.embed_tokens
        self.blocks = list(decoder.block)
        self.final_norm = decoder.final_layer_norm
        self.lm_head = model.lm_head
        scale = getattr(cfg, "scale_decoder_outputs", cfg.tie_word_embeddings)
        self.out_scale = cfg.d_model**-0.5 if scale else 1.0
        self.start = cfg.decoder_start_token_id
        sa = self.blocks[0].layer[0].SelfAttention
        self._bucket = sa._relative_position_bucket
        self._bias_emb = sa.relative_attention_bias
        self._buckets, self._max_distance = cfg.relative_attention_num_buckets, cfg.relative_attention_max_distance
        self._table: Any = None  # bias by distance, (heads, n)
        self.device = next(p for p in model.parameters()).device
        self.dtype = self.embed.weight.dtype
        self.neg = torch.finfo(self.dtype).min
        self._lock = threading.Lock()
        self.passes = 0  # decoder passes run
        self.positions = 0  # decoder positions computed (rows x width, summed over passes)

    def _bias_table(self, n: int) -> Any:
        """Self-attention bias for query-to-key distances ``0..n-1``: (heads, n)."""
        import torch

        table = self._table  # read once: another thread may widen it meanwhile
        if table is None or table.shape[1] < n:
            distance = torch.arange(max(n, 256), device=self.device)
            bucket = self._bucket(-distance, bidirectional=False, num_buckets=self._buckets, max_distance=self._max_distance)
            table = self._table = self._bias_emb(bucket).T.contiguous()
        return table

    def _clamp(self, x: Any) -> Any:
        """fp16 only: keep activations finite, as ``transformers``' T5 layers do."""
        import torch

        if self.dtype == torch.float16 and torch.isinf(x).any():
            big = torch.finfo(self.dtype).max - 1000
            x = x.clamp(min=-big, max=big)
        return x

    def _split(self, x: Any, rows: int) -> Any:
        return x.view(rows, -1, self.heads, self.d_kv).transpose(1, 2)

    def _unpack(self, t: Any, real: Any, rows: int, width: int) -> Any:
        """Packed ``(n, d)`` to per row ``(rows, heads, width, d_kv)``, zeros where nothing is fed."""
        full = t.new_zeros((rows * width, t.shape[-1])).index_copy_(0, real, t)
        return self._split(full, rows)

    def _attend(self, q: Any, k: Any, v: Any, bias: Any) -> Any:
        import torch

        scores = torch.matmul(q, k.transpose(2, 3)) + bias
        weights = torch.softmax(scores.float(), dim=-1).type_as(scores)
        out = torch.matmul(weights, v)
        return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)

    def decode_batch(
        self, src: list[list[int]], cap: int, eos: int, pad: int, draft_len: int, with_scores: bool, drafter: Drafter
    ) -> list[tuple[list[int], list[float]]]:
        """Greedy-decode one batch of token-id rows; returns ``(tokens, probs)`` per row."""
        import torch

        n = len(src)
        if cap <= 0:  # no new tokens allowed
            return [([], []) for _ in range(n)]
        ids, mask = padded(src, pad, self.device)
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        cross = []
        for block in self.blocks:
            att = block.layer[1].EncDecAttention
            cross.append((self._split(att.k(hidden), n), self._split(att.v(hidden), n)))
        enc_bias = (1 - mask[:, None, None, :].to(self.dtype)) * self.neg  # 0 or the dtype's minimum
        width_cap = cap + draft_len + 2  # a finished row riding along still writes a full width
        shape = (n, self.heads, width_cap, self.d_kv)
        cache = [(hidden.new_zeros(shape), hidden.new_zeros(shape)) for _ in self.blocks]
        table = self._bias_table(width_cap)
        fed = torch.zeros(n, dtype=torch.long, device=self.device)  # valid cache positions per row
        outs: list[list[int]] = [[] for _ in range(n)]
        probs: list[list[float]] = [[] for _ in range(n)]
        ptrs = [0] * n
        rows = list(range(n))  # batch row of each tensor row
        done: list[bool] = [False] * n
        passes = positions = 0
        while rows:
            drafts: list[list[int]] = []
            for r in rows:
                if done[r]:  # a finished row riding along until the batch is compacted
                    drafts.append([])
                    continue
                room = cap - len(outs[r]) - 1  # the model's own token takes the last slot
                d, ptrs[r] = drafter(src[r], outs[r], ptrs[r], min(draft_len, room))
                drafts.append(d)
            width = 1 + max(len(d) for d in drafts)
            a = len(rows)
            # Only the fed tokens of unfinished rows are computed ("packed", n of them); the
            # attention lays them out per row (a, width), padding included.
            dec = torch.full((a, width), pad, dtype=torch.long)
            flat: list[int] = []
            starts: list[int] = []  # each row's first token in the packed order
            for k, r in enumerate(rows):
                starts.append(len(flat))
                if not done[r]:
                    dec[k, : 1 + len(drafts[k])] = torch.tensor([outs[r][-1] if outs[r] else self.start, *drafts[k]])
                    flat.extend(range(k * width, k * width + 1 + len(drafts[k])))
            real = torch.tensor(flat, device=self.device)
            passes += 1
            positions += len(flat)
            pos = fed[:, None] + torch.arange(width, device=self.device)  # (a, width)
            span = int(pos.max()) + 1
            dist = pos[:, :, None] - torch.arange(span, device=self.device)  # query minus key
            bias = table[:, dist.clamp(min=0)].permute(1, 0, 2, 3)  # (a, heads, width, span)
            bias = bias.masked_fill((dist < 0)[:, None], self.neg)
            where = pos[:, None, :, None].expand(a, self.heads, width, self.d_kv)

            x = self.embed(dec.view(-1).to(self.device)[real])
            for block, (ck, cv), (sk, sv) in zip(self.blocks, cross, cache, strict=True):
                sa_layer, ca_layer, ff_layer = block.layer[0], block.layer[1], block.layer[-1]
                sa = sa_layer.SelfAttention
                h = sa_layer.layer_norm(x)
                sk.scatter_(2, where, self._unpack(sa.k(h), real, a, width))
                sv.scatter_(2, where, self._unpack(sa.v(h), real, a, width))
                att = self._attend(self._unpack(sa.q(h), real, a, width), sk[:, :, :span], sv[:, :, :span], bias)
                x = self._clamp(x + sa.o(att.reshape(a * width, -1)[real]))
                ca = ca_layer.EncDecAttention
                h = ca_layer.layer_norm(x)
                att = self._attend(self._unpack(ca.q(h), real, a, width), ck, cv, enc_bias)
                x = self._clamp(x + ca.o(att.reshape(a * width, -1)[real]))
                x = self._clamp(x + ff_layer.DenseReluDense(ff_layer.layer_norm(x)))
            x = self.final_norm(x)
            if self.out_scale != 1.0:
                x = x * self.out_scale
            logits = self.lm_head(x)  # (n, vocab)
            best = logits.argmax(-1)
            best_l = best.tolist()
            keep: list[int] = []
            accepted_n: list[int] = []
            emitted: list[tuple[int, int]] = []  # (packed index, row) of kept tokens
            for k, r in enumerate(rows):
                if done[r]:
                    accepted_n.append(0)  # feeds the same position again, never read
                    continue
                d = drafts[k]
                accepted = 0
                for j in range(len(d) + 1):
                    t = best_l[starts[k] + j]
                    outs[r].append(t)
                    emitted.append((starts[k] + j, r))
                    if t == eos or len(outs[r]) >= cap:
                        done[r] = True
                        break
                    if j == len(d) or t != d[j]:
                        break
                    accepted += 1
                ptrs[r] += accepted
                accepted_n.append(1 + accepted)
                if not done[r]:
                    keep.append(k)
            if with_scores and emitted:
                at = torch.tensor([e[0] for e in emitted], device=self.device)
                chosen = logits[at].float()
                lp = chosen.gather(1, best[at][:, None]).squeeze(1) - torch.logsumexp(chosen, dim=-1)
                for (_, r), p in zip(emitted, lp.exp().tolist(), strict=True):
                    probs[r].append(p)
            fed = fed + torch.tensor(accepted_n, device=self.device)
            if not keep:
                break
            if len(rows) - len(keep) >= max(1, len(rows) // 8):  # drop the finished rows (else they ride along)
                sel = torch.tensor(keep, device=self.device)
                cache = [(sk.index_select(0, sel), sv.index_select(0, sel)) for sk, sv in cache]
                cross = [(ck.index_select(0, sel), cv.index_select(0, sel)) for ck, cv in cross]
                enc_bias = enc_bias.index_select(0, sel)
                fed = fed.index_select(0, sel)
                rows = [rows[k] for k in keep]
        with self._lock:
            self.passes += passes
            self.positions += positions
        return [(outs[r], probs[r]) for r in range(n)]

    def decode(
        self,
        tokenizer: Any,
        texts: Sequence[str],
        batch_size: int = 32,
        max_new_tokens: int = 128,
        with_scores: bool = True,
        draft_len: int = 6,
        drafter: Drafter = draft,
        workers: int = 1,
    ) -> list[Decoded]:
        """Greedy decoding of ``texts``, batched like :func:`restorer.infer.decoders.greedy_decode`;
        ``workers`` > 1 decodes that many batches at once on the CPU."""
        import torch

        results: list[Decoded | None] = [None] * len(texts)

        def run(batch: tuple[list[int], list[list[int]], int]) -> None:
            idx, src, cap = batch
            with torch.inference_mode():  # thread-local: entered in the thread that decodes
                got = self.decode_batch(
                    src, cap, tokenizer.eos_token_id, tokenizer.pad_token_id, draft_len, with_scores, drafter
                )
            for i, (toks, ps) in zip(idx, got, strict=True):
                results[i] = finish(tokenizer, toks, ps if with_scores else None)

        batches = length_batches(tokenizer, texts, batch_size, max_new_tokens)
        if workers > 1 and self.device.type == "cpu":
            # Data-parallel on the CPU: each thread decodes whole batches with one-thread
            # kernels (which release the GIL), rather than every small matrix product being
            # split over the cores.
            from concurrent.futures import ThreadPoolExecutor

            # torch's thread count is process-wide: concurrent callers take turns
            with _THREADS_LOCK:
                before = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    with ThreadPoolExecutor(workers) as pool:
                        for _ in pool.map(run, batches):
                            pass
                finally:
                    torch.set_num_threads(before)
        else:
            for batch in batches:
                run(batch)
        return [d for d in results if d is not None]
