"""The CTranslate2 backend: export a model directory and decode with it.

CTranslate2 runs the same T5 with int8 (or fp16) weights and a C++ decoder, several times
faster than ``model.generate`` on a CPU. The export directory holds the converted model and
the tokenizer, so ``Restorer.from_pretrained(DIR, backend="ctranslate2")`` needs nothing else.
Decoding is greedy, batched and length-capped like :func:`restorer.infer.decoders.greedy_decode`;
per-token probabilities for the guard are the log-probabilities CTranslate2 reports for each
token as it decodes (a step callback), so they cost no second pass.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from restorer.common import cache_root
from restorer.infer.decoded import Decoded, finish, length_batches

CPU_PARALLEL = os.environ.get("RESTORER_CT2_PARALLEL", "inter")  # "inter" or "intra", see load_translator
SUBDIR = "ctranslate2"  # a model directory's own int8 export, which Restorer uses on CPU
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "float16", "bfloat16", "float32")
MARKER = "restorer_backend.json"


class ExportError(ValueError):
    """A model that cannot be exported, or an export directory that cannot be used."""


def is_ctranslate2_dir(path: Path) -> bool:
    return (path / "model.bin").exists()


def available() -> bool:
    """Whether the ``ctranslate2`` package can be imported."""
    import importlib.util

    return importlib.util.find_spec("ctranslate2") is not None


def bundled_export(model_dir: Path) -> Path | None:
    """The export inside a model directory (``DIR/ctranslate2``, written by ``restorer ship``
    or ``restorer export ctranslate2 --model DIR``), if there is one and it was made from the
    directory's current weights (an export left behind by weights replaced since is ignored)."""
    sub = model_dir / SUBDIR
    if not is_ctranslate2_dir(sub):
        return None
    try:
        made_from = json.loads((sub / MARKER).read_text(encoding="utf-8")).get("weights_sha256")
    except (OSError, ValueError, AttributeError):
        return None
    return sub if made_from and made_from == weights_digest(model_dir) else None


WEIGHTS = ("model.safetensors", "pytorch_model.bin")
HASHED = ("config.json", *WEIGHTS, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def weights_digest(model_dir: Path) -> str:
    """sha256 over a model directory's configuration, weights and tokenizer files."""
    if not (model_dir / "config.json").exists() or not any((model_dir / w).exists() for w in WEIGHTS):
        raise ExportError(f"{model_dir} is not a restorer model directory (config.json and weights)")
    digest = hashlib.sha256()
    for name in HASHED:
        f = model_dir / name
        if f.exists():
            digest.update(name.encode() + b"\0")
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def export_ctranslate2(
    model_dir: Path, output_dir: Path, quantization: str = "int8", force: bool = False, source: Path | None = None
) -> dict[str, Any]:
    """Convert a ``save_pretrained`` T5 directory into a CTranslate2 directory (``source``: the
    path to record as its origin, when ``model_dir`` is a temporary copy)."""
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError:
        raise ExportError("the CTranslate2 backend needs `pip install ctranslate2`") from None
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantization!r}; use one of {', '.join(QUANTIZATIONS)}")
    if not (model_dir / "config.json").exists() or not (model_dir / "tokenizer.json").exists():
        raise ExportError(f"{model_dir} is not a restorer model directory (config.json and tokenizer.json)")
    if output_dir.exists() and any(output_dir.iterdir()) and not force:
        raise ExportError(f"{output_dir} exists and is not empty (use --force to overwrite)")
    files = [f for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "README.md")
             if (model_dir / f).exists()]  # fmt: skip
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    TransformersConverter(str(model_dir), copy_files=files).convert(str(output_dir), quantization=quantization, force=True)
    info = {"backend": "ctranslate2", "quantization": quantization, "source": str(source or model_dir),
            "weights_sha256": weights_digest(model_dir)}  # fmt: skip
    (output_dir / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    info["bytes"] = sum(p.stat().st_size for p in output_dir.iterdir())
    return info


def cached_export(model_dir: Path, quantization: str = "int8") -> Path:
    """A CTranslate2 export of ``model_dir``, converted once and then reused from the cache.

    The key is a hash of the weights and configuration, so a retrained model is converted
    again. The conversion is written to a temporary folder and renamed into place, so an
    interrupted one leaves nothing half-written behind.
    """
    digest = weights_digest(model_dir)
    target = cache_root() / "ctranslate2" / f"{digest[:16]}-{quantization}"
    if is_ctranslate2_dir(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        export_ctranslate2(model_dir, tmp / "model", quantization, force=True)
        try:
            (tmp / "model").rename(target)
        except OSError:  # another process got there first
            if not is_ctranslate2_dir(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_translator(path: Path, device: str = "cpu", threads: int | None = None) -> Any:
    import ctranslate2

    dev, index = (device.split(":") + ["0"])[:2] if device.startswith("cuda") else (device, "0")
    if dev not in ("cpu", "cuda"):
        raise ValueError(f"the CTranslate2 backend runs on cpu or cuda, not {device!r}")
    compute_type = "default"
    if dev == "cpu":  # the CPU computes int8 with float32 activations (fp16 would be converted, with a warning)
        saved = _saved_quantization(path)
        compute_type = "int8_float32" if saved.startswith("int8") else "float32" if saved else "default"
        # A model this small runs best data-parallel: each batch is split across ``threads``
        # one-thread replicas (benchmarks/bench_inference.py) rather than every matrix product
        # across the cores.
        cores = threads or cpu_cores()
        inter, intra = (cores, 1) if CPU_PARALLEL == "inter" else (1, cores)
    else:
        inter, intra = 1, 0
    translator = ctranslate2.Translator(
        str(path), device=dev, device_index=int(index), compute_type=compute_type,
        inter_threads=inter, intra_threads=intra,
    )  # fmt: skip
    _LIVE.add(translator)
    return translator


# A translator that has run a Python step callback and is still alive at interpreter exit aborts
# the process ("terminate called without an active exception", CTranslate2 4.8): the live ones
# release their models first. A weak set, so that translators dropped earlier are freed.
_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()


@atexit.register
def _unload_live_translators() -> None:
    for translator in list(_LIVE):
        translator.unload_model()


def cpu_cores() -> int:
    """The cores this process may run on (CPU affinity, e.g. a container's share), at most 16."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, 16))


def _saved_quantization(path: Path) -> str:
    """The quantization an export was written with ("" when unknown: not one of ours)."""
    try:
        return str(json.loads((path / MARKER).read_text(encoding="utf-8")).get("quantization", ""))
    except (OSError, ValueError, AttributeError):
        return ""


class CT2Backend:
    """A CTranslate2 export, decoded greedily by :func:`ct2_decode` (a
    :class:`restorer.infer.decoders.Backend`)."""

    name = "ctranslate2"

    def __init__(self, translator: Any, tokenizer: Any) -> None:
        self.translator = translator
        self.tokenizer = tokenizer

    def decode(self, texts: Sequence[str], batch_size: int, max_new_tokens: int) -> list[Decoded]:
        return ct2_decode(self.translator, self.tokenizer, texts, batch_size, max_new_tokens)


def ct2_decode(
    translator: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 32,
    max_new_tokens: int = 128,
    with_scores: bool = True,
) -> list[Decoded]:
    """Greedy decoding with CTranslate2, batched by length like ``greedy_decode``.

    Batches are queued asynchronously, a few ahead of the one being read: every replica stays
    busy while Python turns finished batches into ``Decoded`` results, and a replica done with
    its part of one batch goes on to the next instead of waiting for the others.
    """
    from collections import deque

    out: list[Decoded | None] = [None] * len(texts)
    split = max(1, translator.num_translators)
    ahead = 2 * split + 1  # batches in flight
    queue: deque[tuple[list[int], list[list[float]], list[Any]]] = deque()

    def collect() -> None:
        idx, logps, res = queue.popleft()
        for r, i in enumerate(idx):
            ids = tokenizer.convert_tokens_to_ids(res[r].result().hypotheses[0])
            # the callback also reports the end token: the first len(ids) values are the tokens'
            probs = [math.exp(x) for x in logps[r][: len(ids)]] if with_scores else None
            out[i] = finish(tokenizer, ids, probs)

    for idx, rows, cap in length_batches(tokenizer, texts, batch_size, max_new_tokens):
        src = [tokenizer.convert_ids_to_tokens(r) for r in rows]
        logps: list[list[float]] = [[] for _ in rows]

        def step(s: Any, logps: list[list[float]] = logps) -> bool:  # one token of one row
            logps[s.batch_id].append(s.log_prob)
            return False  # keep decoding

        res = translator.translate_batch(
            src, max_batch_size=-(-len(src) // split), beam_size=1, max_decoding_length=cap,
            return_scores=with_scores, callback=step if with_scores else None, asynchronous=True,
        )  # fmt: skip
        queue.append((idx, logps, res))
        if len(queue) >= ahead:
            collect()
    while queue:
        collect()
    return [d for d in out if d is not None]
