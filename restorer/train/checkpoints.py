"""What a run leaves on disk: the exported model directories (``best``, ``final``) and the
checkpoints a resumed run starts from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from restorer.train.config import RunConfig, save_config


def export_model(model: Any, tokenizer: Any, cfg: RunConfig, out_dir: Path, info: dict[str, Any]) -> None:
    """``save_pretrained`` (safetensors) + tokenizer + config + model card."""
    from restorer.train.modelcard import write_model_card

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    save_config(cfg, tmp / "restorer_config.yaml")
    (tmp / "training_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    write_model_card(tmp, cfg, info)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)


def latest_checkpoint(out: Path) -> Path | None:
    ckpts = sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    ckpts = [c for c in ckpts if (c / "trainer_state.json").exists()]
    return ckpts[-1] if ckpts else None
