"""Choose judge costs on the valid split: one process, one loaded model, several settings.

For each setting (JSON of ``JudgeConfig`` fields, laid over the model directory's own), restore
the spun side of each ``--pairs`` file and the originals of ``--clean``, and print one JSON
line: ``repaired`` per pairs file, ``clean_changed`` and the share of clean sentences left
byte-identical. This is how the ``pair_cost`` table of docs/judge.md was made:

    restorer data pairs --corpus corpus/valid.jsonl --style autoblog --limit 1000 --out valid1000_autoblog.jsonl
    restorer data pairs --corpus corpus/valid.jsonl --style mixed --limit 400 --out valid_pairs_mixed.jsonl
    python benchmarks/judge_sweep.py --pairs valid1000_autoblog.jsonl valid_pairs_mixed.jsonl --n 400 \\
        --clean valid1000_autoblog.jsonl '{}' '{"pair_cost": 1.0}' '{"pair_cost": 2.0}'

Use the valid split only: the test split is for reporting.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from restorer import Restorer
from restorer.data import read_pairs
from restorer.eval.evaluation import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("settings", nargs="+", help="JudgeConfig overrides as JSON, one per setting")
    ap.add_argument("--pairs", nargs="+", required=True, help="pairs files whose spun side is restored")
    ap.add_argument("--n", type=int, default=400, help="pairs per file")
    ap.add_argument("--clean", required=True, help="a pairs file whose originals are the clean text")
    ap.add_argument("--n-clean", type=int, default=1000)
    ap.add_argument("--model", default=None)
    ap.add_argument("--style", action="append", default=[], help="a style package, style YAML or name (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    settings = [json.loads(s) for s in a.settings]
    r = Restorer.from_pretrained(a.model, threads=a.threads, styles=a.style)
    if r.judge is None:
        raise SystemExit("the model directory names no judge")
    cfg = r.judge.judge.cfg
    unknown = sorted({k for st in settings for k in st if not hasattr(cfg, k)})
    if unknown:
        raise SystemExit(f"not JudgeConfig fields: {', '.join(unknown)}")
    base = dict(vars(cfg))
    sets = {Path(f).name: read_pairs(f)[: a.n] for f in a.pairs}
    orig = [p["original"] for p in read_pairs(a.clean)[: a.n_clean]]
    for st in settings:
        for k, v in {**base, **st}.items():
            setattr(cfg, k, v)
        t0 = time.perf_counter()
        clean = r.restore_sentences(orig)
        res: dict[str, object] = {"set": st}
        for name, pairs in sets.items():
            spun, gold = [p["spun"] for p in pairs], [p["original"] for p in pairs]
            outs = r.restore_sentences(spun)
            # evaluate() takes the spun outputs, then the originals' (unused here: only `repaired` is read)
            m = evaluate(lambda _t, o=outs, g=gold: [*o, *g], spun, gold).metrics
            res[name] = round(m["repaired"], 4)
        m = evaluate(lambda _t, c=clean: [*c, *c], orig, orig).metrics
        res["clean_changed"] = round(m["clean_changed"], 4)
        res["clean_identical"] = round(sum(x == y for x, y in zip(clean, orig, strict=True)) / len(orig), 4)
        res["seconds"] = round(time.perf_counter() - t0)
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
