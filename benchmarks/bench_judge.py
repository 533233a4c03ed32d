"""Speed of the LM judge: the fast judge against naive full re-scoring, in the same run.

The naive judge scores every candidate sentence in full with the model's own forward, and
scores all of a sentence's candidates (no pre-filter). Against it, on the same sentences and
the same proposals:

* ``fast, exact``: prefix KV reuse and packed, batched variants, nothing else: its decisions
  must equal the naive judge's. This pair runs in fp32 (``--n-exact`` sentences): in bf16 the
  two paths' different kernels round differently (about 0.2 nats), which is not what is
  tested here;
* ``fast, default``: the shipped setting, which adds the pre-filter (``keep`` candidates per
  sentence) and the scoring window; its decisions may differ, and the share that do not is
  reported.

Times include proposals and the seq2seq model's decode. The naive judge is slow, so it runs
on the first ``--n-naive`` sentences; the fast default runs on all ``--n``.

    python benchmarks/bench_judge.py --pairs runs/test_pairs_mixed.jsonl --n 1000 --n-naive 30 --n-exact 10

``--n-naive 0`` times the default judge alone, with no baseline (on a CPU without bf16 the
naive judge takes about 50 s per sentence).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import replace

import torch

from restorer.data import read_pairs
from restorer.infer import Restorer
from restorer.infer.judge import Judge


def _run(r: Restorer, sents: list[str]) -> tuple[float, list, int]:
    scorer = r.judge.scorer
    scorer.n_forward_tokens = 0
    t0 = time.perf_counter()
    out = r.explain_sentences(sents)
    return time.perf_counter() - t0, out, scorer.n_forward_tokens


def _decisions(a: list, b: list) -> tuple[float, float]:
    """Share of candidates with the same verdict (accepted or not) and of identical outputs."""
    same = total = 0
    for ga, gb in zip(a, b, strict=True):
        acc_a = {(e.start, e.end, e.replacement) for e in ga.edits if e.accepted}
        acc_b = {(e.start, e.end, e.replacement) for e in gb.edits if e.accepted}
        cands = {(e.start, e.end, e.replacement) for e in ga.edits + gb.edits}
        total += len(cands)
        same += sum((c in acc_a) == (c in acc_b) for c in cands)
    sent = sum(x.text == y.text for x, y in zip(a, b, strict=True)) / max(1, len(a))
    return same / max(1, total), sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--n-naive", type=int, default=30)
    ap.add_argument("--n-exact", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    sents = [p["spun"] for p in read_pairs(args.pairs)[: args.n]]
    r = Restorer.from_pretrained(args.model, device="cpu", threads=args.threads)
    if r.judge is None:
        raise SystemExit("this model directory names no judge (restorer.json)")
    default_judge = r.judge.judge
    cfg = default_judge.cfg
    prior = default_judge.priors  # the seq2seq priors: the same for every judge compared
    r.explain_sentences(sents[:4])  # warm-up
    few = sents[: args.n_naive]

    res: dict[str, dict[str, float]] = {}
    if args.n_naive <= 0:  # the default judge alone (the naive one takes minutes per sentence in fp32)
        t_all, _, tok_all = _run(r, sents)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{args.threads} threads, {r.judge.scorer.dtype}: fast default on {len(sents)} sentences: "
              f"{len(sents) / t_all:.2f} sentences/s, {tok_all / len(sents):.1f} LM tokens per sentence; "
              f"peak RSS {rss:.0f} MB")  # fmt: skip
        return
    # exactness: naive and fast with nothing approximate, both fp32
    from restorer.infer.lm import LMScorer
    from restorer.model.base_lm import load_lm

    fp32 = LMScorer(*load_lm(r.judge.spec.lm), replace(r.judge.scorer.cfg, dtype="fp32"))
    exact_few = sents[: args.n_exact]
    r.judge.judge = Judge(fp32, replace(cfg, keep=0, window=None), naive=True, prior=prior)
    t_n32, out_n32, _ = _run(r, exact_few)
    r.judge.judge = Judge(fp32, replace(cfg, keep=0, window=None), prior=prior)
    t_e32, out_e32, _ = _run(r, exact_few)
    del fp32
    # speed: the naive judge at the default dtype against the fast ones
    r.judge.judge = Judge(r.judge.scorer, replace(cfg, keep=0, window=None), naive=True, prior=prior)
    t_naive, out_naive, tok_naive = _run(r, few)
    r.judge.judge = Judge(r.judge.scorer, replace(cfg, keep=0, window=None), prior=prior)
    t_exact, out_exact, tok_exact = _run(r, few)
    r.judge.judge = default_judge
    t_few, out_few, tok_few = _run(r, few)
    t_all, _, tok_all = _run(r, sents)
    same_exact = _decisions(out_n32, out_e32)
    res["exact_fp32"] = {"n": len(exact_few), "naive_s": t_n32, "fast_s": t_e32,
                         "same_decisions": same_exact[0], "same_outputs": same_exact[1]}  # fmt: skip
    same_default = _decisions(out_naive, out_few)
    res["naive"] = {"sentences_per_s": len(few) / t_naive, "lm_tokens_per_sentence": tok_naive / len(few)}
    res["fast_exact"] = {"sentences_per_s": len(few) / t_exact, "ratio": t_naive / t_exact,
                         "same_decisions": same_exact[0], "same_outputs": same_exact[1],
                         "lm_tokens_per_sentence": tok_exact / len(few)}  # fmt: skip
    res["fast_default"] = {"sentences_per_s": len(few) / t_few, "ratio": t_naive / t_few,
                           "same_decisions": same_default[0], "same_outputs": same_default[1],
                           "lm_tokens_per_sentence": tok_few / len(few)}  # fmt: skip
    res["fast_default_all"] = {"n": len(sents), "sentences_per_s": len(sents) / t_all,
                               "lm_tokens_per_sentence": tok_all / len(sents)}  # fmt: skip
    print(f"fp32, {len(exact_few)} sentences: fast exact vs naive: {same_exact[0]:.4f} same decisions, "
          f"{same_exact[1]:.3f} same outputs; {t_n32 / t_e32:.2f}x faster")  # fmt: skip
    print(f"{args.threads} threads, {r.judge.scorer.dtype}; naive and fast on the first {len(few)} sentences, "
          f"fast default on {len(sents)}; decisions compared with the naive judge at this dtype")  # fmt: skip
    print(f"{'judge':22} {'sent/s':>8} {'x naive':>8} {'same decisions':>15} {'same outputs':>13} {'LM tokens/sent':>15}")
    for name in ("naive", "fast_exact", "fast_default", "fast_default_all"):
        x = res[name]
        print(f"{name:22} {x['sentences_per_s']:8.2f} {x.get('ratio', 1.0 if name == 'naive' else float('nan')):8.2f} "
              f"{x.get('same_decisions', 1.0 if name == 'naive' else float('nan')):15.3f} "
              f"{x.get('same_outputs', 1.0 if name == 'naive' else float('nan')):13.3f} {x['lm_tokens_per_sentence']:15.1f}")  # fmt: skip
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MB")
    res["peak_rss_mb"] = {"value": rss}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
