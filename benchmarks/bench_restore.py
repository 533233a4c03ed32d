"""Throughput of ``Restorer`` at its default settings against plain ``model.generate``.

Both run on the same spun sentences, on the same threads, in the same process: the baseline
is greedy ``generate`` (batch 32, length-sorted), the candidate is ``Restorer.restore`` with
the guard on (alignment, confidences, layout handling included).

    python benchmarks/bench_restore.py --pairs runs/test_pairs_mixed.jsonl --n 500
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from restorer.generation import greedy_restore
from restorer.inference import Restorer
from restorer.pairs import read_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    sents = [p["spun"] for p in read_pairs(args.pairs)[: args.n]]
    words = sum(len(s.split()) for s in sents)
    r = Restorer.from_pretrained(args.model, device="cpu", batch_size=args.batch_size)
    r.restore(sents[:8])  # warm-up

    t0 = time.perf_counter()
    greedy_restore(r.model, r.tokenizer, sents, args.batch_size)
    base = time.perf_counter() - t0
    t0 = time.perf_counter()
    r.restore(sents)
    cand = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(sents)} sentences ({words} words), {args.threads} threads, batch {args.batch_size}")
    print(f"plain generate (baseline): {len(sents) / base:7.1f} sentences/s")
    print(f"Restorer, guard on:        {len(sents) / cand:7.1f} sentences/s  ratio {base / cand:.2f}x")
    print(f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
