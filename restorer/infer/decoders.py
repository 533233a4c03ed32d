"""The decoders: restore sentences with a seq2seq model and keep what the guard needs.

Every decoder is a :class:`Decoder`: greedy decoding of a list of texts, batched by length
(:func:`restorer.infer.decoded.length_batches`), one :class:`~restorer.infer.decoded.Decoded`
per text in input order. They are

* :func:`greedy_decode`, the reference: plain greedy ``model.generate``;
* :func:`speculative_decode`, copy-speculative greedy decoding on :mod:`restorer.infer.lean`;
* :func:`restorer.infer.ct2.ct2_decode`, greedy decoding with CTranslate2 (its ``model`` is a
  translator).

Faster decoders must produce identical texts. :func:`greedy_restore` is the reference decoder
without the scores: the texts alone (training's evaluation).

``Restorer`` decodes through a :class:`Backend`, a model together with the decoder that runs it:
:class:`TorchBackend` (a transformers T5 with one of :data:`DECODERS`) or
:class:`restorer.infer.ct2.CT2Backend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from restorer.infer.decoded import Decoded, finish, length_batches, padded


class Decoder(Protocol):
    """Greedy decoding of ``texts`` with ``model``, batched by length (``batch_size`` texts at
    most, ``max_new_tokens`` at most per text); with ``with_scores``, each token's probability
    and character span too. One result per text, in input order."""

    def __call__(
        self,
        model: Any,
        tokenizer: Any,
        texts: Sequence[str],
        batch_size: int = ...,
        max_new_tokens: int = ...,
        with_scores: bool = ...,
        /,
    ) -> list[Decoded]: ...


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
    (:func:`restorer.infer.drafting.draft`); the model's greedy choice at every drafted position comes out of that one
    pass, the longest prefix of the draft that matches is accepted together with the model's
    own next token, and each row keeps exactly its accepted positions in the KV cache. Tokens
    are only ever the model's argmax, so the output is greedy decoding's (up to floating-point
    near-ties). Batching, length caps and the end of sequences are those of
    :func:`greedy_decode`. The passes run on :class:`restorer.infer.lean.LeanT5`; ``stats`` (if
    given) gets the number of decoder ``passes`` and ``positions`` computed added to it.
    ``workers`` > 1 decodes that many batches at once on the CPU, each on one thread.
    """
    from restorer.infer.lean import LeanT5

    runtime = LeanT5(model)
    out = runtime.decode(tokenizer, texts, batch_size, max_new_tokens, with_scores, draft_len, workers=workers)
    if stats is not None:
        stats["passes"] = stats.get("passes", 0) + runtime.passes
        stats["positions"] = stats.get("positions", 0) + runtime.positions
    return out


def greedy_restore(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 64,
    max_new_tokens: int = 128,
) -> list[str]:
    """Greedy ``model.generate`` over ``texts``, batched by length; outputs in input order."""
    return [d.text for d in greedy_decode(model, tokenizer, texts, batch_size, max_new_tokens, with_scores=False)]


DECODERS: dict[str, Decoder] = {"speculative": speculative_decode, "greedy": greedy_decode}
"""The torch decoders by name; both give greedy decoding's output, the speculative one in fewer passes."""


class Backend(Protocol):
    """A seq2seq model and the decoder that runs it: what ``Restorer`` decodes sentences with."""

    @property
    def name(self) -> str:
        """``torch`` or ``ctranslate2``: ``Restorer.backend``."""
        ...

    def decode(self, texts: Sequence[str], batch_size: int, max_new_tokens: int) -> list[Decoded]:
        """Greedy decoding of ``texts`` with token probabilities, one result per text in input order."""
        ...


class TorchBackend:
    """A transformers T5 on torch, decoded with ``DECODERS[decoder]``."""

    name = "torch"

    def __init__(self, model: Any, tokenizer: Any, decoder: str = "speculative", device: str = "cpu") -> None:
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; use {' or '.join(DECODERS)}")
        self.model = model
        self.tokenizer = tokenizer
        self.decoder = decoder
        self.device = device

    def decode(self, texts: Sequence[str], batch_size: int, max_new_tokens: int) -> list[Decoded]:
        options: dict[str, Any] = {}
        if self.decoder == "speculative" and self.device == "cpu":
            import torch

            # one batch per core at a time, each on one thread (benchmarks/bench_inference.py)
            options["workers"] = torch.get_num_threads()
        return DECODERS[self.decoder](self.model, self.tokenizer, texts, batch_size, max_new_tokens, **options)
