"""Peak memory of restoring text: the default path (the LM judge) and the seq2seq tier on
its CPU default (``--judge none``), against the torch backend of the seq2seq tier.

Each configuration runs in its own child process: load the model with
``Restorer.from_pretrained`` and restore ``--n`` spun sentences. It reports the peak resident set
size at each stage (imports, load, restore), and the ratio to the torch backend measured in the
same run.

    python benchmarks/bench_memory.py --pairs runs/test_pairs_mixed.jsonl --n 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

CONFIGS = {"default (LM judge)": ("auto", "auto"), "seq2seq tier": ("auto", "none"), "seq2seq tier, torch": ("torch", "none")}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    stages = {"start": peak_mb()}
    from restorer.data import read_pairs
    from restorer.infer import Restorer

    stages["imports"] = peak_mb()
    r = Restorer.from_pretrained(args.model, device="cpu", threads=args.threads, backend=args.backend,
                                judge=args.judge)
    stages["loaded"] = peak_mb()
    sents = [p["spun"] for p in read_pairs(args.pairs)[: args.n]]
    r.restore(sents)
    stages["restored"] = peak_mb()
    print(json.dumps({"backend": r.backend, "stages": stages}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--judge", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.backend:
        child(args)
        return
    rows = {}
    for name, (backend, judge) in CONFIGS.items():
        cmd = [sys.executable, __file__, "--pairs", args.pairs, "--n", str(args.n), "--threads", str(args.threads),
               "--backend", backend, "--judge", judge] + (["--model", args.model] if args.model else [])  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows[name] = json.loads(out.strip().splitlines()[-1])
    base = rows["seq2seq tier, torch"]["stages"]["restored"]
    print(f"peak RSS (MB) while restoring {args.n} spun sentences, {args.threads} threads, guard on")
    print(f"{'Restorer.from_pretrained(...)':34} {'imports':>8} {'loaded':>8} {'restored':>9} {'x torch':>8}")
    for label, row in rows.items():
        st = row["stages"]
        name = f"{label} ({row['backend']})"
        print(f"{name:34} {st['imports']:8.0f} {st['loaded']:8.0f} {st['restored']:9.0f} "
              f"{st['restored'] / base:8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
