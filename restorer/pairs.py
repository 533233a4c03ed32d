"""Training pairs: (spun, original) made on the fly, bucketed by length, padded per batch.

Every example is a pure function of ``(seed, rank, k)``: the k-th example of a rank is the
sentence at position k of that epoch's permutation, spun with a seed derived from k. So the
stream needs no state beyond a counter, each process of a multi-GPU run sees its own share,
and a resumed run continues exactly where it stopped. Every sentence is seen with a new spin
in every epoch, which is what makes a corpus of a few million words go a long way.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from restorer.spin.spinner import Spinner


class PairsError(ValueError):
    """A pairs or corpus file that cannot be used."""


def load_sentences(path: str | Path, min_words: int = 1) -> list[str]:
    """Sentences of a corpus JSONL file (``{"text": ...}`` per line, as `data build` writes)."""
    p = Path(path)
    if not p.exists():
        raise PairsError(f"corpus file not found: {p} (build it with `restorer data build --out {p.parent}`)")
    out: list[str] = []
    with open(p, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)["text"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise PairsError(f"{p}:{n}: expected a JSON object with a 'text' field") from None
            if len(text.split()) >= min_words:
                out.append(text)
    if not out:
        raise PairsError(f"{p}: no sentences")
    return out


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """A pairs file: one ``{"spun": ..., "original": ...}`` per line (extra keys kept)."""
    p = Path(path)
    if not p.exists():
        raise PairsError(f"pairs file not found: {p}")
    pairs = []
    with open(p, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PairsError(f"{p}:{n}: not JSON ({exc.msg})") from None
            if (
                not isinstance(obj, dict)
                or not isinstance(obj.get("spun"), str)
                or not isinstance(obj.get("original"), str)
            ):
                raise PairsError(f'{p}:{n}: expected {{"spun": str, "original": str}}')
            pairs.append(obj)
    if not pairs:
        raise PairsError(f"{p}: no pairs")
    return pairs


def write_pairs(path: str | Path, pairs: Sequence[dict[str, Any]]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for obj in pairs:
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    tmp.replace(p)


def make_pairs(sentences: Sequence[str], spinner: Spinner, seed: int | str = 0) -> list[dict[str, Any]]:
    """Spin a fixed list of sentences into pairs (for valid and test sets)."""
    out = []
    for i, s in enumerate(sentences):
        out.append(spinner.spin(s, f"{seed}:{i}").to_pair())
    return out


class ExampleStream(Protocol):
    """What ``BucketBatcher`` reads: example ``k`` of this process, a pure function of ``k``."""

    def example(self, k: int) -> tuple[str, str]: ...


class PairStream:
    """Deterministic, endless stream of (spun, original) pairs for one process."""

    def __init__(
        self,
        sentences: Sequence[str],
        spinner: Spinner,
        clean_share: float = 0.1,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not sentences:
            raise PairsError("no sentences to make pairs from")
        self.sentences = sentences
        self.spinner = spinner
        self.clean_share = clean_share
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self._perm_epoch = -1
        self._perm: list[int] = []

    def _permutation(self, epoch: int) -> list[int]:
        if epoch != self._perm_epoch:
            perm = list(range(len(self.sentences)))
            random.Random(f"perm:{self.seed}:{epoch}").shuffle(perm)
            self._perm, self._perm_epoch = perm, epoch
        return self._perm

    def example(self, k: int) -> tuple[str, str]:
        """The k-th example of this process."""
        g = k * self.world_size + self.rank  # global index: ranks interleave
        epoch, pos = divmod(g, len(self.sentences))
        original = self.sentences[self._permutation(epoch)[pos]]
        rng = random.Random(f"spin:{self.seed}:{g}")
        if rng.random() < self.clean_share:
            return original, original
        return self.spinner.spin(original, rng).text, original


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
