"""How decoding throughput scales with the batch size and the sentence length.

Spun sentences from a pairs file are put in length buckets (words); each bucket is decoded
whole at every batch size by ``Restorer`` with the guard off, on the torch backend (the
copy-speculative decoder) and on the CTranslate2 int8 backend. Reported: sentences/s and output
tokens/s (end-of-sentence token included, as in bench_inference.py), and the gain over batch 1,
as a markdown table on stdout and a small PNG plot.

    python benchmarks/bench_scaling.py --pairs runs/test_pairs_mixed.jsonl --threads 2
    python benchmarks/bench_scaling.py --pairs pairs.jsonl --ct2-dir ct2/ --png docs/scaling.png

(The CTranslate2 rows use the model's own int8 export, a ``--ct2-dir``, or a conversion into
the cache; ``--no-ct2`` skips them. The plot needs matplotlib, in the ``dev`` extra.)
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Bucket:
    name: str  # "≤10", "11–20", "36+": words per sentence
    sentences: list[str]


@dataclass
class Row:
    backend: str
    bucket: str
    batch_size: int
    sentences: int
    tokens: int
    seconds: float

    @property
    def sentences_per_s(self) -> float:
        return self.sentences / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


# ----------------------------------------------------------------------------- inputs


def parse_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(
            f"bench_scaling: {what} must be whole numbers separated by commas, not {text!r}"
        ) from None
    if not values or any(v < 1 for v in values) or values != sorted(set(values)):
        raise SystemExit(
            f"bench_scaling: {what} must be increasing whole numbers of at least 1, not {text!r}"
        )
    return values


def bucket_names(edges: Sequence[int]) -> list[str]:
    """``[10, 20, 35]`` → ``["≤10", "11–20", "21–35", "36+"]``."""
    lows = [1, *(e + 1 for e in edges)]
    names = [f"≤{edges[0]}"] + [f"{lo}–{hi}" for lo, hi in zip(lows[1:], edges[1:], strict=False)]
    return [*names, f"{lows[-1]}+"]


def bucket_of(words: int, edges: Sequence[int]) -> int:
    return next((k for k, e in enumerate(edges) if words <= e), len(edges))


def load_buckets(pairs: Path, edges: Sequence[int], n: int, seed: int) -> list[Bucket]:
    """Up to ``n`` spun sentences per length bucket, a seeded sample of the pairs file."""
    from restorer.data import PairsError, read_pairs

    try:
        spun = [p["spun"].strip() for p in read_pairs(pairs)]
    except PairsError as exc:
        raise SystemExit(f"bench_scaling: {exc}") from None
    groups: list[list[str]] = [[] for _ in range(len(edges) + 1)]
    for s in spun:
        if s:
            groups[bucket_of(len(s.split()), edges)].append(s)
    rng = random.Random(seed)
    buckets = []
    for name, group in zip(bucket_names(edges), groups, strict=True):
        if not group:
            print(f"bench_scaling: no sentences of {name} words in {pairs}; skipped", file=sys.stderr)
            continue
        buckets.append(Bucket(name, rng.sample(group, min(n, len(group)))))
    if not buckets:
        raise SystemExit(f"bench_scaling: no spun sentences in {pairs}")
    return buckets


# ----------------------------------------------------------------------------- measuring


def load_restorer(backend: str, args: argparse.Namespace) -> Any:
    from restorer.infer import Restorer

    path = (args.ct2_dir or args.model) if backend == "ctranslate2" else args.model
    return Restorer.from_pretrained(
        path, device=args.device, threads=args.threads, guard=False, backend=backend, judge="none"
    )


def measure(restorer: Any, backend: str, bucket: Bucket, batch_size: int, repeats: int) -> Row:
    """Decode the whole bucket at ``batch_size``; the fastest of ``repeats`` runs."""
    restorer.batch_size = batch_size
    restorer.decode(bucket.sentences[:batch_size])  # warm-up at this shape
    best, tokens = float("inf"), 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        decoded = restorer.decode(bucket.sentences)
        best = min(best, time.perf_counter() - t0)
        tokens = sum(len(d.token_ids) + 1 for d in decoded)
    return Row(backend, bucket.name, batch_size, len(bucket.sentences), tokens, best)


def run_grid(args: argparse.Namespace, buckets: list[Bucket], batch_sizes: list[int]) -> list[Row]:
    rows = []
    from restorer.infer.ct2 import available

    for backend in ["torch"] + (["ctranslate2"] if available() and not args.no_ct2 else []):
        restorer = load_restorer(backend, args)
        for bucket in buckets:
            for bs in batch_sizes:
                row = measure(restorer, backend, bucket, bs, args.repeats)
                print(
                    f"  {backend:11} {bucket.name:>6} words  batch {bs:3}: {row.sentences_per_s:8.1f} sentences/s",
                    file=sys.stderr,
                )
                rows.append(row)
    return rows


# ----------------------------------------------------------------------------- reporting


def markdown_table(rows: list[Row]) -> str:
    """One line per backend, bucket and batch size, with the gain over batch 1 (the smallest)."""
    base: dict[tuple[str, str], float] = {}
    for r in rows:
        base.setdefault((r.backend, r.bucket), r.sentences_per_s)
    lines = [
        "| backend | words | sentences | batch | sentences/s | tokens/s | × smallest batch |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        gain = r.sentences_per_s / base[(r.backend, r.bucket)]
        lines.append(
            f"| {r.backend} | {r.bucket} | {r.sentences} | {r.batch_size} | {r.sentences_per_s:,.1f} "
            f"| {r.tokens_per_s:,.0f} | {gain:.2f} |"
        )
    return "\n".join(lines)


def save_plot(rows: list[Row], path: Path, title: str) -> None:
    """Sentences/s and tokens/s against the batch size: a colour per bucket, dashed for CTranslate2."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit('bench_scaling: the plot needs matplotlib: pip install -e ".[dev]"') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    buckets = list(dict.fromkeys(r.bucket for r in rows))
    backends = list(dict.fromkeys(r.backend for r in rows))
    cmap = plt.get_cmap("viridis")
    colours = {b: cmap(k / max(1, len(buckets) - 1) * 0.85) for k, b in enumerate(buckets)}
    styles = {"torch": "-", "ctranslate2": "--"}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    for ax, metric, label in zip(
        axes, ("sentences_per_s", "tokens_per_s"), ("sentences/s", "tokens/s"), strict=True
    ):
        for backend in backends:
            for bucket in buckets:
                pts = [
                    (r.batch_size, getattr(r, metric))
                    for r in rows
                    if (r.backend, r.bucket) == (backend, bucket)
                ]
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, styles[backend], marker="o", markersize=3, color=colours[bucket])
        sizes = sorted({r.batch_size for r in rows})
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(label)
        ax.grid(True, which="major", alpha=0.3)
    handles = [
        Line2D([], [], color=colours[b], marker="o", markersize=3, label=f"{b} words") for b in buckets
    ]
    if len(backends) > 1:
        handles += [Line2D([], [], color="black", linestyle=styles[b], label=b) for b in backends]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", required=True, help='pairs JSONL ({"spun", "original"} per line)')
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument(
        "--ct2-dir", default=None,
        help="the CTranslate2 export to measure (default: the model's own, or one converted into the cache)",
    )  # fmt: skip
    ap.add_argument("--no-ct2", action="store_true", help="measure the torch backend only")
    ap.add_argument("--n", type=int, default=256, help="sentences per length bucket (default: 256)")
    ap.add_argument("--batch-sizes", default="1,4,16,32,64", help="comma-separated (default: 1,4,16,32,64)")
    ap.add_argument(
        "--buckets",
        default="10,20,35",
        help="upper word counts of the buckets; the last is open (default: 10,20,35)",
    )
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    ap.add_argument("--repeats", type=int, default=1, help="time each cell this many times, keep the fastest")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sentence sample")
    ap.add_argument(
        "--png", default=str(ROOT / "docs" / "scaling.png"), help="the plot (default: docs/scaling.png)"
    )
    ap.add_argument("--json", default=None, help="also write the measurements here")
    args = ap.parse_args(argv)
    if args.n < 1 or args.repeats < 1 or args.threads < 1:
        ap.error("--n, --repeats and --threads must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    batch_sizes = parse_ints(args.batch_sizes, "--batch-sizes")
    buckets = load_buckets(Path(args.pairs), parse_ints(args.buckets, "--buckets"), args.n, args.seed)
    rows = run_grid(args, buckets, batch_sizes)
    model = Path(args.model).name if args.model else "shipped model"
    title = f"{model}: {args.device}, {args.threads} thread(s), guard off, torch copy-speculative" + (
        " / CTranslate2 int8 (dashed)" if any(r.backend == "ctranslate2" for r in rows) else ""
    )
    print(f"{title}; up to {args.n} spun sentences per bucket from {args.pairs}\n")
    print(markdown_table(rows))
    save_plot(rows, Path(args.png), title)
    print(f"\nplot: {args.png}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
