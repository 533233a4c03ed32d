"""Loopback load test of ``restorer serve``: N concurrent clients for T seconds, twice.

Starts the server on a free port of 127.0.0.1 (or uses ``--url``), runs ``--clients``
concurrent clients that send ``/v2/models/restorer/infer`` requests of a few real sentences
each for ``--seconds``, and reports requests/s, sentences/s, p50 and p99 latency, errors and
the mean batch size the server ran (from its /metrics). It does so with ``--max-batch-size``
and again with ``--max-batch-size 1``, and prints how many times more sentences/s batching
gives. Every run stops by itself.

    python benchmarks/bench_server.py --model runs/default/best --clients 8 --seconds 30
    python benchmarks/bench_server.py --url http://127.0.0.1:8080 --seconds 10   # one run
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from restorer.infer import default_model_dir
from restorer.serving.process import ServerProcess

SENTENCES = [
    "The firm stated final week that youngsters had been glad to return to faculty.",
    "Researchers on the college discovered that the brand new drug diminished signs in most sufferers.",
    "The mayor instructed reporters the town would construct 3 new parks over the following 12 months.",
    "Many individuals consider that synthetic consciousness will change the way in which we work.",
    "The corporate's earnings rose sharply within the third quarter, beating analysts' expectations.",
    "Native officers warned residents to remain indoors as the massive storm approached the coast.",
    "She mentioned the challenge had taken longer than anticipated however was now nearly full.",
    "The staff received the sport after a late objective within the remaining minutes of play.",
    "Consultants say the worth of housing will proceed to climb for the foreseeable future.",
    "The report discovered that faculties in rural areas obtain much less funding per scholar.",
    "He advised that the federal government ought to make investments extra in public transportation.",
    "The museum will open a brand new exhibition of contemporary artwork subsequent month.",
]


@dataclass
class RunResult:
    label: str
    max_batch_size: int | None
    seconds: float
    requests: int = 0
    sentences: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    requests_per_s: float = 0.0
    sentences_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_batch_size: float | None = None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def request_bodies(sentences: list[str], per_request: int) -> list[dict]:
    cycle = itertools.cycle(sentences)
    bodies = []
    for _ in range(max(1, len(sentences))):
        texts = [next(cycle) for _ in range(per_request)]
        bodies.append(
            {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
        )
    return bodies


def batch_totals(client: httpx.Client, url: str) -> tuple[float, float]:
    """(sum, count) of the server's batch-size histogram."""
    totals = {"restorer_batch_size_sum": 0.0, "restorer_batch_size_count": 0.0}
    for line in client.get(url + "/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        if name in totals:
            totals[name] = float(value)
    return totals["restorer_batch_size_sum"], totals["restorer_batch_size_count"]


async def drive(url: str, bodies: list[dict], clients: int, seconds: float, result: RunResult) -> list[float]:
    """``clients`` concurrent loops posting ``bodies`` in turn until ``seconds`` have passed."""
    latencies: list[float] = []
    turn = itertools.count()
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one_client() -> None:
            while time.perf_counter() < deadline:
                body = bodies[next(turn) % len(bodies)]
                start = time.perf_counter()
                try:
                    r = await client.post("/v2/models/restorer/infer", json=body)
                    kind = None if r.status_code == 200 else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    kind = type(exc).__name__
                if kind is None:
                    latencies.append(time.perf_counter() - start)
                    result.requests += 1
                    result.sentences += len(body["inputs"][0]["data"])
                else:
                    result.errors += 1
                    result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies


def measure(
    url: str, label: str, max_batch_size: int | None, args: argparse.Namespace, bodies: list[dict]
) -> RunResult:
    with httpx.Client(timeout=60) as client:
        for body in bodies[: args.clients]:  # warm-up
            client.post(url + "/v2/models/restorer/infer", json=body).raise_for_status()
        before = batch_totals(client, url)
        result = RunResult(label, max_batch_size, args.seconds)
        start = time.perf_counter()
        latencies = asyncio.run(drive(url, bodies, args.clients, args.seconds, result))
        elapsed = time.perf_counter() - start
        after = batch_totals(client, url)
    result.seconds = round(elapsed, 2)
    result.requests_per_s = round(result.requests / elapsed, 2)
    result.sentences_per_s = round(result.sentences / elapsed, 2)
    result.p50_ms = round(percentile(latencies, 50) * 1000, 1)
    result.p99_ms = round(percentile(latencies, 99) * 1000, 1)
    batches = after[1] - before[1]
    result.mean_batch_size = round((after[0] - before[0]) / batches, 2) if batches else None
    return result


def run_with_server(
    args: argparse.Namespace, max_batch_size: int, label: str, bodies: list[dict]
) -> RunResult:
    serve_args = ["--model", str(args.model), "--max-batch-size", str(max_batch_size),
                  "--max-wait-ms", str(args.max_wait_ms)]  # fmt: skip
    if args.threads:
        serve_args += ["--threads", str(args.threads)]
    serve_args += ["--backend", args.backend]
    server = ServerProcess(serve_args)
    try:
        url = server.start(timeout=300)
        return measure(url, label, max_batch_size, args, bodies)
    finally:
        code = server.stop()
        server.close()
        if code != 0:
            print(f"warning: the server exited with {code}", file=sys.stderr)


def report(results: list[RunResult], args: argparse.Namespace) -> None:
    print(f"{args.clients} clients x {args.seconds:g} s, {args.per_request} sentences per request, "
          f"max wait {args.max_wait_ms:g} ms")  # fmt: skip
    print(
        f"{'run':<22}{'requests/s':>11}{'sentences/s':>13}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'mean batch':>12}"
    )
    for r in results:
        batch = f"{r.mean_batch_size:.2f}" if r.mean_batch_size is not None else "-"
        print(f"{r.label:<22}{r.requests_per_s:>11.1f}{r.sentences_per_s:>13.1f}{r.p50_ms:>9.1f}"
              f"{r.p99_ms:>9.1f}{r.errors:>8}{batch:>12}")  # fmt: skip
        if r.error_kinds:
            print(f"  errors: {r.error_kinds}")
    if len(results) == 2 and results[1].sentences_per_s:
        print(f"batching gain: {results[0].sentences_per_s / results[1].sentences_per_s:.2f}x sentences/s")


def load_sentences(path: str | None) -> list[str]:
    if not path:
        return SENTENCES
    from restorer.data import read_pairs

    return [p["spun"] for p in read_pairs(path) if p["spun"].strip()][:2000]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--url", default=None, help="load an already running server instead (one run)")
    ap.add_argument(
        "--pairs", default=None, help="pairs JSONL whose spun sentences are sent (default: built-in)"
    )
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--per-request", type=int, default=4, help="sentences per request (default: 4)")
    ap.add_argument("--max-batch-size", type=int, default=32, help="the batched run's setting (default: 32)")
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=None, help="the server's model threads")
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "ctranslate2"),
                    help="the server's backend (default: auto, CTranslate2 int8 on the CPU for the shipped model)")  # fmt: skip
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.per_request < 1:
        ap.error("--clients, --seconds and --per-request must be positive")
    bodies = request_bodies(load_sentences(args.pairs), args.per_request)

    if args.url:
        results = [measure(args.url.rstrip("/"), "server at --url", None, args, bodies)]
    else:
        args.model = Path(args.model) if args.model else default_model_dir()
        if not (args.model / "config.json").exists():
            ap.error(f"no model at {args.model}; pass --model DIR")
        results = [
            run_with_server(args, args.max_batch_size, f"batched (max {args.max_batch_size})", bodies),
            run_with_server(args, 1, "unbatched (max 1)", bodies),
        ]
    report(results, args)
    if args.json:
        Path(args.json).write_text(
            json.dumps([asdict(r) for r in results], indent=2) + "\n", encoding="utf-8"
        )
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
