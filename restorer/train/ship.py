"""Pack a trained model directory for shipping: fp16 safetensors, tokenizer, card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from restorer.infer.ct2 import SUBDIR, export_ctranslate2
from restorer.infer.ct2 import available as ct2_available
from restorer.infer.restorer import default_model_dir

KEEP = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
        "restorer_config.yaml", "training_info.json", "README.md")  # fmt: skip


class ShipError(ValueError):
    """A model directory that cannot be shipped."""


def ship_model(
    src: Path,
    dst: Path | None = None,
    eval_pairs: Path | None = None,
    eval_limit: int = 0,
    note: str = "",
    ctranslate2: bool = True,
) -> dict[str, Any]:
    """Write ``src`` (a ``save_pretrained`` directory) to ``dst`` as fp16 safetensors, with an
    int8 CTranslate2 export in ``dst/ctranslate2`` (unless ``ctranslate2`` is false).

    With ``eval_pairs``, the shipped (fp16) weights are scored on those pairs with the guard
    on and off, and the figures are added to the model card and ``ship_info.json``."""
    import torch
    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    dst = dst or default_model_dir()
    if not (src / "config.json").exists():
        raise ShipError(f"{src} is not a model directory (no config.json)")
    model = T5ForConditionalGeneration.from_pretrained(str(src), dtype=torch.float32)
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.half().save_pretrained(str(tmp), safe_serialization=True)
    for name in KEEP:
        if (src / name).exists():
            shutil.copy2(src / name, tmp / name)
    # the judge the model restores with: the source's own, else the one already shipped there
    for judge_file in (src / "restorer.json", dst / "restorer.json"):
        if judge_file.exists():
            shutil.copy2(judge_file, tmp / "restorer.json")
            break
    if ctranslate2 and ct2_available():  # the fast CPU path of Restorer (backend auto)
        export_ctranslate2(tmp, tmp / SUBDIR, "int8", force=True, source=dst)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    card = dst / "README.md"
    if note:
        text = card.read_text(encoding="utf-8") if card.exists() else ""
        card.write_text(text.rstrip("\n") + "\n\n## Notes\n\n" + note.strip() + "\n", encoding="utf-8")
    ship_info: dict[str, Any] = {"source": str(src), "dtype": "float16"}
    info: dict[str, Any] = {"to": str(dst)}
    if eval_pairs is not None:
        ship_info["evaluation"] = info["evaluation"] = evaluate_shipped(dst, eval_pairs, eval_limit)
    (dst / "ship_info.json").write_text(json.dumps(ship_info, indent=2) + "\n")
    if (dst / SUBDIR).exists():
        if card.exists():  # the export carries the final card
            shutil.copy2(card, dst / SUBDIR / "README.md")
        info["ctranslate2_bytes"] = sum(p.stat().st_size for p in (dst / SUBDIR).iterdir())
    info["bytes"] = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())
    info["weights_bytes"] = (dst / "model.safetensors").stat().st_size
    return info


def evaluate_shipped(model_dir: Path, pairs_path: Path, limit: int = 0) -> dict[str, Any]:
    """Score a shipped model on a pairs file (guard on and off) and add it to its card."""
    from restorer.data import read_pairs
    from restorer.eval.evaluation import evaluate_pairs
    from restorer.infer.restorer import Restorer

    pairs = read_pairs(pairs_path)
    if limit:
        pairs = pairs[:limit]
    ev: dict[str, Any] = {"pairs": str(pairs_path), "n": len(pairs)}
    backends = ["torch"] + (["ctranslate2"] if (model_dir / SUBDIR).exists() and ct2_available() else [])
    for backend in backends:
        r = Restorer.from_pretrained(model_dir, device="cpu", backend=backend, judge="none")
        ev[backend] = evaluate_pairs(r, pairs, both=True)
    default = ev[backends[-1]]  # what Restorer runs on the CPU (backend auto)
    ev["guard"], ev["no_guard"] = default["guard"], default["no_guard"]
    keys = ("repaired", "exact", "chrf", "bleu", "edit_f05", "clean_changed")
    names = {"torch": "torch fp32", "ctranslate2": "CTranslate2 int8"}
    head = " | ".join(f"{names[b]}, guard {g}" for b in backends for g in ("on", "off"))
    rows = [
        "| " + k + " | " + " | ".join(f"{ev[b][g][k]:.4f}" for b in backends for g in ("guard", "no_guard")) + " |"
        for k in keys
        if k in default["guard"]
    ]
    card = model_dir / "README.md"
    section = "\n".join([
        "",
        f"## Evaluation of the shipped weights ({len(pairs)} pairs of `{Path(pairs_path).name}`)",
        "",
        "`Restorer` with the guard on (the default) and the raw greedy decode (`guard=False`), on "
        "torch (fp32 from the fp16 weights) and on the int8 CTranslate2 export in `ctranslate2/`, "
        "which `Restorer` runs on the CPU by default:",
        "",
        f"| metric | {head} |",
        "|---" * (1 + 2 * len(backends)) + "|",
        *rows,
        "",
    ])  # fmt: skip
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    card.write_text(text.rstrip("\n") + "\n" + section, encoding="utf-8")
    return ev
