"""The faithfulness guard's trade-off: `repaired` against `clean_changed` per threshold.

The model decodes every spun sentence and every clean original once; the guard is then
re-applied with each setting, so a sweep costs one decode. The defaults of
``restorer.infer.guard.GuardConfig`` are chosen from this table on the valid set (docs/guard.md).

    python benchmarks/guard_tradeoff.py --model runs/default/best --pairs runs/default/valid_pairs.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from restorer.data import read_pairs
from restorer.eval.evaluation import score_decodes
from restorer.infer import Restorer
from restorer.infer.guard import GuardConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--thresholds", default="0,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()

    pairs = read_pairs(args.pairs)
    if args.limit:
        pairs = pairs[: args.limit]
    spun = [p["spun"] for p in pairs]
    orig = [p["original"] for p in pairs]
    r = Restorer.from_pretrained(args.model, device="cpu", threads=args.threads, guard=False, backend="torch", judge="none")
    t0 = time.perf_counter()
    dec = r.decode(spun + orig)
    secs = time.perf_counter() - t0
    print(f"decoded {len(dec)} sentences in {secs:.1f} s ({len(dec) / secs:.1f} sentences/s)")
    ds, dc = dec[: len(pairs)], dec[len(pairs) :]

    settings: list[tuple[str, GuardConfig]] = [("off (raw greedy)", GuardConfig(enabled=False))]
    base = GuardConfig()
    for t in (float(x) for x in args.thresholds.split(",")):
        settings.append((f"min_confidence={t:g}", replace(base, min_confidence=t)))
    settings.append(("structure rules only, no names", replace(base, min_confidence=0.0, protect_names=False)))
    rows = []
    print(f"{'guard':34} {'repaired':>9} {'exact':>7} {'chrF':>6} {'clean_changed':>14}")
    for name, cfg in settings:
        m, _ = score_decodes(spun, orig, ds, dc, cfg)
        rows.append({"guard": name, **m})
        print(f"{name:34} {m['repaired']:9.3f} {m['exact']:7.3f} {m['chrf']:6.1f} {m['clean_changed']:14.4f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
