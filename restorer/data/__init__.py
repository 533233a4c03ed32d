"""Training data: pairs files, the endless stream of pairs spun on the fly, and the batches.

* :mod:`.pairs`: corpus and pairs files (read, write), fixed pairs for valid and test sets;
* :mod:`.stream`: the deterministic stream of (spun, original) pairs of one process;
* :mod:`.batching`: length bucketing and dynamic padding into model batches.
"""

from __future__ import annotations

from restorer.data.batching import BatcherState, BucketBatcher, collate
from restorer.data.pairs import PairsError, load_sentences, make_pairs, read_pairs, write_pairs
from restorer.data.stream import ExampleStream, PairStream

__all__ = [
    "BatcherState",
    "BucketBatcher",
    "ExampleStream",
    "PairStream",
    "PairsError",
    "collate",
    "load_sentences",
    "make_pairs",
    "read_pairs",
    "write_pairs",
]
