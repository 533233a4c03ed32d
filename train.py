"""Train a restorer model, or fine-tune one on a new spinner style.

python train.py configs/default.yaml [section.key=value ...] [--resume] [--max-minutes M]
accelerate launch --num_processes 2 train.py configs/default.yaml   # several processes/GPUs
python train.py configs/finetune.yaml train.init_from=runs/default/best train.output_dir=runs/ft \
    finetune.pairs=my_pairs.jsonl          # = restorer finetune (docs/finetuning.md)

With finetune.pairs, finetune.dictionary or finetune.style set, the run is a fine-tune
(``restorer.train.finetune.run_finetune``); otherwise ``train.init_from`` alone continues training a
model on the base mix.
"""

from __future__ import annotations

import argparse
import json
import sys

from restorer.train.config import ConfigError, RunConfig, load_config
from restorer.train.finetune import FinetuneError, run_finetune
from restorer.train.loop import train


def is_finetune(cfg: RunConfig) -> bool:
    fc = cfg.finetune
    return bool(fc.pairs or fc.dictionary or fc.style)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="YAML config (see configs/)")
    ap.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.lr=5e-4")
    ap.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in train.output_dir"
    )
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this many minutes")
    ap.add_argument(
        "--init-from", default=None, help="start from this model directory (= train.init_from=DIR)"
    )
    args = ap.parse_args(argv)
    overrides = list(args.overrides)
    if args.max_minutes is not None:
        overrides.append(f"train.max_minutes={args.max_minutes}")
    if args.init_from is not None:
        overrides.append(f"train.init_from={args.init_from}")
    try:
        cfg = load_config(args.config, overrides)
        result = run_finetune(cfg, resume=args.resume) if is_finetune(cfg) else train(cfg, resume=args.resume)
    except (ConfigError, FinetuneError) as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    if result["main_process"]:
        print(json.dumps({"steps": result["steps"], "pairs": result["pairs_seen"], "final": result["final"]}))
    return 130 if result.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
