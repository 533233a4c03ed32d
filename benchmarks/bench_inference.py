"""Decoding speed on the same spun sentences: plain ``generate`` vs copy-speculative vs CTranslate2.

One run, one process per decoder (so each peak RSS is its own), the same sentences, the same
threads. Reported: sentences/s, output tokens/s, the ratio to plain greedy ``generate`` (batch
32), the share of outputs identical to it, and peak RSS.

    python benchmarks/bench_inference.py --pairs runs/test_pairs_mixed.jsonl --n 1000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# ctranslate2-int8 splits each batch across one-thread replicas (the backend's CPU default);
# ctranslate2-int8-intra runs one replica with all the threads, for comparison
# speculative decodes as many batches at once as there are threads, each on one thread (the
# torch backend's CPU default); speculative-intra decodes one batch at a time on all threads
DECODERS = ("generate", "speculative", "speculative-intra", "ctranslate2-int8", "ctranslate2-int8-intra")


def run_one(args: argparse.Namespace) -> None:
    """Child process: decode once, print one JSON line."""
    import torch

    from restorer.data import read_pairs

    torch.set_num_threads(args.threads)
    sents = [p["spun"] for p in read_pairs(args.pairs)[: args.n]]
    work = {"passes": 0, "positions": 0}  # decoder passes and positions computed (torch decoders)
    if args.decoder.startswith("ctranslate2-int8"):
        from transformers import AutoTokenizer

        from restorer.infer.ct2 import ct2_decode, load_translator

        tok = AutoTokenizer.from_pretrained(args.ct2_dir)
        tr = load_translator(Path(args.ct2_dir), "cpu", args.threads)

        def decode(xs: list[str]) -> list:
            return ct2_decode(tr, tok, xs, args.batch_size, with_scores=False)
    else:
        from restorer.infer import Restorer
        from restorer.infer.decoders import greedy_decode, speculative_decode

        r = Restorer.from_pretrained(args.model, device="cpu", threads=args.threads, backend="torch", judge="none")
        model = r.seq2seq.model
        fn = greedy_decode if args.decoder == "generate" else speculative_decode
        workers = args.threads if args.decoder == "speculative" else 1

        def count(module: object, a: tuple, kw: dict) -> None:  # one decoder pass: rows x positions
            shape = (kw.get("input_ids") if kw.get("input_ids") is not None else a[0]).shape
            work["passes"] += 1
            work["positions"] += int(shape[0] * shape[1])

        model.get_decoder().register_forward_pre_hook(count, with_kwargs=True)  # generate's passes

        def decode(xs: list[str]) -> list:
            if fn is speculative_decode:  # runs the decoder's layers itself and counts its own passes
                return fn(model, r.tokenizer, xs, args.batch_size, with_scores=False, stats=work, workers=workers)
            return fn(model, r.tokenizer, xs, args.batch_size, with_scores=False)

    decode(sents[:16])  # warm-up
    work["passes"] = work["positions"] = 0
    t0 = time.perf_counter()
    outs = decode(sents)
    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"decoder": args.decoder, "seconds": secs, "texts": [d.text for d in outs],
                      "tokens": sum(len(d.token_ids) + 1 for d in outs), "rss_mb": rss, **work}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--decoder", choices=DECODERS, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ct2-dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.decoder:
        run_one(args)
        return

    from restorer.infer import default_model_dir
    from restorer.infer.ct2 import export_ctranslate2

    model = Path(args.model) if args.model else default_model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        ct2_dir = Path(tmp) / "ct2"
        export_ctranslate2(model, ct2_dir, "int8")
        rows = {}
        for dec in DECODERS:
            cmd = [sys.executable, __file__, "--pairs", args.pairs, "--n", str(args.n), "--threads", str(args.threads),
                   "--batch-size", str(args.batch_size), "--decoder", dec, "--ct2-dir", str(ct2_dir), "--model", str(model)]  # fmt: skip
            env = {**os.environ, "RESTORER_CT2_PARALLEL": "intra" if dec.endswith("-intra") else "inter"}
            res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
            rows[dec] = json.loads(res.stdout.strip().splitlines()[-1])
    base = rows["generate"]
    n = len(base["texts"])
    print(f"{n} spun sentences, {args.threads} threads, batch {args.batch_size}, model {model}")
    print(f"{'decoder':22} {'sent/s':>8} {'tok/s':>8} {'x generate':>10} {'= greedy':>9} {'peak RSS':>9}"
          f" {'passes':>7} {'positions':>9}")  # fmt: skip
    for dec, row in rows.items():
        same = sum(a == b for a, b in zip(row["texts"], base["texts"], strict=True)) / n
        work = f"{row['passes']:7d} {row['positions']:9d}" if row["passes"] else f"{'-':>7} {'-':>9}"
        print(f"{dec:22} {n / row['seconds']:8.1f} {row['tokens'] / row['seconds']:8.0f} "
              f"{base['seconds'] / row['seconds']:10.2f} {same:9.1%} {row['rss_mb']:7.0f} MB {work}")  # fmt: skip
    print("passes: decoder forward calls; positions: rows x tokens they computed (output tokens: "
          f"{base['tokens']}); the decoder's cost follows positions, its per-call overhead passes")


if __name__ == "__main__":
    main()
