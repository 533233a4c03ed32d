"""Mining a style from example pairs, and how well the mined table generalises to held-out pairs.

Mines the dictionary of ``--train`` pairs (as ``restorer finetune`` does), writes it as a style
package (``style.yaml``, ``dictionary.tsv``, ``evidence.tsv``) into ``--out``, and measures the
mined table on ``--test`` pairs, with no LM:

* **proposal precision**: of the style's proposals on the test's spun side, the share that bring
  the sentence closer to its original;
* **recall**: of the test's one-word spinner edits (word for word aligned pairs), the share whose
  original the style proposes;
* **applied blindly**: every style proposal with positive evidence applied, the best per span:
  ``repaired``/``exact``/``clean_changed`` of the table alone as a restorer, the floor the judge
  should beat.

    python benchmarks/style_mining.py --train benchmarks/data/tortured_style/train.jsonl \\
        --test benchmarks/data/tortured_style/test.jsonl --out runs/tortured_style
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from restorer.data import read_pairs
from restorer.eval.evaluation import evaluate
from restorer.infer.judge import apply
from restorer.infer.proposals import ProposalConfig, Proposer
from restorer.infer.styles import load_style_package
from restorer.spin.lexicon import default_lexicon
from restorer.train.finetune.mining import mine_style, save_style_package, style_evidence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--out", required=True, type=Path, help="the style package to write")
    a = ap.parse_args()
    train, test = read_pairs(a.train), read_pairs(a.test)
    t0 = time.perf_counter()
    mined = mine_style(train, lexicon=default_lexicon())
    save_style_package(mined, train, a.out, source=Path(a.train).name)
    mine_s = time.perf_counter() - t0
    pkg = load_style_package(a.out)
    assert pkg.lexicon is not None

    held = style_evidence(test, pkg.lexicon)
    right, seen = sum(r for r, _ in held.values()), sum(s for _, s in held.values())
    proposer = Proposer(ProposalConfig(tables=False, thesaurus=False), [pkg.lexicon], evidence=pkg.evidence)
    hit = total = 0
    for p in test:
        s, o = p["spun"].split(), p["original"].split()
        if len(s) != len(o):
            continue
        cands = proposer.propose(p["spun"])
        for a_, b_ in zip(s, o, strict=True):
            if a_ != b_:
                total += 1
                hit += any(c.original == a_ and c.replacement == b_ for c in cands)

    def blind(texts: list[str]) -> list[str]:
        out = []
        for t in texts:
            best: dict[tuple[int, int], object] = {}
            for c in proposer.propose(t):
                if c.evidence > 0 and ((c.start, c.end) not in best or c.evidence > best[(c.start, c.end)].evidence):
                    best[(c.start, c.end)] = c
            chosen, taken = [], []
            for c in sorted(best.values(), key=lambda c: -c.evidence):
                if not any(c.overlaps(x) for x in taken):
                    taken.append(c)
                    chosen.append(c)
            out.append(apply(t, chosen))
        return out

    m = evaluate(blind, [p["spun"] for p in test], [p["original"] for p in test]).metrics
    res = {
        "train_pairs": len(train), "test_pairs": len(test), "mine_seconds": round(mine_s, 2),
        "mined": mined.summary(), "package": str(a.out),
        "proposal_precision": round(right / max(1, seen), 4), "proposals": seen,
        "recall_one_word_edits": round(hit / max(1, total), 4), "one_word_edits": total,
        "applied_blindly": {k: round(m[k], 4) for k in ("repaired", "exact", "edit_f05", "clean_changed")},
    }  # fmt: skip
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
