"""Spinner throughput per style, on one core.

    python benchmarks/bench_spinner.py [--corpus /path/to/valid.jsonl] [--n 5000]

Prints sentences/s per style and two ratios measured in the same run: against a baseline
that only tokenizes the sentences (the floor any spinner pays), and against the training
consumption rate (28 pairs/s, the 9.4M-parameter model on 2 cores), which on-the-fly
spinning must never hold back. The issue's target is >= 2,000 sentences/s for `mixed`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import time
from pathlib import Path

from restorer.spin.spinner import TOKEN_RE, Spinner

FALLBACK = [
    "The company said last week that children were playing a new game in New York.",
    "According to the Wall Street Journal, the Supreme Court ruled on the case two years ago.",
    "People need to find out what it is that makes their health so important.",
    "The team will be working on the project for the next three months, officials said.",
    "She pointed out that test scores rose by 12 percent in schools that took part.",
]
TRAIN_PAIRS_PER_S = 28.0


def load(corpus: str | None, n: int) -> list[str]:
    if corpus and Path(corpus).exists():
        out = []
        with open(corpus, encoding="utf-8") as fh:
            for line in fh:
                out.append(json.loads(line)["text"])
                if len(out) >= n:
                    break
        return out
    return [FALLBACK[i % len(FALLBACK)] for i in range(n)]


def timed(fn, sents: list[str]) -> float:
    t = time.perf_counter()
    for i, s in enumerate(sents):
        fn(s, i)
    return len(sents) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.environ.get("RESTORER_CORPUS", "corpus/valid.jsonl"))
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--styles", default="autoblog,thesaurus,tortured,mixed")
    args = ap.parse_args()
    sents = load(args.corpus, args.n)
    words = sum(len(re.findall(r"\S+", s)) for s in sents) / len(sents)
    base = timed(lambda s, i: TOKEN_RE.findall(s), sents)
    print(
        f"{len(sents)} sentences, {words:.1f} words each; baseline (tokenize only): {base:,.0f} sentences/s"
    )
    print(f"{'style':10s} {'sent/s':>9s} {'vs tokenize':>12s} {'vs training':>12s}")
    for name in args.styles.split(","):
        sp = Spinner.from_style(name)
        sp.spin(sents[0], 0)  # load tables outside the timing
        timed(lambda s, i, sp=sp: sp.spin(s, i), sents[:500])  # warm the caches
        rate = timed(lambda s, i, sp=sp: sp.spin(s, i + 10_000), sents)
        print(f"{name:10s} {rate:9,.0f} {rate / base:12.3f} {rate / TRAIN_PAIRS_PER_S:11,.0f}x")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
