"""The judge's document gate on whole documents of the valid split: judged once, gated many ways.

A spinner spins a whole document; the gate (``JudgeConfig.document_spin``, ``document_words``,
``document_cost``) makes every edit of a document that looks clean pay more. This takes
``--docs`` documents per source of ``--corpus`` (at least 8 sentences each, their first
``--sentences``) in four conditions:

* ``clean``: the originals;
* ``autoblog``, ``mixed``: every sentence spun in that style;
* ``light``: every sentence spun by ``autoblog`` at a third of its word rate (0.1 for 0.3);
* ``sparse``: three sentences of the clean document spun by the ``tortured`` table (a paper
  with a few tortured phrases: the case the gate must not wipe out).

Every sentence is judged once with the model directory's judge, its gate off; then each
setting (JSON of the three gate fields) is laid over the judged documents. It prints each
condition's document spin scores, then per setting ``clean_changed`` on the clean documents,
the share of them left byte-identical, and ``repaired`` in the other conditions:

    python benchmarks/document_gate.py --corpus corpus/valid.jsonl --docs 8 --sentences 20 \\
        '{"document_spin": 0.02, "document_cost": 4}' '{"document_spin": 0.02, "document_cost": 6}'

Use the valid split only: the test split is for reporting.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from dataclasses import replace

from restorer import Restorer
from restorer.common import WORD_RE
from restorer.eval.core import clean_changed_score, repaired_score
from restorer.infer.judge import Judge, apply
from restorer.spin.spinner import Spinner

CONDITIONS = ("clean", "autoblog", "mixed", "light", "sparse")


def documents(path: str, per_source: int, n: int, seed: int) -> list[tuple[str, list[str]]]:
    docs: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            docs.setdefault(row["doc"], []).append(row["text"])
    by_source = defaultdict(list)
    for d, sents in docs.items():
        if len(sents) >= 8:
            by_source[d.split("/")[0]].append(d)
    rng = random.Random(seed)
    return [(d, docs[d][:n]) for s in sorted(by_source) for d in rng.sample(by_source[s], min(per_source, len(by_source[s])))]


def spin(cond: str, doc: str, sents: list[str], spinners: dict[str, Spinner]) -> list[str]:
    if cond == "clean":
        return list(sents)
    if cond == "sparse":
        k = set(random.Random(doc).sample(range(len(sents)), 3))
        return [spinners["tortured"].spin(s, seed=f"{doc}:{i}").text if i in k else s for i, s in enumerate(sents)]
    return [spinners[cond].spin(s, seed=f"{doc}:{i}").text for i, s in enumerate(sents)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("settings", nargs="*", help="gate settings as JSON (JudgeConfig fields)")
    ap.add_argument("--corpus", required=True, help="a corpus split (restorer data build): text, doc")
    ap.add_argument("--docs", type=int, default=8, help="documents per source")
    ap.add_argument("--sentences", type=int, default=20, help="first sentences of each document")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    r = Restorer.from_pretrained(a.model, threads=a.threads)
    tier = r.judge
    if tier is None:
        raise SystemExit("the model directory names no judge")
    spinners = {s: Spinner.from_style(s) for s in ("autoblog", "mixed", "tortured")}
    spinners["light"] = Spinner.from_style("autoblog", rate=0.1)
    docs = [(c, d, spin(c, d, sents, spinners), sents) for c in CONDITIONS for d, sents in documents(a.corpus, a.docs, a.sentences, a.seed)]
    flat = [s for _, _, spun, _ in docs for s in spun]
    decodes = r.decode(flat) if tier.use_seq2seq else [None] * len(flat)
    judged = []
    for i in range(0, len(flat), tier.chunk):
        part = flat[i : i + tier.chunk]
        cands = [tier.candidates(s, d, r.guard)[0] if s.strip() else [] for s, d in zip(part, decodes[i : i + tier.chunk], strict=True)]
        judged += tier.judge.judge(part, cands)
        tier.judge.scorer.clear()
    per_doc, k = [], 0
    for _, _, spun, _ in docs:
        per_doc.append(judged[k : k + len(spun)])
        k += len(spun)

    def words(js: list) -> tuple[int, int]:
        n = sum(len(WORD_RE.findall(j.sentence)) for j in js)
        return sum(max(1, len(WORD_RE.findall(c.original))) for j in js for c in j.accepted), n

    for cond in CONDITIONS:
        rates = sorted(c / max(1, n) for (cc, *_), js in zip(docs, per_doc, strict=True) if cc == cond for c, n in [words(js)])
        print(f"{cond:9} {len(rates)} documents, spin score min {rates[0]:.4f} median {rates[len(rates) // 2]:.4f} max {rates[-1]:.4f}")
    base = tier.judge.cfg
    print(f"{'setting':60} {'clean_changed':>13} {'identical':>9} " + " ".join(f"{c:>9}" for c in CONDITIONS[1:]))
    for setting in [{"document_spin": 0.0}, *[json.loads(s) for s in a.settings]]:
        gate = Judge(tier.judge.scorer, replace(base, **setting))
        outs: dict[str, tuple[list[str], list[str], list[str]]] = {c: ([], [], []) for c in CONDITIONS}
        for (cond, _, spun, orig), js in zip(docs, per_doc, strict=True):
            saved = [(v, v.accepted, v.cost, v.reason) for j in js for v in j.verdicts]
            gate.gate_document(js)
            src, pred, ref = outs[cond]
            src += spun
            pred += [apply(j.sentence, j.accepted) for j in js]
            ref += orig
            for v, acc, cost, reason in saved:
                v.accepted, v.cost, v.reason = acc, cost, reason
        src, pred, ref = outs["clean"]
        same = sum(x == y for x, y in zip(pred, ref, strict=True)) / max(1, len(ref))
        cells = " ".join(f"{repaired_score(*outs[c]):9.4f}" for c in CONDITIONS[1:])
        print(f"{json.dumps(setting):60} {clean_changed_score(pred, ref):13.4f} {same:9.3f} {cells}")


if __name__ == "__main__":
    main()
