"""Quality and speed of a restore path on a pairs file, the way the README's tables were made.

Restores the spun sentences and their originals with ``Restorer.restore_sentences`` and prints
one JSON line: the metrics of ``restorer eval`` (``repaired``, ``exact``, chrF, BLEU, edit
P/R/F0.5, ``clean_changed``), the share of clean sentences left byte-identical, sentences/s
and peak RSS.

    python benchmarks/judge_eval.py --pairs runs/test_pairs_autoblog.jsonl --n 1000 --out fin.json
    python benchmarks/judge_eval.py --pairs runs/test_pairs_mixed.jsonl --judge none       # the T5 alone
    python benchmarks/judge_eval.py --pairs ... --n 200 --proposers tables,thesaurus        # a proposer subset
    python benchmarks/judge_eval.py --pairs ... --judge gemma3-270m                          # another LM
    python benchmarks/judge_eval.py --pairs ... --style runs/my_style                         # with a style on
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import replace

from restorer import Restorer
from restorer.data import read_pairs
from restorer.eval.evaluation import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--model", default=None)
    ap.add_argument("--judge", default="auto", help="auto, none, a known LM name or an LM directory")
    ap.add_argument("--proposers", default=None, help="comma-separated subset of tables,thesaurus,seq2seq")
    ap.add_argument("--set", default="{}", help="JudgeConfig overrides as JSON")
    ap.add_argument("--scorer", default="{}", help="LMScorerConfig overrides as JSON (e.g. {\"head_fp32\": true})")
    ap.add_argument("--style", action="append", default=[], help="a style package, style YAML or name (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clean-from", default=None, help="reuse the clean outputs of an earlier --out (same originals)")
    ap.add_argument("--out", default=None, help="also write the outputs here (JSON)")
    a = ap.parse_args()

    t0 = time.perf_counter()
    judge = a.judge
    if json.loads(a.scorer):
        from restorer.infer import default_model_dir
        from restorer.infer.pipeline import JudgeSpec, read_judge_spec

        spec = read_judge_spec(a.model or default_model_dir()) if judge == "auto" else JudgeSpec(lm=judge)
        if spec is None:
            raise SystemExit("--scorer: the model directory names no judge")
        judge = replace(spec, scorer={**spec.scorer, **json.loads(a.scorer)})
    r = Restorer.from_pretrained(a.model, judge=judge, threads=a.threads, styles=a.style)
    load_s = time.perf_counter() - t0
    if r.judge is not None and a.proposers:
        from restorer.infer.pipeline import JudgeSpec, JudgeTier

        r.judge = JudgeTier(r.judge.scorer, JudgeSpec(lm=r.judge.spec.lm, proposers=a.proposers.split(",")),
                            prior=r.judge.judge.priors)
    if r.judge is not None:
        for k, v in json.loads(a.set).items():
            setattr(r.judge.judge.cfg, k, v)
    pairs = read_pairs(a.pairs)[: a.n]
    spun = [p["spun"] for p in pairs]
    orig = [p["original"] for p in pairs]
    t0 = time.perf_counter()
    outs = r.restore_sentences(spun)
    t_spun = time.perf_counter() - t0
    if a.clean_from:
        with open(a.clean_from, encoding="utf-8") as fh:
            prev = json.load(fh)
        if prev["originals"] != orig:
            raise SystemExit(f"{a.clean_from} holds other originals")
        clean, t_clean = prev["clean_outputs"], prev["result"]["clean_s"]
    else:
        t0 = time.perf_counter()
        clean = r.restore_sentences(orig)
        t_clean = time.perf_counter() - t0
    m = evaluate(lambda _texts: [*outs, *clean], spun, orig).metrics  # restored above, timed apart
    m["clean_identical"] = sum(x == y for x, y in zip(clean, orig, strict=True)) / max(1, len(orig))
    res = {
        "pairs": a.pairs, "n": len(pairs), "judge": a.judge, "style": a.style, "proposers": a.proposers, "set": a.set,
        "load_s": round(load_s, 1), "spun_sent_per_s": round(len(pairs) / t_spun, 2), "clean_s": t_clean,
        "clean_sent_per_s": round(len(pairs) / t_clean, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "metrics": {k: round(v, 4) for k, v in m.items() if isinstance(v, int | float)},
    }  # fmt: skip
    print(json.dumps(res))
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            json.dump({"result": res, "spun": spun, "outputs": outs, "originals": orig, "clean_outputs": clean}, fh)


if __name__ == "__main__":
    main()
