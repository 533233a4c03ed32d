"""Throughput of ``Restorer`` at its default settings against plain ``model.generate``.

Both run on the same spun sentences, on the same threads, in the same process: the baseline
is greedy ``generate`` (batch 32, length-sorted), the candidates are ``Restorer.restore`` with
the guard on (alignment, confidences, layout handling included) at its defaults (on the CPU:
the model's int8 CTranslate2 export when it has one) and on the torch backend.

    python benchmarks/bench_restore.py --pairs runs/test_pairs_mixed.jsonl --n 500
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from restorer.data import read_pairs
from restorer.infer import Restorer
from restorer.infer.decoders import greedy_restore


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
    torch_r = Restorer.from_pretrained(args.model, device="cpu", batch_size=args.batch_size, backend="torch", judge="none")
    default_r = Restorer.from_pretrained(args.model, device="cpu", batch_size=args.batch_size, threads=args.threads,
                                          judge="none")  # the seq2seq tier; the judge: bench_judge.py
    runs = {
        f"Restorer, default ({default_r.backend})": default_r,
        "Restorer, torch (copy-speculative)": torch_r,
    }
    for r in runs.values():
        r.restore(sents[:8])  # warm-up

    t0 = time.perf_counter()
    greedy_restore(torch_r.seq2seq.model, torch_r.tokenizer, sents, args.batch_size)
    base = time.perf_counter() - t0
    print(f"{len(sents)} sentences ({words} words), {args.threads} threads, batch {args.batch_size}, guard on")
    print(f"{'plain generate (baseline)':40} {len(sents) / base:7.1f} sentences/s")
    for name, r in runs.items():
        t0 = time.perf_counter()
        r.restore(sents)
        cand = time.perf_counter() - t0
        print(f"{name:40} {len(sents) / cand:7.1f} sentences/s  ratio {base / cand:.2f}x")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (both backends loaded) {rss:.0f} MB")


if __name__ == "__main__":
    main()
