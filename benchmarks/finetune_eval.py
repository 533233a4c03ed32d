"""The fine-tuning experiment of docs/finetuning.md, end to end.

    python benchmarks/finetune_eval.py --model runs/default/best --minutes 30 --out runs/finetune_eval

1. Make the data of a style the base model never saw (default: benchmarks/data/academic, a
   dictionary of wordy academic calques checked against the shipped tables): ``--n-train``
   pairs from corpus/train.jsonl, ``--n-test`` test pairs from corpus/test.jsonl, the same as
   short phrases (a few words around each substitution), and ``mixed`` test pairs of
   corpus/test.jsonl for forgetting.
2. Fine-tune the base model with ``restorer finetune`` at the same budget, one run after the
   other: the pairs alone (``--no-mine``), the pairs with style mining, the short phrases with
   style mining (``--runs`` picks; ``dictionary`` adds a run from the true dictionary).
3. Score the base model and every run on the three test sets, guard off and on, and print the
   table (also written to OUT/results.md and OUT/results.json).

Targets (issue 6): new-style `repaired` +0.3 or more, base-style `repaired` down by at most 0.02.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STYLE = ROOT / "benchmarks" / "data" / "academic" / "academic.yaml"
RUNS = {
    "pairs": ("pairs alone", ["--no-mine"]),
    "mined": ("pairs + mining", []),
    "phrases": ("short phrases + mining", []),
    "dictionary": ("true dictionary", []),
}
SETS = {"new": "new style, sentences", "phrases": "new style, short phrases", "base": "base style (mixed)"}


# ----------------------------------------------------------------------------- data


def spun_pairs(
    sentences: list[str], style: str | Path, n: int, seed: str, changed: bool = True
) -> list[dict[str, Any]]:
    """Up to ``n`` pairs of a seeded sample of ``sentences`` (only the changed ones if ``changed``)."""
    from restorer.spin.spinner import Spinner

    spinner = Spinner.from_style(style)
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    out: list[dict[str, Any]] = []
    for i in order:
        r = spinner.spin(sentences[i], f"{seed}:{i}")
        if r.text != r.original or not changed:
            out.append(r.to_pair())
            if len(out) >= n:
                break
    return out


def phrase_pairs(pairs: list[dict[str, Any]], context: int = 1) -> list[dict[str, str]]:
    """Short fragments: each substitution with ``context`` words either side, in both texts."""
    out = []
    for p in pairs:
        edits = sorted(p["edits"], key=lambda e: e["start"])
        for e in edits:
            o0, o1 = _widen(p["original"], e["start"], e["end"], context)
            for x in edits:  # a neighbouring substitution inside the window is taken whole
                if x["start"] < o1 and o0 < x["end"]:
                    o0, o1 = min(o0, x["start"]), max(o1, x["end"])
            s0, s1 = _spun_pos(o0, edits), _spun_pos(o1, edits)
            out.append({"spun": p["spun"][s0:s1].strip(), "original": p["original"][o0:o1].strip()})
    return out


def _widen(text: str, start: int, end: int, words: int) -> tuple[int, int]:
    for _ in range(words):
        left = text.rfind(" ", 0, max(start - 1, 0))
        start = 0 if left < 0 else left + 1
        right = text.find(" ", end + 1)
        end = len(text) if right < 0 else right
    return start, end


def _spun_pos(pos: int, edits: list[dict[str, Any]]) -> int:
    """Where a position of the original (outside every edit) lands in the spun text."""
    shift = 0
    for e in edits:
        if e["end"] <= pos:
            shift = e["spun_end"] - e["end"]
    return pos + shift


def make_sets(args: argparse.Namespace, data: Path) -> dict[str, Path]:
    from restorer.data import load_sentences, write_pairs

    corpus = Path(args.corpus)
    train_s = load_sentences(corpus / "train.jsonl", 3)
    test_s = load_sentences(corpus / "test.jsonl", 3)
    train = spun_pairs(train_s, args.style, args.n_train, "ft-train")
    test = spun_pairs(test_s, args.style, args.n_test, "ft-test")
    phrases = phrase_pairs(train)
    random.Random(0).shuffle(phrases)
    files = {
        "train": (train, data / "train_pairs.jsonl"),
        "train_phrases": (phrases[: args.n_train], data / "train_phrases.jsonl"),
        "new": (test, data / "test_pairs.jsonl"),
        "phrases": (phrase_pairs(test)[: args.n_test], data / "test_phrases.jsonl"),
        "base": (
            spun_pairs(test_s, "mixed", args.n_test, "base-test", changed=False),
            data / "test_mixed.jsonl",
        ),
    }
    for rows, path in files.values():
        write_pairs(path, [{"spun": r["spun"], "original": r["original"]} for r in rows])
    print(" ".join(f"{k}: {len(rows)}" for k, (rows, _) in files.items()), file=sys.stderr)
    return {k: path for k, (_, path) in files.items()}


# ----------------------------------------------------------------------------- runs and scores


def finetune(args: argparse.Namespace, run: str, sets: dict[str, Path], out: Path) -> dict[str, float]:
    """One ``restorer finetune`` run in its own process (resumed if interrupted); returns its
    minutes in all and its training steps."""
    info = out / "finetune_info.json"
    if info.exists() and json.loads(info.read_text()).get("after"):
        print(f"{run}: done already in {out}", file=sys.stderr)
        return _budget(info)
    data = {"dictionary": ["--dictionary", str(Path(args.style).with_suffix(".tsv"))],
            "phrases": ["--pairs", str(sets["train_phrases"])]}.get(run, ["--pairs", str(sets["train"])])  # fmt: skip
    cmd = [sys.executable, "-m", "restorer.cli", "finetune", "--model", args.model, "--output", str(out),
           "--base-corpus", args.corpus, "--max-minutes", str(args.minutes), *data, *RUNS[run][1],
           "--set", f"train.threads={args.threads}", *[x for s in args.set for x in ("--set", s)]]  # fmt: skip
    if (out / "training" / "checkpoints").exists():
        cmd.append("--resume")
    print("+ " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    return _budget(info)


def _budget(info: Path) -> dict[str, float]:
    d = json.loads(info.read_text())
    return {"minutes": d.get("elapsed_minutes", 0.0), "steps": d.get("training", {}).get("steps", 0)}


def score(model: Path, sets: dict[str, Path], threads: int) -> dict[str, Any]:
    from restorer.data import read_pairs
    from restorer.eval.evaluation import evaluate_pairs
    from restorer.infer import Restorer

    r = Restorer.from_pretrained(model, device="cpu", threads=threads, backend="torch", judge="none")  # one backend for all
    out = {}
    for name in SETS:
        res = evaluate_pairs(r, read_pairs(sets[name]), both=True)
        out[name] = {
            g: {k: res[g][k] for k in ("repaired", "exact", "clean_changed")} for g in ("no_guard", "guard")
        }
    return out


def table(scores: dict[str, dict[str, Any]], budgets: dict[str, dict[str, float]]) -> str:
    """Markdown: per model, `repaired` (guard off / on) on each set, gains over the base, and more."""
    base = scores["base model"]
    rows = [
        "| model | minutes | steps | new: repaired off / on | gain (off) | phrases: repaired off / on | gain (off) | "
        "base: repaired off / on | base change (off) | new: exact off | new: clean_changed off |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in scores.items():
        b = budgets.get(name, {})

        def pair(k: str, s: dict[str, Any] = s) -> str:
            return f"{s[k]['no_guard']['repaired']:.3f} / {s[k]['guard']['repaired']:.3f}"

        def delta(k: str, s: dict[str, Any] = s) -> str:
            return f"{s[k]['no_guard']['repaired'] - base[k]['no_guard']['repaired']:+.3f}"

        rows.append(
            f"| {name} | {b.get('minutes', 0):.1f} | {b.get('steps', '–')} | {pair('new')} | {delta('new')} | {pair('phrases')} | "
            f"{delta('phrases')} | {pair('base')} | {delta('base')} | {s['new']['no_guard']['exact']:.3f} | "
            f"{s['new']['no_guard']['clean_changed']:.3f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the base model directory")
    ap.add_argument("--minutes", type=float, default=30.0, help="budget of each fine-tune (default: 30)")
    ap.add_argument("--out", default="runs/finetune_eval", help="output folder (data, runs, results)")
    ap.add_argument("--corpus", default="corpus", help="the base corpus folder (train/test splits)")
    ap.add_argument("--style", default=str(STYLE), help="the new style (default: the academic paraphraser)")
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=300)
    ap.add_argument("--runs", default="pairs,mined,phrases", help=f"comma-separated, of {', '.join(RUNS)}")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training and scoring")
    ap.add_argument("--set", action="append", default=[], help="extra finetune override, section.key=value")
    args = ap.parse_args(argv)
    runs = [r for r in args.runs.split(",") if r]
    if set(runs) - set(RUNS):
        ap.error(f"unknown runs {sorted(set(runs) - set(RUNS))}; use {', '.join(RUNS)}")
    out = Path(args.out)
    sets = make_sets(args, out / "data")
    budgets = {RUNS[r][0]: finetune(args, r, sets, out / r) for r in runs}
    scores = {"base model": score(Path(args.model), sets, args.threads)}
    for r in runs:
        scores[RUNS[r][0]] = score(out / r, sets, args.threads)
    text = table(scores, budgets)
    sizes = {k: len(sets[k].read_text(encoding="utf-8").splitlines()) for k in SETS}
    text += "\n\nTest pairs: " + ", ".join(f"{SETS[k]} {n}" for k, n in sizes.items()) + "."
    (out / "results.md").write_text(text + "\n", encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps({"scores": scores, "budgets": budgets, "sizes": sizes}, indent=2)
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
