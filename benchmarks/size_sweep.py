"""Quality against model size and sequence length, at an equal wall-clock budget.

Each variant trains from scratch with ``train.py`` for ``--minutes`` on ``--threads`` CPU
threads (same data, same tokenizer, same seed), then the final weights are scored by
teacher-forced loss per target token on a fixed valid pairs file. Equal time, not equal steps,
is the budget that matters on a CPU: a bigger model sees fewer pairs. All variants run in the
same session, one after the other, so they share the machine's conditions.

    python benchmarks/size_sweep.py --tokenizer runs/default/tokenizer \\
        --valid runs/default/valid_pairs.jsonl --minutes 10 --out runs/sweep
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VARIANTS: dict[str, list[str]] = {
    "d128-3+3-len64": ["model.d_model=128", "model.d_ff=512", "model.d_kv=32", "model.num_layers=3",
                       "model.num_decoder_layers=3", "data.max_tokens=64", "train.lr=1e-3"],
    "d256-4+4-len64": ["data.max_tokens=64"],
    "d256-4+4-len32": ["data.max_tokens=32"],
    "d384-6+6-len64": ["model.d_model=384", "model.d_ff=1536", "model.d_kv=64", "model.num_heads=6",
                       "model.num_layers=6", "model.num_decoder_layers=6", "data.max_tokens=64",
                       "train.lr=3e-4"],
}  # fmt: skip


def valid_loss(model_dir: Path, pairs_path: Path, batch_size: int = 32) -> float:
    """Mean cross-entropy per target token (teacher forcing) over a pairs file."""
    import torch
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    from restorer.data import collate, read_pairs

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = T5ForConditionalGeneration.from_pretrained(str(model_dir)).eval()
    pairs = read_pairs(pairs_path)
    src = tok([p["spun"] for p in pairs])["input_ids"]
    tgt = tok([p["original"] for p in pairs])["input_ids"]
    items = sorted(zip(src, tgt, strict=True), key=lambda ab: len(ab[0]))
    total, n = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(items), batch_size):
            batch = collate(items[i : i + batch_size], tok.pad_token_id)
            logits = model(**batch).logits
            labels = batch["labels"]
            lp = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum"
            )
            total += float(lp)
            n += int((labels != -100).sum())
    return total / max(n, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--tokenizer", required=True, help="a trained tokenizer dir, shared by all variants")
    ap.add_argument("--valid", required=True, help="valid pairs JSONL")
    ap.add_argument("--corpus", default="corpus")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/sweep")
    ap.add_argument("--only", default="", help="comma-separated variant names")
    args = ap.parse_args()

    out = Path(args.out)
    rows = []
    names = [n for n in VARIANTS if not args.only or n in args.only.split(",")]
    for name in names:
        run = out / name
        if not (run / "final" / "config.json").exists():
            shutil.rmtree(run, ignore_errors=True)
            run.mkdir(parents=True)
            shutil.copytree(args.tokenizer, run / "tokenizer")
            cmd = [sys.executable, str(ROOT / "train.py"), args.config, *VARIANTS[name],
                   f"train.output_dir={run}", f"data.corpus_dir={args.corpus}", "train.max_steps=1000000",
                   "train.eval_every=0", f"train.threads={args.threads}", "--max-minutes", str(args.minutes)]  # fmt: skip
            print("+", " ".join(cmd), flush=True)
            with open(run / "train.out", "w") as fh:
                subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT)
        with open(run / "log.csv") as fh:
            log = list(csv.DictReader(fh))
        info = json.loads((run / "final" / "training_info.json").read_text()) if (run / "final" / "training_info.json").exists() else {}
        rate = [float(r["pairs_per_s"]) for r in log[len(log) // 5 :]]  # skip the warm-up fifth
        loss = valid_loss(run / "final", Path(args.valid))
        row = {
            "variant": name,
            "params_m": info.get("parameters", 0) / 1e6,
            "steps": int(log[-1]["step"]),
            "pairs": int(log[-1]["pairs"]),
            "pairs_per_s": sum(rate) / max(len(rate), 1),
            "valid_loss": loss,
            "valid_ppl": math.exp(loss),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| variant | params | steps | pairs seen | pairs/s | valid loss/token |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['params_m']:.1f}M | {r['steps']} | {r['pairs']:,} | {r['pairs_per_s']:.1f} | {r['valid_loss']:.3f} |")
    (out / "sweep.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
