"""Train a restorer model.

python train.py configs/default.yaml [section.key=value ...] [--resume] [--max-minutes M]
accelerate launch --num_processes 2 train.py configs/default.yaml   # several processes/GPUs
"""

from __future__ import annotations

import argparse
import json
import sys

from restorer.config import ConfigError, load_config
from restorer.training import train


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="YAML config (see configs/)")
    ap.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.lr=5e-4")
    ap.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in train.output_dir"
    )
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this many minutes")
    args = ap.parse_args(argv)
    overrides = list(args.overrides)
    if args.max_minutes is not None:
        overrides.append(f"train.max_minutes={args.max_minutes}")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    result = train(cfg, resume=args.resume)
    if result["main_process"]:
        print(json.dumps({"steps": result["steps"], "pairs": result["pairs_seen"], "final": result["final"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
