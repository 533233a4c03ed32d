"""Length-bucketed, dynamically padded batches of token ids from an example stream."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from restorer.data.stream import ExampleStream


@dataclass
class BatcherState:
    pool: int = 0
    batch: int = 0  # batches of the current pool already yielded


class BucketBatcher:
    """Length-bucketed, dynamically padded batches from a ``PairStream`` (or any ``ExampleStream``).

    A pool of ``pool_batches * batch_size`` examples is tokenized, sorted by length and cut
    into batches whose order is then shuffled: little padding, no length bias over time.
    """

    def __init__(
        self,
        stream: ExampleStream,
        tokenizer: Any,
        batch_size: int,
        pool_batches: int = 50,
        max_tokens: int = 64,
        seed: int = 0,
        state: BatcherState | None = None,
    ) -> None:
        self.stream = stream
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.pool_batches = pool_batches
        self.max_tokens = max_tokens
        self.seed = seed
        self.state = state or BatcherState()
        self.pad_id = tokenizer.pad_token_id

    def _pool(self, p: int) -> list[list[tuple[list[int], list[int]]]]:
        size = self.batch_size * self.pool_batches
        start = p * size
        pairs = [self.stream.example(k) for k in range(start, start + size)]
        src = self.tokenizer([s for s, _ in pairs], add_special_tokens=True)["input_ids"]
        tgt = self.tokenizer([t for _, t in pairs], add_special_tokens=True)["input_ids"]
        items = [
            (a, b)
            for a, b in zip(src, tgt, strict=True)
            if len(a) <= self.max_tokens and len(b) <= self.max_tokens
        ]
        items.sort(key=lambda ab: (len(ab[0]) + len(ab[1]), len(ab[0])))
        batches = [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        random.Random(f"batches:{self.seed}:{p}").shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            batches = self._pool(self.state.pool)
            for b in range(self.state.batch, len(batches)):
                self.state.batch = b + 1
                yield collate(batches[b], self.pad_id)
            self.state = BatcherState(self.state.pool + 1, 0)


def collate(batch: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Pad to the longest sequence of the batch; labels are padded with -100 (ignored)."""
    import torch

    n = len(batch)
    ls = max(len(a) for a, _ in batch)
    lt = max(len(b) for _, b in batch)
    input_ids = torch.full((n, ls), pad_id, dtype=torch.long)
    attention = torch.zeros((n, ls), dtype=torch.long)
    labels = torch.full((n, lt), -100, dtype=torch.long)
    for i, (a, b) in enumerate(batch):
        input_ids[i, : len(a)] = torch.tensor(a)
        attention[i, : len(a)] = 1
        labels[i, : len(b)] = torch.tensor(b)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
