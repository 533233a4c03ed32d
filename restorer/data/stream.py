"""The stream of training pairs: (spun, original) made on the fly, one stream per process.

Every example is a pure function of ``(seed, rank, k)``: the k-th example of a rank is the
sentence at position k of that epoch's permutation, spun with a seed derived from k. So the
stream needs no state beyond a counter, each process of a multi-GPU run sees its own share,
and a resumed run continues exactly where it stopped. Every sentence is seen with a new spin
in every epoch, which is what makes a corpus of a few million words go a long way.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

from restorer.data.pairs import PairsError
from restorer.spin.spinner import Spinner


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
