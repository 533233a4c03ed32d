"""Pack a trained model directory for shipping: fp16 safetensors, tokenizer, card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from restorer.inference import default_model_dir

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
) -> dict[str, Any]:
    """Write ``src`` (a ``save_pretrained`` directory) to ``dst`` as fp16 safetensors.

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
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    size = sum(p.stat().st_size for p in dst.iterdir())
    info = {"to": str(dst), "bytes": size, "weights_bytes": (dst / "model.safetensors").stat().st_size}
    if note:
        card = dst / "README.md"
        text = card.read_text(encoding="utf-8") if card.exists() else ""
        card.write_text(text.rstrip("\n") + "\n\n## Notes\n\n" + note.strip() + "\n", encoding="utf-8")
    ship_info: dict[str, Any] = {"source": str(src), "dtype": "float16"}
    if eval_pairs is not None:
        ship_info["evaluation"] = info["evaluation"] = evaluate_shipped(dst, eval_pairs, eval_limit)
    (dst / "ship_info.json").write_text(json.dumps(ship_info, indent=2) + "\n")
    return info


def evaluate_shipped(model_dir: Path, pairs_path: Path, limit: int = 0) -> dict[str, Any]:
    """Score a shipped model on a pairs file (guard on and off) and add it to its card."""
    from restorer.evaluation import evaluate_pairs
    from restorer.inference import Restorer
    from restorer.pairs import read_pairs

    pairs = read_pairs(pairs_path)
    if limit:
        pairs = pairs[:limit]
    r = Restorer.from_pretrained(model_dir, device="cpu")
    res = evaluate_pairs(r, pairs, both=True)
    ev = {"pairs": str(pairs_path), "n": len(pairs), "guard": res["guard"], "no_guard": res["no_guard"]}
    keys = ("repaired", "exact", "chrf", "bleu", "edit_f05", "clean_changed")
    rows = [
        f"| {k} | {ev['guard'][k]:.4f} | {ev['no_guard'][k]:.4f} |" for k in keys if k in ev["guard"]
    ]
    card = model_dir / "README.md"
    section = "\n".join([
        "",
        f"## Evaluation of the shipped fp16 weights ({len(pairs)} pairs of `{Path(pairs_path).name}`)",
        "",
        "`Restorer` (guard on, the default) and the raw greedy decode (`guard=False`):",
        "",
        "| metric | guard on | guard off |",
        "|---|---|---|",
        *rows,
        "",
    ])  # fmt: skip
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    card.write_text(text.rstrip("\n") + "\n" + section, encoding="utf-8")
    return ev
