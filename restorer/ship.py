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


def ship_model(src: Path, dst: Path | None = None) -> dict[str, Any]:
    """Write ``src`` (a ``save_pretrained`` directory) to ``dst`` as fp16 safetensors."""
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
    (dst / "ship_info.json").write_text(json.dumps({"source": str(src), "dtype": "float16"}, indent=2) + "\n")
    return info
